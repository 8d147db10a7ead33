import { parseDuration } from '../../config/duration.js';
import type { ShardctlConfig } from '../../config/schema.js';
import { parseBound, type BoundType, type CalendarSpec, type ExistingPartition } from '../../core/partition-calendar.js';
import { UsageError } from '../../errors.js';
import type { MetadataStore } from '../../metadata/store.js';
import type { PartitionedTable } from '../../postgres/partitions.js';
import { pickShardTargets, resolveShardTargets, type ShardTarget } from '../shards/targets.js';

export type PartitionPolicy = ShardctlConfig['partitions'][number];

/** The configured tables (all, or the ones named), with an error for a name the config does not list. */
export function policiesFor(config: ShardctlConfig, tables?: string[]): PartitionPolicy[] {
  if (!config.partitions.length) throw new UsageError('no `partitions` in the config: list the time-partitioned tables there (see config.example.yaml)');
  if (!tables?.length) return config.partitions;
  return tables.map((t) => {
    const name = t.includes('.') ? t : `public.${t}`;
    const policy = config.partitions.find((p) => p.table === name);
    if (!policy) throw new UsageError(`${name} is not in the config's partitions (${config.partitions.map((p) => p.table).join(', ')})`);
    return policy;
  });
}

/** Every shard of the registry that is not retired, or the ones named by --shard. */
export async function partitionTargets(config: ShardctlConfig, store: MetadataStore, shards?: string[]): Promise<ShardTarget[]> {
  return pickShardTargets(resolveShardTargets(config, await store.listShards()), shards);
}

/** The policy as the calendar takes it, for a table whose key column has `boundType`. */
export function calendarSpec(policy: PartitionPolicy, boundType: BoundType): CalendarSpec {
  return {
    interval: policy.interval,
    timezone: policy.timezone,
    premake: policy.premake,
    retentionMs: policy.retention ? parseDuration(policy.retention) : null,
    boundType,
  };
}

export function lockTimeoutMs(policy: PartitionPolicy): number {
  return parseDuration(policy.lockTimeout);
}

/** The key column's type as the calendar writes bounds for it, or why the table cannot be maintained. */
export function boundTypeOf(info: PartitionedTable, policy: PartitionPolicy): BoundType {
  if (!info.exists) throw new Error(`${policy.table} does not exist (\`partition setup ${policy.table}\` shows how to create it)`);
  if (!info.rangePartitioned) throw new Error(`${policy.table} is not partitioned by RANGE (\`partition setup ${policy.table}\`)`);
  if (info.columns.length !== 1 || info.columns[0] !== policy.column) {
    throw new Error(`${policy.table} is partitioned on ${info.columns.join(', ') || 'an expression'}, not ${policy.column}`);
  }
  const type = info.columnType;
  if (type !== 'timestamptz' && type !== 'timestamp' && type !== 'date') throw new Error(`${policy.table}.${policy.column} is not a timestamp, timestamptz or date column`);
  return type;
}

/** The partitions as the calendar sees them (bounds in epoch ms). */
export function existingPartitions(info: PartitionedTable, spec: CalendarSpec): ExistingPartition[] {
  return info.partitions.map((p) => ({
    name: p.name,
    isDefault: p.isDefault,
    fromMs: p.from === null ? -Infinity : parseBound(p.from, spec.boundType, spec.timezone),
    toMs: p.to === null ? Infinity : parseBound(p.to, spec.boundType, spec.timezone),
  }));
}

/** "public.messages" → "messages": partitions are named after the table, in its schema. */
export function baseName(table: string): string {
  return table.includes('.') ? table.slice(table.indexOf('.') + 1) : table;
}
