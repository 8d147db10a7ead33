import type pg from 'pg';
import { redactUrl } from '../config/redact.js';
import { OperationError } from '../errors.js';

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

export interface ConnectOptions {
  /** Shown in pg_stat_activity, and how a held lock names its holder. */
  applicationName?: string;
  connectTimeoutMs?: number;
  /** A label for error messages, e.g. "shard shard-2" or "metadata". */
  label?: string;
}

let pgModule: Promise<typeof pg> | undefined;

/** pg is loaded on first use, so commands that never touch PostgreSQL start fast. */
export function loadPg(): Promise<typeof pg> {
  pgModule ??= import('pg').then((m) => {
    const mod = (m.default ?? m) as typeof pg;
    // int8 and numeric as JS numbers where they fit: counts, sizes and hashes here stay below 2^53.
    mod.types.setTypeParser(20, (v: string) => Number(v));
    return mod;
  });
  return pgModule;
}

export async function connect(url: string, options: ConnectOptions = {}): Promise<PgClient> {
  const { Client } = await loadPg();
  const client = new Client({
    connectionString: url,
    application_name: (options.applicationName ?? 'shardctl').slice(0, 63),
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
  });
  // A server that dies mid-session emits 'error' on the client; the pending query rejects with it.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    throw new OperationError(
      `cannot connect to ${options.label ?? 'PostgreSQL'} at ${redactUrl(url)}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return client;
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
