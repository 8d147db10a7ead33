import type { ShardctlConfig } from '../../config/schema.js';
import { Ring } from '../../core/ring.js';
import type { MetadataStore } from '../../metadata/store.js';
import { requireRing } from '../metadata-session.js';
import { pickShardTargets, resolveShardTargets, type ShardTarget } from '../shards/targets.js';

export interface TargetSelection {
  /** --shard ID…: only these registered shards. */
  shards?: string[];
  /** --key KEY…: only the shards that own these keys by the current ring. */
  keys?: string[];
}

export interface SelectedTargets {
  targets: ShardTarget[];
  /** With --key: each key's owner, as the ring of `epoch` places it. */
  keys: Array<{ key: string; shard: string }>;
  epoch: number | null;
}

/**
 * The shards a cross-shard statement runs on: every registered shard that is
 * not retired; or those named by --shard; or, with --key, the owners of the
 * keys by the current ring (both given: the owners among the named). Ids the
 * registry does not know are a usage error naming the known ones.
 */
export async function selectTargets(config: ShardctlConfig, store: MetadataStore, selection: TargetSelection): Promise<SelectedTargets> {
  const targets = pickShardTargets(resolveShardTargets(config, await store.listShards()), selection.shards);
  if (!selection.keys?.length) return { targets, keys: [], epoch: null };
  const current = await requireRing(store);
  const ring = Ring.build(current);
  const keys = selection.keys.map((key) => ({ key, shard: ring.locate(key) }));
  const owners = new Set(keys.map((k) => k.shard));
  return { targets: targets.filter((t) => owners.has(t.id)), keys, epoch: current.epoch };
}
