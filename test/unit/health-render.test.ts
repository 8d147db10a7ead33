import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import parsePrometheusTextFormat, { type ParsedMetricFamily } from 'parse-prometheus-text-format';
import { register as globalRegistry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../../src/cli/atomic-file.js';
import { renderNagios } from '../../src/cli/render/health-nagios.js';
import { renderPrometheus } from '../../src/cli/render/health-prometheus.js';
import { checkSpec, HEALTH_CHECKS } from '../../src/core/health-checks.js';
import { compareStatus, worstStatus, type HealthStatus, type Thresholds } from '../../src/core/thresholds.js';
import type { CheckResult, HealthReport } from '../../src/engine/health/types.js';

const AT = '2026-12-01T12:00:00.000Z';

function result(check: string, over: Partial<CheckResult> & { labels?: Record<string, string> } = {}): CheckResult {
  const spec = checkSpec(check);
  const labels = over.labels ?? Object.fromEntries(spec.labels.map((l) => [l, l === 'shard' ? 'shard-1' : `${l}-1`]));
  return {
    check,
    group: spec.group,
    target: over.target ?? (Object.values(labels).join(' ') || spec.group),
    labels,
    status: over.status ?? 'ok',
    value: over.value !== undefined ? over.value : 1,
    unit: spec.unit,
    thresholds: over.thresholds ?? spec.defaults,
    message: over.message ?? `${check} measured`,
  };
}

function report(results: CheckResult[], over: Partial<HealthReport> = {}): HealthReport {
  const summary: Record<HealthStatus, number> = { ok: 0, warning: 0, critical: 0, unknown: 0 };
  for (const r of results) summary[r.status]++;
  const sorted = [...results].sort((a, b) => compareStatus(a.status, b.status) || a.check.localeCompare(b.check) || a.target.localeCompare(b.target));
  return { at: AT, status: worstStatus(results.map((r) => r.status)), durationMs: 1234, timeoutMs: 5000, results: sorted, summary, ...over };
}

const family = (parsed: ParsedMetricFamily[], name: string) => parsed.find((f) => f.name === name);

/** Every sample line of the text, as Prometheus would identify the series: name plus sorted labels. */
function seriesKeys(parsed: ParsedMetricFamily[]): string[] {
  return parsed.flatMap((f) => f.metrics.map((m) => `${f.name}${JSON.stringify(Object.entries(m.labels ?? {}).sort())}`));
}

describe('renderPrometheus', () => {
  it('gives every check with a value its metric: HELP and TYPE from the registry, its labels, the value in base units', async () => {
    const results = HEALTH_CHECKS.map((spec, i) => result(spec.name, { value: spec.unit === 'ratio' ? 0.25 : spec.unit === 'boolean' ? 1 : 1000 + i }));
    const text = await renderPrometheus(report(results));
    const parsed = parsePrometheusTextFormat(text);
    for (const [i, spec] of HEALTH_CHECKS.entries()) {
      const f = family(parsed, spec.metric);
      expect(f, spec.metric).toBeDefined();
      expect(f!.type).toBe('GAUGE');
      expect(f!.help).toBe(spec.help);
      expect(text).toContain(`# HELP ${spec.metric} `);
      expect(text).toContain(`# TYPE ${spec.metric} gauge`);
      expect(f!.metrics).toHaveLength(1);
      expect(f!.metrics[0]!.labels ?? {}).toEqual(results[i]!.labels);
      expect(Number(f!.metrics[0]!.value)).toBe(results[i]!.value);
    }
  });

  it('reports each check status 0..3, the worst status, the run duration in seconds and its start as a Unix timestamp', async () => {
    const results = [
      result('latency', { labels: { shard: 'a' }, target: 'a', status: 'ok', value: 0.001 }),
      result('latency', { labels: { shard: 'b' }, target: 'b', status: 'warning', value: 0.07 }),
      result('latency', { labels: { shard: 'c' }, target: 'c', status: 'critical', value: 0.9 }),
      result('cache_hit_ratio', { labels: { shard: 'c' }, target: 'c', status: 'unknown', value: null }),
    ];
    const parsed = parsePrometheusTextFormat(await renderPrometheus(report(results)));
    const statuses = Object.fromEntries(family(parsed, 'shardctl_health_check_status')!.metrics.map((m) => [`${m.labels!.check} ${m.labels!.target}`, Number(m.value)]));
    expect(statuses).toEqual({ 'latency a': 0, 'latency b': 1, 'latency c': 2, 'cache_hit_ratio c': 3 });
    expect(family(parsed, 'shardctl_health_status')!.metrics).toEqual([{ value: '2' }]);
    expect(Number(family(parsed, 'shardctl_health_duration_seconds')!.metrics[0]!.value)).toBe(1.234);
    expect(Number(family(parsed, 'shardctl_health_last_run_timestamp_seconds')!.metrics[0]!.value)).toBe(Date.parse(AT) / 1000);
  });

  it('leaves a null value without a sample (not 0), and a metric with no sample out entirely, while its status stays reported', async () => {
    const results = [
      result('replication_lag', { labels: { shard: 'a' }, target: 'a', value: null, message: 'no replicas' }),
      result('replication_lag', { labels: { shard: 'b' }, target: 'b', value: 4 }),
      result('moves_in_flight', { labels: {}, target: 'sharding', value: null }),
    ];
    const text = await renderPrometheus(report(results));
    const parsed = parsePrometheusTextFormat(text);
    expect(family(parsed, 'shardctl_sharding_oldest_move_seconds')).toBeUndefined();
    expect(text).not.toContain('shardctl_sharding_oldest_move_seconds');
    expect(family(parsed, 'shardctl_pg_replication_lag_seconds')!.metrics).toEqual([{ value: '4', labels: { shard: 'b' } }]);
    expect(family(parsed, 'shardctl_health_check_status')!.metrics).toHaveLength(3);
  });

  it('emits two results on one series once: the worst status wins, whatever order they come in', async () => {
    const okOne = result('longest_transaction', { labels: { shard: 'shard-1' }, target: 'shard-1', status: 'ok', value: 2 });
    const critical = result('longest_transaction', { labels: { shard: 'shard-1' }, target: 'shard-1', status: 'critical', value: 400 });
    const alsoOk = result('longest_transaction', { labels: { shard: 'shard-1' }, target: 'shard-1 (again)', status: 'ok', value: 3 });
    const outputs = new Set<string>();
    for (const order of [[okOne, critical, alsoOk], [alsoOk, critical, okOne], [critical, alsoOk, okOne]]) {
      const text = await renderPrometheus({ ...report(order), results: order });
      outputs.add(text);
      const parsed = parsePrometheusTextFormat(text);
      expect(family(parsed, 'shardctl_pg_longest_transaction_seconds')!.metrics).toEqual([{ value: '400', labels: { shard: 'shard-1' } }]);
      // the status series is keyed by (check, target): two targets, and the duplicate target once
      const keys = seriesKeys(parsed);
      expect(new Set(keys).size).toBe(keys.length);
    }
    expect(outputs.size).toBe(1);
    const sameTarget = [okOne, { ...okOne, status: 'warning' as const, value: 40 }];
    const parsed = parsePrometheusTextFormat(await renderPrometheus(report(sameTarget)));
    expect(family(parsed, 'shardctl_health_check_status')!.metrics).toEqual([{ value: '1', labels: { check: 'longest_transaction', target: 'shard-1' } }]);
  });

  it('has no duplicate series over a report where every check reports several targets, some twice', async () => {
    const results = HEALTH_CHECKS.flatMap((spec) =>
      ['shard-1', 'shard-2', 'shard-1'].map((s, i) => result(spec.name, { labels: Object.fromEntries(spec.labels.map((l) => [l, s])), target: s, value: i, status: i === 2 ? 'warning' : 'ok' })),
    );
    const parsed = parsePrometheusTextFormat(await renderPrometheus(report(results)));
    const keys = seriesKeys(parsed);
    expect(keys.length).toBeGreaterThan(HEALTH_CHECKS.length);
    expect(new Set(keys).size).toBe(keys.length);
    expect(new Set(parsed.map((f) => f.name)).size).toBe(parsed.length);
  });

  it('escapes a label value with quotes, backslashes and a newline so that a parser reads it back unchanged', async () => {
    const nasty = 'we"ird\\name\nline two';
    const results = [result('stream_length', { labels: { stream: nasty }, target: nasty, value: 7 })];
    const text = await renderPrometheus(report(results));
    expect(text).toContain('stream="we\\"ird\\\\name\\nline two"');
    const parsed = parsePrometheusTextFormat(text);
    expect(family(parsed, 'shardctl_stream_length')!.metrics).toEqual([{ value: '7', labels: { stream: nasty } }]);
    expect(family(parsed, 'shardctl_health_check_status')!.metrics[0]!.labels).toEqual({ check: 'stream_length', target: nasty });
  });

  it('prints no password, even one a target or label carried unredacted', async () => {
    const leaky = 'postgres://app:s3cretpw@10.0.0.1:5432/app';
    const text = await renderPrometheus(report([result('reachable', { labels: { shard: leaky }, target: leaky, value: 0, status: 'critical' })]));
    expect(text).not.toContain('s3cretpw');
    expect(text).toContain('postgres://app:***@10.0.0.1:5432/app');
  });

  it('uses a fresh registry per call: nothing accumulates and the global registry stays empty', async () => {
    const first = await renderPrometheus(report([result('latency', { labels: { shard: 'a' }, target: 'a', value: 0.01 })]));
    const second = await renderPrometheus(report([result('latency', { labels: { shard: 'b' }, target: 'b', value: 0.02 })]));
    expect(first).not.toContain('shard="b"');
    expect(second).not.toContain('shard="a"');
    expect(second).not.toContain('process_cpu');
    expect(await globalRegistry.metrics()).not.toContain('shardctl_');
  });
});

// The plugin guidelines' perfdata: 'label'=value[UOM];[warn];[crit];[min];[max], a quote in a label doubled, no '=' in it.
const NUMBER = String.raw`-?\d+(?:\.\d+)?`;
const RANGE = String.raw`@?(?:~|${NUMBER})?:?(?:${NUMBER})?`;
const PERF = String.raw`'(?:[^'=]|'')+'=(?:U|${NUMBER}(?:s|ms|us|%|B|KB|MB|GB|TB|c)?)(?:;(?:${RANGE})?){0,2}(?:;(?:${NUMBER})?){0,2}`;
const NAGIOS_LINE = new RegExp(String.raw`^SHARDCTL HEALTH (OK|WARNING|CRITICAL|UNKNOWN) - [^|\n]+?(?: \| ${PERF}(?: ${PERF})*)?$`);

function perfdataOf(line: string): Map<string, string> {
  const perf = line.split(' | ')[1] ?? '';
  return new Map([...perf.matchAll(/'((?:[^']|'')*)'=(\S*)/g)].map((m) => [m[1]!.replace(/''/g, "'"), m[2]!]));
}

describe('renderNagios', () => {
  it('prints one line with the status, the counts, the worst messages and perfdata in the plugin format', () => {
    const results = [
      result('reachable', { labels: { shard: 'shard-3' }, target: 'shard-3', status: 'critical', value: 0, message: 'no answer within 5s' }),
      result('longest_transaction', { labels: { shard: 'shard-1' }, target: 'shard-1', status: 'warning', value: 41.5, message: 'pid 4242 open for 41s' }),
      result('connections', { labels: { shard: 'shard-1' }, target: 'shard-1', value: 0.125 }),
      result('row_balance', { labels: { table: 'public.messages' }, target: 'public.messages', value: 1.2 }),
      result('database_size', { labels: { shard: 'shard-1' }, target: 'shard-1', value: 123456789 }),
      result('cache_hit_ratio', { labels: { shard: 'shard-1' }, target: 'shard-1', value: 0.995 }),
    ];
    // the pattern itself rejects what the guidelines forbid
    for (const bad of ["SHARDCTL HEALTH OK - x | 'a=b'=1", "SHARDCTL HEALTH OK - x | 'it's'=1", 'SHARDCTL HEALTH OK - x | a b=1', "SHARDCTL HEALTH OK - x | 'a'=1e9", 'SHARDCTL HEALTH FINE - x']) {
      expect(bad).not.toMatch(NAGIOS_LINE);
    }
    const line = renderNagios(report(results));
    expect(line).toMatch(NAGIOS_LINE);
    expect(line).not.toContain('\n');
    expect(line.startsWith('SHARDCTL HEALTH CRITICAL - 1 critical, 1 warning, 4 ok; reachable shard-3: no answer within 5s; longest_transaction shard-1: pid 4242 open for 41s | ')).toBe(true);
    const perf = perfdataOf(line);
    expect(perf.get('reachable shard-3')).toBe('0;;@~:0;0;1');
    expect(perf.get('longest_transaction shard-1')).toBe('41.5s;@30:;@300:;0');
    expect(perf.get('connections shard-1')).toBe('12.5%;@80:;@95:;0;100');
    expect(perf.get('cache_hit_ratio shard-1')).toBe('99.5%;@~:90;@~:80;0;100');
    expect(perf.get('row_balance public.messages')).toBe('1.2;@1.5:;@3:;0');
    expect(perf.get('database_size shard-1')).toBe('123456789B;;;0');
    // worst first
    expect([...perf.keys()].slice(0, 2)).toEqual(['reachable shard-3', 'longest_transaction shard-1']);
  });

  it('says OK with the count when everything is fine, and UNKNOWN in capitals when that is the worst', () => {
    expect(renderNagios(report([result('latency', { value: 0.002 })]))).toMatch(/^SHARDCTL HEALTH OK - 1 ok \| 'latency shard-1'=0\.002s;@0\.05:;@0\.5:;0$/);
    const unknown = renderNagios(report([result('slow_statements', { status: 'unknown', value: null, message: 'permission denied for pg_stat_statements' })]));
    expect(unknown).toMatch(NAGIOS_LINE);
    expect(unknown).toBe("SHARDCTL HEALTH UNKNOWN - 1 unknown; slow_statements shard-1: permission denied for pg_stat_statements | 'slow_statements shard-1'=U");
    expect(renderNagios(report([]))).toBe('SHARDCTL HEALTH OK - no checks ran');
  });

  it('quotes labels per the guidelines: a single quote doubled, = and | replaced; the text has no | and no newline', () => {
    const target = "it's=a|b\nc";
    const line = renderNagios(report([result('stream_length', { labels: { stream: target }, target, status: 'warning', value: 9, message: 'too long | by far\nreally' })]));
    expect(line).toMatch(NAGIOS_LINE);
    expect(line).toContain("'stream_length it''s_a/b c'=9");
    expect(line.split(' | ')[0]).toBe("SHARDCTL HEALTH WARNING - 1 warning; stream_length it's=a/b c: too long / by far really");
  });

  it('stays bounded: perfdata for the 20 worst results and 3 messages, the rest counted', () => {
    const results = Array.from({ length: 100 }, (_, i) =>
      result('latency', { labels: { shard: `s${String(i).padStart(3, '0')}` }, target: `s${String(i).padStart(3, '0')}`, value: i / 1000, status: i % 25 === 7 ? 'critical' : 'ok', message: `${'x'.repeat(300)}` }),
    );
    const line = renderNagios(report(results));
    expect(line).toMatch(NAGIOS_LINE);
    const perf = perfdataOf(line);
    expect(perf.size).toBe(20);
    expect([...perf.keys()].slice(0, 4)).toEqual(['latency s007', 'latency s032', 'latency s057', 'latency s082']);
    expect(line).toContain('; +1 more |');
    expect(line.length).toBeLessThan(2000);
    expect(perfdataOf(renderNagios(report(results), { maxPerfdata: 5 })).size).toBe(5);
  });

  it('leaves out a null value of an OK result (nothing to measure) and gives each label once', () => {
    const line = renderNagios(
      report([
        result('replication_lag', { value: null, message: 'no replicas' }),
        result('latency', { status: 'warning', value: 0.07 }),
        result('latency', { value: 0.01 }),
      ]),
    );
    expect(line).toMatch(NAGIOS_LINE);
    const perf = perfdataOf(line);
    expect([...perf.entries()]).toEqual([['latency shard-1', '0.07s;@0.05:;@0.5:;0']]);
  });

  it('prints no password', () => {
    const leaky = 'postgres://app:s3cretpw@10.0.0.1/app';
    const line = renderNagios(report([result('reachable', { labels: { shard: leaky }, target: leaky, status: 'critical', value: 0, message: `connect ${leaky} refused` })]));
    expect(line).not.toContain('s3cretpw');
  });

  it('writes thresholds as Nagios ranges that alert exactly where the check does: at the level, in its unit, configured levels included', () => {
    const misplaced = renderNagios(report([result('misplaced_rows', { status: 'warning', value: 1 })]));
    expect(perfdataOf(misplaced).get('misplaced_rows shard-1 table-1')).toBe('1;@1:;@100:;0');
    const runway = renderNagios(report([result('partition_runway', { status: 'critical', value: 0, thresholds: { warning: 6, critical: 0 } })]));
    expect(perfdataOf(runway).get('partition_runway shard-1 table-1')).toBe('0;@~:6;@~:0;0');
    const thresholds: Thresholds = { warning: 0.5, critical: null };
    const line = renderNagios(report([result('redis_memory', { labels: { node: 'redis 127.0.0.1:6379' }, target: 'redis 127.0.0.1:6379', value: 0.6, status: 'warning', thresholds })]));
    expect(perfdataOf(line).get('redis_memory redis 127.0.0.1:6379')).toBe('60%;@50:;;0;100');
  });
});

describe('writeFileAtomic', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'shardctl-atomic-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes the text and leaves only the target in the directory', async () => {
    const file = path.join(dir, 'shardctl.prom');
    await writeFileAtomic(file, 'one\n');
    await writeFileAtomic(file, 'two\n');
    expect(await readFile(file, 'utf8')).toBe('two\n');
    expect(await readdir(dir)).toEqual(['shardctl.prom']);
  });

  it('replaces the file so that a reader sees the old content or the new, never part of either', async () => {
    const file = path.join(dir, 'big.prom');
    const a = 'a'.repeat(4 * 1024 * 1024);
    const b = 'b'.repeat(3 * 1024 * 1024);
    await writeFileAtomic(file, a);
    let writing = true;
    const seen = new Set<string>();
    const reader = (async () => {
      let reads = 0;
      while (writing || reads < 5) {
        const text = await readFile(file, 'utf8');
        seen.add(text === a ? 'a' : text === b ? 'b' : `partial ${text.length}`);
        reads++;
      }
    })();
    for (let i = 0; i < 20; i++) await writeFileAtomic(file, i % 2 ? a : b);
    writing = false;
    await reader;
    expect([...seen].filter((s) => s.startsWith('partial'))).toEqual([]);
    expect(await readdir(dir)).toEqual(['big.prom']);
  });

  it('keeps the mode of the file it replaces', async () => {
    const file = path.join(dir, 'mode.prom');
    await writeFile(file, 'old');
    await chmod(file, 0o600);
    await writeFileAtomic(file, 'new');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    await writeFileAtomic(path.join(dir, 'fresh.prom'), 'x');
    expect((await stat(path.join(dir, 'fresh.prom'))).mode & 0o777).toBe(0o644);
  });

  it('fails without leaving a temp file when the rename cannot replace the target, and leaves the target as it was', async () => {
    const target = path.join(dir, 'is-a-directory.prom');
    await mkdir(target);
    await writeFile(path.join(target, 'inside'), 'kept');
    await expect(writeFileAtomic(target, 'text')).rejects.toThrow(/EISDIR|ENOTEMPTY|EEXIST/);
    expect(await readdir(dir)).toEqual(['is-a-directory.prom']);
    expect(await readFile(path.join(target, 'inside'), 'utf8')).toBe('kept');
  });

  it('fails when the directory does not exist, creating nothing', async () => {
    await expect(writeFileAtomic(path.join(dir, 'missing', 'x.prom'), 'text')).rejects.toThrow(/ENOENT/);
    expect(await readdir(dir)).toEqual([]);
  });
});
