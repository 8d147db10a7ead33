/**
 * `shardctl/router`: route keys to shards from an application, the way
 * shardctl does, and follow ring changes as they are published.
 *
 * ```ts
 * import { createRouter, withFencedRetry } from 'shardctl/router';
 *
 * const router = await createRouter({ redis: 'redis://127.0.0.1:6379', metadataUrl: process.env.METADATA_URL });
 * await withFencedRetry(router, async () => {
 *   const pool = pools.get(router.shardFor(roomId))!;   // route afresh on every attempt
 *   await pool.query('INSERT INTO messages (room_id, body) VALUES ($1, $2)', [roomId, body]);
 * });
 * await router.close();
 * ```
 *
 * The ring comes from Redis: the key `<prefix>ring` holds it as JSON
 * (`{"epoch", "hash": "md5-be32", "vnodes", "members": [{"id", "weight"}], "publishedAt"}`)
 * and every change is announced with the same JSON on the channel
 * `<prefix>ring:changed` (what shardctl's `publishRing` writes). When Redis has
 * no ring or does not answer, the router reads the newest row of
 * `shardctl.ring_epochs` in the metadata database instead. A ring replaces the
 * current one only if its epoch is higher, so a late or replayed message never
 * takes the router back.
 *
 * Lookups are pure and synchronous (src/core/ring.ts, the same code the CLI
 * uses). The module loads `ioredis` only when given a Redis URL and `pg` only
 * when it reads the metadata database, and nothing of the CLI, its config or
 * its engine.
 */
import { Ring, type RingMember } from '../core/ring.js';

export { FENCE_SQLSTATE, fencedWrite, withFencedRetry } from './fence.js';
export type { FencedRetryOptions, FencedWrite, ReloadableRouter } from './fence.js';
export { routingHash } from '../core/routing-hash.js';

/** The default Redis key prefix, as in shardctl's config (`redis.prefix`). */
export const DEFAULT_PREFIX = 'shardctl:';

/** The Redis key that holds the published ring (same name as src/redis/ring-publisher.ts). */
export function ringKey(prefix: string = DEFAULT_PREFIX): string {
  return `${prefix}ring`;
}

/** The Redis channel on which every ring change is announced (same name as src/redis/ring-publisher.ts). */
export function ringChannel(prefix: string = DEFAULT_PREFIX): string {
  return `${prefix}ring:changed`;
}

/**
 * The connection the router subscribes on: what it uses of an ioredis client
 * (`Redis` or `Cluster`), as returned by {@link RedisLike.duplicate}.
 */
export interface RedisSubscriberLike {
  subscribe(channel: string): Promise<unknown>;
  on(event: string, listener: (...args: any[]) => void): unknown;
  disconnect(): void;
}

/**
 * What the router uses of an existing Redis client: any ioredis `Redis` or
 * `Cluster` fits. The router reads the ring key with `get` and subscribes on
 * its own `duplicate()`, which it closes on {@link Router.close}; the client
 * itself is left open, it is the caller's.
 */
export interface RedisLike {
  get(key: string): Promise<string | null>;
  duplicate(): RedisSubscriberLike;
}

/** The ring the router routes with, as handed to {@link RouterOptions.onChange}. */
export interface RingInfo {
  epoch: number;
  vnodes: number;
  /** Sorted by shard id (code point order); frozen. */
  members: readonly RingMember[];
  /** Where the ring came from. */
  source: 'redis' | 'channel' | 'metadata';
}

/** Options of {@link createRouter}; at least one of `redis` and `metadataUrl` is required. */
export interface RouterOptions {
  /**
   * A Redis URL (`rediss://` for TLS), or an existing ioredis client. The
   * router reads the ring key with it and subscribes on a duplicate
   * connection of its own.
   */
  redis?: string | RedisLike;
  /** A PostgreSQL URL of the metadata database: the fallback source of the ring. */
  metadataUrl?: string;
  /** The Redis key prefix shardctl publishes under; default `shardctl:`. */
  prefix?: string;
  /**
   * Called each time the router installs a ring, the first one included
   * (during `createRouter`). An exception it throws goes to `onError`.
   */
  onChange?: (ring: RingInfo) => void;
  /**
   * Called with problems found in the background: a message on the channel
   * that holds no valid ring, a reload after a Redis reconnect that failed, an
   * exception from `onChange`. Default: ignored (the router keeps its ring).
   */
  onError?: (err: Error) => void;
  /** How long one read of a source (Redis GET, a metadata connection and query) may take, in ms; default 5000. */
  timeoutMs?: number;
  /**
   * Re-read the ring this often, in ms, as a safety net for a missed channel
   * message (and the only way to learn of a change without Redis): after an
   * online move's cleanup the old owner no longer refuses the moved keys.
   * Default: 30000 with Redis, 2000 with the metadata database alone; 0: never.
   */
  refreshMs?: number;
}

/** A router: routes keys with the newest ring it has seen. */
export interface Router {
  /**
   * The shard that owns a key. A key is hashed in its string form, which
   * must be PostgreSQL's `key::text`; numbers and bigints are turned into it
   * with `String(key)` (so `42` and `42n` route as `'42'`). Integers beyond
   * `Number.MAX_SAFE_INTEGER` must be passed as a bigint or a string.
   */
  shardFor(key: string | number | bigint): string;
  /** The epoch of the ring in use. */
  readonly epoch: number;
  /** The ring in use. */
  readonly ring: RingInfo;
  /**
   * Re-reads the ring: the Redis key, else (key absent or Redis not answering)
   * the metadata database. Installs it if its epoch is higher and returns the
   * epoch in use afterwards. Rejects when no source yields a ring (the router
   * keeps routing with the ring it has). Concurrent calls share one read.
   */
  reload(): Promise<number>;
  /** Unsubscribes and closes the connections the router opened; shardFor keeps answering with the last ring. */
  close(): Promise<void>;
}

/** createRouter found no ring in any source; the message says what each source answered. */
export class RingUnavailableError extends Error {
  override readonly name = 'RingUnavailableError';
}

const DEFAULT_TIMEOUT_MS = 5_000;

/**
 * Creates a router and loads the current ring; resolves once it has one.
 *
 * With `redis`, subscribes to `<prefix>ring:changed` first, then reads the
 * key `<prefix>ring`, so no change published meanwhile is missed. Where Redis
 * has no ring or does not answer, reads `metadataUrl`. After a Redis
 * reconnect the router re-reads the key (messages published while it was
 * away are lost to a subscriber).
 *
 * @throws RingUnavailableError when no source has a ring (the connections are closed again).
 */
export async function createRouter(options: RouterOptions): Promise<Router> {
  if (options === null || typeof options !== 'object') throw new TypeError('createRouter: options must be an object');
  if (options.redis === undefined && options.metadataUrl === undefined) {
    throw new TypeError('createRouter: give `redis` (a URL or an ioredis client), `metadataUrl`, or both');
  }
  const router = new ShardRouter(options);
  try {
    await router.start();
  } catch (err) {
    await router.close();
    throw err;
  }
  return router;
}

interface Installed {
  ring: Ring;
  info: RingInfo;
}

interface OwnedRedis extends RedisLike {
  disconnect(): void;
  on(event: string, listener: (...args: any[]) => void): unknown;
}

class ShardRouter implements Router {
  readonly #options: RouterOptions;
  readonly #prefix: string;
  readonly #timeoutMs: number;
  #redis: RedisLike | null = null;
  /** The command connection when the router made it from a URL (closed on close()). */
  #ownedRedis: OwnedRedis | null = null;
  #subscriber: RedisSubscriberLike | null = null;
  #current: Installed | null = null;
  #reloading: Promise<number> | null = null;
  #refresh: ReturnType<typeof setInterval> | null = null;
  #closed = false;

  constructor(options: RouterOptions) {
    this.#options = options;
    this.#prefix = options.prefix ?? DEFAULT_PREFIX;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  async start(): Promise<void> {
    const { redis } = this.#options;
    if (redis !== undefined) {
      let subscriber: RedisSubscriberLike;
      if (typeof redis === 'string') {
        const { Redis } = await import('ioredis');
        const common = { lazyConnect: true, connectTimeout: this.#timeoutMs };
        // Reads fail fast while Redis is away (the metadata fallback answers instead) ...
        const commands = new Redis(redis, { ...common, maxRetriesPerRequest: 1 });
        // ... while the subscription waits for it, reconnects, and resubscribes.
        const sub = new Redis(redis, { ...common, maxRetriesPerRequest: null });
        commands.on('error', () => {}); // reported as failed reads; ioredis retries on its own
        this.#ownedRedis = commands;
        this.#redis = commands;
        subscriber = sub;
      } else {
        this.#redis = redis;
        subscriber = redis.duplicate();
      }
      this.#subscriber = subscriber;
      subscriber.on('error', () => {}); // reconnects are ioredis's business; a missed change is re-read on 'ready'
      subscriber.on('message', (channel: string, message: string) => this.#onMessage(channel, message));
      subscriber.on('ready', () => {
        // After a reconnect: changes published while we were away were not delivered.
        if (this.#current !== null && !this.#closed) this.reload().catch((err: unknown) => this.#report(err));
      });
      // Subscribe before reading the key: a change published in between then arrives as a message.
      // Should the connection fail first, Redis is not answering: the key read below says so (and
      // the metadata database answers instead) while the subscription goes on trying; its 'ready'
      // then re-reads the key.
      const subscribed = subscriber.subscribe(ringChannel(this.#prefix));
      subscribed.catch(() => {});
      const failed = new Promise<void>((resolve) => subscriber.on('error', () => resolve()));
      await withTimeout(Promise.race([subscribed, failed]), this.#timeoutMs, 'Redis SUBSCRIBE').catch(() => {});
    }
    await this.#load(false);
    this.#startRefresh();
  }

  get epoch(): number {
    return this.#installed().info.epoch;
  }

  get ring(): RingInfo {
    return this.#installed().info;
  }

  shardFor(key: string | number | bigint): string {
    return this.#installed().ring.locate(keyText(key));
  }

  reload(): Promise<number> {
    if (this.#reloading === null) {
      // Both sources when there are two: the ring may be switched in the metadata database and not yet published.
      this.#reloading = this.#load(true).finally(() => (this.#reloading = null));
    }
    return this.#reloading;
  }

  #startRefresh(): void {
    const every = this.#options.refreshMs ?? (this.#options.redis !== undefined ? 30_000 : 2_000);
    if (!(every > 0)) return;
    this.#refresh = setInterval(() => {
      if (!this.#closed) this.reload().catch((err: unknown) => this.#report(err));
    }, every);
    this.#refresh.unref?.();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#refresh) clearInterval(this.#refresh);
    // disconnect(), not quit(): it also stops a reconnect in progress, and nothing is left to flush.
    this.#subscriber?.disconnect();
    this.#ownedRedis?.disconnect();
    this.#subscriber = null;
    this.#ownedRedis = null;
    this.#redis = null;
  }

  #installed(): Installed {
    if (this.#current === null) throw new Error('router: no ring loaded'); // unreachable once createRouter resolved
    return this.#current;
  }

  /**
   * Reads the ring from the first source that has one (with `both`, from
   * each source, keeping the newest) and installs it; throws when none has.
   */
  async #load(both: boolean): Promise<number> {
    const failures: string[] = [];
    let found = false;
    const redis = this.#redis;
    if (redis !== null) {
      const key = ringKey(this.#prefix);
      const where = this.#redisWhere();
      try {
        const body = await withTimeout(redis.get(key), this.#timeoutMs, 'Redis GET');
        if (body === null) {
          failures.push(`Redis (${where}) has no key ${key}`);
        } else {
          this.#install(parseRing(parseJson(body), 'redis'));
          if (!both || this.#options.metadataUrl === undefined) return this.epoch;
          found = true;
        }
      } catch (err) {
        failures.push(`Redis (${where}), key ${key}: ${message(err)}`);
      }
    }
    const url = this.#options.metadataUrl;
    if (url !== undefined) {
      const where = redactUrl(url);
      try {
        const row = await readMetadataRing(url, this.#timeoutMs);
        if (row === null) {
          failures.push(`the metadata database (${where}) has no row in shardctl.ring_epochs`);
        } else {
          this.#install(parseRing(row, 'metadata'));
          return this.epoch;
        }
      } catch (err) {
        failures.push(`the metadata database (${where}): ${message(err)}`);
      }
    }
    if (found) return this.epoch;
    throw new RingUnavailableError(`shardctl router: no ring to route with: ${failures.join('; ')}`);
  }

  #onMessage(channel: string, body: string): void {
    if (channel !== ringChannel(this.#prefix) || this.#closed) return;
    try {
      this.#install(parseRing(parseJson(body), 'channel'));
    } catch (err) {
      this.#report(new Error(`router: ignored a message on ${channel}: ${message(err)}`, { cause: err }));
    }
  }

  /** Installs a ring if it is newer than the one in use; never goes back to a lower (or the same) epoch. */
  #install(next: Installed): void {
    if (this.#current !== null && next.info.epoch <= this.#current.info.epoch) return;
    this.#current = next;
    const { onChange } = this.#options;
    if (onChange === undefined) return;
    try {
      onChange(next.info);
    } catch (err) {
      this.#report(err);
    }
  }

  #report(err: unknown): void {
    const { onError } = this.#options;
    if (onError === undefined) return;
    try {
      onError(err instanceof Error ? err : new Error(String(err)));
    } catch {
      // An error handler that throws has nowhere left to report to.
    }
  }

  #redisWhere(): string {
    const { redis } = this.#options;
    return typeof redis === 'string' ? redactUrl(redis) : 'the given client';
  }
}

/** A key's string form: PostgreSQL's key::text. */
function keyText(key: string | number | bigint): string {
  if (typeof key === 'string') return key;
  if (typeof key === 'bigint') return key.toString();
  if (typeof key === 'number') {
    if (Number.isInteger(key) && !Number.isSafeInteger(key)) {
      throw new RangeError(`router: ${key} is beyond Number.MAX_SAFE_INTEGER; pass the key as a bigint or a string`);
    }
    return String(key);
  }
  throw new TypeError(`router: a key must be a string, a number or a bigint, got ${key === null ? 'null' : typeof key}`);
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    throw new Error('not JSON');
  }
}

/** Validates a ring document (the published JSON, or a ring_epochs row) and builds its ring. */
function parseRing(doc: unknown, source: RingInfo['source']): Installed {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new Error('the ring is not a JSON object');
  const d = doc as { epoch?: unknown; hash?: unknown; vnodes?: unknown; members?: unknown };
  // A bigint column arrives from node-postgres as a string.
  const epoch = typeof d.epoch === 'string' && /^\d+$/.test(d.epoch) ? Number(d.epoch) : d.epoch;
  if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 0) {
    throw new Error(`the ring's epoch must be an integer >= 0, got ${JSON.stringify(d.epoch)}`);
  }
  if (d.hash !== undefined && d.hash !== 'md5-be32') {
    throw new Error(`the ring uses hash ${JSON.stringify(d.hash)}; this router knows only md5-be32`);
  }
  const ring = Ring.build({ vnodes: d.vnodes as number, members: d.members as RingMember[] });
  const info: RingInfo = Object.freeze({ epoch, vnodes: ring.spec.vnodes, members: ring.spec.members, source });
  return { ring, info };
}

/** The newest row of shardctl.ring_epochs, over a connection of its own; `pg` is loaded only here. */
async function readMetadataRing(url: string, timeoutMs: number): Promise<Record<string, unknown> | null> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
    application_name: 'shardctl router',
  });
  client.on('error', () => {}); // a dropped connection fails the query below
  await client.connect();
  try {
    const { rows } = await client.query<Record<string, unknown>>(
      'SELECT epoch, vnodes, members FROM shardctl.ring_epochs ORDER BY epoch DESC LIMIT 1',
    );
    return rows[0] ?? null;
  } finally {
    await client.end().catch(() => {});
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} got no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function message(err: unknown): string {
  return err instanceof Error ? err.message || err.name : String(err);
}

/** A URL for messages, its password masked. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(an unparsable URL)';
  }
}
