import type { PartitionInterval } from '../../core/partition-calendar.js';
import { parseByteSize } from '../../core/partition-growth.js';
import { formatBytes, formatSeconds, type Thresholds } from '../../core/thresholds.js';
import { boundedRowCount, DEFAULT_ROWS_LIMIT } from '../../postgres/health/partition-stats.js';
import { listTable, type CalendarMemo, type TableListing } from '../partitions/list.js';
import type { PartitionPolicy } from '../partitions/targets.js';
import type { ShardTarget } from '../shards/targets.js';
import type { HealthContext, Measurement } from './types.js';

/**
 * The `partitions` checks: per configured time-partitioned table and shard,
 * the runway, the default partition's rows and the largest partition against
 * maxRows / maxBytes, read as `partition list` reads them (its listTable);
 * and, for the deployment, the time since the last successful `partition
 * rotate` in the audit log. Each shard on the run's bounded read-only session
 * to it (ctx.session, shared with the other groups).
 */
export async function collectPartitions(ctx: HealthContext): Promise<Measurement[]> {
  const policies = ctx.config.partitions;
  if (!policies.length) return [];
  const wantsTables = ['partition_runway', 'default_partition_rows', 'partition_rows', 'partition_bytes'].some((c) => ctx.wants(c));
  // Shards with the same partitions share the calendar's reading of their bounds.
  const calendarMemo: CalendarMemo = new Map();
  const [tables, rotate] = await Promise.all([
    wantsTables ? ctx.shards().then((shards) => Promise.all(shards.map((s) => measureShard(ctx, s, policies, calendarMemo)))) : Promise.resolve([]),
    ctx.wants('last_rotate') ? measureLastRotate(ctx, policies) : Promise.resolve([]),
  ]);
  return [...tables.flat(), ...rotate];
}

async function measureShard(ctx: HealthContext, shard: ShardTarget, policies: PartitionPolicy[], calendarMemo: CalendarMemo): Promise<Measurement[]> {
  let listings: TableListing[];
  try {
    // Read with the shard's other parts in one statement (ctx.snapshot); on its own, as `partition list` reads it, when that failed.
    const read = (await ctx.snapshot(shard.url, `shard ${shard.id}`, true))?.partitions;
    listings = read
      ? await Promise.all(policies.map((policy, i) => listTable(null, policy, ctx.now, { partitions: read[i]!.info, countDefault: async () => read[i]!.defaultRows ?? 0, calendarMemo })))
      : await ctx.session(shard.url, `shard ${shard.id}`).use(async (client) => {
          const out: TableListing[] = [];
          for (const policy of policies) out.push(await listTable(client, policy, ctx.now, { countDefault: (partition) => boundedRowCount(client, partition), calendarMemo }));
          return out;
        });
  } catch (err) {
    const reason = `shard ${shard.id} did not answer: ${(err as Error).message}`;
    return policies.flatMap((p) => tableChecks(ctx).map((check) => unknown(check, shard, p.table, reason)));
  }
  return listings.flatMap((listing, i) => measureTable(ctx, shard, policies[i]!, listing));
}

function tableChecks(ctx: HealthContext): string[] {
  return ['partition_runway', 'default_partition_rows', 'partition_rows', 'partition_bytes'].filter((c) => ctx.wants(c));
}

function unknown(check: string, shard: ShardTarget, table: string, message: string): Measurement {
  return { check, target: `${table} on ${shard.id}`, labels: { shard: shard.id, table }, value: null, status: 'unknown', message };
}

function measureTable(ctx: HealthContext, shard: ShardTarget, policy: PartitionPolicy, listing: TableListing): Measurement[] {
  const table = policy.table;
  if (listing.status === 'error') return tableChecks(ctx).map((check) => unknown(check, shard, table, listing.error ?? 'could not read the partitions'));
  const target = `${table} on ${shard.id}`;
  const labels = { shard: shard.id, table };
  const out: Measurement[] = [];
  if (ctx.wants('partition_runway')) out.push({ check: 'partition_runway', target, labels, ...runway(policy, listing) });
  if (ctx.wants('default_partition_rows')) {
    const def = listing.partitions.find((p) => p.isDefault);
    const n = listing.defaultRows;
    out.push({
      check: 'default_partition_rows',
      target,
      labels,
      value: def ? n : null,
      message: !def
        ? `${table} has no default partition`
        : n === 0
          ? `the default partition ${def.name} is empty`
          : `${n !== null && n >= DEFAULT_ROWS_LIMIT ? `at least ${n - 1}` : n} row(s) in the default partition ${def.name}: \`partition rotate\` moves those of new partitions' ranges`,
    });
  }
  const ranged = listing.partitions.filter((p) => !p.isDefault);
  if (ctx.wants('partition_rows') && policy.maxRows !== undefined) {
    const largest = ranged.reduce<(typeof ranged)[number] | null>((a, p) => ((p.rows ?? -1) > (a?.rows ?? -1) ? p : a), null);
    out.push({
      check: 'partition_rows',
      target,
      labels,
      value: largest?.rows ?? null,
      defaults: { warning: policy.maxRows, critical: 2 * policy.maxRows },
      message: largest?.rows != null ? `largest partition ${largest.name}: about ${Math.round(largest.rows)} rows (maxRows ${policy.maxRows})` : `no partition of ${table} has a row estimate yet (never analyzed)`,
    });
  }
  if (ctx.wants('partition_bytes') && policy.maxBytes !== undefined) {
    const maxBytes = parseByteSize(policy.maxBytes);
    const largest = ranged.reduce<(typeof ranged)[number] | null>((a, p) => (p.bytes > (a?.bytes ?? -1) ? p : a), null);
    out.push({
      check: 'partition_bytes',
      target,
      labels,
      value: largest?.bytes ?? null,
      defaults: { warning: maxBytes, critical: 2 * maxBytes },
      message: largest ? `largest partition ${largest.name}: ${formatBytes(largest.bytes)} (maxBytes ${policy.maxBytes})` : `${table} has no partitions`,
    });
  }
  return out;
}

/**
 * The runway is the number of whole intervals ready after the one holding
 * now; `partition rotate` makes it `premake`. Fewer than premake is a warning
 * (a rotate was missed: warning level premake - 1, as the check fires at or
 * below its level); none, so that the next interval's rows would go to the
 * default partition or fail, is critical (level 0). A premake of 0 asks for no
 * runway, so only "no partition holds now" is critical there.
 */
function runway(policy: PartitionPolicy, listing: TableListing): Pick<Measurement, 'value' | 'message' | 'defaults' | 'status'> {
  const { intervals, until } = listing.runway;
  const defaults: Partial<Thresholds> = { warning: policy.premake >= 1 ? policy.premake - 1 : null, critical: policy.premake >= 1 ? 0 : null };
  if (until === null) {
    return { value: 0, defaults, status: 'critical', message: `no partition of ${policy.table} holds now: new rows go to the default partition, or fail (run \`partition rotate\`)` };
  }
  const value = Number.isFinite(intervals) ? intervals : Number.MAX_SAFE_INTEGER;
  const upTo = until === 'MAXVALUE' ? 'MAXVALUE' : until;
  const advice = intervals < policy.premake ? `, fewer than premake ${policy.premake}: run \`partition rotate\`` : ` (premake ${policy.premake})`;
  return { value, defaults, message: `${Number.isFinite(intervals) ? intervals : 'unbounded'} ${policy.interval} partition(s) ready after the current one, up to ${upTo}${advice}` };
}

/** An interval's shortest length, so levels derived from it err on the early side (a month is 28 days here). */
const INTERVAL_SECONDS: Record<PartitionInterval, number> = { hourly: 3600, daily: 86_400, weekly: 604_800, monthly: 28 * 86_400, yearly: 365 * 86_400 };

/**
 * Levels for last_rotate from the config: warning after two of the shortest
 * configured intervals (a rotate run on schedule, every interval or more
 * often, has missed two runs); critical when the runway a rotate leaves
 * (max(premake, 1) intervals, the smallest over the tables) has run out.
 * The warning level never exceeds the critical one.
 */
export function lastRotateDefaults(policies: PartitionPolicy[]): Thresholds {
  const shortest = Math.min(...policies.map((p) => INTERVAL_SECONDS[p.interval]));
  const critical = Math.min(...policies.map((p) => Math.max(p.premake, 1) * INTERVAL_SECONDS[p.interval]));
  return { warning: Math.min(2 * shortest, critical), critical };
}

/** How many audit rows of `partition rotate` are read, newest first, looking for a success. */
const AUDIT_WINDOW = 100;

async function measureLastRotate(ctx: HealthContext, policies: PartitionPolicy[]): Promise<Measurement[]> {
  const base = { check: 'last_rotate', target: 'deployment', labels: {} as Record<string, string>, defaults: lastRotateDefaults(policies) };
  const store = await ctx.metadata();
  if (!store) return [{ ...base, value: null, status: 'unknown', message: 'the metadata database did not answer: the audit log cannot be read' }];
  try {
    const rows = await store.listAudit({ limit: AUDIT_WINDOW, command: 'partition rotate' });
    const last = rows.find((r) => r.outcome === 'success');
    if (!last) {
      const why = rows.length ? `none of the last ${rows.length} \`partition rotate\` runs succeeded (latest: ${rows[0]!.outcome})` : 'never: no `partition rotate` in the audit log';
      return [{ ...base, value: null, status: 'critical', message: why }];
    }
    const at = last.finishedAt ?? last.startedAt;
    const age = Math.max(0, (ctx.now.getTime() - at.getTime()) / 1000);
    return [{ ...base, value: age, message: `last successful \`partition rotate\` ${formatSeconds(age)} ago (${at.toISOString()}, by ${last.actor})` }];
  } catch (err) {
    return [{ ...base, value: null, status: 'unknown', message: `cannot read the audit log: ${(err as Error).message}` }];
  }
}

