import { formatDuration } from '../config/duration.js';
import { leaseTimings } from '../core/lease-timings.js';
import { LockHeldError, LockLostError, OperationError } from '../errors.js';
import { acquireAdvisoryLock, describeHolder, type HeldLock, type LockHolder } from '../postgres/advisory-lock.js';
import { connect, sessionTagOf, taggedApplicationName, type PgClient } from '../postgres/connect.js';
import type { MetadataStore } from './store.js';

/**
 * The metadata lock with a lease: the advisory lock says who may act, the
 * lease (a row in shardctl.leases with a generation number, a fencing token)
 * lets the metadata database itself refuse writes from a run that lost the
 * lock without noticing. See migrations/0004_leases.sql for the fence.
 *
 * - Taking the lock bumps the generation; the store's session then carries it
 *   (the setting shardctl.lease), and every write to the state tables is
 *   checked against it in the same statement.
 * - The holder refreshes heartbeat_at every few seconds on its lock session,
 *   so another run can tell a live holder from a stale one; it watches that
 *   session and its own heartbeats, and counts the lease lost when the session
 *   ends or no heartbeat has been confirmed for half of lockStaleAfter.
 * - Before a step commits on a shard, check() confirms the lease on the
 *   metadata database: a fenced run finishes at most the batch in flight.
 */

const LEASE = 'metadata';
/** How long taking the lease waits for a write of the previous holder that is still in flight. */
const TAKE_LOCK_TIMEOUT = '5s';
/**
 * Taking the lease: bump the generation in a transaction whose lock_timeout bounds the wait.
 * FOR UPDATE first: it waits for the previous holder's writes in flight (they hold FOR KEY SHARE).
 * The fourth result is the INSERT's RETURNING.
 */
const TAKE_LEASE_SQL = `BEGIN;
SELECT set_config('lock_timeout', '${TAKE_LOCK_TIMEOUT}', true);
SELECT 1 FROM shardctl.leases WHERE name = '${LEASE}' FOR UPDATE;
INSERT INTO shardctl.leases AS l (name, generation, holder, holder_pid, acquired_at, heartbeat_at)
VALUES ('${LEASE}', 1, current_setting('application_name'), pg_backend_pid(), now(), now())
ON CONFLICT (name) DO UPDATE
  SET generation = l.generation + 1, holder = EXCLUDED.holder, holder_pid = EXCLUDED.holder_pid,
      acquired_at = now(), heartbeat_at = now(), released_at = NULL
RETURNING generation;
COMMIT`;

/** What a mutating run's steps see of its lease. */
export interface LeaseGuard {
  /** Null while the lease holds; why it was lost otherwise. */
  readonly lostReason: string | null;
  /** Aborted when the lease is lost. */
  readonly signal: AbortSignal;
  /** Throws LockLostError unless the lease is still current on the metadata database. */
  check(): Promise<void>;
}

export interface LeaseOptions {
  /** The holder's name in pg_stat_activity and the lease row: "shardctl shard add by alice@host pid 4242". */
  holder: string;
  waitMs: number;
  /** A holder silent for longer is stale (metadata.lockStaleAfter). */
  staleAfterMs: number;
  /** End a stale holder's sessions and take over (--break-stale-lock). */
  breakStale?: boolean;
  signal?: AbortSignal;
  /** A notice for the operator (the CLI logs it on stderr). */
  warn?: (message: string) => void;
}

export class Lease implements LeaseGuard {
  readonly #store: MetadataStore;
  readonly #lock: HeldLock;
  readonly #options: LeaseOptions;
  readonly #abort = new AbortController();
  readonly #timings: { beatMs: number; lossAfterMs: number };
  #generation: number | null = null;
  #lostReason: string | null = null;
  #lastConfirmed = Date.now();
  #timer: NodeJS.Timeout | undefined;
  #beating = false;
  /** The lock session serves one query at a time: heartbeats and checks queue here. */
  #serial: Promise<unknown> = Promise.resolve();
  /** Set when this run ended a stale holder to take over: for the audit row. */
  brokeStale: { holder: string; silentSeconds: number } | undefined;

  private constructor(store: MetadataStore, lock: HeldLock, options: LeaseOptions) {
    this.#store = store;
    this.#lock = lock;
    this.#options = options;
    this.#timings = leaseTimings(options.staleAfterMs);
    lock.onLost((reason) => this.#lose(`the lock's session ended (${reason.replace(/^its session /, '')})`));
  }

  /** Takes the metadata lock (exit 75 when held; a stale holder is named so, and broken with breakStale). */
  static async acquire(store: MetadataStore, options: LeaseOptions): Promise<Lease> {
    let broke: Lease['brokeStale'];
    const lock = await acquireAdvisoryLock(store.url, 'metadata', {
      waitMs: options.waitMs,
      applicationName: options.holder,
      label: 'the metadata database',
      ...(options.signal ? { signal: options.signal } : {}),
      whenHeld: (client, holder) => judgeHolder(store, client, holder, options, (info) => (broke = info)),
    });
    const lease = new Lease(store, lock, options);
    lease.brokeStale = broke;
    return lease;
  }

  get generation(): number | null {
    return this.#generation;
  }

  get lostReason(): string | null {
    return this.#lostReason;
  }

  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /**
   * Bumps the generation and hands it to the store's session. Run once the
   * schema exists (init creates shardctl.leases under the bare lock first).
   */
  async take(): Promise<void> {
    const client = this.#lock.client;
    // One round trip (a simple query of several statements, constants only) instead of six. A
    // missing lease table fails the FOR UPDATE (42P01): only then is the table looked for, so
    // the message is the one a check first would give.
    let results: Array<{ rows: Array<{ generation?: number }> }>;
    try {
      results = (await client.query(TAKE_LEASE_SQL)) as unknown as typeof results;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      const code = (err as { code?: string }).code;
      if (code === '42P01' && !(await tableExists(client))) {
        throw new OperationError('the metadata database has no shardctl schema, or one older than this shardctl (no lease table): run `shardctl init` first');
      }
      if (code === '55P03') {
        throw new OperationError(
          'a session of the previous lock holder is stuck inside a transaction on the metadata database (a paused process?); its writes would be fenced, but the lease cannot be taken until it ends',
          { details: ['see pg_stat_activity for shardctl sessions "idle in transaction"; --break-stale-lock ends a stale holder\'s sessions'] },
        );
      }
      throw err;
    }
    this.#generation = results[3]!.rows[0]!.generation!;
    await this.#store.claimLease(this.#generation, taggedApplicationName(this.#options.holder));
    this.#lastConfirmed = Date.now();
    this.#timer = setInterval(() => this.#tick(), this.#timings.beatMs);
    this.#timer.unref();
  }

  async check(): Promise<void> {
    this.#assertNotLost();
    if (this.#generation === null) return;
    const generation = this.#generation;
    const ok = await this.#onLockSession(async (client) => {
      const { rows } = await client.query<{ generation: number; mine: boolean }>(
        `SELECT generation, holder_pid = pg_backend_pid() AND released_at IS NULL AS mine FROM shardctl.leases WHERE name = $1`,
        [LEASE],
      );
      return rows[0]?.generation === generation && rows[0].mine;
    }).catch((err: Error) => {
      this.#lose(`the metadata database did not confirm it: ${err.message}`);
      return false;
    });
    if (!ok) this.#lose(`another run took the lease over (generation ${generation} is no longer current)`);
    else this.#lastConfirmed = Date.now();
    this.#assertNotLost();
  }

  /** Ends the lease and the lock; a lost lease is only let go of. */
  async release(): Promise<void> {
    clearInterval(this.#timer);
    // The lease row (on the lock session) and the store's session let go at once: they are two sessions.
    const generation = this.#generation;
    await Promise.all([
      generation !== null && this.#lostReason === null
        ? this.#onLockSession((client) =>
            client.query(`UPDATE shardctl.leases SET released_at = now() WHERE name = $1 AND generation = $2 AND holder_pid = pg_backend_pid()`, [LEASE, generation]),
          ).catch(() => {})
        : null,
      this.#store.claimLease(null, null).catch(() => {}),
    ]);
    this.#lostReason ??= 'released';
    await this.#lock.release();
  }

  /** Heartbeat, and the watchdog: no confirmed heartbeat for lossAfter (a paused process, a silent network) counts as lost. */
  #tick(): void {
    if (this.#lostReason !== null) return;
    const silentMs = Date.now() - this.#lastConfirmed;
    if (silentMs > this.#timings.lossAfterMs) {
      this.#lose(`no heartbeat was confirmed for ${formatDuration(silentMs)} (the process was paused or the metadata database did not answer)`);
      return;
    }
    if (this.#beating || this.#generation === null) return;
    this.#beating = true;
    const generation = this.#generation;
    void this.#onLockSession((client) =>
      client.query(
        `UPDATE shardctl.leases SET heartbeat_at = now() WHERE name = $1 AND generation = $2 AND holder_pid = pg_backend_pid() AND released_at IS NULL`,
        [LEASE, generation],
      ),
    )
      .then((r) => {
        if (r.rowCount === 1) this.#lastConfirmed = Date.now();
        else this.#lose(`another run took the lease over (generation ${generation} is no longer current)`);
      })
      .catch((err: Error) => this.#lose(`its heartbeat failed: ${err.message}`))
      .finally(() => (this.#beating = false));
  }

  #onLockSession<T>(fn: (client: PgClient) => Promise<T>): Promise<T> {
    const run = this.#serial.then(() => fn(this.#lock.client));
    this.#serial = run.catch(() => {});
    return run;
  }

  #assertNotLost(): void {
    if (this.#lostReason === null && Date.now() - this.#lastConfirmed > this.#timings.lossAfterMs && this.#generation !== null) {
      this.#lose(`no heartbeat was confirmed for ${formatDuration(Date.now() - this.#lastConfirmed)} (the process was paused or the metadata database did not answer)`);
    }
    if (this.#lostReason !== null) throw new LockLostError(`the metadata lock was lost: ${this.#lostReason}`);
  }

  #lose(reason: string): void {
    if (this.#lostReason !== null) return;
    this.#lostReason = reason;
    clearInterval(this.#timer);
    this.#abort.abort(new LockLostError(`the metadata lock was lost: ${reason}`));
  }
}

async function tableExists(client: PgClient): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>(`SELECT to_regclass('shardctl.leases') IS NOT NULL AS ok`);
  return !!rows[0]?.ok;
}

/**
 * The exit-75 message, with how long ago the holder last showed life; or,
 * when it is stale and the run may break it, its sessions ended and 'retry'.
 */
async function judgeHolder(
  store: MetadataStore,
  client: PgClient,
  holder: LockHolder | undefined,
  options: LeaseOptions,
  onBroke: (info: { holder: string; silentSeconds: number }) => void,
): Promise<'retry' | string> {
  const described = describeHolder(holder) ?? 'holder unknown';
  if (!holder || !(await tableExists(client))) return described;
  const { rows } = await client.query<{ holder: string; holder_pid: number; silent_ms: number; generation: number }>(
    `SELECT holder, holder_pid, generation, (extract(epoch FROM now() - heartbeat_at) * 1000)::bigint AS silent_ms
       FROM shardctl.leases WHERE name = $1 AND released_at IS NULL`,
    [LEASE],
  );
  const lease = rows[0];
  // A holder that has no lease yet (init creating the schema) cannot be judged: never break it.
  if (!lease || lease.holder_pid !== holder.pid) return `${described}; it has not taken its lease yet`;
  const silent = formatDuration(lease.silent_ms);
  if (lease.silent_ms <= options.staleAfterMs) return `${described}; last heartbeat ${silent} ago`;
  const stale = `${described}; silent for ${silent}: stale (metadata.lockStaleAfter is ${formatDuration(options.staleAfterMs)})`;
  if (!options.breakStale) return `${stale}; --break-stale-lock ends its sessions and takes over`;
  // Every session of that run: its lock session, the store's (which shares its tag and may sit
  // inside a transaction), and its sessions on the shards (a paused mover may hold a COPY's rows).
  const tag = sessionTagOf(lease.holder);
  let ended: number;
  try {
    ended = await endSessions(client, holder.pid, tag);
  } catch (err) {
    throw new LockHeldError('metadata', `${stale}; could not end its sessions: ${(err as Error).message} (pg_terminate_backend needs the holder's role, or membership in pg_signal_backend)`);
  }
  const onShards = tag ? await endSessionsOnShards(store, tag, options.warn) : 0;
  onBroke({ holder: lease.holder, silentSeconds: Math.round(lease.silent_ms / 1000) });
  options.warn?.(`broke a stale metadata lock: ${stale}; ended ${ended} of its session(s) on the metadata database and ${onShards} on the shards`);
  return 'retry';
}

/** Ends the lock holder's session and every session with its tag in this database; how many. */
async function endSessions(client: PgClient, pid: number | null, tag: string | null): Promise<number> {
  const { rows } = await client.query<{ pid: number }>(
    `SELECT pid, pg_terminate_backend(pid, 5000) AS ok FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid()
        AND (pid = $1 OR ($2::text IS NOT NULL AND starts_with(application_name, 'shardctl[' || $2 || ']')))`,
    [pid, tag],
  );
  return rows.length;
}

/** The same on every shard of the config and the registry; a shard that does not answer is reported, not fatal. */
async function endSessionsOnShards(store: MetadataStore, tag: string, warn?: (message: string) => void): Promise<number> {
  const registered = await store.listShards().catch(() => []);
  const urls = [...store.shardUrls, ...registered.filter((s) => s.state !== 'retired').map((s) => s.url)];
  const seen = new Set<string>();
  let ended = 0;
  for (const url of urls) {
    const where = databaseKey(url);
    if (seen.has(where)) continue;
    seen.add(where);
    try {
      const c = await connect(url, { applicationName: 'shardctl lock breaker', label: `shard database ${where}` });
      try {
        ended += await endSessions(c, null, tag);
      } finally {
        await c.end().catch(() => {});
      }
    } catch (err) {
      warn?.(`could not end the stale run's sessions on ${where}: ${(err as Error).message}`);
    }
  }
  return ended;
}

function databaseKey(url: string): string {
  if (!URL.canParse(url)) return url;
  const u = new URL(url);
  return `${u.hostname}:${u.port || '5432'}${u.pathname}`;
}
