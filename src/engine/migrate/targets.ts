import { compareShardIds } from '../../core/shard-id.js';
import { redactUrl } from '../../config/redact.js';
import type { ShardctlConfig } from '../../config/schema.js';
import { UsageError } from '../../errors.js';
import type { MetadataStore } from '../../metadata/store.js';
import { resolveShardTargets } from '../shards/targets.js';

export type TargetSelection = 'shards' | 'metadata' | 'all';

export interface MigrateTarget {
  /** A shard id, or "metadata". */
  id: string;
  kind: 'shard' | 'metadata';
  url: string;
  displayUrl: string;
}

/**
 * The databases a migration run covers: every shard the registry knows that
 * is not retired, plus any shard the config names that is not registered yet
 * (a shard listed later is caught up by the next `up`), and/or the metadata
 * database; narrowed by `--shard`.
 */
export async function resolveMigrateTargets(
  config: ShardctlConfig,
  store: MetadataStore | null,
  selection: { targets: TargetSelection; shards?: string[] },
): Promise<MigrateTarget[]> {
  const targets: MigrateTarget[] = [];
  if (selection.targets !== 'shards') {
    targets.push({ id: 'metadata', kind: 'metadata', url: config.metadata.url, displayUrl: redactUrl(config.metadata.url) });
  }
  if (selection.targets !== 'metadata') {
    const registered = store && (await store.isInitialised()) ? resolveShardTargets(config, await store.listShards()) : [];
    const seen = new Set(registered.map((t) => t.id));
    const shards = [
      ...registered.map((t) => ({ id: t.id, url: t.url })),
      ...config.shards.filter((s) => !seen.has(s.id)).map((s) => ({ id: s.id, url: s.url })),
    ].sort((a, b) => compareShardIds(a.id, b.id));
    for (const s of shards) targets.push({ id: s.id, kind: 'shard', url: s.url, displayUrl: redactUrl(s.url) });
  }
  if (selection.shards?.length) {
    const known = new Set(targets.map((t) => t.id));
    const unknown = selection.shards.filter((id) => !known.has(id));
    if (unknown.length) throw new UsageError(`--shard ${unknown.join(', ')}: not a shard of this deployment`);
    const wanted = new Set(selection.shards);
    return targets.filter((t) => wanted.has(t.id));
  }
  if (!targets.length) throw new UsageError('no targets: the config lists no shards and none are registered');
  return targets;
}
