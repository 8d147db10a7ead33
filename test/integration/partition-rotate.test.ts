import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { init } from '../../src/engine/init.js';
import { partitionList } from '../../src/engine/partitions/list.js';
import { partitionRotate } from '../../src/engine/partitions/rotate.js';
import { partitionSetup } from '../../src/engine/partitions/setup.js';
import { OperationError } from '../../src/errors.js';
import { createDeployment, testRun, type TestDeployment } from '../support/deployment.js';
import { sql } from '../support/migrations.js';

/*
 * partition rotate / list / setup on two real shard databases: a daily
 * timestamptz table (with a default partition) and a monthly date table,
 * with the calendar run as of fixed instants (--now), never sleeping.
 */

const TABLES_SQL = `
CREATE TABLE public.events (id bigint NOT NULL, at timestamptz NOT NULL, body text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE public.events_default PARTITION OF public.events DEFAULT;
CREATE TABLE public.ledger (id bigint NOT NULL, day date NOT NULL, amount numeric, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
`;

async function partitionsOf(url: string, table: string): Promise<string[]> {
  const rows = await sql<{ name: string }>(url, `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass ORDER BY 1`, [table]);
  return rows.map((r) => r.name);
}

/** Relations, constraints and inheritance of the public and archive schemas: what a dry run must not change. */
async function catalog(url: string): Promise<string> {
  const rows = await sql(
    url,
    `SELECT (SELECT string_agg(n.nspname || '.' || c.relname || ':' || c.relkind::text, ',' ORDER BY 1) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('public', 'archive')) AS rels,
            (SELECT string_agg(conname, ',' ORDER BY 1) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'public') AS cons,
            (SELECT string_agg(inhrelid::regclass::text || '<' || inhparent::regclass::text, ',' ORDER BY 1) FROM pg_inherits) AS inh`,
  );
  return JSON.stringify(rows);
}

describe('partition rotate on every shard', () => {
  let d: TestDeployment;
  const run = testRun();

  beforeAll(async () => {
    d = await createDeployment({ shards: 2, redis: false, tables: false });
    await d.rewrite((raw) => {
      raw.partitions = [
        { table: 'public.events', column: 'at', interval: 'daily', premake: 3, retention: '3d', retentionMode: 'detach' },
        { table: 'public.ledger', column: 'day', interval: 'monthly', premake: 2, retention: '90d', retentionMode: 'archive', archiveSchema: 'archive' },
      ];
    });
    await init(d.config, run);
    for (const url of d.shardUrls) await sql(url, TABLES_SQL);
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('setup reports the tables ready, and names what is missing with the SQL to fix it', async () => {
    expect((await partitionSetup(d.config, 'public.events')).ready).toBe(true);
    await sql(d.shardUrls[1]!, 'CREATE TABLE public.plain (id bigint PRIMARY KEY, at timestamptz)');
    await d.rewrite((raw) => {
      (raw.partitions as unknown[]).push({ table: 'public.plain', column: 'at', interval: 'daily' });
    });
    try {
      const r = await partitionSetup(d.config, 'public.plain');
      expect(r.ready).toBe(false);
      const problems = r.shards.flatMap((s) => s.report?.problems ?? []);
      expect(problems.length).toBeGreaterThan(0);
      expect(problems.some((p) => p.fixSql.some((q) => /PARTITION BY RANGE/.test(q)))).toBe(true);
    } finally {
      await d.rewrite((raw) => {
        (raw.partitions as unknown[]).pop();
      });
    }
  });

  it('--dry-run prints the SQL and impact per shard and changes nothing', async () => {
    const before = await Promise.all(d.shardUrls.map(catalog));
    const r = await partitionRotate(d.config, run, { now: new Date('2026-12-01T10:00:00Z'), dryRun: true });
    expect(r.dryRun).toBe(true);
    for (const s of r.shards) {
      const events = s.tables.find((t) => t.table === 'public.events')!;
      expect(events.created.map((c) => c.name)).toEqual(['events_p20261201', 'events_p20261202', 'events_p20261203', 'events_p20261204']);
      expect(events.sql.some((q) => /ATTACH PARTITION/.test(q))).toBe(true);
    }
    expect(await Promise.all(d.shardUrls.map(catalog))).toEqual(before);
  });

  it('creates exactly the expected partitions on every shard, moving rows of the default partition in; a second run does nothing', async () => {
    // Rows that arrived before their partition existed sit in the default partition.
    await sql(d.shardUrls[0]!, `INSERT INTO public.events SELECT g, '2026-12-02 08:00:00+00'::timestamptz + g * interval '1 minute', 'early' FROM generate_series(1, 50) g`);
    await sql(d.shardUrls[0]!, `INSERT INTO public.events VALUES (1000, '2027-03-01 00:00:00+00', 'far future')`);
    const now = new Date('2026-12-01T10:00:00Z');
    const r = await partitionRotate(d.config, run, { now });
    expect(r.summary.failedShards).toBe(0);
    for (const url of d.shardUrls) {
      expect(await partitionsOf(url, 'public.events')).toEqual(['events_default', 'events_p20261201', 'events_p20261202', 'events_p20261203', 'events_p20261204']);
      expect(await partitionsOf(url, 'public.ledger')).toEqual(['ledger_p202612', 'ledger_p202701', 'ledger_p202702']);
    }
    expect(r.summary.movedFromDefault).toBe(50);
    const [counts] = await sql<{ p: number; def: number; total: number }>(
      d.shardUrls[0]!,
      `SELECT (SELECT count(*) FROM public.events_p20261202)::int AS p, (SELECT count(*) FROM public.events_default)::int AS def, (SELECT count(*) FROM public.events)::int AS total`,
    );
    expect(counts).toEqual({ p: 50, def: 1, total: 51 });

    const again = await partitionRotate(d.config, run, { now });
    expect(again.summary).toMatchObject({ created: 0, retired: 0, changed: false });

    const listed = await partitionList(d.config, { now, exact: true });
    const events = listed.shards[0]!.tables.find((t) => t.table === 'public.events')!;
    expect(events.defaultRows).toBe(1);
    expect(events.runway.intervals).toBe(3);
    expect(events.warnings.some((w) => /default partition/.test(w))).toBe(true);
  });

  it('retires past retention per mode (detach keeps the rows in place, archive moves them), never a partition holding a newer row, and records them', async () => {
    // Later: the old daily partitions fall out of the 3-day retention.
    const later = new Date('2026-12-06T10:00:00Z');
    // A row newer than the cut-off that landed in an old partition's range cannot exist there; an
    // adopted wider partition could hold one: it must be kept. Here the plain case: rows intact.
    await sql(d.shardUrls[1]!, `INSERT INTO public.events VALUES (7, '2026-12-01 12:00:00+00', 'old')`);
    // The cut-off is 2026-12-03 10:00: the partition of 2026-12-03 straddles it and holds one newer row.
    await sql(d.shardUrls[1]!, `INSERT INTO public.events VALUES (8, '2026-12-03 12:00:00+00', 'newer than the cut-off')`);
    const r = await partitionRotate(d.config, run, { now: later });
    expect(r.summary.failedShards).toBe(0);
    const retired = r.shards[1]!.tables.find((t) => t.table === 'public.events')!.retired.map((x) => x.name);
    expect(retired).toEqual(['events_p20261201', 'events_p20261202']);
    expect(await partitionsOf(d.shardUrls[1]!, 'public.events')).toContain('events_p20261203');
    expect(await sql(d.shardUrls[1]!, 'SELECT id::int FROM public.events WHERE id = 8')).toEqual([{ id: 8 }]);
    // Detached, kept in place with its rows.
    const [row] = await sql<{ n: number; attached: boolean }>(d.shardUrls[1]!, `SELECT (SELECT count(*) FROM public.events_p20261201)::int AS n, EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = 'public.events_p20261201'::regclass) AS attached`);
    expect(row).toEqual({ n: 1, attached: false });
    const listed = await partitionList(d.config, { now: later, retired: true });
    expect(listed.retired!.filter((x) => x.shard === 'shard-1').map((x) => [x.partition, x.mode])).toEqual(
      expect.arrayContaining([['events_p20261201', 'detach'], ['events_p20261202', 'detach']]),
    );

    // Months later: the ledger's old months are archived with their rows.
    await sql(d.shardUrls[0]!, `INSERT INTO public.ledger VALUES (1, '2026-12-15', 10.5)`);
    const muchLater = new Date('2027-06-15T00:00:00Z');
    const m = await partitionRotate(d.config, run, { now: muchLater, tables: ['public.ledger'] });
    const ledger = m.shards[0]!.tables[0]!;
    expect(ledger.retired.map((x) => [x.name, x.nowAt])).toEqual(expect.arrayContaining([['ledger_p202612', 'archive.ledger_p202612']]));
    expect(await sql(d.shardUrls[0]!, 'SELECT amount::text FROM archive.ledger_p202612')).toEqual([{ amount: '10.5' }]);
  });

  it('a shard whose parent is locked by a long transaction fails alone, naming the blocker, and the application never waits long behind rotate', async () => {
    const holder = new pg.Client({ connectionString: d.shardUrls[0], application_name: 'a long report' });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT count(*) FROM public.events');
      const now = new Date('2026-12-20T10:00:00Z');
      const rotating = partitionRotate(d.config, run, { now, tables: ['public.events'] }).catch((e: unknown) => e);
      // An application query on the parent while rotate waits for its lock: it must not queue for long.
      await new Promise((r) => setTimeout(r, 300));
      const app = new pg.Client({ connectionString: d.shardUrls[0] });
      await app.connect();
      const started = Date.now();
      await app.query('INSERT INTO public.events VALUES (99999, $1, $2)', ['2026-12-20 10:00:00+00', 'app write']);
      const waited = Date.now() - started;
      await app.end();
      const err = (await rotating) as OperationError;
      expect(err).toBeInstanceOf(OperationError);
      const data = err.data as Awaited<ReturnType<typeof partitionRotate>>;
      expect(data.shards.map((s) => s.status)).toEqual(['failed', 'ok']);
      expect(data.shards[0]!.tables[0]!.error).toMatch(/a long report/);
      // lock_timeout is 1s by default: the application's write waited at most about that long.
      expect(waited).toBeLessThan(2_500);
    } finally {
      await holder.query('ROLLBACK').catch(() => {});
      await holder.end();
    }
  });

  it('bounds fall on local midnights in the table\'s time zone: a DST day in Europe/Berlin spans 23 hours', async () => {
    for (const url of d.shardUrls) await sql(url, 'CREATE TABLE public.berlin (id bigint, at timestamptz NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)');
    await d.rewrite((raw) => {
      (raw.partitions as unknown[]).push({ table: 'public.berlin', column: 'at', interval: 'daily', premake: 2, timezone: 'Europe/Berlin' });
    });
    try {
      // Clocks go forward in Europe/Berlin on 2027-03-28 at 02:00 local.
      const r = await partitionRotate(d.config, run, { now: new Date('2027-03-27T12:00:00Z'), tables: ['public.berlin'], shards: ['shard-0'] });
      expect(r.shards[0]!.tables[0]!.created.map((c) => [c.name, c.from, c.to])).toEqual([
        ['berlin_p20270327', '2027-03-26 23:00:00+00', '2027-03-27 23:00:00+00'],
        ['berlin_p20270328', '2027-03-27 23:00:00+00', '2027-03-28 22:00:00+00'],
        ['berlin_p20270329', '2027-03-28 22:00:00+00', '2027-03-29 22:00:00+00'],
      ]);
      const [row] = await sql<{ hours: number }>(d.shardUrls[0]!, `SELECT extract(epoch FROM upper - lower) / 3600 AS hours FROM (SELECT '2027-03-28 22:00:00+00'::timestamptz AS upper, '2027-03-27 23:00:00+00'::timestamptz AS lower) b`);
      expect(Number(row!.hours)).toBe(23);
      expect(await partitionsOf(d.shardUrls[0]!, 'public.berlin')).toEqual(['berlin_p20270327', 'berlin_p20270328', 'berlin_p20270329']);
    } finally {
      await d.rewrite((raw) => {
        (raw.partitions as unknown[]).pop();
      });
    }
  });
});
