import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { freePort } from '../../src/sandbox/ports.js';
import { launchPostgres, postgresAnswers, postgresUrl, stopServer, type PostgresServer } from '../../src/sandbox/postgres.js';
import { findRedisServer, pingRedis, redisEndpoint, redisUrl, startRedis, stopRedis, type RedisServer } from '../../src/sandbox/redis.js';
import { resolveRunAs } from '../../src/sandbox/run-as.js';
import { DEFAULT_TEST_PG_URL, DEFAULT_TEST_REDIS_URL } from './test-servers.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A superuser URL on the test PostgreSQL. */
    pgUrl: string;
    /** The test Redis, or null when none answers and redis-server is not installed. */
    redisUrl: string | null;
  }
}

/**
 * Finds the PostgreSQL and Redis the integration tests run against (SPEC: from
 * SHARDCTL_TEST_PG_URL / SHARDCTL_TEST_REDIS_URL), starting embedded ones in a
 * temp dir where none answers, and stops what it started afterwards.
 */
export default async function setup({ provide }: TestProject): Promise<() => Promise<void>> {
  const stops: Array<() => Promise<unknown>> = [];
  const teardown = async () => {
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => console.error('[global-setup]', err));
  };
  try {
    const pg = await findOrStartPostgres(stops);
    const redis = await findOrStartRedis(stops);
    provide('pgUrl', pg);
    provide('redisUrl', redis);
    // Also for code that reads the environment (and for the CLI processes tests spawn).
    process.env.SHARDCTL_TEST_PG_URL = pg;
    if (redis) process.env.SHARDCTL_TEST_REDIS_URL = redis;
    else delete process.env.SHARDCTL_TEST_REDIS_URL;
  } catch (err) {
    await teardown();
    throw err;
  }
  return teardown;
}

async function findOrStartPostgres(stops: Array<() => Promise<unknown>>): Promise<string> {
  const wanted = process.env.SHARDCTL_TEST_PG_URL || DEFAULT_TEST_PG_URL;
  if (await postgresAnswers(wanted)) return wanted;
  // The server's OS user (postgres, when this runs as root) gets the directory: prepare chowns it.
  const baseDir = await mkdtemp(path.join(os.tmpdir(), 'shardctl-test-pg-'));
  stops.push(() => rm(baseDir, { recursive: true, force: true }));
  const runAs = await resolveRunAs();
  const server: PostgresServer = await launchPostgres({ baseDir, port: await freePort(), runAs });
  stops.push(() => stopServer(server));
  console.error(`[global-setup] no PostgreSQL at ${wanted}; started an embedded one on port ${server.port}`);
  return postgresUrl(server.port, 'postgres');
}

async function findOrStartRedis(stops: Array<() => Promise<unknown>>): Promise<string | null> {
  const wanted = process.env.SHARDCTL_TEST_REDIS_URL || DEFAULT_TEST_REDIS_URL;
  const { host, port } = redisEndpoint(wanted);
  if (await pingRedis(port, host)) return wanted;
  const binary = await findRedisServer();
  if (!binary) {
    console.error(`[global-setup] no Redis at ${wanted} and redis-server is not installed: Redis tests will fail or skip`);
    return null;
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'shardctl-test-redis-'));
  stops.push(() => rm(dir, { recursive: true, force: true }));
  const server: RedisServer = await startRedis({ binary, dir, port: await freePort() });
  stops.push(() => stopRedis(server));
  console.error(`[global-setup] no Redis at ${wanted}; started redis-server on port ${server.port}`);
  return redisUrl(server.port);
}
