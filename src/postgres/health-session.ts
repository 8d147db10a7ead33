import { connect, type PgClient } from './connect.js';
import { DeadlineExceeded, destroySocket } from './deadline.js';

/**
 * A session for health checks, bounded in time whatever the server does. A
 * server that is down refuses the connection at once; one that hangs
 * (SIGSTOPped, or behind a firewall that drops packets) accepts nothing or
 * answers nothing, and a socket waits for it for minutes. So: the connect
 * timeout is the time left before the run's deadline; statement_timeout ends
 * a slow query on the server; lock_timeout (at most 1 s) keeps a catalog read
 * from queueing behind DDL, and so from queueing the application behind
 * itself; and at the deadline the socket is destroyed, which fails whatever
 * is still waiting on it. Health only reads, and takes no lock beyond the
 * ACCESS SHARE of a catalog read.
 */
export interface HealthSessionOptions {
  /** Date.now() value by which the session must be done. */
  deadline: number;
  signal: AbortSignal;
  /** "shard shard-2", for error messages. */
  label: string;
}

/**
 * One bounded session to one database for a whole health run, shared by the
 * groups that read it (shards, sharding, partitions): one backend per shard
 * instead of one per group, so a run pays each shard's connection (fork,
 * authentication, startup, Terminate) once. Opened on the first use; the uses
 * run one at a time, in the order they were asked for, so one group's
 * transaction never wraps another group's statements. Bounded as above: the
 * connect timeout and statement_timeout are the time left when it opens,
 * and at the deadline (or the signal's abort) the socket is destroyed and
 * every use still running or queued rejects with DeadlineExceeded. A use that fails is that use's failure alone: the session
 * is rolled back to no transaction (a no-op outside one) for the next.
 */
export class SharedHealthSession {
  readonly #url: string;
  readonly #options: HealthSessionOptions;
  readonly #left: number;
  readonly #aborted: Promise<never>;
  readonly #onAbort: () => void;
  readonly #timer: NodeJS.Timeout;
  #client: PgClient | undefined;
  #connecting: Promise<PgClient> | undefined;
  #tail: Promise<unknown> = Promise.resolve();
  #done = false;

  constructor(url: string, options: HealthSessionOptions) {
    this.#url = url;
    this.#options = options;
    this.#left = options.deadline - Date.now();
    let reject: (err: Error) => void = () => {};
    this.#aborted = new Promise<never>((_, r) => (reject = r));
    this.#aborted.catch(() => {});
    this.#onAbort = () => {
      this.#done = true;
      destroySocket(this.#client);
      reject(new DeadlineExceeded(options.label, Math.max(0, this.#left)));
    };
    this.#timer = setTimeout(this.#onAbort, Math.max(0, this.#left));
    if (options.signal.aborted || this.#left <= 0) this.#onAbort();
    else options.signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** `fn` on the session once the uses asked for before it are done; bounded by the deadline whatever the server does. */
  use<T>(fn: (client: PgClient) => Promise<T>): Promise<T> {
    const run = this.#tail.then(async () => {
      const client = await this.#connect();
      try {
        return await fn(client);
      } catch (err) {
        if (!this.#done) await client.query('ROLLBACK').catch(() => {});
        throw err;
      }
    });
    this.#tail = run.catch(() => {});
    run.catch(() => {});
    return Promise.race([run, this.#aborted]);
  }

  #connect(): Promise<PgClient> {
    this.#connecting ??= (async () => {
      const left = this.#options.deadline - Date.now();
      if (left <= 0 || this.#done) throw new DeadlineExceeded(this.#options.label, 0);
      let client: PgClient;
      try {
        client = await connect(this.#url, {
          applicationName: 'shardctl health',
          connectTimeoutMs: left,
          label: this.#options.label,
          // TimeZone UTC: partition bounds read in the one-statement snapshot are rendered in it (readPartitions sets it locally).
          settings: { statement_timeout: `${Math.max(1, left)}ms`, lock_timeout: `${Math.max(1, Math.min(left, 1000))}ms`, default_transaction_read_only: 'on', TimeZone: 'UTC' },
        });
      } catch (err) {
        // The connect timeout is the time left: its expiry is the deadline's, whichever timer fired first.
        if (Date.now() >= this.#options.deadline) throw new DeadlineExceeded(this.#options.label, Math.max(0, this.#left));
        throw err;
      }
      this.#client = client;
      if (this.#done) destroySocket(client);
      return client;
    })();
    return this.#connecting;
  }

  /** After the run's last use: Terminate, or the socket dropped when the server does not answer it. */
  async close(): Promise<void> {
    this.#done = true;
    clearTimeout(this.#timer);
    this.#options.signal.removeEventListener('abort', this.#onAbort);
    if (this.#client) await closeQuietly(this.#client);
  }
}

async function closeQuietly(client: PgClient): Promise<void> {
  const ended = client.end().catch(() => {});
  // A hung server never answers the Terminate: give it a moment, then drop the socket.
  const timer = setTimeout(() => destroySocket(client), 200);
  await ended;
  clearTimeout(timer);
}

export { DeadlineExceeded };
