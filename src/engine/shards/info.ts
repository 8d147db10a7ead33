import { redactUrl } from '../../config/redact.js';
import type { ShardctlConfig } from '../../config/schema.js';
import { DEFAULT_VNODES, Ring, type RingMember, type RingSpec } from '../../core/ring.js';
import { exportRing } from '../../core/ring-export.js';
import { routingHash } from '../../core/routing-hash.js';
import { simulateRingChange, type RingChangeSimulation } from '../../core/simulate.js';
import { OperationError, UsageError } from '../../errors.js';
import { applyRingChange } from '../../core/ring-change.js';
import { withClient } from '../../postgres/connect.js';
import { quoteQualified } from '../../postgres/ident.js';
import { mapWithConcurrency } from '../concurrency.js';
import { requireRing, withMetadata } from '../metadata-session.js';
import { resolveShardTargets } from './targets.js';

export interface TableStats {
  table: string;
  /** null when the table does not exist on the shard, or is not analysed and --exact was not given. */
  rows: number | null;
  bytes: number | null;
  exists: boolean;
}

export interface ShardListEntry {
  id: string;
  state: string;
  weight: number;
  points: number;
  /** Fraction of the hash space this shard owns in the current ring. */
  ownership: number;
  url: string;
  /** With --stats: `error` when the shard could not be read (it did not answer, or a query failed). */
  stats?: { status: 'ok' | 'error'; tables: TableStats[]; error?: string };
}

export interface ShardListResult {
  epoch: number;
  vnodes: number;
  shards: ShardListEntry[];
}

export async function listShards(
  config: ShardctlConfig,
  options: { stats?: boolean; exact?: boolean } = {},
): Promise<ShardListResult> {
  return withMetadata(config, async (store) => {
    const current = await requireRing(store);
    const ring = Ring.build(current);
    const ownership = ring.ownership();
    const records = await store.listShards();
    const targets = new Map(resolveShardTargets(config, records).map((t) => [t.id, t]));
    const shards: ShardListEntry[] = records.map((r) => ({
      id: r.id,
      state: r.state,
      weight: r.weight,
      points: ring.pointCount(r.id),
      ownership: ownership.get(r.id) ?? 0,
      url: redactUrl(targets.get(r.id)?.url ?? r.url),
    }));
    if (options.stats) {
      await mapWithConcurrency(shards, 4, async (entry) => {
        const target = targets.get(entry.id);
        if (!target) return;
        try {
          entry.stats = { status: 'ok', tables: await tableStats(target.url, entry.id, config.tables, !!options.exact) };
        } catch (err) {
          entry.stats = { status: 'error', tables: [], error: (err as Error).message };
        }
      });
    }
    const result = { epoch: current.epoch, vnodes: current.vnodes, shards };
    failIfUnread(result);
    return result;
  });
}

/** A shard whose statistics could not be read fails the listing (exit 1), with every shard's result attached. */
function failIfUnread(result: ShardListResult): void {
  const failed = result.shards.filter((s) => s.stats?.status === 'error');
  if (!failed.length) return;
  throw new OperationError(`could not read the statistics of ${failed.length} shard(s)`, {
    details: failed.map((s) => `${s.id}: ${s.stats!.error}`),
    data: result,
  });
}

/**
 * Rows and bytes per sharded table. Rows are the planner's estimate
 * (pg_class.reltuples, summed over partitions) unless `exact` asks for count(*).
 */
async function tableStats(
  url: string,
  shardId: string,
  tables: ShardctlConfig['tables'],
  exact: boolean,
): Promise<TableStats[]> {
  return withClient(url, { label: `shard ${shardId}`, applicationName: 'shardctl shard list' }, async (client) => {
    const out: TableStats[] = [];
    for (const t of tables) {
      const { rows } = await client.query<{ exists: boolean; rows: number | null; bytes: number | null }>(
        // A plain table is its own only leaf; a partitioned one sums its leaf partitions.
        `WITH t AS (SELECT to_regclass($1) AS oid),
              leaves AS (
                SELECT p.relid FROM t, pg_partition_tree(t.oid) p WHERE p.isleaf
                UNION
                SELECT t.oid FROM t JOIN pg_class c ON c.oid = t.oid WHERE c.relkind <> 'p')
         SELECT (SELECT oid FROM t) IS NOT NULL AS exists,
                CASE WHEN bool_and(c.reltuples >= 0) THEN sum(c.reltuples)::bigint END AS rows,
                sum(pg_total_relation_size(c.oid))::bigint AS bytes
           FROM leaves l JOIN pg_class c ON c.oid = l.relid`,
        [quoteQualified(t.name)],
      );
      const row = rows[0]!;
      let count = row.rows;
      if (row.exists && exact) {
        const exactRows = await client.query<{ n: number }>(`SELECT count(*) AS n FROM ${quoteQualified(t.name)}`);
        count = exactRows.rows[0]!.n;
      }
      out.push({ table: t.name, exists: row.exists, rows: row.exists ? count : null, bytes: row.exists ? row.bytes : null });
    }
    return out;
  });
}

export interface LocateResult {
  epoch: number;
  keys: Array<{ key: string; hash: number; shard: string }>;
}

export async function locateKeys(config: ShardctlConfig, keys: string[]): Promise<LocateResult> {
  const current = await withMetadata(config, requireRing);
  const ring = Ring.build(current);
  return {
    epoch: current.epoch,
    keys: keys.map((key) => ({ key, hash: routingHash(key), shard: ring.locate(key) })),
  };
}

export type RingFormat = 'json' | 'csv' | 'sql';

export async function exportCurrentRing(config: ShardctlConfig, format: RingFormat): Promise<{ epoch: number; text: string }> {
  const current = await withMetadata(config, requireRing);
  return { epoch: current.epoch, text: exportRing(Ring.build(current), format, { epoch: current.epoch }) };
}

export interface SimulateOptions {
  add: RingMember[];
  remove: string[];
  /** `ID=W` weight changes. */
  weights: RingMember[];
  keys: number;
  seed?: number;
  /** Start from the config's shards instead of the metadata store's ring (no database needed). */
  fromConfig?: boolean;
}

export interface SimulateResult extends RingChangeSimulation {
  source: 'metadata' | 'config';
  epoch: number | null;
  before: RingSpec;
  after: RingSpec;
}

/** What a ring change would move and how balanced the result is; reads only. */
export async function simulateChange(config: ShardctlConfig, options: SimulateOptions): Promise<SimulateResult> {
  let before: RingSpec;
  let epoch: number | null = null;
  if (options.fromConfig) {
    before = ringSpecFromConfig(config);
  } else {
    const current = await withMetadata(config, requireRing);
    before = { vnodes: current.vnodes, members: current.members };
    epoch = current.epoch;
  }
  const after = applyRingChange(before, { add: options.add, remove: options.remove, weights: options.weights });
  return { source: options.fromConfig ? 'config' : 'metadata', epoch, before, after, ...simulateRingChange(before, after, options.keys, options.seed ?? 1) };
}

export function ringSpecFromConfig(config: ShardctlConfig, defaultVnodes?: number): RingSpec {
  const members = config.shards.filter((s) => s.weight > 0).map((s) => ({ id: s.id, weight: s.weight }));
  if (!members.length) throw new UsageError('the config lists no shard with weight > 0');
  return { vnodes: config.ring.vnodes ?? defaultVnodes ?? DEFAULT_VNODES, members };
}
