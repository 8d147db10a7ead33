import type { PgClient } from '../connect.js';

/** What one shard's run of the operator's statement came back with. */
export interface StatementOutcome {
  /** PostgreSQL's command tags, one per statement, as it sent them: "UPDATE 42", "INSERT 0 5", "CREATE INDEX". */
  tags: string[];
}

export interface StatementRun {
  sql: string;
  /** Bound to $1…: sent apart from the text (extended protocol), never pasted into it. */
  params: string[];
  lockTimeoutMs: number;
  /** statement_timeout; undefined leaves the session's own (the server's default, usually none). */
  timeoutMs?: number;
  /** Runs after the statement and before COMMIT: throwing rolls the shard back (the lease check). */
  beforeCommit: () => Promise<void>;
}

/**
 * The statement in a transaction of its own on this shard: BEGIN, the
 * timeouts as transaction-local settings (they end with it, whatever the
 * statement does), the statement, the caller's check, COMMIT. Any failure
 * rolls this shard back and nothing else. With params, PostgreSQL's extended
 * protocol takes one statement; without, the text goes as one simple query,
 * so several statements run in this one transaction.
 */
export async function runInTransaction(client: PgClient, run: StatementRun): Promise<StatementOutcome> {
  await client.query('BEGIN');
  try {
    await client.query(`SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', coalesce($2, current_setting('statement_timeout')), true)`, [
      `${Math.round(run.lockTimeoutMs)}ms`,
      run.timeoutMs === undefined ? null : `${Math.round(run.timeoutMs)}ms`,
    ]);
    const outcome = await runStatement(client, run.sql, run.params);
    await run.beforeCommit();
    await client.query('COMMIT');
    return outcome;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/**
 * For what PostgreSQL refuses in a transaction block (VACUUM, CREATE INDEX
 * CONCURRENTLY, CREATE DATABASE): autocommit, the timeouts already set for
 * the session (in the startup packet, see sessionSettings). `beforeStart` is
 * the caller's check: once the statement runs there is no COMMIT to withhold.
 */
export async function runOutsideTransaction(client: PgClient, run: Omit<StatementRun, 'beforeCommit'> & { beforeStart: () => Promise<void> }): Promise<StatementOutcome> {
  await run.beforeStart();
  return runStatement(client, run.sql, run.params);
}

/** The timeouts of an autocommit session, for connect's startup packet (no round trip, no user text). */
export function sessionSettings(lockTimeoutMs: number, timeoutMs: number | undefined): Record<string, string> {
  return { lock_timeout: `${Math.round(lockTimeoutMs)}ms`, ...(timeoutMs === undefined ? {} : { statement_timeout: `${Math.round(timeoutMs)}ms` }) };
}

/** Ends the statement a shard's session is running (on interrupt or a lost lock): it rolls back there. */
export async function cancelBackend(client: PgClient, pid: number): Promise<void> {
  await client.query('SELECT pg_cancel_backend($1)', [pid]);
}

/**
 * The statement itself. pg parses a command tag into a verb and a count
 * ("CREATE INDEX" becomes "CREATE"), so the tags are read as the server sent
 * them, from the CommandComplete messages of this query (one per statement).
 */
async function runStatement(client: PgClient, sql: string, params: string[]): Promise<StatementOutcome> {
  const tags: string[] = [];
  const connection = (client as unknown as { connection: NodeJS.EventEmitter }).connection;
  const onComplete = (message: { text?: string }) => void tags.push(message.text ?? '');
  connection.on('commandComplete', onComplete);
  try {
    if (params.length) await client.query(sql, params);
    else await client.query(sql);
    return { tags };
  } finally {
    connection.off('commandComplete', onComplete);
  }
}
