import type { Redis } from 'ioredis';
import type { RedisClient } from '../connect.js';
import { assertClusterServesAllSlots, isCluster, nodeError, nodeName } from './nodes.js';

/** One SCAN reply's streams, with the master that holds them. */
export interface StreamKeyBatch {
  node: string;
  keys: string[];
}

/**
 * Every stream whose key matches `pattern`, one SCAN reply at a time:
 * `SCAN cursor MATCH pattern TYPE stream COUNT n` on the standalone server or
 * on every master of a Cluster in turn (never KEYS, which blocks the server
 * for the whole keyspace). Nothing is collected: memory stays at two batches
 * (the next reply is fetched ahead) however many streams there are. A
 * Cluster that does not serve every slot is refused before the first key,
 * and a master that fails mid-scan throws a RedisNodeError naming it, so a
 * partial list is never taken for the whole.
 * SCAN may return a key twice (across a rehash); callers must tolerate that.
 */
export async function* scanStreams(
  client: RedisClient,
  pattern: string,
  options: { count?: number } = {},
): AsyncGenerator<StreamKeyBatch> {
  const count = options.count ?? 1_000;
  let masters: Redis[];
  if (isCluster(client)) {
    await assertClusterServesAllSlots(client);
    masters = client.nodes('master');
  } else {
    masters = [client];
  }
  for (const master of masters) {
    const node = nodeName(master);
    const scan = (cursor: string) => {
      const reply = master.call('SCAN', cursor, 'MATCH', pattern, 'TYPE', 'stream', 'COUNT', count) as Promise<[string, string[]]>;
      reply.catch(() => {}); // awaited below; a reply nobody reached (the caller stopped) must not go unhandled
      return reply;
    };
    // The next SCAN is sent as soon as a reply is in, before its keys are handed out: the
    // caller's commands queue behind it, so it is there when they are done, and the server
    // is never left waiting for a round trip at a batch boundary. Memory: two batches.
    let pending = scan('0');
    for (;;) {
      let reply: [string, string[]];
      try {
        reply = await pending;
      } catch (err) {
        throw nodeError(node, err);
      }
      const [cursor, keys] = reply;
      if (cursor !== '0') pending = scan(cursor);
      if (keys.length > 0) yield { node, keys };
      if (cursor === '0') break;
    }
  }
}

/** The same scan, one `{ key, node }` at a time. */
export async function* scanStreamKeys(
  client: RedisClient,
  pattern: string,
  options: { count?: number } = {},
): AsyncGenerator<{ key: string; node: string }> {
  for await (const batch of scanStreams(client, pattern, options)) {
    for (const key of batch.keys) yield { key, node: batch.node };
  }
}
