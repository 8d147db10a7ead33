import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { inject } from 'vitest';
import { quoteIdent } from '../../src/postgres/ident.js';
import { withClient, withDatabase } from '../../src/postgres/connect.js';
import { DEFAULT_TEST_PG_URL, DEFAULT_TEST_REDIS_URL } from './test-servers.js';

export { DEFAULT_TEST_PG_URL, DEFAULT_TEST_REDIS_URL };

/** The test PostgreSQL (a superuser connection): from global setup, else the environment, else the default. */
export function pgUrl(): string {
  return provided('pgUrl') ?? process.env.SHARDCTL_TEST_PG_URL ?? DEFAULT_TEST_PG_URL;
}

/** The test Redis, or a clear failure when global setup found none (check `redisAvailable()` to skip instead). */
export function redisUrl(): string {
  const url = provided('redisUrl') ?? process.env.SHARDCTL_TEST_REDIS_URL ?? null;
  if (url === null && provided('pgUrl') !== undefined) {
    throw new Error('no Redis for the tests: none answered at SHARDCTL_TEST_REDIS_URL and redis-server is not installed');
  }
  return url ?? DEFAULT_TEST_REDIS_URL;
}

export function redisAvailable(): boolean {
  return (provided('redisUrl') ?? process.env.SHARDCTL_TEST_REDIS_URL ?? null) !== null;
}

export interface TestDatabase {
  name: string;
  url: string;
  /** DROP DATABASE … WITH (FORCE), so connections a failed test left open do not block it. */
  drop(): Promise<void>;
}

/**
 * A uniquely named database (prefix + pid + random) on the test server.
 * `create: false` only reserves the name, for code under test that creates it
 * itself; drop() removes it either way.
 */
export async function createTestDatabase(prefix: string, options: { create?: boolean } = {}): Promise<TestDatabase> {
  const name = `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`.toLowerCase();
  const admin = pgUrl();
  if (options.create !== false) {
    await withClient(admin, { applicationName: 'shardctl tests', label: 'the test PostgreSQL' }, (c) =>
      c.query(`CREATE DATABASE ${quoteIdent(name)}`),
    );
  }
  return {
    name,
    url: withDatabase(admin, name),
    async drop() {
      await withClient(admin, { applicationName: 'shardctl tests', label: 'the test PostgreSQL' }, (c) =>
        c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`),
      );
    },
  };
}

/** A key prefix no other test (or run) uses: `sct:<pid>:<random>:`. */
export function uniqueRedisPrefix(): string {
  return `sct:${process.pid}:${randomBytes(4).toString('hex')}:`;
}

/** Removes every key under a test's prefix (SCAN, never KEYS). */
export async function unlinkPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1_000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== '0');
}

function provided<K extends 'pgUrl' | 'redisUrl'>(key: K): string | null | undefined {
  try {
    return inject(key);
  } catch {
    return undefined; // outside a vitest worker
  }
}
