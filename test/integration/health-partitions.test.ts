import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runHealth } from '../../src/engine/health/run.js';
import type { CheckResult } from '../../src/engine/health/types.js';
import { init } from '../../src/engine/init.js';
import { partitionRotate } from '../../src/engine/partitions/rotate.js';
import { createDeployment, testRun, type TestDeployment } from '../support/deployment.js';
import { databaseOf } from '../../src/postgres/connect.js';
import { pgUrl } from '../support/databases.js';
import { sql } from '../support/migrations.js';

/*
 * The partitions checks of `health` on two real shard databases: a daily
 * timestamptz table with a default partition and limits (maxRows, maxBytes),
 * and a monthly date table without. The runway is judged as of instants
 * given with `now`, never by sleeping; the rotate is a real `partition rotate`.
 */

const TABLES_SQL = `
CREATE TABLE public.events (id bigint NOT NULL, at timestamptz NOT NULL, body text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE public.events_default PARTITION OF public.events DEFAULT;
CREATE TABLE public.ledger (id bigint NOT NULL, day date NOT NULL, amount numeric, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
`;

const DAY = 86_400_000;

function result(results: CheckResult[], check: string, target: string): CheckResult {
  const found = results.filter((r) => r.check === check && r.target === target);
  expect(found, `${check} ${target}: ${JSON.stringify(results.map((r) => `${r.check} ${r.target}`))}`).toHaveLength(1);
  return found[0]!;
}

describe('health: the partitions checks', () => {
  let d: TestDeployment;
  /** The instant rotate ran as of: real time, so the audit row's time and the calendar agree. */
  let t0: Date;

  beforeAll(async () => {
    d = await createDeployment({ shards: 2, redis: false, tables: false });
    await d.rewrite((raw) => {
      raw.partitions = [
        { table: 'public.events', column: 'at', interval: 'daily', premake: 3, maxRows: 1000, maxBytes: '1MB' },
        { table: 'public.ledger', column: 'day', interval: 'monthly', premake: 2 },
      ];
    });
    await init(d.config, testRun());
    for (const url of d.shardUrls) await sql(url, TABLES_SQL);
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('the shards and partitions groups share one session per shard: a run opens one backend on each shard database', async () => {
    // pg_stat_database.sessions (PostgreSQL 14+) counts the sessions established, flushed when each ends.
    const sessions = async () =>
      new Map((await sql<{ datname: string; sessions: number }>(pgUrl(), 'SELECT datname, sessions::int AS sessions FROM pg_stat_database WHERE datname = ANY($1)', [d.shardUrls.map(databaseOf)])).map((r) => [r.datname, r.sessions]));
    const before = await sessions();
    const report = await runHealth(d.config, { only: ['shards', 'partitions'] });
    expect(report.results.filter((r) => r.check === 'reachable' && r.target.startsWith('shard-')).map((r) => r.status)).toEqual(['ok', 'ok']);
    expect(report.results.filter((r) => r.check === 'partition_runway')).toHaveLength(4);
    const after = await sessions();
    for (const url of d.shardUrls) expect(after.get(databaseOf(url))! - before.get(databaseOf(url))!, databaseOf(url)).toBe(1);
  });

  it('before any rotate: no partition holds now (critical) and last_rotate is critical "never"', async () => {
    const report = await runHealth(d.config, { only: ['partitions'] });
    const runway = result(report.results, 'partition_runway', 'public.events on shard-0');
    expect(runway).toMatchObject({ status: 'critical', value: 0, labels: { shard: 'shard-0', table: 'public.events' } });
    expect(runway.message).toMatch(/^no partition of public\.events holds now/);
    const rotate = result(report.results, 'last_rotate', 'deployment');
    expect(rotate).toMatchObject({ status: 'critical', value: null, message: 'never: no `partition rotate` in the audit log' });
    // Daily, premake 3 (the shortest runway is the events table's): warning at 2 days, critical at 3.
    expect(rotate.thresholds).toEqual({ warning: 2 * 86_400, critical: 3 * 86_400 });
    expect(result(report.results, 'default_partition_rows', 'public.events on shard-1')).toMatchObject({ status: 'ok', value: 0 });
    expect(result(report.results, 'default_partition_rows', 'public.ledger on shard-1')).toMatchObject({ status: 'ok', value: null, message: 'public.ledger has no default partition' });
  });

  it('after a real partition rotate: runway = premake and a fresh rotate are OK', async () => {
    t0 = new Date();
    await partitionRotate(d.config, testRun(), { now: t0 });
    const report = await runHealth(d.config, { only: ['partitions'], now: new Date(t0.getTime() + 60_000) });
    expect(report.results.filter((r) => r.status !== 'ok'), JSON.stringify(report.results.filter((r) => r.status !== 'ok'))).toEqual([]);
    for (const shard of ['shard-0', 'shard-1']) {
      const runway = result(report.results, 'partition_runway', `public.events on ${shard}`);
      expect(runway.value).toBe(3);
      expect(runway.thresholds).toEqual({ warning: 2, critical: 0 });
      expect(result(report.results, 'partition_runway', `public.ledger on ${shard}`).value).toBe(2);
    }
    const rotate = result(report.results, 'last_rotate', 'deployment');
    expect(rotate.value).toBeGreaterThanOrEqual(0);
    expect(rotate.value).toBeLessThan(120);
    expect(rotate.message).toMatch(/^last successful `partition rotate` .* ago/);
  });

  it('a day later the runway is below premake (warning); on the last ready day there is none for the next interval (critical)', async () => {
    const later = await runHealth(d.config, { check: 'partition_runway', now: new Date(t0.getTime() + DAY) });
    const warn = result(later.results, 'partition_runway', 'public.events on shard-0');
    expect(warn).toMatchObject({ status: 'warning', value: 2 });
    expect(warn.message).toContain('fewer than premake 3: run `partition rotate`');
    const last = await runHealth(d.config, { check: 'partition_runway', now: new Date(t0.getTime() + 3 * DAY) });
    expect(result(last.results, 'partition_runway', 'public.events on shard-1')).toMatchObject({ status: 'critical', value: 0 });
  });

  it('last_rotate warns after two intervals without a rotate and is critical once the premade runway has run out', async () => {
    const warn = await runHealth(d.config, { check: 'last_rotate', now: new Date(t0.getTime() + 2.5 * DAY) });
    expect(result(warn.results, 'last_rotate', 'deployment').status).toBe('warning');
    const crit = await runHealth(d.config, { check: 'last_rotate', now: new Date(t0.getTime() + 3.5 * DAY) });
    expect(result(crit.results, 'last_rotate', 'deployment').status).toBe('critical');
  });

  it('rows in the default partition fire default_partition_rows on that shard only', async () => {
    await sql(d.shardUrls[0]!, `INSERT INTO public.events (id, at) SELECT g, $1::timestamptz FROM generate_series(1, 5) g`, [new Date(t0.getTime() + 30 * DAY)]);
    try {
      const report = await runHealth(d.config, { check: 'default_partition_rows' });
      const here = result(report.results, 'default_partition_rows', 'public.events on shard-0');
      expect(here).toMatchObject({ status: 'warning', value: 5 });
      expect(here.message).toMatch(/^5 row\(s\) in the default partition events_default/);
      expect(result(report.results, 'default_partition_rows', 'public.events on shard-1')).toMatchObject({ status: 'ok', value: 0 });
    } finally {
      await sql(d.shardUrls[0]!, 'DELETE FROM public.events_default');
    }
  });

  it('a partition over maxRows fires partition_rows, and over maxBytes partition_bytes; a table without limits has neither', async () => {
    const url = d.shardUrls[1]!;
    await sql(url, `INSERT INTO public.events (id, at, body) SELECT g, $1::timestamptz, repeat(md5(g::text), 30) FROM generate_series(1, 1500) g`, [t0]);
    await sql(url, 'ANALYZE public.events');
    try {
      const report = await runHealth(d.config, { only: ['partitions'], now: t0 });
      const rows = result(report.results, 'partition_rows', 'public.events on shard-1');
      expect(rows).toMatchObject({ status: 'warning', value: 1500, thresholds: { warning: 1000, critical: 2000 } });
      expect(rows.message).toMatch(/^largest partition events_p\d{8}: about 1500 rows \(maxRows 1000\)$/);
      expect(result(report.results, 'partition_rows', 'public.events on shard-0').status).toBe('ok');

      const [largest] = await sql<{ name: string; bytes: string }>(
        url,
        `SELECT c.relname AS name, pg_total_relation_size(c.oid) AS bytes FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'public.events'::regclass ORDER BY 2 DESC LIMIT 1`,
      );
      const { name, bytes } = largest!;
      const size = result(report.results, 'partition_bytes', 'public.events on shard-1');
      expect(size.value).toBe(Number(bytes));
      // maxBytes reads sizes as PostgreSQL does (1MB = 1024 kB).
      expect(size.thresholds).toEqual({ warning: 1024 ** 2, critical: 2 * 1024 ** 2 });
      expect(Number(bytes)).toBeGreaterThanOrEqual(1024 ** 2);
      expect(size.status).toBe(Number(bytes) >= 2 * 1024 ** 2 ? 'critical' : 'warning');
      expect(size.message).toContain(`largest partition ${name}:`);
      expect(report.results.filter((r) => r.target.startsWith('public.ledger') && (r.check === 'partition_rows' || r.check === 'partition_bytes'))).toEqual([]);
    } finally {
      await sql(url, 'DELETE FROM public.events');
    }
  });

  it('a configured table missing on a shard is unknown there, with the reason, and the other shard still reports', async () => {
    await sql(d.shardUrls[0]!, 'ALTER TABLE public.ledger RENAME TO ledger_gone');
    try {
      const report = await runHealth(d.config, { check: 'partition_runway', now: t0 });
      const gone = result(report.results, 'partition_runway', 'public.ledger on shard-0');
      expect(gone.status).toBe('unknown');
      expect(gone.message).toMatch(/^public\.ledger does not exist/);
      expect(result(report.results, 'partition_runway', 'public.ledger on shard-1')).toMatchObject({ status: 'ok', value: 2 });
    } finally {
      await sql(d.shardUrls[0]!, 'ALTER TABLE public.ledger_gone RENAME TO ledger');
    }
  });
});
