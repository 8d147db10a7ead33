import { redactText } from '../../config/redact.js';
import { checkSpec, type CheckSpec } from '../../core/health-checks.js';
import { compareStatus, type HealthStatus } from '../../core/thresholds.js';
import type { CheckResult, HealthReport } from '../../engine/health/types.js';

export interface NagiosOptions {
  /** Perfdata for at most this many results, worst first (the rest are in --json and Prometheus). */
  maxPerfdata?: number;
  /** The messages of at most this many non-OK results in the text, worst first. */
  maxMessages?: number;
}

const DEFAULT_MAX_PERFDATA = 20;
const DEFAULT_MAX_MESSAGES = 3;
/** One message in the text part; the whole line stays well under Nagios' 8 KiB plugin output buffer. */
const MESSAGE_CHARS = 100;
const ORDER: HealthStatus[] = ['critical', 'warning', 'unknown', 'ok'];

/**
 * `health --format nagios`: one line, the Nagios plugin convention
 * (https://nagios-plugins.org/doc/guidelines.html#PLUGOUTPUT):
 *
 *   SHARDCTL HEALTH CRITICAL - 1 critical, 2 warning, 40 ok; reachable shard-3: no answer within 5s | 'reachable shard-3'=0;;@~:0;0;1 …
 *
 * The text counts the statuses and gives the worst results' messages (at most
 * `maxMessages`, each cut at 100 characters). Perfdata, for at most
 * `maxPerfdata` results worst first, is `'label'=value[UOM];warn;crit;min;max`
 * with label `'<check> <target>'` (a single quote doubled, `=` and `|`
 * replaced). UOM: `s` for seconds, `B` for bytes, `%` for shares (ratios of
 * 0..1, times 100); counts, versions, booleans and max/mean balance ratios
 * (which pass 100%) are plain numbers; `c` is not used, as no check value is
 * a continuous counter. Thresholds are Nagios ranges that alert inside:
 * `@N:` for a check that fires at N or above, `@~:N` for one that fires at N
 * or below (the result's thresholds, configured ones included). A null value is left
 * out when the result is OK (nothing to measure) and is `U` otherwise (it
 * could not be measured).
 */
export function renderNagios(report: HealthReport, options: NagiosOptions = {}): string {
  const maxPerfdata = options.maxPerfdata ?? DEFAULT_MAX_PERFDATA;
  const maxMessages = options.maxMessages ?? DEFAULT_MAX_MESSAGES;
  const results = [...report.results].sort(worstFirst);

  const counts = ORDER.filter((s) => report.summary[s] > 0).map((s) => `${report.summary[s]} ${s}`);
  const notOk = results.filter((r) => r.status !== 'ok');
  const messages = notOk.slice(0, maxMessages).map((r) => shorten(`${r.check} ${r.target}: ${r.message}`, MESSAGE_CHARS));
  if (notOk.length > maxMessages) messages.push(`+${notOk.length - maxMessages} more`);
  const text = [counts.length ? counts.join(', ') : 'no checks ran', ...messages].join('; ');

  const perfdata: string[] = [];
  const seen = new Set<string>();
  for (const r of results) {
    if (perfdata.length >= maxPerfdata) break;
    const label = perfLabel(`${r.check} ${r.target}`);
    if (seen.has(label)) continue; // one label, one value: the worst result's (results are worst first)
    const item = perfItem(r, label);
    if (item === null) continue;
    seen.add(label);
    perfdata.push(item);
  }

  const line = `SHARDCTL HEALTH ${report.status.toUpperCase()} - ${plainText(text)}${perfdata.length ? ` | ${perfdata.join(' ')}` : ''}`;
  return redactText(line);
}

function worstFirst(a: CheckResult, b: CheckResult): number {
  return compareStatus(a.status, b.status) || compareText(a.check, b.check) || compareText(a.target, b.target);
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

interface PerfUnit {
  uom: '' | 's' | 'B' | '%';
  scale: number;
  min?: number;
  max?: number;
}

function perfUnitOf(spec: CheckSpec): PerfUnit {
  switch (spec.unit) {
    case 'seconds':
      return { uom: 's', scale: 1, min: 0 };
    case 'bytes':
      return { uom: 'B', scale: 1, min: 0 };
    case 'ratio':
      return { uom: '%', scale: 100, min: 0, max: 100 };
    case 'factor':
      return { uom: '', scale: 1, min: 0 };
    case 'boolean':
      return { uom: '', scale: 1, min: 0, max: 1 };
    case 'count':
      return { uom: '', scale: 1, min: 0 };
    default:
      return { uom: '', scale: 1 };
  }
}


function perfItem(r: CheckResult, label: string): string | null {
  const spec = checkSpec(r.check);
  const unit = perfUnitOf(spec);
  if (r.value === null || !Number.isFinite(r.value)) return r.status === 'ok' ? null : `${label}=U`;
  // "@" ranges alert inside, endpoints included: exactly shardctl's ">= level" (`@N:`) and "<= level" (`@~:N`).
  // The plain `N` / `N:` forms alert only past N, which for counts and booleans is off by the one value that matters.
  const range = (level: number | null) => {
    if (level === null) return '';
    const n = perfNumber(level * unit.scale);
    return spec.direction === 'below' ? `@~:${n}` : `@${n}:`;
  };
  const fields = [
    `${perfNumber(r.value * unit.scale)}${unit.uom}`,
    range(r.thresholds.warning),
    range(r.thresholds.critical),
    unit.min === undefined ? '' : perfNumber(unit.min),
    unit.max === undefined ? '' : perfNumber(unit.max),
  ];
  while (fields.length > 1 && fields[fields.length - 1] === '') fields.pop();
  return `${label}=${fields.join(';')}`;
}

/** Plain decimal, no exponent and no grouping (the guidelines allow [-0-9.] only). */
function perfNumber(n: number): string {
  return n.toLocaleString('en-US', { useGrouping: false, maximumFractionDigits: 6 });
}

/** Quoted, a quote inside doubled; `=` would end the label and `|` the perfdata, so both become `_`. */
function perfLabel(raw: string): string {
  return `'${plainText(raw).replace(/[=|]/g, '_').replace(/'/g, "''")}'`;
}

/** One line, and no `|` in the text part (it would start the perfdata). */
function plainText(s: string): string {
  return s.replace(/[\r\n\t]+/g, ' ').replace(/\|/g, '/').replace(/[\u0000-\u001f\u007f]/g, '');
}

function shorten(s: string, max: number): string {
  const one = plainText(s);
  return one.length <= max ? one : `${one.slice(0, max - 3)}...`;
}
