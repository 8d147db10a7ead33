import type { RedisClient } from '../connect.js';
import { nodeError, nodeOfKey } from './nodes.js';
import { streamIdAgeMs } from '../../core/stream-id.js';

export interface StreamConsumerInfo {
  name: string;
  pending: number;
  idleMs: number;
}

export interface StreamGroupInfo {
  name: string;
  consumers: number;
  pending: number;
  lastDeliveredId: string;
  /** Redis 7: entries the group has read; null when Redis cannot tell (after XDEL/XTRIM past it). */
  entriesRead: number | null;
  /** Redis 7: entries not yet delivered to the group; null when Redis cannot tell. */
  lag: number | null;
  /** The group's oldest pending entry (XPENDING key group - + 1), or null when nothing is pending. */
  oldestPending: { id: string; consumer: string; idleMs: number; deliveries: number; ageMs: number } | null;
  consumerList: StreamConsumerInfo[];
}

export interface StreamInfo {
  key: string;
  node: string | null;
  length: number;
  firstId: string | null;
  lastId: string | null;
  /** ms between the id's timestamp and `nowMs`. */
  firstAgeMs: number | null;
  lastAgeMs: number | null;
  /** MEMORY USAGE key (sampled by Redis: an estimate for large streams). */
  memoryBytes: number | null;
  groups: StreamGroupInfo[];
}

type Reply = [Error | null, unknown];

/** A flat `[name, value, name, value…]` reply as an object. */
function fields(flat: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const list = flat as unknown[];
  for (let i = 0; i + 1 < list.length; i += 2) out[String(list[i])] = list[i + 1];
  return out;
}

function numberOrNull(value: unknown): number | null {
  return value === null || value === undefined ? null : Number(value);
}

function unwrap(replies: Reply[] | null, node: string | null): unknown[] {
  if (!replies) throw nodeError(node, new Error('the pipeline returned nothing'));
  return replies.map(([err, value]) => {
    if (err) throw nodeError(node, err);
    return value;
  });
}

/**
 * One stream's state in at most two round trips: its type, length, ends,
 * memory and groups in one pipeline, then (only when it has groups) each group's
 * oldest pending entry and consumers in a second. Null when the key is gone.
 * The two pipelines are not one snapshot: a consumer may ack in between.
 */
export async function streamInfo(client: RedisClient, key: string, nowMs: number): Promise<StreamInfo | null> {
  const node = nodeOfKey(client, key);
  let replies: Reply[] | null;
  try {
    replies = (await client
      .pipeline()
      .type(key)
      .xlen(key)
      .xrange(key, '-', '+', 'COUNT', 1)
      .xrevrange(key, '+', '-', 'COUNT', 1)
      .call('MEMORY', 'USAGE', key)
      .xinfo('GROUPS', key)
      .exec()) as Reply[] | null;
  } catch (err) {
    throw nodeError(node, err);
  }
  // A key that is gone answers XINFO with an error: it is missing, not failed.
  if (replies?.[0]?.[0] === null && replies[0][1] === 'none') return null;
  const [type, length, head, tail, memory, groupReplies] = unwrap(replies, node) as [
    string, number, [string, string[]][], [string, string[]][], number | null, unknown[],
  ];
  if (type !== 'stream') throw nodeError(node, new Error(`WRONGTYPE ${key} holds a ${type}, not a stream`));
  const firstId = head[0]?.[0] ?? null;
  const lastId = tail[0]?.[0] ?? null;
  const info: StreamInfo = {
    key,
    node,
    length,
    firstId,
    lastId,
    firstAgeMs: firstId ? streamIdAgeMs(firstId, nowMs) : null,
    lastAgeMs: lastId ? streamIdAgeMs(lastId, nowMs) : null,
    memoryBytes: numberOrNull(memory),
    groups: [],
  };
  if (groupReplies.length === 0) return info;
  const groups = groupReplies.map(fields);
  const pipeline = client.pipeline();
  for (const g of groups) {
    pipeline.xpending(key, String(g.name), '-', '+', 1);
    pipeline.xinfo('CONSUMERS', key, String(g.name));
  }
  let perGroup: unknown[];
  try {
    perGroup = unwrap((await pipeline.exec()) as Reply[] | null, node);
  } catch (err) {
    throw nodeError(node, err);
  }
  info.groups = groups.map((g, i) => {
    const oldest = (perGroup[2 * i] as [string, string, number, number][])[0];
    const consumers = (perGroup[2 * i + 1] as unknown[]).map(fields);
    return {
      name: String(g.name),
      consumers: Number(g.consumers),
      pending: Number(g.pending),
      lastDeliveredId: String(g['last-delivered-id']),
      entriesRead: numberOrNull(g['entries-read']),
      lag: numberOrNull(g.lag),
      oldestPending: oldest
        ? {
            id: oldest[0],
            consumer: oldest[1],
            idleMs: Number(oldest[2]),
            deliveries: Number(oldest[3]),
            ageMs: streamIdAgeMs(oldest[0], nowMs),
          }
        : null,
      consumerList: consumers.map((c) => ({ name: String(c.name), pending: Number(c.pending), idleMs: Number(c.idle) })),
    };
  });
  return info;
}
