import { parseDuration } from '../../config/duration.js';
import type { ShardctlConfig } from '../../config/schema.js';
import { policyFor } from '../../core/trim-floor.js';
import { UsageError } from '../../errors.js';
import { connectRedis, type RedisClient } from '../../redis/connect.js';
import { minIdForMaxAge, type TrimCutoff } from '../../redis/streams.js';

export type StreamPolicyConfig = ShardctlConfig['streams'][number];

/** The Redis of the config, or a usage error naming the key to set. */
export async function redisOf(config: ShardctlConfig): Promise<RedisClient> {
  if (!config.redis || (!config.redis.url && !config.redis.nodes)) {
    throw new UsageError('no Redis in the config: set redis.url (or redis.nodes for a Cluster)');
  }
  return connectRedis(config.redis);
}

/** A key's policy: the first whose `match` it matches (README: first match wins). */
export function policyOf(config: ShardctlConfig, key: string): StreamPolicyConfig | null {
  return policyFor(config.streams, key);
}

/** The policy in server terms, by the run's clock: maxAge → a MINID, maxLen as it is. */
export function cutoffOf(policy: StreamPolicyConfig, nowMs: number): TrimCutoff {
  return {
    ...(policy.maxAge !== undefined ? { minId: minIdForMaxAge(parseDuration(policy.maxAge), nowMs) } : {}),
    ...(policy.maxLen !== undefined ? { maxLen: policy.maxLen } : {}),
    approximate: policy.approximate,
  };
}
