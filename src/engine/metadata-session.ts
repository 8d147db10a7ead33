import type { ShardctlConfig } from '../config/schema.js';
import { OperationError } from '../errors.js';
import { MetadataStore, storeOptionsOf, type RingEpoch } from '../metadata/store.js';

/** Opens the metadata store, runs `fn`, always closes it. */
export async function withMetadata<T>(
  config: ShardctlConfig,
  fn: (store: MetadataStore) => Promise<T>,
  options: { applicationName?: string } = {},
): Promise<T> {
  const store = await MetadataStore.open(config.metadata.url, { ...options, ...storeOptionsOf(config) });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** The current ring, or a clear error when `init` has not made one yet. */
export async function requireRing(store: MetadataStore): Promise<RingEpoch> {
  if (!(await store.isInitialised())) {
    throw new OperationError('the metadata database has no shardctl schema: run `shardctl init` first');
  }
  const ring = await store.currentRing();
  if (!ring) throw new OperationError('no ring yet: list shards in the config and run `shardctl init`');
  return ring;
}
