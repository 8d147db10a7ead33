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

/** The session that holds a lock, from pg_locks and pg_stat_activity. */
export interface LockHolder {
  pid: number;
  applicationName: string;
  clientAddr: string | null;
  backendStart: Date;
}

export interface HeldLock {
  /** The dedicated session that holds the lock (idle between the lease's heartbeats). */
  readonly client: PgClient;
  /** Its backend pid: what pg_locks shows as the holder. */
  readonly backendPid: number;
  /** Set once the session has ended (terminated, server restart, network error): the lock is gone. */
  readonly lostReason: string | null;
  /** Called once when the session ends while the lock is held. */
  onLost(listener: (reason: string) => void): void;
  /**
   * Fails unless the lock is still held by this session, checked by `client`
   * (another session, typically inside the transaction about to commit).
   */
  assertHeldFrom(client: PgClient): Promise<void>;
  release(): Promise<void>;
}

export interface AcquireOptions {
  waitMs: number;
  applicationName: string;
  label: string;
  signal?: AbortSignal;
  /**
   * Called when the wait runs out with the lock still held by `holder`:
   * return 'retry' to poll once more (the hook ended a stale holder), or a
   * description of the holder for the exit-75 message.
   */
  whenHeld?: (client: PgClient, holder: LockHolder | undefined) => Promise<'retry' | string>;
}

/** The lock was held and its session ended: what the holder's run sees, and says. */
export class LockSessionLost extends Error {}

/**
 * A session-level try-lock on a dedicated connection, polled until `waitMs`
 * runs out: never a blocking pg_advisory_lock (which would queue without
 * limit) and never a transaction-scoped one (which deadlocks with
 * CREATE INDEX CONCURRENTLY on the same database). The connection sets TCP
 * keepalives (see connect), so a holder that vanishes frees the lock in
 * about a minute instead of the kernel's two hours.
 */
export async function acquireAdvisoryLock(url: string, name: LockName, options: AcquireOptions): Promise<HeldLock> {
  const client = await connect(url, { applicationName: options.applicationName, label: options.label });
  const deadline = Date.now() + options.waitMs;
  let retried = false;
  let backendPid: number;
  try {
    for (;;) {
      const { rows } = await client.query<{ ok: boolean; pid: number }>('SELECT pg_try_advisory_lock($1, $2) AS ok, pg_backend_pid() AS pid', [
        LOCK_NAMESPACE,
        LOCKS[name],
      ]);
      if (rows[0]?.ok) {
        backendPid = rows[0].pid;
        break;
      }
      if (options.signal?.aborted) throw new InterruptedError(`interrupted while waiting for the ${name} lock`);
      if (Date.now() >= deadline) {
        const holder = await findLockHolder(client, name);
        const verdict = options.whenHeld && !retried ? await options.whenHeld(client, holder) : describeHolder(holder);
        if (verdict === 'retry') {
          retried = true;
          continue;
        }
        throw new LockHeldError(name, verdict);
      }
      await new Promise((r) => setTimeout(r, Math.min(POLL_MS, Math.max(1, deadline - Date.now()))));
    }
  } catch (err) {
    await client.end().catch(() => {});
    throw err;
  }
  return holdLock(client, name, backendPid);
}

function holdLock(client: PgClient, name: LockName, backendPid: number): HeldLock {
  let lostReason: string | null = null;
  let released = false;
  const listeners: Array<(reason: string) => void> = [];
  const lose = (reason: string) => {
    if (released || lostReason !== null) return;
    lostReason = reason;
    for (const l of listeners) l(reason);
  };
  // The server closes the socket when the backend is terminated or shuts down; a network
  // error surfaces here too. Either way the session, and so the lock, is gone.
  client.on('error', (err: Error) => lose(`its session failed: ${err.message}`));
  client.on('end', () => lose('its session ended'));
  return {
    client,
    backendPid,
    get lostReason() {
      return lostReason;
    },
    onLost(listener) {
      if (lostReason !== null) listener(lostReason);
      else listeners.push(listener);
    },
    async assertHeldFrom(other) {
      if (lostReason !== null) throw new LockSessionLost(`the ${name} lock was lost: ${lostReason}`);
      const { rows } = await other.query<{ held: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM pg_locks l
                         WHERE l.locktype = 'advisory' AND l.granted AND l.pid = $3
                           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                           AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid AND l.objsubid = 2) AS held`,
        [LOCK_NAMESPACE, LOCKS[name], backendPid],
      );
      if (!rows[0]?.held) {
        lose(`its session (backend pid ${backendPid}) no longer holds it`);
        throw new LockSessionLost(`the ${name} lock was lost: its session (backend pid ${backendPid}) no longer holds it`);
      }
    },
    async release() {
      released = true;
      // Closing the session releases a session-level lock even if the unlock fails.
      await client.query('SELECT pg_advisory_unlock($1, $2)', [LOCK_NAMESPACE, LOCKS[name]]).catch(() => {});
      await client.end().catch(() => {});
    },
  };
}

/** The session holding `name` in this database, if any. */
export async function findLockHolder(client: PgClient, name: LockName): Promise<LockHolder | undefined> {
  const { rows } = await client.query<{ application_name: string; pid: number; backend_start: Date; client_addr: string | null }>(
    `SELECT a.application_name, a.pid, a.backend_start, a.client_addr::text AS client_addr
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid AND l.objsubid = 2`,
    [LOCK_NAMESPACE, LOCKS[name]],
  );
  const row = rows[0];
  return row ? { pid: row.pid, applicationName: row.application_name, clientAddr: row.client_addr, backendStart: row.backend_start } : undefined;
}

/** "shardctl init by alice@host pid 4242 from 10.0.0.5, backend pid 123, since 2026-11-21T10:00:00.000Z". */
export function describeHolder(holder: LockHolder | undefined): string | undefined {
  if (!holder) return undefined;
  const where = holder.clientAddr ? ` from ${holder.clientAddr}` : '';
  return `${holder.applicationName || 'unknown client'}${where}, backend pid ${holder.pid}, since ${holder.backendStart.toISOString()}`;
}
