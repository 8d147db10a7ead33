import { InterruptedError, LockHeldError } from '../errors.js';
import { connect, type PgClient } from './connect.js';

/**
 * Advisory lock keys are (namespace, lock). The namespace is the ASCII bytes
 * of "SHCT" read as a big-endian int4 (0x53484354), so shardctl's locks are
 * recognisable in pg_locks (classid 1397244756) and do not collide with the
 * single-bigint locks applications usually take.
 */
export const LOCK_NAMESPACE = 0x53484354;
export const LOCKS = {
  /** Held by every mutating command on the metadata database. */
  metadata: 1,
  /** Held by `migrate` on each target database. */
  migrate: 2,
} as const;
export type LockName = keyof typeof LOCKS;

const POLL_MS = 250;

export interface HeldLock {
  release(): Promise<void>;
}

/**
 * A session-level try-lock on a dedicated connection, polled until `waitMs`
 * runs out: never a blocking pg_advisory_lock (which would queue without
 * limit) and never a transaction-scoped one (which deadlocks with
 * CREATE INDEX CONCURRENTLY on the same database).
 */
export async function acquireAdvisoryLock(
  url: string,
  name: LockName,
  options: { waitMs: number; applicationName: string; label: string; signal?: AbortSignal },
): Promise<HeldLock> {
  const client = await connect(url, { applicationName: options.applicationName, label: options.label });
  const deadline = Date.now() + options.waitMs;
  try {
    for (;;) {
      const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [
        LOCK_NAMESPACE,
        LOCKS[name],
      ]);
      if (rows[0]?.ok) break;
      if (options.signal?.aborted) throw new InterruptedError(`interrupted while waiting for the ${name} lock`);
      if (Date.now() >= deadline) throw new LockHeldError(name, await describeHolder(client, name));
      await new Promise((r) => setTimeout(r, Math.min(POLL_MS, Math.max(1, deadline - Date.now()))));
    }
  } catch (err) {
    await client.end().catch(() => {});
    throw err;
  }
  return {
    async release() {
      // Closing the session releases a session-level lock even if the unlock fails.
      await client.query('SELECT pg_advisory_unlock($1, $2)', [LOCK_NAMESPACE, LOCKS[name]]).catch(() => {});
      await client.end().catch(() => {});
    },
  };
}

/** "shardctl init by alice@host (pid 4242, since 2026-11-21T10:00:00Z)", from pg_locks. */
async function describeHolder(client: PgClient, name: LockName): Promise<string | undefined> {
  const { rows } = await client.query<{ application_name: string; pid: number; backend_start: Date; client_addr: string | null }>(
    `SELECT a.application_name, a.pid, a.backend_start, a.client_addr::text AS client_addr
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid AND l.objsubid = 2`,
    [LOCK_NAMESPACE, LOCKS[name]],
  );
  const row = rows[0];
  if (!row) return undefined;
  const where = row.client_addr ? ` from ${row.client_addr}` : '';
  return `${row.application_name || 'unknown client'}${where}, backend pid ${row.pid}, since ${row.backend_start.toISOString()}`;
}
