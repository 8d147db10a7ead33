import { connect, type PgClient } from './connect.js';

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

export class DeadlineExceeded extends Error {
  constructor(label: string, timeoutMs: number) {
    super(`${label}: no answer within ${(timeoutMs / 1000).toFixed(timeoutMs % 1000 ? 1 : 0)}s`);
  }
}

export async function withHealthSession<T>(url: string, options: HealthSessionOptions, fn: (client: PgClient) => Promise<T>): Promise<T> {
  const left = options.deadline - Date.now();
  if (left <= 0 || options.signal.aborted) throw new DeadlineExceeded(options.label, 0);
  let client: PgClient | undefined;
  let onAbort: () => void = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => {
      destroy(client);
      reject(new DeadlineExceeded(options.label, left));
    };
    options.signal.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => {});
  const timer = setTimeout(onAbort, left);
  try {
    const session = (async () => {
      client = await connect(url, {
        applicationName: 'shardctl health',
        connectTimeoutMs: left,
        label: options.label,
        settings: { statement_timeout: `${Math.max(1, left)}ms`, lock_timeout: `${Math.max(1, Math.min(left, 1000))}ms`, default_transaction_read_only: 'on' },
      });
      if (options.signal.aborted) destroy(client);
      return fn(client);
    })();
    session.catch(() => {});
    return await Promise.race([session, aborted]);
  } finally {
    clearTimeout(timer);
    options.signal.removeEventListener('abort', onAbort);
    if (client) await closeQuietly(client);
  }
}

function destroy(client: PgClient | undefined): void {
  (client as unknown as { connection?: { stream?: { destroy(): void } } } | undefined)?.connection?.stream?.destroy();
}

async function closeQuietly(client: PgClient): Promise<void> {
  const ended = client.end().catch(() => {});
  // A hung server never answers the Terminate: give it a moment, then drop the socket.
  const timer = setTimeout(() => destroy(client), 200);
  await ended;
  clearTimeout(timer);
}
