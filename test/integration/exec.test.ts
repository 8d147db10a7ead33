import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Ring } from '../../src/core/ring.js';
import { init } from '../../src/engine/init.js';
import { execOnShards, type ExecResult } from '../../src/engine/query/exec.js';
import { LockHeldError, LockLostError, OperationError, UsageError } from '../../src/errors.js';
import { LOCK_NAMESPACE, LOCKS } from '../../src/postgres/advisory-lock.js';
import { createDeployment, currentRing, testRun, type TestDeployment } from '../support/deployment.js';
import { metadataLockHolder } from '../support/locks.js';
import { sql } from '../support/migrations.js';

/*
 * exec on three real shard databases: each shard's statement in its own
 * transaction, a failure rolling back there only, the metadata lock and the
 * audit row, lock_timeout for DDL, bound parameters.
 */

const TABLE_SQL = `
DROP TABLE IF EXISTS public.messages;
CREATE TABLE public.messages (id bigint PRIMARY KEY, room_id text NOT NULL, body text);`;

/** Shard i holds i + 1 rows (ids 1…i+1), so every shard's row count is its own. */
async function resetTables(d: TestDeployment): Promise<void> {
  for (const [i, url] of d.shardUrls.entries()) {
    await sql(url, TABLE_SQL);
    await sql(url, `INSERT INTO public.messages (id, room_id, body) SELECT g, 'room-' || g, 'hello' FROM generate_series(1, $1::int) g`, [i + 1]);
  }
}

async function bodies(url: string): Promise<string[]> {
  return (await sql<{ body: string }>(url, 'SELECT body FROM public.messages ORDER BY id')).map((r) => r.body);
}

async function auditRows(metaUrl: string): Promise<Array<{ command_line: string; outcome: string; summary: Record<string, unknown> | null }>> {
  return sql(metaUrl, `SELECT command_line, outcome, summary FROM shardctl.audit_log WHERE command = 'exec' ORDER BY id`);
}

function failureOf(err: unknown): ExecResult {
  expect(err).toBeInstanceOf(OperationError);
  return (err as OperationError).data as ExecResult;
}

describe('exec: a statement that may write, on every shard', () => {
  let d: TestDeployment;
  const run = testRun();

  beforeAll(async () => {
    d = await createDeployment({ shards: 3, redis: false, tables: false });
    await init(d.config, run);
  });
  beforeEach(async () => {
    await resetTables(d);
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('runs on every shard and reports the rows each one affected, with its command tag', async () => {
    const r = await execOnShards(d.config, run, { sql: `UPDATE public.messages SET body = 'updated'` });
    expect(r.results.map((s) => [s.shard, s.status, s.rows, s.tags])).toEqual([
      ['shard-0', 'ok', 1, ['UPDATE 1']],
      ['shard-1', 'ok', 2, ['UPDATE 2']],
      ['shard-2', 'ok', 3, ['UPDATE 3']],
    ]);
    expect(r.summary).toMatchObject({ shards: 3, ok: 3, failed: 0, skipped: 0, rows: 6 });
    for (const url of d.shardUrls) expect(new Set(await bodies(url))).toEqual(new Set(['updated']));
  });

  it('--shard runs on the named shards only', async () => {
    const r = await execOnShards(d.config, run, { sql: `UPDATE public.messages SET body = 'one'`, shards: ['shard-1'] });
    expect(r.results.map((s) => s.shard)).toEqual(['shard-1']);
    expect(await bodies(d.shardUrls[1]!)).toEqual(['one', 'one']);
    expect(await bodies(d.shardUrls[0]!)).toEqual(['hello']);
    expect(await bodies(d.shardUrls[2]!)).toEqual(['hello', 'hello', 'hello']);
  });

  it('--key runs only on the owner of the key by the current ring, and says which it is', async () => {
    const owner = Ring.build(await currentRing(d.metaUrl)).locate('room-42');
    const r = await execOnShards(d.config, run, { sql: `UPDATE public.messages SET body = 'keyed'`, keys: ['room-42'] });
    expect(r.keys).toEqual([{ key: 'room-42', shard: owner }]);
    expect(r.results.map((s) => s.shard)).toEqual([owner]);
    for (const [i, url] of d.shardUrls.entries()) {
      expect((await bodies(url)).every((b) => b === (`shard-${i}` === owner ? 'keyed' : 'hello'))).toBe(true);
    }
  });

  it('a shard that fails (a constraint it alone has) rolls back there only; the others commit; exit 1 with the partial result', async () => {
    await sql(d.shardUrls[1]!, `ALTER TABLE public.messages ADD CONSTRAINT no_boom CHECK (body <> 'boom')`);
    const err = await execOnShards(d.config, run, { sql: `UPDATE public.messages SET body = 'boom'` }).catch((e: unknown) => e);
    expect((err as OperationError).exitCode).toBe(1);
    const r = failureOf(err);
    expect(r.results.map((s) => s.status)).toEqual(['ok', 'failed', 'ok']);
    expect(r.results[1]).toMatchObject({ code: '23514', rows: null });
    expect(r.results[1]!.error).toMatch(/no_boom/);
    expect(r.results[1]!.error).not.toMatch(/\n/);
    expect(await bodies(d.shardUrls[0]!)).toEqual(['boom']);
    expect(await bodies(d.shardUrls[1]!)).toEqual(['hello', 'hello']);
    expect(await bodies(d.shardUrls[2]!)).toEqual(['boom', 'boom', 'boom']);
    const last = (await auditRows(d.metaUrl)).at(-1)!;
    expect(last.outcome).toBe('failed');
    expect(last.command_line).toContain(`# sql: UPDATE public.messages SET body = 'boom'`);
  });

  it('with the metadata lock held elsewhere: exit 75, nothing run, the refusal audited', async () => {
    const holder = new pg.Client({ connectionString: d.metaUrl, application_name: 'shardctl shard rebalance by cron' });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1, $2)', [LOCK_NAMESPACE, LOCKS.metadata]);
      const err = await execOnShards(d.config, run, { sql: `UPDATE public.messages SET body = 'locked out'` }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LockHeldError);
      expect((err as LockHeldError).exitCode).toBe(75);
      // --dry-run takes no lock: it still answers while another run holds it.
      const dry = await execOnShards(d.config, run, { sql: `UPDATE public.messages SET body = 'locked out'`, dryRun: true });
      expect(dry.dryRun).toBe(true);
    } finally {
      await holder.end();
    }
    for (const url of d.shardUrls) expect(new Set(await bodies(url))).toEqual(new Set(['hello']));
    const last = (await auditRows(d.metaUrl)).at(-1)!;
    expect(last.outcome).toBe('lock-held');
    expect(last.command_line).toContain('locked out');
  });

  it('every run writes an audit row with the statement and the parameter count, never a password or a parameter value', async () => {
    const statement = `UPDATE public.messages SET body = $1 WHERE body <> 'postgres://app:s3cret@db/x' /* ALTER ROLE app PASSWORD 'hunter2' */`;
    await execOnShards(d.config, testRun({ commandLine: 'shardctl exec (test) --param ***' }), { sql: statement, params: ['private-value'] });
    const last = (await auditRows(d.metaUrl)).at(-1)!;
    expect(last.outcome).toBe('success');
    const text = JSON.stringify(last);
    expect(text).not.toMatch(/s3cret|hunter2|private-value/);
    expect(last.summary).toMatchObject({ params: 1, transaction: true, summary: { ok: 3, rows: 6 } });
    expect(last.summary!.statement).toBe(`UPDATE public.messages SET body = $1 WHERE body <> 'postgres://app:***@db/x' /* ALTER ROLE app PASSWORD '***' */`);
    expect(last.command_line).toContain('# sql: UPDATE public.messages SET body = $1');
  });

  it('--dry-run reports the shards (and the keys\' owners) and the statement, and changes nothing', async () => {
    const before = (await auditRows(d.metaUrl)).length;
    const owner = Ring.build(await currentRing(d.metaUrl)).locate('room-7');
    const r = await execOnShards(d.config, run, { sql: `DELETE FROM public.messages`, keys: ['room-7'], dryRun: true });
    expect(r).toMatchObject({ dryRun: true, statement: 'DELETE FROM public.messages', keys: [{ key: 'room-7', shard: owner }], shards: [{ shard: owner }] });
    expect(r.results.map((s) => s.status)).toEqual(['skipped']);
    for (const [i, url] of d.shardUrls.entries()) expect(await bodies(url)).toHaveLength(i + 1);
    expect(await auditRows(d.metaUrl)).toHaveLength(before);
  });

  it('parameters are bound: an injection attempt is stored as a value', async () => {
    const attack = `x'; DROP TABLE public.messages; --`;
    const r = await execOnShards(d.config, run, { sql: `UPDATE public.messages SET body = $1 WHERE id = $2`, params: [attack, '1'] });
    expect(r.results.map((s) => s.rows)).toEqual([1, 1, 1]);
    for (const url of d.shardUrls) expect((await bodies(url))[0]).toBe(attack);
  });

  it('DDL waits at most lock_timeout: the shard where a session holds the table fails with 55P03, quickly; the others succeed', async () => {
    const blocker = new pg.Client({ connectionString: d.shardUrls[2]! });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('SELECT count(*) FROM public.messages');
      const started = Date.now();
      const err = await execOnShards(d.config, run, { sql: 'ALTER TABLE public.messages ADD COLUMN extra int', lockTimeoutMs: 200, lockRetries: 1, retryDelayMs: 50 }).catch((e: unknown) => e);
      const took = Date.now() - started;
      const r = failureOf(err);
      expect(r.results.map((s) => s.status)).toEqual(['ok', 'ok', 'failed']);
      expect(r.results[2]).toMatchObject({ code: '55P03', attempts: 2 });
      expect(r.results[2]!.error).toMatch(/lock timeout/);
      expect(r.results[0]!.tags).toEqual(['ALTER TABLE']);
      expect(took).toBeLessThan(5000);
    } finally {
      await blocker.end();
    }
    const columns = async (url: string) => (await sql(url, `SELECT 1 FROM information_schema.columns WHERE table_name = 'messages' AND column_name = 'extra'`)).length;
    expect(await Promise.all(d.shardUrls.map(columns))).toEqual([1, 1, 0]);
  });

  it('ANALYZE runs; VACUUM is refused in a transaction with the flag to use, and runs with transaction: false', async () => {
    const analyzed = await execOnShards(d.config, run, { sql: 'ANALYZE public.messages' });
    expect(analyzed.results.map((s) => [s.status, s.tags])).toEqual(Array(3).fill(['ok', ['ANALYZE']]));
    const stats = async (url: string) => (await sql<{ n: number }>(url, `SELECT count(*)::int AS n FROM pg_stats WHERE tablename = 'messages'`))[0]!.n;
    for (const url of d.shardUrls) expect(await stats(url)).toBeGreaterThan(0);

    const refused = failureOf(await execOnShards(d.config, run, { sql: 'VACUUM public.messages' }).catch((e: unknown) => e));
    expect(refused.results.every((s) => s.code === '25001' && /--no-transaction/.test(s.hint ?? ''))).toBe(true);
    const vacuumed = await execOnShards(d.config, run, { sql: 'VACUUM (ANALYZE) public.messages', transaction: false });
    expect(vacuumed.results.map((s) => [s.status, s.tags])).toEqual(Array(3).fill(['ok', ['VACUUM']]));
  });

  it('several statements without --param run in one transaction per shard; a failing one undoes the others there', async () => {
    const r = await execOnShards(d.config, run, { sql: `UPDATE public.messages SET body = 'a'; DELETE FROM public.messages WHERE id = 1;` });
    expect(r.results.map((s) => s.tags)).toEqual([['UPDATE 1', 'DELETE 1'], ['UPDATE 2', 'DELETE 1'], ['UPDATE 3', 'DELETE 1']]);
    expect(r.results.map((s) => s.rows)).toEqual([2, 3, 4]);
    await resetTables(d);
    await sql(d.shardUrls[1]!, `ALTER TABLE public.messages ADD CONSTRAINT no_b CHECK (body <> 'b')`);
    const failed = failureOf(await execOnShards(d.config, run, { sql: `DELETE FROM public.messages WHERE id = 1; UPDATE public.messages SET body = 'b'` }).catch((e: unknown) => e));
    expect(failed.results.map((s) => s.status)).toEqual(['ok', 'failed', 'ok']);
    expect(await bodies(d.shardUrls[1]!)).toEqual(['hello', 'hello']);
    expect(await bodies(d.shardUrls[2]!)).toEqual(['b', 'b']);
  });

  it('refuses, running nothing, what it cannot run as asked: several statements with --param or --no-transaction, transaction control, no SQL', async () => {
    const before = (await auditRows(d.metaUrl)).length;
    const attempts = [
      { sql: 'UPDATE public.messages SET body = $1; SELECT 1', params: ['x'] },
      { sql: 'VACUUM public.messages; ANALYZE public.messages', transaction: false },
      { sql: `BEGIN; UPDATE public.messages SET body = 'x'; COMMIT` },
      { sql: '  -- nothing\n' },
    ];
    for (const options of attempts) await expect(execOnShards(d.config, run, options)).rejects.toBeInstanceOf(UsageError);
    expect(await auditRows(d.metaUrl)).toHaveLength(before);
    for (const url of d.shardUrls) expect(new Set(await bodies(url))).toEqual(new Set(['hello']));
  });

  it('a run that loses the metadata lock while a shard waits commits nothing there: it stops with the lock lost', async () => {
    const blocker = new pg.Client({ connectionString: d.shardUrls[0]! });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('SELECT * FROM public.messages WHERE id = 1 FOR UPDATE');
      const running = execOnShards(d.config, run, { sql: `UPDATE public.messages SET body = 'after loss'`, shards: ['shard-0'], lockTimeoutMs: 60_000 }).catch((e: unknown) => e);
      // The event to wait for: exec's session on shard-0 waiting on the row lock.
      for (;;) {
        const waiting = await sql(d.shardUrls[0]!, `SELECT 1 FROM pg_stat_activity WHERE application_name LIKE '%shardctl%exec by%' AND wait_event_type = 'Lock'`);
        if (waiting.length) break;
      }
      const pid = await metadataLockHolder(d.metaUrl);
      expect(pid).not.toBeNull();
      await sql(d.metaUrl, 'SELECT pg_terminate_backend($1)', [pid]);
      const err = await running;
      expect(err).toBeInstanceOf(LockLostError);
      const r = (err as LockLostError).data as ExecResult;
      expect(r.results[0]!.status).toBe('skipped');
    } finally {
      await blocker.end();
    }
    expect(await bodies(d.shardUrls[0]!)).toEqual(['hello']);
  });
});
