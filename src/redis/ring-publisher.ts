import type { RingSpec } from '../core/ring.js';
import type { RedisClient } from './connect.js';

/**
 * What application servers read to route without a database round trip
 * (documented in the README): the key `<prefix>ring` holds this JSON, and
 * every change is announced on the channel `<prefix>ring:changed` with the
 * same JSON, so a subscriber can swap rings without reading the key.
 */
export interface PublishedRing {
  epoch: number;
  /** The routing contract's hash function: first 4 bytes of md5, big-endian. */
  hash: 'md5-be32';
  vnodes: number;
  members: RingSpec['members'];
  publishedAt: string;
}

export function ringKey(prefix: string): string {
  return `${prefix}ring`;
}

export function ringChannel(prefix: string): string {
  return `${prefix}ring:changed`;
}

export async function publishRing(
  redis: RedisClient,
  prefix: string,
  ring: RingSpec & { epoch: number },
): Promise<{ key: string; channel: string; receivers: number }> {
  const doc: PublishedRing = {
    epoch: ring.epoch,
    hash: 'md5-be32',
    vnodes: ring.vnodes,
    members: ring.members,
    publishedAt: new Date().toISOString(),
  };
  const body = JSON.stringify(doc);
  const key = ringKey(prefix);
  const channel = ringChannel(prefix);
  await redis.set(key, body);
  const receivers = await redis.publish(channel, body);
  return { key, channel, receivers };
}
