import chalk from 'chalk';
import { formatHealthValue, sparkline, type HealthStatus } from '../../core/thresholds.js';
import type { CheckResult, HealthReport } from '../../engine/health/types.js';
import type { HealthSeries } from '../../metadata/health-samples.js';
import { renderTable } from './table.js';

/** OK results of one check beyond this many targets are folded into one line (-v shows every one; --json always has them all). */
const OK_ROWS_PER_CHECK = 8;

const PAINT: Record<HealthStatus, (s: string) => string> = {
  critical: (s) => chalk.red.bold(s),
  warning: (s) => chalk.yellow(s),
  unknown: (s) => chalk.magenta(s),
  ok: (s) => chalk.green(s),
};

export function paintStatus(status: HealthStatus): string {
  return PAINT[status](status.toUpperCase());
}

function levels(r: CheckResult): [string, string] {
  return [formatHealthValue(r.thresholds.warning, r.unit), formatHealthValue(r.thresholds.critical, r.unit)];
}

/** One row per check and target, worst first; long runs of OK results folded per check unless `verbose`. */
export function renderHealth(report: HealthReport, options: { verbose?: boolean } = {}): string {
  const rows: Array<Array<string | number>> = [];
  const okShown = new Map<string, number>();
  const folded = new Map<string, number>();
  for (const r of report.results) {
    if (r.status === 'ok' && !options.verbose) {
      const shown = okShown.get(r.check) ?? 0;
      if (shown >= OK_ROWS_PER_CHECK) {
        folded.set(r.check, (folded.get(r.check) ?? 0) + 1);
        continue;
      }
      okShown.set(r.check, shown + 1);
    }
    rows.push([paintStatus(r.status), r.check, r.target, formatHealthValue(r.value, r.unit), ...levels(r), r.message]);
  }
  for (const [check, n] of folded) rows.push([paintStatus('ok'), check, chalk.dim(`… ${n} more target(s)`), '', '', '', chalk.dim('OK (-v lists them)')]);
  const s = report.summary;
  const head = `${paintStatus(report.status)}: ${report.results.length} result(s): ${s.critical} critical, ${s.warning} warning, ${s.unknown} unknown, ${s.ok} ok in ${(report.durationMs / 1000).toFixed(1)}s (timeout ${(report.timeoutMs / 1000).toFixed(1)}s)`;
  if (!rows.length) return `${head}\n(no checks ran: nothing configured for the groups asked for)`;
  return [renderTable(['status', 'check', 'target', 'value', 'warning', 'critical', 'message'], rows), head].join('\n');
}

export interface HealthHistoryReport {
  since: string;
  series: HealthSeries[];
}

export function renderHealthHistory(h: HealthHistoryReport, options: { sparklines: boolean }): string {
  if (!h.series.length) return `no health samples since ${h.since} (record them with \`shardctl health --record\`, e.g. from cron)`;
  const rows = h.series.map((s) => [
    paintStatus(s.last.status),
    s.check,
    s.target,
    s.samples,
    s.min === null ? '-' : trim(s.min),
    s.max === null ? '-' : trim(s.max),
    s.last.value === null ? '-' : trim(s.last.value),
    `${s.statuses.critical}c ${s.statuses.warning}w ${s.statuses.unknown}u`,
    ...(options.sparklines ? [sparkline(s.values)] : []),
  ]);
  return [
    renderTable(['last', 'check', 'target', 'samples', 'min', 'max', 'last value', 'not ok', ...(options.sparklines ? ['trend'] : [])], rows),
    `since ${h.since}; values in the check's base unit (seconds, bytes, ratio)`,
  ].join('\n');
}

function trim(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toPrecision(4);
}
