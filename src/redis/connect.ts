import type { Cluster, Redis } from 'ioredis';
import { redactText, redactUrl } from '../config/redact.js';
import type { ShardctlConfig } from '../config/schema.js';
import { OperationError } from '../errors.js';

export type RedisClient = Redis | Cluster;

/** ioredis is loaded on first use; standalone for `redis.url`, a Cluster client for `redis.nodes`. */
export async function connectRedis(redis: NonNullable<ShardctlConfig['redis']>): Promise<RedisClient> {
  const { Redis, Cluster } = await import('ioredis');
  const common = { lazyConnect: true, connectTimeout: 5_000, maxRetriesPerRequest: 1, enableOfflineQueue: true };
  let client: RedisClient;
  let where: string;
  if (redis.nodes) {
    where = redis.nodes.map(redactUrl).join(', ');
    client = new Cluster(redis.nodes, { lazyConnect: true, redisOptions: common, clusterRetryStrategy: () => null });
  } else {
    const url = redis.url ?? 'redis://127.0.0.1:6379';
    where = redactUrl(url);
    client = new Redis(url, { ...common, retryStrategy: () => null });
  }
  // ioredis reports a refused AUTH (NOAUTH, WRONGPASS) as an 'error' event and then rejects
  // connect() with "Connection is closed.": keep the event's reason for the message.
  let lastError: Error | undefined;
  client.on('error', (err: Error) => (lastError = err));
  try {
    await client.connect();
  } catch (err) {
    client.disconnect();
    const reason = lastError && lastError.message !== (err as Error).message ? `${lastError.message} (${(err as Error).message})` : (err as Error).message;
    throw new OperationError(`cannot connect to Redis at ${where}: ${redactText(reason)}`, { cause: err });
  }
  return client;
}
