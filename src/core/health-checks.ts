import type { HealthUnit, ThresholdDirection, Thresholds } from './thresholds.js';

/**
 * Every check `health` runs, by its documented name: the group it belongs to,
 * what its value measures, which way its thresholds point, its default
 * thresholds, and its Prometheus metric (postgres_exporter / redis_exporter
 * style, `shardctl_` prefix) with the labels that identify a target. The
 * README's check table is this list. `health.thresholds.<name>` overrides the
 * defaults; a check whose defaults depend on the configuration (a partition
 * runway is measured against that table's `premake`) says so in `defaults`
 * and the measurement carries the computed levels.
 */

export type HealthGroup = 'shards' | 'sharding' | 'partitions' | 'streams';

export const HEALTH_GROUPS: readonly HealthGroup[] = ['shards', 'sharding', 'partitions', 'streams'];

export interface CheckSpec {
  name: string;
  group: HealthGroup;
  unit: HealthUnit;
  direction: ThresholdDirection;
  /** Default levels; `null` for one: that level never fires unless configured. */
  defaults: Thresholds;
  /** How the defaults are derived when they depend on the config (shown in the README). */
  defaultsNote?: string;
  metric: string;
  /** Label names of the metric, in order: what identifies one target of this check. */
  labels: readonly string[];
  /** One line: what the value is (HELP of the metric, and the README). */
  help: string;
}

const SHARD = ['shard'] as const;

export const HEALTH_CHECKS: readonly CheckSpec[] = [
  // per shard, and the metadata database (shard="metadata")
  { name: 'reachable', group: 'shards', unit: 'boolean', direction: 'below', defaults: { warning: null, critical: 0 }, metric: 'shardctl_pg_up', labels: SHARD, help: 'the server answered a query within the timeout (1) or not (0)' },
  { name: 'latency', group: 'shards', unit: 'seconds', direction: 'above', defaults: { warning: 0.05, critical: 0.5 }, metric: 'shardctl_pg_latency_seconds', labels: SHARD, help: 'the fastest of three SELECT 1 round trips on an open session' },
  { name: 'server_version', group: 'shards', unit: 'version', direction: 'below', defaults: { warning: 140000, critical: null }, metric: 'shardctl_pg_server_version', labels: SHARD, help: 'server_version_num (online moves need 14 or later)' },
  { name: 'connections', group: 'shards', unit: 'ratio', direction: 'above', defaults: { warning: 0.8, critical: 0.95 }, metric: 'shardctl_pg_connections_used_ratio', labels: SHARD, help: 'client sessions of the server over max_connections' },
  { name: 'longest_transaction', group: 'shards', unit: 'seconds', direction: 'above', defaults: { warning: 30, critical: 300 }, metric: 'shardctl_pg_longest_transaction_seconds', labels: SHARD, help: 'age of the oldest open transaction of a client session in the shard database' },
  { name: 'idle_in_transaction', group: 'shards', unit: 'seconds', direction: 'above', defaults: { warning: 30, critical: 300 }, metric: 'shardctl_pg_idle_in_transaction_seconds', labels: SHARD, help: 'longest time a client session of the shard database has sat idle inside a transaction' },
  { name: 'longest_query', group: 'shards', unit: 'seconds', direction: 'above', defaults: { warning: 60, critical: 600 }, metric: 'shardctl_pg_longest_query_seconds', labels: SHARD, help: 'age of the longest running statement of a client session in the shard database' },
  { name: 'lock_waits', group: 'shards', unit: 'seconds', direction: 'above', defaults: { warning: 10, critical: 60 }, metric: 'shardctl_pg_lock_wait_seconds', labels: SHARD, help: 'longest wait of a session of the shard database queued for a lock (the message counts the waiters and names the blockers)' },
  { name: 'xid_age', group: 'shards', unit: 'count', direction: 'above', defaults: { warning: 1_300_000_000, critical: 1_400_000_000 }, metric: 'shardctl_pg_xid_age', labels: SHARD, help: 'age(datfrozenxid) of the oldest database: transaction IDs until wraparound protection' },
  { name: 'database_size', group: 'shards', unit: 'bytes', direction: 'above', defaults: { warning: null, critical: null }, metric: 'shardctl_pg_database_size_bytes', labels: SHARD, help: 'pg_database_size of the shard database' },
  { name: 'replication_lag', group: 'shards', unit: 'seconds', direction: 'above', defaults: { warning: 30, critical: 300 }, metric: 'shardctl_pg_replication_lag_seconds', labels: SHARD, help: 'largest replay_lag of its replicas (pg_stat_replication); none: no replicas' },
  { name: 'inactive_slots', group: 'shards', unit: 'bytes', direction: 'above', defaults: { warning: 1024 ** 3, critical: 10 * 1024 ** 3 }, metric: 'shardctl_pg_inactive_slot_retained_bytes', labels: SHARD, help: 'WAL retained by inactive replication slots' },
  { name: 'cache_hit_ratio', group: 'shards', unit: 'ratio', direction: 'below', defaults: { warning: 0.9, critical: 0.8 }, metric: 'shardctl_pg_cache_hit_ratio', labels: SHARD, help: 'blks_hit / (blks_hit + blks_read) of the shard database (none below 1,000 reads)' },
  { name: 'slow_statements', group: 'shards', unit: 'seconds', direction: 'above', defaults: { warning: 1, critical: 10 }, metric: 'shardctl_pg_slowest_statement_mean_seconds', labels: SHARD, help: 'highest mean time of a statement in pg_stat_statements (none: not installed)' },

  // sharding, from the metadata database, the ring and the shards
  { name: 'row_balance', group: 'sharding', unit: 'factor', direction: 'above', defaults: { warning: 1.5, critical: 3 }, metric: 'shardctl_sharding_row_balance_ratio', labels: ['table'], help: 'max / mean of the rows per unit of weight across shards (none below 1,000 rows)' },
  { name: 'byte_balance', group: 'sharding', unit: 'factor', direction: 'above', defaults: { warning: 1.5, critical: 3 }, metric: 'shardctl_sharding_byte_balance_ratio', labels: ['table'], help: 'max / mean of the bytes per unit of weight across shards (none below 1 MiB)' },
  { name: 'misplaced_rows', group: 'sharding', unit: 'count', direction: 'above', defaults: { warning: 1, critical: 100 }, metric: 'shardctl_sharding_misplaced_rows_sampled', labels: ['shard', 'table'], help: 'rows, in a bounded sample, that the ring places on another shard' },
  { name: 'moves_in_flight', group: 'sharding', unit: 'seconds', direction: 'above', defaults: { warning: 3600, critical: 6 * 3600 }, metric: 'shardctl_sharding_oldest_move_seconds', labels: [], help: 'age of the oldest move not yet finished (the message counts them)' },
  { name: 'moves_failed', group: 'sharding', unit: 'count', direction: 'above', defaults: { warning: 1, critical: null }, metric: 'shardctl_sharding_failed_moves', labels: [], help: 'moves of unfinished plans that failed (shard resume or shard abort)' },
  { name: 'ring_published', group: 'sharding', unit: 'count', direction: 'above', defaults: { warning: null, critical: 1 }, metric: 'shardctl_sharding_ring_epoch_lag', labels: [], help: 'metadata ring epoch minus the epoch published in Redis (missing: critical)' },
  { name: 'shard_registry', group: 'sharding', unit: 'count', direction: 'above', defaults: { warning: 1, critical: null }, metric: 'shardctl_sharding_registry_mismatches', labels: [], help: 'shards registered but not in the config, plus the reverse' },

  // partitions, per configured table and shard
  { name: 'partition_runway', group: 'partitions', unit: 'count', direction: 'below', defaults: { warning: null, critical: 0 }, defaultsNote: 'warning at premake - 1 (fewer future partitions than premake), critical at 0 (none for the next interval); no partition holding now is critical', metric: 'shardctl_partition_runway_intervals', labels: ['shard', 'table'], help: 'future partitions ready after the one holding now' },
  { name: 'default_partition_rows', group: 'partitions', unit: 'count', direction: 'above', defaults: { warning: 1, critical: 100_000 }, metric: 'shardctl_partition_default_rows', labels: ['shard', 'table'], help: 'rows sitting in the default partition' },
  { name: 'partition_rows', group: 'partitions', unit: 'count', direction: 'above', defaults: { warning: null, critical: null }, defaultsNote: 'warning at the table\'s maxRows, critical at twice it', metric: 'shardctl_partition_largest_rows', labels: ['shard', 'table'], help: 'rows (estimate) of the largest partition' },
  { name: 'partition_bytes', group: 'partitions', unit: 'bytes', direction: 'above', defaults: { warning: null, critical: null }, defaultsNote: 'warning at the table\'s maxBytes, critical at twice it', metric: 'shardctl_partition_largest_bytes', labels: ['shard', 'table'], help: 'bytes of the largest partition' },
  { name: 'last_rotate', group: 'partitions', unit: 'seconds', direction: 'above', defaults: { warning: null, critical: null }, defaultsNote: 'warning at 2 of the shortest configured interval, critical at the shortest runway a rotate leaves (max(premake, 1) intervals; a month counts 28 days); warning never above critical', metric: 'shardctl_partition_last_rotate_age_seconds', labels: [], help: 'time since the last successful partition rotate (audit log; none yet: critical)' },

  // streams, per stream / group / Redis node
  { name: 'stream_length', group: 'streams', unit: 'count', direction: 'above', defaults: { warning: null, critical: null }, defaultsNote: 'warning at 1.5 x the policy\'s maxLen, critical at 3 x', metric: 'shardctl_stream_length', labels: ['stream'], help: 'entries in the stream' },
  { name: 'stream_age', group: 'streams', unit: 'seconds', direction: 'above', defaults: { warning: null, critical: null }, defaultsNote: 'warning at 1.5 x the policy\'s maxAge, critical at 3 x', metric: 'shardctl_stream_oldest_entry_age_seconds', labels: ['stream'], help: 'age of the first entry, from its id' },
  { name: 'group_lag', group: 'streams', unit: 'count', direction: 'above', defaults: { warning: 1000, critical: 100_000 }, metric: 'shardctl_stream_group_lag', labels: ['stream', 'group'], help: 'entries not yet delivered to the group (XINFO GROUPS lag)' },
  { name: 'pending_idle', group: 'streams', unit: 'seconds', direction: 'above', defaults: { warning: 300, critical: 3600 }, metric: 'shardctl_stream_group_oldest_pending_idle_seconds', labels: ['stream', 'group'], help: 'idle time of the group\'s oldest pending entry, 0 when nothing is pending (the message names its consumer)' },
  { name: 'redis_reachable', group: 'streams', unit: 'boolean', direction: 'below', defaults: { warning: null, critical: 0 }, metric: 'shardctl_redis_up', labels: ['node'], help: 'the Redis node answered PING and the stream reads within the timeout (1) or not: down, auth refused, hanging (0)' },
  { name: 'redis_memory', group: 'streams', unit: 'ratio', direction: 'above', defaults: { warning: 0.8, critical: 0.95 }, metric: 'shardctl_redis_memory_used_ratio', labels: ['node'], help: 'used_memory over maxmemory (none: no maxmemory set)' },
  { name: 'cluster_state', group: 'streams', unit: 'ratio', direction: 'below', defaults: { warning: null, critical: 0.9999 }, metric: 'shardctl_redis_cluster_slots_ok_ratio', labels: [], help: 'share of the 16,384 slots served by a master in a healthy state (cluster_state fail: critical)' },
];

const BY_NAME = new Map(HEALTH_CHECKS.map((c) => [c.name, c]));

export function checkSpec(name: string): CheckSpec {
  const spec = BY_NAME.get(name);
  if (!spec) throw new Error(`unknown health check "${name}"`);
  return spec;
}

export function isCheckName(name: string): boolean {
  return BY_NAME.has(name);
}
