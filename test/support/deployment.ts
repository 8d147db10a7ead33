import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import type { ShardctlConfig } from '../../src/config/schema.js';
import type { RunInfo } from '../../src/metadata/run-info.js';
import { MetadataStore, type RingEpoch } from '../../src/metadata/store.js';
import { createTestDatabase, redisUrl, uniqueRedisPrefix, unlinkPrefix, type TestDatabase } from './databases.js';

export interface TestDeployment {
  dir: string;
  configPath: string;
  config: ShardctlConfig;
  raw: Record<string, unknown>;
  metaUrl: string;
  shardUrls: string[];
  redisPrefix: string;
  /** Rewrites the config file (and `config`) with changes to the raw document. */
  rewrite(change: (raw: Record<string, unknown>) => void): Promise<void>;
  cleanup(): Promise<void>;
}

/**
 * A whole deployment on the test server: a metadata database (not created:
 * init's job), `shards` shard databases, a config file in a temp dir, and a
 * unique Redis key prefix.
 */
export async function createDeployment(options: { shards: number; redis?: boolean; vnodes?: number; tables?: boolean }): Promise<TestDeployment> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'shardctl-test-'));
  const meta = await createTestDatabase('sct_meta', { create: false });
  const shards: TestDatabase[] = [];
  for (let i = 0; i < options.shards; i++) shards.push(await createTestDatabase(`sct_s${i}`));
  const redisPrefix = uniqueRedisPrefix();
  const raw: Record<string, unknown> = {
    metadata: { url: meta.url },
    ...(options.redis === false ? {} : { redis: { url: redisUrl(), prefix: redisPrefix } }),
    ...(options.vnodes ? { ring: { vnodes: options.vnodes } } : {}),
    shards: shards.map((s, i) => ({ id: `shard-${i}`, url: s.url, weight: 1 })),
    tables: options.tables === false ? [] : [
      { name: 'public.messages', key: 'room_id' },
      { name: 'public.reactions', key: 'room_id' },
    ],
  };
  const configPath = path.join(dir, 'shardctl.config.yaml');
  const deployment: TestDeployment = {
    dir,
    configPath,
    raw,
    config: parseConfig(raw, configPath, process.env),
    metaUrl: meta.url,
    shardUrls: shards.map((s) => s.url),
    redisPrefix,
    async rewrite(change) {
      change(deployment.raw);
      deployment.config = parseConfig(deployment.raw, configPath, process.env);
      await writeFile(configPath, stringify(deployment.raw));
    },
    async cleanup() {
      await Promise.all([meta.drop(), ...shards.map((s) => s.drop())]);
      if (options.redis !== false) {
        // The ring key a run published under the deployment's prefix.
        const { Redis } = await import('ioredis');
        const redis = new Redis(redisUrl(), { lazyConnect: true, maxRetriesPerRequest: 1 });
        try {
          await redis.connect();
          await unlinkPrefix(redis, redisPrefix);
        } catch {
          // Redis gone: nothing to clean.
        } finally {
          redis.disconnect();
        }
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
  await writeFile(configPath, stringify(raw));
  return deployment;
}

export function testRun(overrides: Partial<RunInfo> = {}): RunInfo {
  return { actor: 'vitest@test', commandLine: 'shardctl (test)', lockWaitMs: 0, ...overrides };
}

/** The ring the metadata database holds now. */
export async function currentRing(metaUrl: string): Promise<RingEpoch> {
  const store = await MetadataStore.open(metaUrl);
  try {
    return (await store.currentRing())!;
  } finally {
    await store.close();
  }
}
