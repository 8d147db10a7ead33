import type { ShardctlConfig } from '../config/schema.js';
import type { MetadataStore } from '../metadata/store.js';
import { connectRedis } from '../redis/connect.js';
import { publishRing } from '../redis/ring-publisher.js';

export type PublishOutcome =
  | { status: 'published'; epoch: number; key: string; channel: string; receivers: number }
  | { status: 'skipped'; reason: string }
  | { status: 'error'; reason: string };

/** Publishes the metadata store's current ring to Redis, when Redis is configured. */
export async function publishCurrentRing(config: ShardctlConfig, store: MetadataStore): Promise<PublishOutcome> {
  if (!config.redis) return { status: 'skipped', reason: 'no redis in the config' };
  const ring = await store.currentRing();
  if (!ring) return { status: 'skipped', reason: 'no ring yet' };
  let redis;
  try {
    redis = await connectRedis(config.redis);
    const done = await publishRing(redis, config.redis.prefix, ring);
    return { status: 'published', epoch: ring.epoch, ...done };
  } catch (err) {
    return { status: 'error', reason: (err as Error).message };
  } finally {
    redis?.disconnect();
  }
}
