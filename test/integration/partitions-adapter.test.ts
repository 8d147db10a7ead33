import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type PgClient } from '../../src/postgres/connect.js';
import {
  archivePartition,
  checkSetup,
  createPartition,
  defaultPartitionRows,
  detachPartition,
  dropPartition,
  finalizeInterruptedDetaches,
  LockTimeoutError,
  partitionMaxValue,
  planCreatePartition,
  readPartitions,
  rowsInRange,
} from '../../src/postgres/partitions.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';

/*
 * The PostgreSQL side of `partition rotate / list / setup`, on one shard
 * database: partitions are created exactly and idempotently without a
 * validation scan, rows in the default partition move into a new range with
 * none lost or duplicated, every retirement mode keeps or removes rows as it
 * says, an interrupted concurrent detach is finished, and DDL that cannot get
 * its lock gives way within lock_timeout and names who held it.
 */

const LOCK_MS = 300;
const FAST = { lockTimeoutMs: LOCK_MS, retries: 2, backoffMs: 30 };

describe('partition maintenance on one shard database', () => {
  let db: TestDatabase;
  let client: PgClient;
  const opened: PgClient[] = [];
  const session = async (applicationName: string) => {
    const c = await connect(db.url, { applicationName, label: db.name });
    opened.push(c);
    return c;
  };
  const q = async <T extends Record<string, unknown>>(text: string, values: unknown[] = []) => (await client.query<T>(text, values)).rows;
  const count = async (table: string) => (await q<{ n: number }>(`SELECT count(*) AS n FROM ${table}`))[0]!.n;
  const pending = async (partition: string) =>
    (await q<{ pending: boolean | null }>(`SELECT (SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = to_regclass($1)) AS pending`, [partition]))[0]!.pending;

  /** A daily timestamptz parent; `withDefault` adds messages_default. */
  async function dailyParent(name: string, withDefault: boolean) {
    await q(`CREATE TABLE public.${name} (id bigint NOT NULL, room_id int NOT NULL, created_at timestamptz NOT NULL, body text,
               PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at)`);
    await q(`CREATE INDEX ON public.${name} (room_id, created_at)`);
    if (withDefault) await q(`CREATE TABLE public.${name}_default PARTITION OF public.${name} DEFAULT`);
  }
  const day = (parent: string, d: string, next: string, extra: Partial<Parameters<typeof createPartition>[1]> = {}) =>
    createPartition(client, {
      parent: `public.${parent}`,
      name: `${parent}_p${d.replace(/-/g, '')}`,
      from: `${d} 00:00:00+00`,
      to: `${next} 00:00:00+00`,
      column: 'created_at',
      moveFromDefault: true,
      ...FAST,
      ...extra,
    });

  /** Runs `ddl` while the application repeats `appQuery` on its own session; how long each query waited. */
  async function whileApplicationQueries<T>(appQuery: string, ddl: () => Promise<T>) {
    const app = await session('the application');
    const waits: number[] = [];
    let settled = false;
    const started = Date.now();
    const running = ddl().then(
      (value) => ({ value, error: undefined }),
      (error: unknown) => ({ value: undefined, error }),
    ).finally(() => (settled = true));
    while (!settled) {
      const t0 = Date.now();
      await app.query(appQuery);
      waits.push(Date.now() - t0);
      await sleep(10);
    }
    return { ...(await running), elapsed: Date.now() - started, waits, maxWait: Math.max(...waits) };
  }

  beforeAll(async () => {
    db = await createTestDatabase('sct_part');
    client = await session('shardctl partition tests');
  });
  afterAll(async () => {
    for (const c of opened) await c.end().catch(() => {});
    await db?.drop();
  });

  it('creates a daily timestamptz partition with exact UTC bounds, its indexes, no CHECK left, and no validation scan', async () => {
    await dailyParent('messages', false);
    // The session's own TimeZone must neither shift the bounds nor be changed.
    await q(`SET TimeZone = 'America/New_York'`);
    const notices: string[] = [];
    client.on('notice', (n) => notices.push(n.message ?? ''));
    await q(`SET client_min_messages = debug1`);
    const result = await day('messages', '2026-12-01', '2026-12-02');
    await q(`RESET client_min_messages`);
    expect(result).toMatchObject({ created: true, partition: 'public.messages_p20261201', movedFromDefault: 0, attempts: 1, replacedLeftover: false });
    expect(result.sql[0]).toBe('BEGIN');
    expect(result.sql.some((s) => s.includes('CREATE TABLE "public"."messages_p20261201" (LIKE "public"."messages" INCLUDING ALL)'))).toBe(true);
    expect(result.sql.at(-1)).toBe('COMMIT');
    // PostgreSQL says so at DEBUG1 when the CHECK spares ATTACH its scan.
    expect(notices.some((m) => /partition constraint for table "messages_p20261201" is implied by existing constraints/.test(m))).toBe(true);
    expect((await q<{ tz: string }>(`SELECT current_setting('TimeZone') AS tz`))[0]!.tz).toBe('America/New_York');

    const info = await readPartitions(client, 'public.messages');
    expect(info).toMatchObject({ exists: true, rangePartitioned: true, strategy: 'range', columns: ['created_at'], columnType: 'timestamptz' });
    expect(info.partitions).toEqual([
      expect.objectContaining({
        qualifiedName: 'public.messages_p20261201',
        bound: "FOR VALUES FROM ('2026-12-01 00:00:00+00') TO ('2026-12-02 00:00:00+00')",
        from: '2026-12-01 00:00:00+00',
        to: '2026-12-02 00:00:00+00',
        isDefault: false,
        detachPending: false,
      }),
    ]);
    const constraints = await q<{ conname: string }>(`SELECT conname FROM pg_constraint WHERE conrelid = 'public.messages_p20261201'::regclass AND contype = 'c'`);
    expect(constraints).toEqual([]);
    // The partition's indexes are attached to the parent's, not extra copies.
    const indexes = await q<{ attached: number; total: number }>(
      `SELECT count(*) FILTER (WHERE EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = x.indexrelid))::int AS attached, count(*)::int AS total
         FROM pg_index x WHERE x.indrelid = 'public.messages_p20261201'::regclass`,
    );
    expect(indexes[0]).toEqual({ attached: 2, total: 2 });
    await q(`INSERT INTO public.messages VALUES (1, 1, '2026-12-01 23:59:59.999+00', 'last'), (2, 1, '2026-12-01 00:00:00+00', 'first')`);
    expect(await count('ONLY public.messages_p20261201')).toBe(2);
    await expect(q(`INSERT INTO public.messages VALUES (3, 1, '2026-12-02 00:00:00+00', 'no partition')`)).rejects.toMatchObject({ code: '23514' });
    await q(`RESET TimeZone`);
  });

  it('a second create with the same bounds (even written otherwise) does nothing; other bounds are refused', async () => {
    expect(await day('messages', '2026-12-01', '2026-12-02')).toMatchObject({ created: false, sql: [], attempts: 0 });
    const written = await createPartition(client, {
      parent: 'public.messages', name: 'messages_p20261201', from: '2026-12-01T00:00:00Z', to: '2026-12-01 19:00:00-05', column: 'created_at', moveFromDefault: true, ...FAST,
    });
    expect(written.created).toBe(false);
    await expect(
      createPartition(client, { parent: 'public.messages', name: 'messages_p20261201', from: '2026-12-01', to: '2026-12-03', column: 'created_at', moveFromDefault: true, ...FAST }),
    ).rejects.toThrow(/exists with other bounds/);
    await expect(day('messages', '2026-12-01', '2026-12-02', { column: 'room_id' })).rejects.toThrow(/partitioned on created_at, not room_id/);
    expect((await readPartitions(client, 'public.messages')).partitions).toHaveLength(1);
  });

  it('a leftover empty standalone table of the name is replaced; one with rows is refused', async () => {
    await q(`CREATE TABLE public.messages_p20261202 (LIKE public.messages)`);
    expect(await day('messages', '2026-12-02', '2026-12-03')).toMatchObject({ created: true, replacedLeftover: true });
    await q(`CREATE TABLE public.messages_p20261203 (LIKE public.messages)`);
    await q(`INSERT INTO public.messages_p20261203 VALUES (9, 1, '2026-12-03 01:00:00+00', 'someone''s')`);
    await expect(day('messages', '2026-12-03', '2026-12-04')).rejects.toThrow(/standalone table with rows; not replaced/);
    expect(await count('public.messages_p20261203')).toBe(1);
  });

  it('creates monthly partitions of a date column with date bounds', async () => {
    await q(`CREATE TABLE public.events (id bigint NOT NULL, day date NOT NULL, kind text, PRIMARY KEY (id, day)) PARTITION BY RANGE (day)`);
    const month = (name: string, from: string, to: string) =>
      createPartition(client, { parent: 'public.events', name, from, to, column: 'day', moveFromDefault: false, ...FAST });
    expect((await month('events_p202612', '2026-12-01', '2027-01-01')).created).toBe(true);
    expect((await month('events_p202701', '2027-01-01', '2027-02-01')).created).toBe(true);
    expect((await month('events_p202612', '2026-12-01', '2027-01-01')).created).toBe(false);
    const info = await readPartitions(client, 'public.events');
    expect(info.columnType).toBe('date');
    expect(info.partitions.map((p) => [p.name, p.bound])).toEqual([
      ['events_p202612', "FOR VALUES FROM ('2026-12-01') TO ('2027-01-01')"],
      ['events_p202701', "FOR VALUES FROM ('2027-01-01') TO ('2027-02-01')"],
    ]);
    await q(`INSERT INTO public.events SELECT g, DATE '2026-12-01' + g % 62, 'k' FROM generate_series(0, 619) g`);
    expect(await count('public.events_p202612')).toBe(310);
    expect(await count('public.events_p202701')).toBe(310);
  });

  it('reads estimated and exact rows, bytes, the newest value of a partition, and an absent table', async () => {
    const before = (await readPartitions(client, 'public.events')).partitions[0]!;
    expect(before.estimatedRows).toBeNull(); // never analyzed: reltuples -1
    expect(before.bytes).toBeGreaterThan(0);
    await q(`ANALYZE public.events`);
    const info = await readPartitions(client, 'public.events', { exact: true });
    expect(info.partitions.map((p) => [p.estimatedRows, p.exactRows])).toEqual([
      [310, 310],
      [310, 310],
    ]);
    expect(await partitionMaxValue(client, 'public.events_p202612', 'day')).toBe('2026-12-31');
    expect(await partitionMaxValue(client, 'public.messages_p20261201', 'created_at')).toBe('2026-12-01 23:59:59.999+00');
    expect(await partitionMaxValue(client, 'public.messages_p20261202', 'created_at')).toBeNull();
    expect(await readPartitions(client, 'public.nope')).toMatchObject({ exists: false, rangePartitioned: false, partitions: [] });
    expect(await defaultPartitionRows(client, 'public.events')).toBeNull();
  });

  it('moves the default partition’s rows in the new range into it, in one transaction: none lost, none duplicated', async () => {
    await dailyParent('inbox', true);
    // 3 days of rows, all in the default; plus a few with no partition ever planned.
    await q(`INSERT INTO public.inbox SELECT g, g % 7, TIMESTAMPTZ '2026-12-01 00:00:00+00' + g * INTERVAL '1 minute' * 3, 'm' || g FROM generate_series(0, 1439) g`);
    await q(`INSERT INTO public.inbox VALUES (100000, 1, '2030-01-01 00:00:00+00', 'far future')`);
    const total = await count('public.inbox');
    const digest = async () => (await q<{ d: string }>(`SELECT md5(string_agg(id || '/' || created_at || '/' || body, ',' ORDER BY id)) AS d FROM public.inbox`))[0]!.d;
    const before = await digest();
    expect(await defaultPartitionRows(client, 'public.inbox')).toBe(total);
    const inDay2 = await rowsInRange(client, 'public.inbox_default', 'created_at', '2026-12-02 00:00:00+00', '2026-12-03 00:00:00+00');
    expect(inDay2).toBe(480);

    // Without moving, the create is refused before any DDL (the ATTACH would fail on them).
    await expect(day('inbox', '2026-12-02', '2026-12-03', { moveFromDefault: false })).rejects.toThrow(/480 rows of the default partition public.inbox_default fall in/);
    // The dry run says what would happen and changes nothing.
    const plan = await planCreatePartition(client, {
      parent: 'public.inbox', name: 'inbox_p20261202', from: '2026-12-02 00:00:00+00', to: '2026-12-03 00:00:00+00', column: 'created_at', moveFromDefault: true, ...FAST,
    });
    expect(plan).toMatchObject({ action: 'create', rowsToMove: 480, defaultPartition: 'public.inbox_default' });
    expect(plan.action === 'create' && plan.sql.find((s) => s.startsWith('WITH moved AS (DELETE FROM "public"."inbox_default"'))).toBeTruthy();
    expect((await readPartitions(client, 'public.inbox')).partitions).toHaveLength(1);

    const moved = await day('inbox', '2026-12-02', '2026-12-03');
    expect(moved).toMatchObject({ created: true, movedFromDefault: 480 });
    expect(await count('ONLY public.inbox_p20261202')).toBe(480);
    expect(await count('public.inbox')).toBe(total);
    expect((await q<{ n: number }>(`SELECT count(DISTINCT id) AS n FROM public.inbox`))[0]!.n).toBe(total);
    expect(await digest()).toBe(before);
    expect(await defaultPartitionRows(client, 'public.inbox')).toBe(total - 480);
    expect(await rowsInRange(client, 'public.inbox_default', 'created_at', '2026-12-02 00:00:00+00', '2026-12-03 00:00:00+00')).toBe(0);

    // The days either side, and a day with nothing to move.
    expect((await day('inbox', '2026-12-01', '2026-12-02')).movedFromDefault).toBe(480);
    expect((await day('inbox', '2026-12-03', '2026-12-04')).movedFromDefault).toBe(480);
    expect((await day('inbox', '2026-12-04', '2026-12-05')).movedFromDefault).toBe(0);
    expect(await count('ONLY public.inbox_default')).toBe(1);
    expect(await digest()).toBe(before);
    expect((await day('inbox', '2026-12-02', '2026-12-03')).created).toBe(false);
  });

  it('detaches concurrently without a default partition, rows intact in the detached table', async () => {
    const r = await detachPartition(client, { parent: 'public.messages', name: 'messages_p20261201', concurrently: true, ...FAST });
    expect(r).toMatchObject({ detached: true, method: 'concurrently', reason: null, attempts: 1 });
    expect(r.sql).toEqual([`SET lock_timeout = '${LOCK_MS}ms'`, 'ALTER TABLE "public"."messages" DETACH PARTITION "public"."messages_p20261201" CONCURRENTLY']);
    expect(await pending('public.messages_p20261201')).toBeNull();
    expect(await count('public.messages_p20261201')).toBe(2);
    expect((await q<{ lt: string }>(`SELECT current_setting('lock_timeout') AS lt`))[0]!.lt).toBe('0');
    expect(await detachPartition(client, { parent: 'public.messages', name: 'messages_p20261201', concurrently: true, ...FAST })).toMatchObject({
      detached: false,
      method: 'not-attached',
    });
  });

  it('detaches plainly when the parent has a default partition, and says why', async () => {
    const r = await detachPartition(client, { parent: 'public.inbox', name: 'inbox_p20261201', concurrently: true, ...FAST });
    expect(r).toMatchObject({ detached: true, method: 'plain' });
    expect(r.reason).toMatch(/has a default partition/);
    expect(r.sql).toContain('ALTER TABLE "public"."inbox" DETACH PARTITION "public"."inbox_p20261201"');
    expect(await count('public.inbox_p20261201')).toBe(480);
    await expect(detachPartition(client, { parent: 'public.inbox', name: 'inbox_default', concurrently: false, ...FAST })).rejects.toThrow(/default partition .* never retired/);
  });

  it('archives a detached partition into the archive schema with its rows; refuses an attached one', async () => {
    await expect(archivePartition(client, { name: 'public.inbox_p20261202', archiveSchema: 'archive', ...FAST })).rejects.toThrow(/still attached/);
    const r = await archivePartition(client, { name: 'public.inbox_p20261201', archiveSchema: 'archive', ...FAST });
    expect(r).toMatchObject({ archived: true, table: 'archive.inbox_p20261201' });
    expect(r.sql).toContain('CREATE SCHEMA IF NOT EXISTS "archive"');
    expect(await count('archive.inbox_p20261201')).toBe(480);
    expect((await q<{ t: string | null }>(`SELECT to_regclass('public.inbox_p20261201')::text AS t`))[0]!.t).toBeNull();
    expect((await archivePartition(client, { name: 'public.inbox_p20261201', archiveSchema: 'archive', ...FAST })).archived).toBe(false);
  });

  it('drops a partition: detached concurrently first without a default, directly with one', async () => {
    const a = await dropPartition(client, { parent: 'public.messages', name: 'messages_p20261202', concurrently: true, ...FAST });
    expect(a).toMatchObject({ dropped: true, method: 'concurrently' });
    expect(a.sql.filter((s) => !s.startsWith('SET') && s !== 'BEGIN' && s !== 'COMMIT')).toEqual([
      'ALTER TABLE "public"."messages" DETACH PARTITION "public"."messages_p20261202" CONCURRENTLY',
      'DROP TABLE "public"."messages_p20261202"',
    ]);
    const b = await dropPartition(client, { parent: 'public.inbox', name: 'inbox_p20261204', concurrently: true, ...FAST });
    expect(b).toMatchObject({ dropped: true, method: 'plain' });
    expect(b.sql).toContain('DROP TABLE "public"."inbox_p20261204"');
    for (const t of ['public.messages_p20261202', 'public.inbox_p20261204']) {
      expect((await q<{ t: string | null }>(`SELECT to_regclass($1)::text AS t`, [t]))[0]!.t).toBeNull();
    }
    expect((await dropPartition(client, { parent: 'public.inbox', name: 'inbox_p20261204', concurrently: true, ...FAST })).dropped).toBe(false);
    expect(await count('public.inbox')).toBe(480 * 2 + 1); // days 2 and 3, and the far-future row
  });

  it('finalizes a concurrent detach that was interrupted part-way (left detach pending)', async () => {
    await dailyParent('feed', false);
    for (const [d, n] of [['2026-12-01', '2026-12-02'], ['2026-12-02', '2026-12-03']] as const) await day('feed', d, n);
    await q(`INSERT INTO public.feed VALUES (1, 1, '2026-12-01 12:00:00+00', 'x'), (2, 1, '2026-12-02 12:00:00+00', 'y')`);
    // A reader's open transaction: the second phase of DETACH CONCURRENTLY waits for it.
    const reader = await session('reporting job');
    await reader.query('BEGIN');
    await reader.query('SELECT count(*) FROM public.feed');
    const detacher = await session('some other tool');
    const pid = (await detacher.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    const detaching = detacher.query('ALTER TABLE public.feed DETACH PARTITION public.feed_p20261201 CONCURRENTLY').then(
      () => null,
      (err: { code?: string }) => err.code,
    );
    for (let i = 0; i < 200 && !(await pending('public.feed_p20261201')); i++) await sleep(10);
    expect(await pending('public.feed_p20261201')).toBe(true);
    await q('SELECT pg_cancel_backend($1)', [pid]);
    expect(await detaching).toBe('57014');
    expect((await readPartitions(client, 'public.feed')).partitions.find((p) => p.name === 'feed_p20261201')?.detachPending).toBe(true);

    // While the reader still holds its snapshot, FINALIZE waits too: it gives up within lock_timeout, naming the reader.
    const started = Date.now();
    const failed = await finalizeInterruptedDetaches(client, 'public.feed', FAST).catch((err: unknown) => err);
    expect(failed).toBeInstanceOf(LockTimeoutError);
    expect(Date.now() - started).toBeLessThan(3 * LOCK_MS + 1000);
    expect((failed as LockTimeoutError).blockers).toEqual([expect.objectContaining({ applicationName: 'reporting job', state: 'idle in transaction', granted: true })]);

    await reader.query('COMMIT');
    const done = await finalizeInterruptedDetaches(client, 'public.feed', FAST);
    expect(done.finalized).toEqual(['public.feed_p20261201']);
    expect(done.sql).toContain('ALTER TABLE "public"."feed" DETACH PARTITION "public"."feed_p20261201" FINALIZE');
    expect(await pending('public.feed_p20261201')).toBeNull();
    expect(await count('public.feed_p20261201')).toBe(1);
    expect((await finalizeInterruptedDetaches(client, 'public.feed', FAST)).finalized).toEqual([]);
  });

  it('a concurrent detach cut short by lock_timeout is left pending and the next detach finishes it with FINALIZE', async () => {
    const reader = await session('reporting job 2');
    await reader.query('BEGIN');
    await reader.query('SELECT count(*) FROM public.feed');
    const err = await detachPartition(client, { parent: 'public.feed', name: 'feed_p20261202', concurrently: true, ...FAST }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockTimeoutError);
    expect((err as LockTimeoutError).message).toMatch(/pid \d+ \(reporting job 2, idle in transaction, query since .*: "SELECT count\(\*\) FROM public.feed"\) holds AccessShareLock on public.feed_p20261202/);
    expect(await pending('public.feed_p20261202')).toBe(true);
    await reader.query('COMMIT');
    const r = await detachPartition(client, { parent: 'public.feed', name: 'feed_p20261202', concurrently: true, ...FAST });
    expect(r).toMatchObject({ detached: true, method: 'finalize' });
    expect(await count('public.feed_p20261202')).toBe(1);
  });

  it('a session holding a lock makes create retry and fail naming it, while application queries never wait much longer than lock_timeout', async () => {
    await dailyParent('chat', true);
    await q(`INSERT INTO public.chat SELECT g, 1, TIMESTAMPTZ '2026-12-01 00:00:00+00' + g * INTERVAL '1 hour', 'c' FROM generate_series(0, 47) g`);
    // A long report in an open transaction: ACCESS SHARE on every partition, the default among them.
    const blocker = await session('nightly report');
    await blocker.query('BEGIN');
    await blocker.query('SELECT count(*) FROM public.chat');
    const run = await whileApplicationQueries('SELECT count(*) FROM public.chat', () => day('chat', '2026-12-01', '2026-12-02'));
    const { elapsed, waits } = run;
    const error = run.error as LockTimeoutError;
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect(error.attempts).toBe(3);
    const blockerPid = (await blocker.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    expect(error.blockers).toEqual([
      expect.objectContaining({ pid: blockerPid, applicationName: 'nightly report', state: 'idle in transaction', relation: 'public.chat_default', mode: 'AccessShareLock' }),
    ]);
    expect(error.blockers[0]!.query).toBe('SELECT count(*) FROM public.chat');
    expect(error.blockers[0]!.queryStart).toBeInstanceOf(Date);
    expect(error.message).toMatch(new RegExp(`pid ${blockerPid} \\(nightly report, idle in transaction`));
    // Three attempts of ~lock_timeout each, plus short pauses.
    expect(elapsed).toBeGreaterThanOrEqual(3 * LOCK_MS);
    expect(elapsed).toBeLessThan(3 * LOCK_MS + 1500);
    // The application's reads queued behind the waiting DDL, but never much longer than lock_timeout.
    console.error(`[partitions] create gave up after ${elapsed} ms; application query waits: max ${Math.max(...waits)} ms over ${waits.length} queries`);
    expect(Math.max(...waits)).toBeGreaterThan(LOCK_MS / 2);
    expect(Math.max(...waits)).toBeLessThan(LOCK_MS + 250);
    // Nothing was left behind; once the report ends, the create goes through and moves the rows.
    expect((await readPartitions(client, 'public.chat')).partitions.map((p) => p.name)).toEqual(['chat_default']);
    expect((await q<{ t: string | null }>(`SELECT to_regclass('public.chat_p20261201')::text AS t`))[0]!.t).toBeNull();
    await blocker.query('COMMIT');
    expect(await day('chat', '2026-12-01', '2026-12-02')).toMatchObject({ created: true, movedFromDefault: 24, attempts: 1 });
  });

  it('reads never queue behind ATTACH (SHARE UPDATE EXCLUSIVE on the parent); a SHARE lock holder makes create fail naming it', async () => {
    // What CREATE INDEX (without CONCURRENTLY) holds on the parent.
    const indexer = await session('an index build');
    await indexer.query('BEGIN');
    await indexer.query('LOCK TABLE ONLY public.feed IN SHARE MODE');
    const run = await whileApplicationQueries('SELECT count(*) FROM public.feed', () => day('feed', '2026-12-03', '2026-12-04'));
    await indexer.query('COMMIT');
    expect(run.error).toBeInstanceOf(LockTimeoutError);
    expect((run.error as LockTimeoutError).blockers).toEqual([expect.objectContaining({ applicationName: 'an index build', relation: 'public.feed', mode: 'ShareLock', granted: true })]);
    console.error(`[partitions] create vs SHARE lock: gave up after ${run.elapsed} ms; application read waits: max ${run.maxWait} ms over ${run.waits.length}`);
    expect(run.maxWait).toBeLessThan(100);
    expect((await day('feed', '2026-12-03', '2026-12-04')).created).toBe(true);
  });

  it('a plain detach (default partition present) gives way to an open reader within lock_timeout; queries behind it wait no longer', async () => {
    const reader = await session('nightly report 2');
    await reader.query('BEGIN');
    await reader.query('SELECT count(*) FROM public.chat');
    const readerPid = (await reader.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    const run = await whileApplicationQueries('SELECT count(*) FROM public.chat', () =>
      detachPartition(client, { parent: 'public.chat', name: 'chat_p20261201', concurrently: true, ...FAST }),
    );
    expect(run.error).toBeInstanceOf(LockTimeoutError);
    const blockers = (run.error as LockTimeoutError).blockers;
    expect(new Set(blockers.map((b) => b.pid))).toEqual(new Set([readerPid]));
    expect(blockers.map((b) => b.relation).sort()).toEqual(['public.chat', 'public.chat_p20261201']);
    console.error(`[partitions] plain detach vs open reader: gave up after ${run.elapsed} ms; application read waits: max ${run.maxWait} ms over ${run.waits.length}`);
    expect(run.maxWait).toBeGreaterThan(LOCK_MS / 2);
    expect(run.maxWait).toBeLessThan(LOCK_MS + 250);
    await reader.query('COMMIT');
    expect(await detachPartition(client, { parent: 'public.chat', name: 'chat_p20261201', concurrently: true, ...FAST })).toMatchObject({ detached: true, method: 'plain', attempts: 1 });
    expect(await count('public.chat_p20261201')).toBe(24);
  });

  it('setup checks report a primary key without the partition column, with SQL that fixes it, then the conversion and the default partition', async () => {
    await q(`CREATE TABLE public.legacy (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, email text UNIQUE, note text)`);
    const first = await checkSetup(client, 'public.legacy', 'created_at');
    expect(first).toMatchObject({ rangePartitioned: false, hasDefaultPartition: false });
    expect(first.problems.map((p) => p.code)).toEqual(['unique-without-column', 'unique-without-column', 'not-partitioned']);
    expect(first.problems[0]!.message).toMatch(/the primary key legacy_pkey \(id\) does not include created_at/);
    expect(first.problems[0]!.fixSql).toEqual([
      'ALTER TABLE "public"."legacy" DROP CONSTRAINT "legacy_pkey", ADD CONSTRAINT "legacy_pkey" PRIMARY KEY ("id", "created_at")',
    ]);
    // The fixes run as given.
    for (const p of first.problems.slice(0, 2)) for (const s of p.fixSql) await q(s);
    const second = await checkSetup(client, 'public.legacy', 'created_at');
    expect(second.problems.map((p) => p.code)).toEqual(['not-partitioned']);
    for (const s of second.problems[0]!.fixSql.filter((x) => !x.startsWith('--'))) await q(s);
    expect((await checkSetup(client, 'public.legacy_partitioned', 'created_at')).problems).toEqual([]);

    const noDefault = await checkSetup(client, 'public.messages', 'created_at');
    expect(noDefault).toMatchObject({ rangePartitioned: true, hasDefaultPartition: false });
    expect(noDefault.problems).toEqual([
      expect.objectContaining({ code: 'no-default-partition', severity: 'warning', fixSql: ['CREATE TABLE "public"."messages_default" PARTITION OF "public"."messages" DEFAULT'] }),
    ]);
    expect((await checkSetup(client, 'public.inbox', 'created_at')).problems).toEqual([]);
    expect((await checkSetup(client, 'public.messages', 'room_id')).problems.map((p) => p.code)).toEqual(['column-type', 'other-key', 'no-default-partition']);
    const missing = await checkSetup(client, 'public.absent', 'created_at');
    expect(missing.problems).toEqual([expect.objectContaining({ code: 'missing-table' })]);
    expect(missing.problems[0]!.fixSql[0]).toMatch(/PARTITION BY RANGE \("created_at"\)$/);
  });
});
