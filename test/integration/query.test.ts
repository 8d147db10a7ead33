import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareRows, parseMergeOrder, resolveMergeKeys } from '../../src/core/merge-order.js';
import { Ring } from '../../src/core/ring.js';
import { init } from '../../src/engine/init.js';
import { runQuery, type QueryOptions } from '../../src/engine/query/run-query.js';
import type { QueryColumn, QueryRow, QuerySummary, RowSink } from '../../src/engine/query/types.js';
import { UsageError } from '../../src/errors.js';
import { connect } from '../../src/postgres/connect.js';
import { CopyOut } from '../../src/postgres/copy-out.js';
import { createDeployment, currentRing, testRun, type TestDeployment } from '../support/deployment.js';
import { sql } from '../support/migrations.js';
import { startSecondServer, type SecondServer } from '../support/second-server.js';

/*
 * query's engine on real shard databases: what it returns is what each
 * shard returns, read directly; it never writes; --merge-order agrees with
 * PostgreSQL's own ORDER BY; --limit, --key, bound parameters, and shards
 * that fail, hang or describe other columns.
 */

/** A sink that keeps everything, and checks the contract: columns once and first, row() never re-entered, end once. */
class CollectingSink implements RowSink {
  columnCalls: QueryColumn[][] = [];
  rows: QueryRow[] = [];
  ended: QuerySummary[] = [];
  #inRow = false;
  maxConcurrentRows = 0;

  constructor(private readonly slow = false) {}

  columns(columns: QueryColumn[]): void {
    expect(this.rows).toHaveLength(0);
    this.columnCalls.push(columns);
  }

  row(row: QueryRow): void | Promise<void> {
    expect(this.columnCalls).toHaveLength(1);
    expect(this.#inRow).toBe(false);
    this.rows.push(row);
    if (!this.slow) return;
    // A destination that is always full: every row waits a turn of the event loop.
    this.#inRow = true;
    return new Promise<void>((resolve) => setImmediate(() => ((this.#inRow = false), resolve())));
  }

  end(summary: QuerySummary): void {
    this.ended.push(summary);
  }
}

/**
 * A sink that takes COPY text (copyRows, as the NDJSON writer does): each
 * shard's lines and how many reads they came in. It copies
 * a read's text only when it lets the engine go on (the text is valid until
 * the shard's next read): after `holdMs`, or the first read once `until` settles.
 */
class CopyTextSink implements RowSink {
  readonly byShard = new Map<string, { lines: string[]; reads: number }>();
  constructor(private readonly hold: { holdMs?: number; until?: Promise<void> } = {}) {}

  columns(): void {}

  row(): void {
    throw new Error('row() on a COPY read');
  }

  copyRows(shard: string, text: Buffer, rows: number): void | Promise<void> {
    let got = this.byShard.get(shard);
    if (!got) this.byShard.set(shard, (got = { lines: [], reads: 0 }));
    got.reads++;
    const take = () => {
      const lines = text.toString('utf8').slice(0, -1).split('\n');
      expect(lines).toHaveLength(rows);
      got.lines.push(...lines);
    };
    const wait = this.hold.until ?? (this.hold.holdMs ? new Promise((resolve) => setTimeout(resolve, this.hold.holdMs)) : null);
    if (!wait) return take();
    return wait.then(take);
  }

  end(): void {}
}

/** Each shard's rows as `pg` reads them with every value left as text, in a session set like query's. */
async function directRows(url: string, text: string, params: unknown[] = []): Promise<Array<Array<string | null>>> {
  const client = new pg.Client({ connectionString: url, options: '-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=1' });
  await client.connect();
  try {
    const result = await client.query({ text, values: params, rowMode: 'array', types: { getTypeParser: () => (v: string) => v } });
    return result.rows as Array<Array<string | null>>;
  } finally {
    await client.end();
  }
}

const ITEMS_SQL = `
CREATE TABLE public.items (id bigint PRIMARY KEY, room_id text, body text, amount numeric, at timestamptz, big int8, score float8);`;

/** Shard i: 1,000 + i rows, with the values that break naive handling (commas, quotes, newlines, NULL vs '', unicode, 2^53+1, long numerics, microseconds) and ties. */
async function fillItems(url: string, i: number): Promise<void> {
  await sql(url, ITEMS_SQL);
  await sql(
    url,
    `INSERT INTO public.items
     SELECT g * 10 + $1::int,
            'room-' || (g % 17),
            CASE g % 7 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'a, "quoted"' || chr(10) || 'line' WHEN 3 THEN 'ünï ☃ 😀' WHEN 4 THEN 'B' ELSE 'a' || g END,
            CASE g % 5 WHEN 0 THEN NULL WHEN 1 THEN 12345678901234567890.123456789012 ELSE (g % 13)::numeric / 4 END,
            CASE WHEN g % 11 = 0 THEN NULL ELSE timestamptz '2026-01-01 00:00:00.000001+00' + ((g % 97) * interval '1.5 seconds') END,
            CASE WHEN g % 3 = 0 THEN 9007199254740993 ELSE g END,
            CASE WHEN g % 9 = 0 THEN 'NaN'::float8 ELSE g::float8 / 3 END
     FROM generate_series(1, 1000 + $1::int) g`,
    [i],
  );
}

function options(over: Partial<QueryOptions> & { sql: string }): QueryOptions {
  return { timeoutMs: 10_000, ...over };
}

const byJson = (a: unknown, b: unknown) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1);

describe('query: one read-only statement on every shard', () => {
  let d: TestDeployment;

  beforeAll(async () => {
    d = await createDeployment({ shards: 3, redis: false, tables: false });
    await init(d.config, testRun());
    for (const [i, url] of d.shardUrls.entries()) await fillItems(url, i);
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('returns the union of what each shard returns read directly, value for value as PostgreSQL printed it, across batch boundaries', async () => {
    const text = 'SELECT * FROM public.items WHERE id % $1::int <> 3';
    const sink = new CollectingSink();
    const summary = await runQuery(d.config, options({ sql: text, params: ['4'], firstBatchRows: 7 }), sink);
    const expected: unknown[] = [];
    for (const [i, url] of d.shardUrls.entries()) for (const values of await directRows(url, text, ['4'])) expected.push({ shard: `shard-${i}`, values });
    expect(expected.length).toBeGreaterThan(2500);
    expect([...sink.rows].sort(byJson)).toEqual(expected.sort(byJson));
    expect(sink.columnCalls[0]!.map((c) => c.name)).toEqual(['id', 'room_id', 'body', 'amount', 'at', 'big', 'score']);
    expect(sink.columnCalls[0]![0]!.typeOid).toBe(20);
    expect(sink.ended).toEqual([summary]);
    expect(summary.rows).toBe(expected.length);
    expect(summary.limited).toBe(false);
    expect(summary.shards.map((s) => [s.shard, s.status])).toEqual([['shard-0', 'ok'], ['shard-1', 'ok'], ['shard-2', 'ok']]);
    expect(summary.shards.reduce((n, s) => n + s.rows, 0)).toBe(expected.length);
    // Spot checks of text kept whole: microseconds in UTC, 2^53 + 1, a numeric past a double's digits.
    const values = sink.rows.flatMap((r) => r.values);
    expect(values).toContain('2026-01-01 00:00:00.000001+00');
    expect(values).toContain('9007199254740993');
    expect(values).toContain('12345678901234567890.123456789012');
    expect(values).toContain('');
    expect(values).toContain(null);
  });

  it('read as COPY text (no --param), returns the same values as the cursor, NULL apart from the empty string', async () => {
    const text = "SELECT *, E'tab\\there\\nline\\\\back\\x01\\u000b\"q\"' AS odd, NULL::text AS nothing, ''::text AS empty FROM public.items";
    const viaCopy = new CollectingSink();
    const viaCursor = new CollectingSink();
    await runQuery(d.config, options({ sql: text }), viaCopy);
    await runQuery(d.config, options({ sql: text, copy: false }), viaCursor);
    expect(viaCopy.rows.length).toBeGreaterThan(2500);
    expect([...viaCopy.rows].sort(byJson)).toEqual([...viaCursor.rows].sort(byJson));
    expect(viaCopy.columnCalls).toEqual(viaCursor.columnCalls);
    expect(viaCopy.rows[0]!.values.slice(-3)).toEqual(['tab\there\nline\\back\x01\v"q"', null, '']);
  });

  it('COPY text read over the session\'s own socket comes whole and once, also when the sink holds each read for a while (the next read may go into the same memory only after)', async () => {
    const sink = new CopyTextSink({ holdMs: 1 });
    const summary = await runQuery(d.config, options({ sql: "SELECT g, repeat('x', g % 50) AS pad FROM generate_series(1, 150000) g" }), sink);
    expect(summary.shards.map((s) => [s.status, s.rows])).toEqual([['ok', 150000], ['ok', 150000], ['ok', 150000]]);
    for (const shard of ['shard-0', 'shard-1', 'shard-2']) {
      const got = sink.byShard.get(shard)!;
      // ~6.6 MB of COPY text a shard: dozens of reads (of up to 256 KiB), each held.
      expect(got.reads).toBeGreaterThan(20);
      expect(got.lines).toEqual(Array.from({ length: 150000 }, (_, i) => `${i + 1}\t${'x'.repeat((i + 1) % 50)}`));
    }
  });

  it('a session connected with ownReads reads a COPY into one buffer, read after read, after a small first one (pg\'s own socket takes a fresh one for every read)', async () => {
    const select = 'SELECT g, md5(g::text) FROM generate_series(1, 100000) g';
    type Socket = { divertReads(take: (bytes: Buffer) => boolean): void; prependListener(event: 'data', fn: (bytes: Buffer) => void): void };
    for (const ownReads of [true, false]) {
      const client = await connect(d.shardUrls[0]!, { ownReads });
      try {
        const socket = (client as unknown as { connection: { stream: Socket } }).connection.stream;
        // Every read, as the socket hands it over: to CopyOut (ours) or as a 'data' event (pg's).
        const memory = new Set<ArrayBufferLike>();
        let reads = 0;
        const seen = (bytes: Buffer) => (reads++, memory.add(bytes.buffer));
        if (ownReads) {
          const divert = socket.divertReads.bind(socket);
          socket.divertReads = (take) => divert((bytes) => (seen(bytes), take(bytes)));
          const copy = client.query(new CopyOut(`COPY (${select}) TO STDOUT`) as never) as unknown as CopyOut;
          let rows = 0;
          for (let got = await copy.read(); got; got = await copy.read()) rows += got.rows;
          expect(rows).toBe(100000);
        } else {
          socket.prependListener('data', seen);
          expect((await client.query(select)).rowCount).toBe(100000);
        }
        expect(reads, `ownReads ${ownReads}`).toBeGreaterThan(20);
        // Ours: the 16 KiB buffer of a session's first reads, then the 256 KiB one for all the rest.
        expect(memory.size, `ownReads ${ownReads}`).toBe(ownReads ? 2 : reads);
        // The session goes on through pg as before.
        expect((await client.query('SELECT 41 + 1 AS n')).rows).toEqual([{ n: 42 }]);
      } finally {
        await client.end();
      }
    }
  });

  it('a sink that holds a read holds its shard: the backend waits on the client (ClientWrite), and the rows come whole once the sink takes them', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const sink = new CopyTextSink({ until: held });
    const running = runQuery(d.config, options({ sql: "SELECT g, repeat('y', 40) AS pad FROM generate_series(1, 300000) g", shards: ['shard-1'] }), sink);
    const deadline = Date.now() + 10_000;
    let waiting: unknown[] = [];
    do {
      await new Promise((resolve) => setTimeout(resolve, 50));
      waiting = await sql(d.shardUrls[1]!, "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'shardctl[%] query' AND datname = current_database() AND wait_event = 'ClientWrite'");
    } while (!waiting.length && Date.now() < deadline);
    expect(waiting).toHaveLength(1);
    expect(sink.byShard.get('shard-1')!.reads).toBe(1);
    release();
    const summary = await running;
    expect(summary.shards.map((s) => [s.status, s.rows])).toEqual([['ok', 300000]]);
    expect(sink.byShard.get('shard-1')!.lines).toEqual(Array.from({ length: 300000 }, (_, i) => `${i + 1}\t${'y'.repeat(40)}`));
  });

  it('waits for a sink that is full (a promise from row()) and never calls it again before that promise settles', async () => {
    const sink = new CollectingSink(true);
    const summary = await runQuery(d.config, options({ sql: 'SELECT id FROM public.items', firstBatchRows: 50 }), sink);
    expect(summary.rows).toBe(3003);
    expect(sink.rows).toHaveLength(3003);
  });

  it('--key runs only on the shard that owns the key by the current ring', async () => {
    const ring = Ring.build(await currentRing(d.metaUrl));
    for (const key of ['room-1', 'room-42', '42']) {
      const owner = ring.locate(key);
      const sink = new CollectingSink();
      const summary = await runQuery(d.config, options({ sql: 'SELECT current_database() AS db', keys: [key] }), sink);
      expect(summary.shards.map((s) => s.shard)).toEqual([owner]);
      expect(sink.rows).toEqual([{ shard: owner, values: [new URL(d.shardUrls[Number(owner.slice(6))]!).pathname.slice(1)] }]);
    }
  });

  it('a write fails on every shard with SQLSTATE 25006 and writes nothing (also inside a CTE or as a second statement)', async () => {
    const before = await Promise.all(d.shardUrls.map((u) => sql<{ n: string }>(u, 'SELECT count(*) AS n, sum(id) AS s FROM public.items')));
    for (const [text, code] of [
      ["INSERT INTO public.items (id) VALUES (-1)", '25006'],
      ['WITH gone AS (DELETE FROM public.items RETURNING id) SELECT count(*) FROM gone', '25006'],
      // 25001: "cannot set transaction read-write mode inside a read-only transaction".
      ["SELECT set_config('transaction_read_only', 'off', true)", '25001'],
      ['SELECT 1; DELETE FROM public.items', '42601'],
    ] as const) {
      const sink = new CollectingSink();
      const summary = await runQuery(d.config, options({ sql: text }), sink);
      expect(summary.shards.map((s) => [s.status, s.code]), text).toEqual([['failed', code], ['failed', code], ['failed', code]]);
      expect(sink.rows).toEqual([]);
    }
    const after = await Promise.all(d.shardUrls.map((u) => sql<{ n: string }>(u, 'SELECT count(*) AS n, sum(id) AS s FROM public.items')));
    expect(after).toEqual(before);
  });

  it('--param binds values: an injection attempt comes back as the value it is', async () => {
    const attack = "x'); DROP TABLE public.items; --";
    const sink = new CollectingSink();
    await runQuery(d.config, options({ sql: 'SELECT $1::text AS v, length($1) AS n, (SELECT count(*) FROM public.items) AS c', params: [attack], shards: ['shard-1'] }), sink);
    expect(sink.rows).toEqual([{ shard: 'shard-1', values: [attack, String(attack.length), '1001'] }]);
  });

  it('--merge-order gives one stream in the order PostgreSQL gives the union (ties, NULLs, desc, numerics, text COLLATE "C")', async () => {
    const cases = [
      { spec: 'at:desc,id', order: 'at DESC, id', cols: 'id, at' },
      { spec: 'amount,body:desc,id', order: 'amount, body COLLATE "C" DESC, id', cols: 'id, amount, body' },
      { spec: 'body,big:desc,id', order: 'body COLLATE "C", big DESC, id', cols: 'id, body, big' },
      { spec: 'score:desc,id', order: 'score DESC, id', cols: 'id, score' },
    ];
    for (const c of cases) {
      const sink = new CollectingSink();
      const summary = await runQuery(d.config, options({ sql: `SELECT ${c.cols} FROM public.items ORDER BY ${c.order}`, mergeOrder: parseMergeOrder(c.spec), firstBatchRows: 100 }), sink);
      expect(summary.shards.every((s) => s.status === 'ok'), c.spec).toBe(true);
      // PostgreSQL's own sort of the union: every shard's rows into one temp table of shard-0's session.
      const client = new pg.Client({ connectionString: d.shardUrls[0], options: '-c TimeZone=UTC -c extra_float_digits=1' });
      await client.connect();
      try {
        await client.query(`CREATE TEMP TABLE u AS SELECT ${c.cols} FROM public.items WITH NO DATA`);
        for (const url of d.shardUrls) {
          const rows = await directRows(url, `SELECT ${c.cols} FROM public.items`);
          const width = rows[0]!.length;
          const placeholders = rows.map((_, r) => `(${Array.from({ length: width }, (_, k) => `$${r * width + k + 1}`).join(', ')})`).join(', ');
          await client.query(`INSERT INTO u VALUES ${placeholders}`, rows.flat());
        }
        const oracle = await client.query({ text: `SELECT * FROM u ORDER BY ${c.order}`, rowMode: 'array', types: { getTypeParser: () => (v: string) => v } });
        // Ties on every key (e.g. equal at and id on different shards) may come in either order: compare by the keys, then as sets.
        const keys = resolveMergeKeys(parseMergeOrder(c.spec.replace(/,id$/, '')), sink.columnCalls[0]!);
        const merged = sink.rows.map((r) => r.values);
        for (let i = 1; i < merged.length; i++) expect(compareRows(merged[i - 1]!, merged[i]!, keys), `${c.spec} at ${i}`).toBeLessThanOrEqual(0);
        const keyColumns = keys.map((k) => k.index);
        expect(merged.map((r) => keyColumns.map((k) => r[k]))).toEqual((oracle.rows as string[][]).map((r) => keyColumns.map((k) => r[k])));
        expect([...merged].sort(byJson)).toEqual([...(oracle.rows as string[][])].sort(byJson));
      } finally {
        await client.end();
      }
    }
  });

  it('--merge-order fails a shard whose rows are out of order, asking for the ORDER BY, while the others merge', async () => {
    const db1 = new URL(d.shardUrls[1]!).pathname.slice(1);
    const sink = new CollectingSink();
    const summary = await runQuery(
      d.config,
      options({ sql: 'SELECT id, body FROM public.items ORDER BY CASE WHEN current_database() = $1 THEN -id ELSE id END', params: [db1], mergeOrder: parseMergeOrder('id') }),
      sink,
    );
    const s1 = summary.shards.find((s) => s.shard === 'shard-1')!;
    expect(s1.status).toBe('failed');
    expect(s1.error).toMatch(/not in --merge-order .*add ORDER BY id to the statement/);
    expect(sink.rows.some((r) => r.shard === 'shard-1')).toBe(false);
    const ids = sink.rows.map((r) => BigInt(r.values[0]!));
    expect(ids).toEqual([...ids].sort((a, b) => (a < b ? -1 : 1)));
    expect(ids).toHaveLength(1000 + 1002);
  });

  it('--merge-order naming a column the result lacks is a usage error, and no row is written', async () => {
    const sink = new CollectingSink();
    await expect(runQuery(d.config, options({ sql: 'SELECT id FROM public.items ORDER BY id', mergeOrder: parseMergeOrder('created_at') }), sink)).rejects.toThrow(UsageError);
    expect(sink.rows).toEqual([]);
  });

  it('--limit stops every shard once N rows are out, also shards that could stream for hours (a set-returning function in the select list streams), and leaves no session behind', async () => {
    for (const mergeOrder of [undefined, parseMergeOrder('g:desc')]) {
      const started = Date.now();
      const sink = new CollectingSink();
      const summary = await runQuery(d.config, options({ sql: 'SELECT generate_series(2000000000, 1, -1) AS g', limit: 25, mergeOrder }), sink);
      expect(Date.now() - started).toBeLessThan(5000);
      expect(sink.rows).toHaveLength(25);
      expect(summary).toMatchObject({ rows: 25, limited: true });
      expect(summary.shards.some((s) => s.status === 'cancelled' && s.error === 'stopped at --limit')).toBe(true);
      if (mergeOrder) expect(sink.rows.map((r) => r.values[0])).toEqual(Array.from({ length: 25 }, (_, i) => String(2000000000 - Math.floor(i / 3))));
    }
    // The server ends a session whose socket went away; poll for that event rather than sleeping a guess.
    const deadline = Date.now() + 15_000;
    let left: unknown[] = [];
    do {
      left = await sql(d.shardUrls[0]!, "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'shardctl[%] query' AND datname = current_database()");
    } while (left.length && Date.now() < deadline);
    expect(left).toEqual([]);
  });

  it('a statement past the timeout is a timeout outcome with SQLSTATE 57014, the other shards answer', async () => {
    const db2 = new URL(d.shardUrls[2]!).pathname.slice(1);
    const sink = new CollectingSink();
    const started = Date.now();
    const summary = await runQuery(d.config, options({ sql: 'SELECT 1 AS x, pg_sleep(CASE WHEN current_database() = $1 THEN 30 ELSE 0 END)::text AS s', params: [db2], timeoutMs: 1000 }), sink);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(summary.shards.find((s) => s.shard === 'shard-2')).toMatchObject({ status: 'timeout', code: '57014' });
    expect(sink.rows.map((r) => r.shard).sort()).toEqual(['shard-0', 'shard-1']);
  });

  it('a shard whose columns differ (type or name) from the first describer fails, the others answer', async () => {
    await sql(d.shardUrls[0]!, 'CREATE TABLE public.shape (a int4)');
    await sql(d.shardUrls[1]!, 'CREATE TABLE public.shape (a int8)');
    await sql(d.shardUrls[2]!, 'CREATE TABLE public.shape (b int4)');
    for (const url of d.shardUrls) await sql(url, 'INSERT INTO public.shape VALUES (1)');
    const sink = new CollectingSink();
    // One at a time, so shard-0 describes first.
    const summary = await runQuery(d.config, options({ sql: 'SELECT * FROM public.shape', parallel: 1 }), sink);
    expect(summary.shards.map((s) => s.status)).toEqual(['ok', 'failed', 'failed']);
    expect(summary.shards[1]!.error).toBe('its columns (a int8) differ from those of shard-0 (a int4)');
    expect(summary.shards[2]!.error).toBe('its columns (b int4) differ from those of shard-0 (a int4)');
    expect(sink.rows).toEqual([{ shard: 'shard-0', values: ['1'] }]);
  });
});

describe('query: a shard on a server that is down or hangs', () => {
  let d: TestDeployment;
  let server: SecondServer;
  let stopped: number | null = null;

  beforeAll(async () => {
    server = await startSecondServer();
    await sql(server.url(), 'CREATE DATABASE sct_query_remote');
    d = await createDeployment({ shards: 2, redis: false, tables: false });
    await d.rewrite((raw) => (raw.shards as unknown[]).push({ id: 'shard-r', url: server.url('sct_query_remote'), weight: 1 }));
    await init(d.config, testRun());
  });
  afterAll(async () => {
    if (stopped) process.kill(stopped, 'SIGCONT');
    await d?.cleanup();
    await server?.cleanup();
  });

  it('a hanging server (postmaster SIGSTOPped) is a timeout within the timeout, while the others answer', async () => {
    const pid = (await server.pid())!;
    process.kill(pid, 'SIGSTOP');
    stopped = pid;
    try {
      for (const mergeOrder of [undefined, parseMergeOrder('x')]) {
        const sink = new CollectingSink();
        const started = Date.now();
        const summary = await runQuery(d.config, { sql: 'SELECT 1 AS x', timeoutMs: 1500, mergeOrder }, sink);
        expect(Date.now() - started).toBeLessThan(2500);
        expect(summary.shards.find((s) => s.shard === 'shard-r')).toMatchObject({ status: 'timeout', error: 'no answer within 1.5s' });
        expect(sink.rows.map((r) => r.shard).sort()).toEqual(['shard-0', 'shard-1']);
      }
    } finally {
      process.kill(pid, 'SIGCONT');
      stopped = null;
    }
  });

  it('a stopped server fails with the connection error, while the others answer', async () => {
    await server.stop();
    const sink = new CollectingSink();
    const summary = await runQuery(d.config, { sql: 'SELECT 1 AS x', timeoutMs: 5000 }, sink);
    const r = summary.shards.find((s) => s.shard === 'shard-r')!;
    expect(r.status).toBe('failed');
    expect(r.error).toMatch(/cannot connect to shard shard-r at postgres:\/\/.*ECONNREFUSED/);
    expect(sink.rows.map((row) => row.shard).sort()).toEqual(['shard-0', 'shard-1']);
  });
});
