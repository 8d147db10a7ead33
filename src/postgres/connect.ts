import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { redactUrl } from '../config/redact.js';
import { OperationError } from '../errors.js';
import { socketForPg } from './socket-reads.js';

export type PgClient = pg.Client;

/** Runs `fn` in a transaction on `client`: COMMIT when it returns, ROLLBACK when it throws. */
export async function inTransaction<T>(client: PgClient, fn: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/**
 * A client whose queries run one after another even when callers do not wait
 * for each other (parallel moves journaling on the one metadata session):
 * pg queues them today but deprecates it, and a pg major will refuse. Only for
 * sessions that run no transaction across awaits of different callers.
 */
export function serialized(client: PgClient): PgClient {
  let tail: Promise<unknown> = Promise.resolve();
  const query = (...args: unknown[]) => {
    const run = tail.then(() => (client.query as (...a: unknown[]) => Promise<unknown>)(...args));
    tail = run.catch(() => {});
    return run;
  };
  return new Proxy(client, {
    get(target, prop) {
      if (prop === 'query') return query;
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

export interface ConnectOptions {
  /** Shown in pg_stat_activity, and how a held lock names its holder. */
  applicationName?: string;
  connectTimeoutMs?: number;
  /** A label for error messages, e.g. "shard shard-2" or "metadata". */
  label?: string;
  /** More server settings for the startup packet (no round trip): `{ statement_timeout: '5000ms' }`. Names and values are ours, never user text. */
  settings?: Record<string, string>;
  /** The socket reads into one buffer of its own (socket-reads.ts): for a session whose large result CopyOut reads. */
  ownReads?: boolean;
}

/**
 * Server-side settings of every session shardctl opens, sent in the startup
 * packet (no round trip). TCP keepalives: a client that vanishes without
 * closing its socket (a crashed VM, a network partition) is noticed by the
 * server after 30 s of silence plus 3 unanswered probes 10 s apart, so about a
 * minute, instead of the kernel's default of two hours; its session ends and
 * any lock it held is freed. client_connection_check_interval (PostgreSQL 14+):
 * a long statement whose client has gone is cancelled within 10 s instead of
 * running to its end. A URL's own `options` (or PGOPTIONS) come after these,
 * so they can override them.
 */
export const SESSION_SETTINGS = {
  tcp_keepalives_idle: '30',
  tcp_keepalives_interval: '10',
  tcp_keepalives_count: '3',
  client_connection_check_interval: '10s',
} as const;

/** Settings a server older than 14 does not know: dropped when it refuses them. */
const NEWER_SETTINGS = new Set(['client_connection_check_interval']);
const UNKNOWN_SETTING = '42704';

/**
 * This process's tag, put into the application_name of every session it
 * opens ("shardctl[3f9a1c02] shard move by alice@host pid 4242"), at the
 * front so PostgreSQL's 63-byte limit never cuts it: breaking a stale lock
 * ends every session of the stale run, on the metadata database and on the
 * shards, by this tag (a paused mover may sit in a COPY that holds rows).
 */
export const SESSION_TAG = randomBytes(4).toString('hex');

/** "shardctl shard move by …" → "shardctl[tag] shard move by …"; other names are left as they are. */
export function taggedApplicationName(name: string): string {
  const tagged = name === 'shardctl' || name.startsWith('shardctl ') ? `shardctl[${SESSION_TAG}]${name.slice('shardctl'.length)}` : name;
  return tagged.slice(0, 63);
}

/** The tag of a tagged application_name, or null. */
export function sessionTagOf(applicationName: string): string | null {
  return /^shardctl\[([0-9a-f]{8})\]/.exec(applicationName)?.[1] ?? null;
}

let pgModule: Promise<typeof pg> | undefined;

/** pg is loaded on first use, so commands that never touch PostgreSQL start fast. */
export function loadPg(): Promise<typeof pg> {
  pgModule ??= importPg().then((m) => {
    const mod = (m.default ?? m) as typeof pg;
    // int8 and numeric as JS numbers where they fit: counts, sizes and hashes here stay below 2^53.
    mod.types.setTypeParser(20, (v: string) => Number(v));
    return mod;
  });
  return pgModule;
}

/**
 * pg asks, while it loads, whether it runs in a Cloudflare Worker: by
 * `navigator.userAgent`, or, where there is no `navigator` (Node < 21), by
 * constructing a fetch Response, which loads Node's bundled undici (measured:
 * 10-20 ms of every command that connects). Node 21+ answers it with its own
 * navigator ('Node.js/21'); the same answer is given to pg here, only while it
 * loads, and taken back after.
 */
async function importPg(): Promise<{ default?: typeof pg }> {
  const global = globalThis as { navigator?: unknown };
  if ('navigator' in global) return import('pg');
  Object.defineProperty(global, 'navigator', {
    value: { userAgent: `Node.js/${process.versions.node.split('.')[0]}` },
    configurable: true,
    writable: true,
  });
  try {
    return (await import('pg')) as { default?: typeof pg };
  } finally {
    delete global.navigator;
  }
}

export async function connect(url: string, options: ConnectOptions = {}): Promise<PgClient> {
  try {
    return await open(url, options, true);
  } catch (err) {
    if ((err as { code?: string }).code !== UNKNOWN_SETTING) throw describeConnectError(url, options, err);
  }
  try {
    return await open(url, options, false);
  } catch (err) {
    throw describeConnectError(url, options, err);
  }
}

async function open(url: string, options: ConnectOptions, newerSettings: boolean): Promise<PgClient> {
  const { Client } = await loadPg();
  const { connectionString, userOptions } = splitOptions(url);
  const ours = Object.entries({ ...SESSION_SETTINGS, ...options.settings })
    .filter(([name]) => newerSettings || !NEWER_SETTINGS.has(name))
    .map(([name, value]) => `-c ${name}=${value}`);
  const client = new Client({
    connectionString,
    application_name: taggedApplicationName(options.applicationName ?? 'shardctl'),
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
    options: [...ours, ...(userOptions ? [userOptions] : [])].join(' '),
    // The client side of the same: the OS probes an idle socket after 30 s.
    keepAlive: true,
    keepAliveInitialDelayMillis: 30_000,
    // pg calls it with its connection settings (ssl among them); @types/pg types it without them.
    ...(options.ownReads ? { stream: socketForPg } : {}),
  });
  // A server that dies mid-session emits 'error' on the client; the pending query rejects with it.
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** The URL without its `options` parameter, and that parameter (or PGOPTIONS), which pg would let override ours. */
function splitOptions(url: string): { connectionString: string; userOptions: string | undefined } {
  if (!URL.canParse(url)) return { connectionString: url, userOptions: process.env.PGOPTIONS };
  const u = new URL(url);
  const userOptions = u.searchParams.get('options') ?? process.env.PGOPTIONS;
  u.searchParams.delete('options');
  return { connectionString: u.toString(), userOptions: userOptions || undefined };
}

function describeConnectError(url: string, options: ConnectOptions, err: unknown): OperationError {
  return new OperationError(`cannot connect to ${options.label ?? 'PostgreSQL'} at ${redactUrl(url)}: ${(err as Error).message}`, { cause: err });
}

/** Runs `fn` with a fresh connection and always closes it. */
export async function withClient<T>(
  url: string,
  options: ConnectOptions,
  fn: (client: PgClient) => Promise<T>,
): Promise<T> {
  const client = await connect(url, options);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** The database name of a postgres:// URL, and the same URL pointed at another database. */
export function databaseOf(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, '')) || 'postgres';
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = '/' + encodeURIComponent(database);
  return u.toString();
}
