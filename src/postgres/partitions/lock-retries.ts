import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { OperationError } from '../../errors.js';
import type { PgClient } from '../connect.js';

/**
 * Lock safety for partition DDL. A DDL statement that waits for a lock queues
 * every later conflicting request behind it, so an application query that
 * would not conflict with the holder still waits for the DDL: lock_timeout
 * bounds that wait, and the DDL gives way (55P03) and tries again a little
 * later, a few times, before giving up and naming who held the lock.
 */

export type LockMode =
  | 'ACCESS SHARE'
  | 'ROW SHARE'
  | 'ROW EXCLUSIVE'
  | 'SHARE UPDATE EXCLUSIVE'
  | 'SHARE'
  | 'SHARE ROW EXCLUSIVE'
  | 'EXCLUSIVE'
  | 'ACCESS EXCLUSIVE';

const MODES: LockMode[] = ['ACCESS SHARE', 'ROW SHARE', 'ROW EXCLUSIVE', 'SHARE UPDATE EXCLUSIVE', 'SHARE', 'SHARE ROW EXCLUSIVE', 'EXCLUSIVE', 'ACCESS EXCLUSIVE'];

/** The table "Conflicting Lock Modes" of the PostgreSQL manual (13.3.1), as the lowest conflicting mode per mode. */
const CONFLICTS: Record<LockMode, LockMode[]> = {
  'ACCESS SHARE': ['ACCESS EXCLUSIVE'],
  'ROW SHARE': ['EXCLUSIVE', 'ACCESS EXCLUSIVE'],
  'ROW EXCLUSIVE': ['SHARE', 'SHARE ROW EXCLUSIVE', 'EXCLUSIVE', 'ACCESS EXCLUSIVE'],
  'SHARE UPDATE EXCLUSIVE': ['SHARE UPDATE EXCLUSIVE', 'SHARE', 'SHARE ROW EXCLUSIVE', 'EXCLUSIVE', 'ACCESS EXCLUSIVE'],
  SHARE: ['ROW EXCLUSIVE', 'SHARE UPDATE EXCLUSIVE', 'SHARE ROW EXCLUSIVE', 'EXCLUSIVE', 'ACCESS EXCLUSIVE'],
  'SHARE ROW EXCLUSIVE': ['ROW EXCLUSIVE', 'SHARE UPDATE EXCLUSIVE', 'SHARE', 'SHARE ROW EXCLUSIVE', 'EXCLUSIVE', 'ACCESS EXCLUSIVE'],
  EXCLUSIVE: MODES.slice(1),
  'ACCESS EXCLUSIVE': MODES,
};

/** pg_locks spells modes "ShareUpdateExclusiveLock". */
function pgLocksMode(mode: LockMode): string {
  return mode.toLowerCase().replace(/(^|\s)([a-z])/g, (_, _s: string, c: string) => c.toUpperCase()) + 'Lock';
}

/** A lock a DDL statement takes: what a session must hold (or wait for) to block it. */
export interface LockNeed {
  /** A qualified table name, e.g. "public.messages". */
  relation: string;
  mode: LockMode;
}

/** A session that held (or queued for) a conflicting lock when the DDL gave up. */
export interface BlockingSession {
  pid: number;
  applicationName: string;
  state: string | null;
  queryStart: Date | null;
  /** The first 200 characters of its current (or last) query. */
  query: string;
  relation: string;
  mode: string;
  /** false: it was itself waiting in the queue ahead of the DDL. */
  granted: boolean;
}

/** The DDL could not get its locks within lock_timeout, `attempts` times. */
export class LockTimeoutError extends OperationError {
  constructor(
    readonly what: string,
    readonly attempts: number,
    readonly lockTimeoutMs: number,
    readonly blockers: BlockingSession[],
    cause: unknown,
  ) {
    super(
      `${what}: could not get its locks within lock_timeout ${lockTimeoutMs} ms, ${attempts} attempt${attempts === 1 ? '' : 's'}; ${
        blockers.length ? `blocked by ${blockers.map(describeBlocker).join('; ')}` : 'the blocking session had finished by the time it was looked up'
      }`,
      { cause, details: blockers.map(describeBlocker), data: { blockers } },
    );
  }
}

/** "pid 4242 (psql, idle in transaction, query since 2026-12-01T10:00:00.000Z: SELECT …) holds AccessShareLock on public.messages_default". */
export function describeBlocker(b: BlockingSession): string {
  const since = b.queryStart ? ` since ${b.queryStart.toISOString()}` : '';
  return `pid ${b.pid} (${b.applicationName || 'unknown client'}, ${b.state ?? 'unknown state'}, query${since}: ${JSON.stringify(b.query)}) ${
    b.granted ? 'holds' : 'waits for'
  } ${b.mode} on ${b.relation}`;
}

export interface LockRetryOptions {
  /** What the statements do, for the error ("attach public.messages_p20261201 to public.messages"). */
  what: string;
  lockTimeoutMs: number;
  /** Attempts after the first; default 3. */
  retries?: number;
  /** The base pause between attempts, doubled each time, with ±50 % jitter; default 200 ms. */
  backoffMs?: number;
  /** The locks the statements take: where to look for the blocker when they give up. */
  locks: LockNeed[];
}

const LOCK_NOT_AVAILABLE = '55P03';
/** A deadlock aborts one side; that side has changed nothing and may simply try again. */
const DEADLOCK_DETECTED = '40P01';

export function isLockTimeout(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === LOCK_NOT_AVAILABLE || code === DEADLOCK_DETECTED;
}

/**
 * Runs `attempt` (which must leave nothing half done when it fails: one
 * transaction, or a step that can be resumed) until it succeeds, retrying a
 * lock timeout or deadlock `retries` times with jittered exponential pauses.
 * When it gives up, the sessions holding conflicting locks on `locks` are read
 * in the aftermath, on the same (now idle) session.
 */
export async function withLockRetries<T>(client: PgClient, options: LockRetryOptions, attempt: (attemptNo: number) => Promise<T>): Promise<{ value: T; attempts: number }> {
  const retries = options.retries ?? 3;
  const backoff = options.backoffMs ?? 200;
  for (let n = 1; ; n++) {
    try {
      return { value: await attempt(n), attempts: n };
    } catch (err) {
      if (!isLockTimeout(err)) throw err;
      if (n > retries) {
        const blockers = await findBlockers(client, options.locks).catch(() => []);
        throw new LockTimeoutError(options.what, n, options.lockTimeoutMs, blockers, err);
      }
      await sleep(Math.round(backoff * 2 ** (n - 1) * (0.5 + Math.random())));
    }
  }
}

/** Other sessions that hold, or queue for, a lock conflicting with one of `needs`. */
export async function findBlockers(client: PgClient, needs: LockNeed[]): Promise<BlockingSession[]> {
  const relations: string[] = [];
  const modes: string[] = [];
  for (const need of needs) {
    for (const mode of CONFLICTS[need.mode]) {
      relations.push(need.relation);
      modes.push(pgLocksMode(mode));
    }
  }
  const { rows } = await client.query<{
    pid: number;
    application_name: string;
    state: string | null;
    query_start: Date | null;
    query: string;
    relation: string;
    mode: string;
    granted: boolean;
  }>(
    `SELECT DISTINCT ON (a.pid, l.relation, l.mode) a.pid, a.application_name, a.state, a.query_start, left(a.query, 200) AS query,
            format('%s.%s', n.nspname, c.relname) AS relation, l.mode, l.granted
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
       JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE l.locktype = 'relation' AND l.pid <> pg_backend_pid()
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND (l.relation, l.mode) IN (SELECT to_regclass(r), m FROM unnest($1::text[], $2::text[]) AS need(r, m))
      ORDER BY a.pid, l.relation, l.mode, l.granted DESC`,
    [relations, modes],
  );
  return rows
    .map((r) => ({
      pid: r.pid,
      applicationName: r.application_name,
      state: r.state,
      queryStart: r.query_start,
      query: r.query,
      relation: r.relation,
      mode: r.mode,
      granted: r.granted,
    }))
    .sort((a, b) => Number(b.granted) - Number(a.granted) || a.pid - b.pid);
}

/** One statement of a DDL script: text, and bind values where the protocol takes them (never in DDL). */
export interface SqlStatement {
  text: string;
  values?: unknown[];
}

/**
 * Statements to run in order, and whether as one transaction. DETACH …
 * CONCURRENTLY is the one that cannot: PostgreSQL refuses it in a
 * transaction block (so also from a function, pg_partman#387).
 */
export interface DdlScript {
  transaction: boolean;
  statements: SqlStatement[];
}

/** The statements that set the lock timeout: transaction-local, or for the session (restored afterwards). */
export function lockTimeoutStatement(lockTimeoutMs: number, transaction: boolean): string {
  return `SET ${transaction ? 'LOCAL ' : ''}lock_timeout = '${Math.max(1, Math.trunc(lockTimeoutMs))}ms'`;
}

/**
 * The script as it is sent, for --dry-run: BEGIN, the lock timeout (and UTC,
 * in which bounds without an offset are read), the statements, COMMIT. Bind
 * values are shown in a comment after their statement.
 */
export function scriptText(script: DdlScript, lockTimeoutMs: number): string[] {
  const body = script.statements.map((s) => (s.values?.length ? `${s.text} -- ${s.values.map((v, i) => `$${i + 1} = ${JSON.stringify(v)}`).join(', ')}` : s.text));
  if (script.transaction) return ['BEGIN', lockTimeoutStatement(lockTimeoutMs, true), `SET LOCAL TimeZone = 'UTC'`, ...body, 'COMMIT'];
  return [lockTimeoutStatement(lockTimeoutMs, false), ...body];
}

/**
 * Runs the script once under lock_timeout. In a transaction: SET LOCAL, so the
 * session is left as it was, and, when no statement has bind values, the whole
 * transaction (BEGIN … COMMIT) goes as one simple-protocol query: one round
 * trip instead of one per statement. A failing statement aborts the rest of
 * that query and leaves the transaction block aborted, which the ROLLBACK
 * ends. Outside a transaction: the session's lock_timeout is set and put back
 * afterwards. Returns each statement's result, in order.
 */
export async function runScript(client: PgClient, script: DdlScript, lockTimeoutMs: number): Promise<pg.QueryResult[]> {
  if (script.transaction) {
    const head = ['BEGIN', lockTimeoutStatement(lockTimeoutMs, true), `SET LOCAL TimeZone = 'UTC'`];
    try {
      if (script.statements.every((s) => !s.values?.length)) {
        const sent = [...head, ...script.statements.map((s) => s.text), 'COMMIT'];
        const all = (await client.query(sent.join(';\n'))) as unknown as pg.QueryResult | pg.QueryResult[];
        const results = Array.isArray(all) ? all : [all];
        if (results.length !== sent.length) throw new OperationError(`expected ${sent.length} results from the script, got ${results.length}`);
        return results.slice(head.length, head.length + script.statements.length);
      }
      for (const text of head) await client.query(text);
      const results: pg.QueryResult[] = [];
      for (const s of script.statements) results.push(await client.query(s.text, s.values));
      await client.query('COMMIT');
      return results;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    }
  }
  const results: pg.QueryResult[] = [];
  const { rows } = await client.query<{ lock_timeout: string }>(`SELECT current_setting('lock_timeout') AS lock_timeout`);
  await client.query(lockTimeoutStatement(lockTimeoutMs, false));
  try {
    for (const s of script.statements) results.push(await client.query(s.text, s.values));
  } finally {
    await client.query(`SELECT set_config('lock_timeout', $1, false)`, [rows[0]!.lock_timeout]).catch(() => {});
  }
  return results;
}
