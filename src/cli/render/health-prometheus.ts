import { Gauge, Registry } from 'prom-client';
import { redactText } from '../../config/redact.js';
import { HEALTH_CHECKS } from '../../core/health-checks.js';
import { compareStatus, exitCodeOfStatus } from '../../core/thresholds.js';
import type { CheckResult, HealthReport } from '../../engine/health/types.js';

export { writeFileAtomic } from '../atomic-file.js';

/** What a scrape of `--serve` answers with: the text exposition format, version 0.0.4. */
export const PROMETHEUS_CONTENT_TYPE: string = Registry.PROMETHEUS_CONTENT_TYPE;

const STATUS_HELP = 'status of one check on one target: 0 ok, 1 warning, 2 critical, 3 unknown (the exit codes of health)';

/**
 * `health --format prometheus`: the report in the text exposition format,
 * through prom-client (HELP, TYPE and label escaping are the library's).
 *
 * - One gauge per check metric of src/core/health-checks.ts, with the check's
 *   labels, in base units (seconds, bytes, ratios as 0..1, booleans as 0/1).
 * - A result whose value is null (nothing to measure: no replicas, no
 *   maxmemory; or a server that did not answer) has no sample: absent, not 0,
 *   so `absent()` and rate rules see a gap rather than a fake reading. Its
 *   status is still in `shardctl_health_check_status`. A metric with no sample
 *   at all is left out, HELP and TYPE included (prom-client would otherwise
 *   print 0 for a gauge without labels).
 * - Two results on one series (same metric, same label values) would be a
 *   duplicate series, which Prometheus rejects for the whole scrape: the worst
 *   status wins, then one with a value, then the first target by name.
 * - `shardctl_health_check_status{check, target}`, `shardctl_health_status`
 *   (the worst), `shardctl_health_duration_seconds` and
 *   `shardctl_health_last_run_timestamp_seconds` describe the run itself.
 *
 * A fresh registry per call: no default process metrics, nothing left over
 * from an earlier scrape. Labels come from results whose targets are already
 * redacted; the text is still passed through redactText as a last guard.
 */
export async function renderPrometheus(report: HealthReport): Promise<string> {
  const registry = new Registry();
  const registers = [registry];

  for (const spec of HEALTH_CHECKS) {
    const series = seriesOf(report.results.filter((r) => r.check === spec.name), spec.labels);
    const samples = [...series.values()].filter((r) => r.value !== null && !Number.isNaN(r.value));
    if (!samples.length) continue;
    const gauge = new Gauge({ name: spec.metric, help: spec.help, labelNames: [...spec.labels], registers });
    for (const r of samples) gauge.set(labelValues(r, spec.labels), r.value!);
  }

  const status = new Gauge({ name: 'shardctl_health_check_status', help: STATUS_HELP, labelNames: ['check', 'target'], registers });
  for (const r of seriesOfStatus(report.results).values()) status.set({ check: r.check, target: r.target }, exitCodeOfStatus(r.status));

  new Gauge({ name: 'shardctl_health_status', help: 'worst status over all checks: 0 ok, 1 warning, 2 critical, 3 unknown', registers }).set(exitCodeOfStatus(report.status));
  new Gauge({ name: 'shardctl_health_duration_seconds', help: 'wall time of the health run', registers }).set(report.durationMs / 1000);
  new Gauge({ name: 'shardctl_health_last_run_timestamp_seconds', help: 'when the health run started, in seconds since the Unix epoch', registers }).set(Date.parse(report.at) / 1000);

  return redactText(await registry.metrics());
}

/** One result per distinct label set of a metric (see renderPrometheus for which one). */
function seriesOf(results: CheckResult[], labels: readonly string[]): Map<string, CheckResult> {
  return pickPerKey(results, (r) => JSON.stringify(labels.map((l) => r.labels[l] ?? '')));
}

function seriesOfStatus(results: CheckResult[]): Map<string, CheckResult> {
  return pickPerKey(results, (r) => JSON.stringify([r.check, r.target]));
}

function pickPerKey(results: CheckResult[], keyOf: (r: CheckResult) => string): Map<string, CheckResult> {
  const picked = new Map<string, CheckResult>();
  for (const r of [...results].sort(preferred)) {
    const key = keyOf(r);
    if (!picked.has(key)) picked.set(key, r);
  }
  return picked;
}

/** Worst status first, then a result with a value, then by target, value and message, so the pick never depends on input order. */
function preferred(a: CheckResult, b: CheckResult): number {
  return (
    compareStatus(a.status, b.status) ||
    Number(a.value === null) - Number(b.value === null) ||
    compareText(a.target, b.target) ||
    (a.value ?? 0) - (b.value ?? 0) ||
    compareText(a.message, b.message)
  );
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function labelValues(r: CheckResult, labels: readonly string[]): Record<string, string> {
  return Object.fromEntries(labels.map((l) => [l, r.labels[l] ?? '']));
}
