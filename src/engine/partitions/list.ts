import type { ShardctlConfig } from '../../config/schema.js';
import { runwayOf, type Runway } from '../../core/partition-calendar.js';
import { parseByteSize, projectGrowth, type GrowthProjection } from '../../core/partition-growth.js';
import { listRetired, type RetiredPartition } from '../../metadata/retired-partitions.js';
import { withClient, type PgClient } from '../../postgres/connect.js';
import { defaultPartitionRows, readPartitions, type PartitionedTable } from '../../postgres/partitions.js';
import { mapWithConcurrency } from '../concurrency.js';
import { requireRing, withMetadata } from '../metadata-session.js';
import { boundTypeOf, calendarSpec, existingPartitions, partitionTargets, policiesFor, type PartitionPolicy } from './targets.js';

export interface ListedPartition {
  name: string;
  from: string | null;
  to: string | null;
  isDefault: boolean;
  rows: number | null;
  bytes: number;
  /** Over the policy's maxRows / maxBytes. */
  over: string[];
}

export interface TableListing {
  table: string;
  status: 'ok' | 'error';
  error?: string;
  partitions: ListedPartition[];
  /** Rows sitting in the default partition (count(*)): `partition rotate` moves those in a new partition's range. */
  defaultRows: number | null;
  runway: { until: string | null; intervals: number; premake: number };
  growth: GrowthProjection | null;
  warnings: string[];
}

export interface ListResult {
  now: string;
  shards: Array<{ shard: string; url: string; tables: TableListing[] }>;
  retired?: RetiredPartition[];
}

/** How many of the newest non-default partitions the growth trend is read from. */
const GROWTH_WINDOW = 8;

/**
 * `partition list`: per shard and configured table, the partitions with
 * bounds, rows and bytes, the rows in the default partition, the runway
 * (until when partitions exist, in intervals), partitions over maxRows /
 * maxBytes, and the projected growth with a suggested interval. Read-only.
 */
export async function partitionList(
  config: ShardctlConfig,
  options: { now?: Date; shards?: string[]; tables?: string[]; exact?: boolean; retired?: boolean; parallel?: number } = {},
): Promise<ListResult> {
  const policies = policiesFor(config, options.tables);
  const now = options.now ?? new Date();
  return withMetadata(config, async (store) => {
    await requireRing(store);
    const targets = await partitionTargets(config, store, options.shards);
    const shards = await mapWithConcurrency(targets, options.parallel ?? config.migrate.parallel, (target) =>
      withClient(target.url, { applicationName: 'shardctl partition list', label: `shard ${target.id}` }, async (client) => {
        const tables: TableListing[] = [];
        for (const policy of policies) tables.push(await listTable(client, policy, now, { exact: !!options.exact }));
        return { shard: target.id, url: target.displayUrl, tables };
      }).catch((err: Error) => ({ shard: target.id, url: target.displayUrl, tables: [{ table: '*', status: 'error' as const, error: err.message, partitions: [], defaultRows: null, runway: { until: null, intervals: 0, premake: 0 }, growth: null, warnings: [] }] })),
    );
    const result: ListResult = { now: now.toISOString(), shards };
    if (options.retired) result.retired = await listRetired(store.client, { limit: 200, ...(options.tables?.length === 1 ? { parent: policies[0]!.table } : {}) });
    return result;
  });
}

/**
 * One configured table on one shard, as `partition list` shows it (and
 * `health` judges it): partitions, default rows, runway, growth. A problem
 * with the table is the listing's error, not a throw. `countDefault` replaces
 * the exact count of the default partition (health bounds it); `partitions`,
 * the table as readPartitions reads it, is used instead of reading it (health
 * reads it with a shard's other figures in one statement; `client` is then
 * used only by the default count, and may be null when `countDefault` is given).
 * `calendarMemo`, kept by the caller across shards, reuses the calendar's
 * reading of partition bounds (runway, interval boundaries) for shards whose
 * partitions are the same.
 */
export async function listTable(
  client: PgClient | null,
  policy: PartitionPolicy,
  now: Date,
  options: { exact?: boolean; countDefault?: (partition: string) => Promise<number>; partitions?: PartitionedTable; calendarMemo?: CalendarMemo } = {},
): Promise<TableListing> {
  const listing: TableListing = { table: policy.table, status: 'ok', partitions: [], defaultRows: null, runway: { until: null, intervals: 0, premake: policy.premake }, growth: null, warnings: [] };
  try {
    const info = options.partitions ?? (await readPartitions(client!, policy.table, { exact: !!options.exact }));
    const spec = calendarSpec(policy, boundTypeOf(info, policy));
    const maxRows = policy.maxRows;
    const maxBytes = policy.maxBytes !== undefined ? parseByteSize(policy.maxBytes) : undefined;
    for (const p of info.partitions) {
      const rows = p.exactRows ?? p.estimatedRows;
      const over: string[] = [];
      if (maxRows !== undefined && rows !== null && rows > maxRows) over.push(`rows > maxRows ${maxRows}`);
      if (maxBytes !== undefined && p.bytes > maxBytes) over.push(`bytes > maxBytes ${policy.maxBytes}`);
      listing.partitions.push({ name: p.name, from: p.from, to: p.to, isDefault: p.isDefault, rows, bytes: p.bytes, over });
      if (over.length) listing.warnings.push(`${p.name}: ${over.join(', ')}`);
      if (p.isDefault) {
        listing.defaultRows = options.countDefault ? await options.countDefault(p.qualifiedName) : await defaultPartitionRows(client!, policy.table);
        if (listing.defaultRows) listing.warnings.push(`${listing.defaultRows} row(s) in the default partition ${p.name}`);
      }
    }
    // The calendar's reading of the bounds depends on the bounds alone: shards with the same partitions share it (health reads every shard at once).
    const key = options.calendarMemo && [policy.table, JSON.stringify(spec), now.getTime(), ...info.partitions.map((p) => `${p.name}\u0001${p.from}\u0001${p.to}\u0001${p.isDefault}`)].join('\u0000');
    let calendar = key === undefined ? undefined : options.calendarMemo!.get(key);
    if (!calendar) {
      const existing = existingPartitions(info, spec);
      calendar = { existing, runway: toRunway(runwayOf(spec, existing, now.getTime())) };
      if (key !== undefined) options.calendarMemo!.set(key, calendar);
    }
    const existing = calendar.existing;
    listing.runway = { ...calendar.runway, premake: policy.premake };
    if (listing.runway.intervals < policy.premake) listing.warnings.push(`runway ${listing.runway.intervals} interval(s), fewer than premake ${policy.premake}: run \`partition rotate\``);
    const history = existing
      .map((e, i) => ({ e, p: info.partitions[i]! }))
      .filter(({ e }) => !e.isDefault && Number.isFinite(e.toMs) && e.toMs <= now.getTime() + 1)
      .slice(-GROWTH_WINDOW)
      .map(({ e, p }) => ({ toMs: e.toMs, rows: p.exactRows ?? p.estimatedRows ?? 0, bytes: p.bytes }));
    if ((maxRows !== undefined || maxBytes !== undefined) && history.length >= 2) {
      listing.growth = projectGrowth(history, { interval: policy.interval, ...(maxRows !== undefined ? { maxRows } : {}), ...(maxBytes !== undefined ? { maxBytes } : {}) });
      if (listing.growth.suggestion) listing.warnings.push(listing.growth.reason);
    }
  } catch (err) {
    listing.status = 'error';
    listing.error = (err as Error).message;
  }
  return listing;
}

/** What listTable's calendar made of one table's partition bounds, by table, bounds and time: see listTable's calendarMemo. */
export type CalendarMemo = Map<string, { existing: ReturnType<typeof existingPartitions>; runway: { until: string | null; intervals: number } }>;

function toRunway(r: Runway): { until: string | null; intervals: number } {
  return { until: r.untilMs === null ? null : Number.isFinite(r.untilMs) ? new Date(r.untilMs).toISOString() : 'MAXVALUE', intervals: r.intervals };
}
