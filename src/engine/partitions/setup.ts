import type { ShardctlConfig } from '../../config/schema.js';
import { withClient } from '../../postgres/connect.js';
import { checkSetup, type SetupReport } from '../../postgres/partitions.js';
import { mapWithConcurrency } from '../concurrency.js';
import { requireRing, withMetadata } from '../metadata-session.js';
import { partitionTargets, policiesFor } from './targets.js';

export interface SetupResult {
  table: string;
  column: string;
  shards: Array<{ shard: string; url: string; report?: SetupReport; error?: string }>;
  /** No shard has a problem of severity 'error'. */
  ready: boolean;
}

/**
 * `partition setup TABLE`: checks, changing nothing, that the table is
 * range-partitioned on the configured column on every shard, whether it has
 * a default partition, and that the primary key and unique indexes include
 * the column; each problem comes with the SQL that fixes it.
 */
export async function partitionSetup(config: ShardctlConfig, table: string, options: { shards?: string[] } = {}): Promise<SetupResult> {
  const [policy] = policiesFor(config, [table]);
  return withMetadata(config, async (store) => {
    await requireRing(store);
    const targets = await partitionTargets(config, store, options.shards);
    const shards: SetupResult['shards'] = await mapWithConcurrency(targets, config.migrate.parallel, (target): Promise<SetupResult['shards'][number]> =>
      withClient(target.url, { applicationName: 'shardctl partition setup', label: `shard ${target.id}` }, async (client) => ({
        shard: target.id,
        url: target.displayUrl,
        report: await checkSetup(client, policy!.table, policy!.column),
      })).catch((err: Error) => ({ shard: target.id, url: target.displayUrl, error: err.message })),
    );
    const ready = shards.every((s) => s.report && !s.report.problems.some((p) => p.severity === 'error'));
    return { table: policy!.table, column: policy!.column, shards, ready };
  });
}
