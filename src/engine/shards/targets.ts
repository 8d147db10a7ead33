import { redactUrl } from '../../config/redact.js';
import type { ShardctlConfig } from '../../config/schema.js';
import { UsageError } from '../../errors.js';
import type { ShardRecord, ShardState } from '../../metadata/store.js';

export interface ShardTarget {
  id: string;
  /** What to connect with: the config's URL (it may carry a password) or the registry's. */
  url: string;
  /** Safe to print. */
  displayUrl: string;
  state: ShardState | 'unregistered';
  weight: number;
}

/**
 * The shards a command talks to: every registered shard that is not retired,
 * connected with the config's URL when the config names it (passwords live
 * there or in the environment, never in the registry), else the registry's
 * password-less URL (PGPASSWORD / ~/.pgpass supply the rest).
 */
export function resolveShardTargets(config: ShardctlConfig, records: ShardRecord[]): ShardTarget[] {
  const fromConfig = new Map(config.shards.map((s) => [s.id, s]));
  return records
    .filter((r) => r.state !== 'retired')
    .map((r) => {
      const url = fromConfig.get(r.id)?.url ?? r.url;
      return { id: r.id, url, displayUrl: redactUrl(url), state: r.state, weight: r.weight };
    });
}

/** `all`, or the ones --shard names, in the order named; an id the registry does not know is a usage error naming the known ones. */
export function pickShardTargets(all: ShardTarget[], ids: string[] | undefined): ShardTarget[] {
  if (!ids?.length) return all;
  return ids.map((id) => {
    const target = all.find((t) => t.id === id);
    if (!target) throw new UsageError(`--shard ${id}: not a registered shard (${all.map((t) => t.id).join(', ') || 'none registered'})`);
    return target;
  });
}
