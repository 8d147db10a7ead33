import type { ShardctlConfig } from '../../config/schema.js';
import { partitionName, planRotation, retentionCutoffMs } from '../../core/partition-calendar.js';
import { isLockLost, OperationError } from '../../errors.js';
import { runMutation } from '../../metadata/mutation.js';
import { recordRetired } from '../../metadata/retired-partitions.js';
import type { RunInfo } from '../../metadata/run-info.js';
import type { MetadataStore } from '../../metadata/store.js';
import { withClient } from '../../postgres/connect.js';
import {
  archivePartition,
  archivePartitionSql,
  createPartition,
  detachPartition,
  detachPartitionSql,
  dropPartition,
  dropPartitionSql,
  finalizeInterruptedDetaches,
  planCreatePartition,
  readCreateContext,
  planDetachPartition,
  readPartitions,
  scriptText,
} from '../../postgres/partitions.js';
import { partitionsHoldingRowsFrom } from '../../postgres/partitions/retention-check.js';
import { mapWithConcurrency } from '../concurrency.js';
import { requireRing, withMetadata } from '../metadata-session.js';
import type { ShardTarget } from '../shards/targets.js';
import { baseName, boundTypeOf, calendarSpec, existingPartitions, lockTimeoutMs, partitionTargets, policiesFor, type PartitionPolicy } from './targets.js';

export interface RotateOptions {
  /** The calendar's "now" (--now): for rehearsal and tests. */
  now?: Date;
  shards?: string[];
  tables?: string[];
  dryRun?: boolean;
  /** Count retired partitions' rows instead of the planner's estimate. */
  exact?: boolean;
  parallel?: number;
}

export interface RetiredEntry {
  name: string;
  mode: 'drop' | 'detach' | 'archive';
  /** Where the table is now (null once dropped). */
  nowAt: string | null;
  rows: number | null;
  bytes: number;
  to: string | null;
  /** detach method: concurrently, plain (a default partition exists), finalize. */
  method?: string;
}

export interface TableRotation {
  table: string;
  status: 'changed' | 'unchanged' | 'failed';
  created: Array<{ name: string; from: string; to: string; movedFromDefault: number }>;
  retired: RetiredEntry[];
  /** Retirable by its bounds, but holding a row newer than the cut-off: kept. */
  kept: Array<{ name: string; reason: string }>;
  adopted: string[];
  /** Partitions that do not follow the naming pattern and bounds: left alone. */
  unmanaged: string[];
  /** Interrupted DETACH … CONCURRENTLY finished with FINALIZE. */
  finalized: string[];
  /** Rows in the default partition within the new partitions' ranges (dry run: to move; else moved). */
  movedFromDefault: number;
  /** The statements run, in order (with --dry-run: the ones that would run). */
  sql: string[];
  error?: string;
}

export interface ShardRotation {
  shard: string;
  url: string;
  status: 'ok' | 'failed';
  durationMs: number;
  tables: TableRotation[];
}

export interface RotateResult {
  now: string;
  dryRun: boolean;
  shards: ShardRotation[];
  summary: { created: number; retired: number; kept: number; movedFromDefault: number; failedShards: number; changed: boolean };
}

/**
 * `partition rotate`: on every shard, in parallel, for every configured table:
 * finish interrupted detaches, create the missing partitions from the one
 * holding now to `premake` ahead (rows of the default partition in their
 * range moved in), then retire what is past retention per `retentionMode`.
 * Each DDL statement runs with the policy's lock_timeout and bounded retries
 * (src/postgres/partitions); a shard that cannot get its locks fails alone.
 * Mutating: the metadata lock and an audit row; --dry-run reads only.
 */
export async function partitionRotate(config: ShardctlConfig, run: RunInfo, options: RotateOptions = {}): Promise<RotateResult> {
  const policies = policiesFor(config, options.tables);
  const now = options.now ?? new Date();
  return withMetadata(config, async (store) => {
    await requireRing(store);
    const targets = await partitionTargets(config, store, options.shards);
    const body = async (active: RunInfo): Promise<RotateResult> => {
      const shards = await mapWithConcurrency(targets, options.parallel ?? config.migrate.parallel, (target) => rotateShard(store, active, target, policies, now, options));
      const result = summarize(now, !!options.dryRun, shards);
      const failed = shards.filter((s) => s.status === 'failed');
      if (failed.length) {
        throw new OperationError(`partition rotate failed on ${failed.length} of ${shards.length} shard(s); the others completed`, {
          details: failed.flatMap((s) => s.tables.filter((t) => t.error).map((t) => `${s.shard} ${t.table}: ${t.error}`)),
          data: result,
        });
      }
      return result;
    };
    if (options.dryRun) return body(run);
    return runMutation({ store, run, command: 'partition rotate', summarize: (r) => r.summary }, body);
  });
}

async function rotateShard(store: MetadataStore, run: RunInfo, target: ShardTarget, policies: PartitionPolicy[], now: Date, options: RotateOptions): Promise<ShardRotation> {
  const started = Date.now();
  const tables: TableRotation[] = [];
  try {
    await withClient(target.url, { applicationName: `shardctl partition rotate by ${run.actor} pid ${process.pid}`, label: `shard ${target.id}` }, async (client) => {
      for (const policy of policies) {
        const rotation = emptyRotation(policy.table);
        tables.push(rotation);
        try {
          await rotateTable(client, store, run, target, policy, now, options, rotation);
        } catch (err) {
          if (isLockLost(err)) throw err;
          rotation.status = 'failed';
          rotation.error = (err as Error).message;
        }
      }
    });
  } catch (err) {
    if (isLockLost(err)) throw err;
    tables.push({ ...emptyRotation('*'), status: 'failed', error: (err as Error).message });
  }
  const failed = tables.some((t) => t.status === 'failed');
  return { shard: target.id, url: target.displayUrl, status: failed ? 'failed' : 'ok', durationMs: Date.now() - started, tables };
}

async function rotateTable(
  client: import('../../postgres/connect.js').PgClient,
  store: MetadataStore,
  run: RunInfo,
  target: ShardTarget,
  policy: PartitionPolicy,
  now: Date,
  options: RotateOptions,
  out: TableRotation,
): Promise<void> {
  const timeouts = { lockTimeoutMs: lockTimeoutMs(policy), retries: 3 };
  const before = await readPartitions(client, policy.table, { exact: !!options.exact });
  const boundType = boundTypeOf(before, policy);
  const spec = calendarSpec(policy, boundType);
  const dry = !!options.dryRun;

  // A DETACH … CONCURRENTLY that was interrupted leaves the partition half-detached: finish it first.
  const pending = before.partitions.filter((p) => p.detachPending).map((p) => p.qualifiedName);
  if (pending.length) {
    if (dry) out.sql.push(...pending.flatMap((p) => scriptText(detachPartitionSql({ parent: policy.table, name: p, method: 'finalize' }), timeouts.lockTimeoutMs)));
    else {
      await run.lease?.check();
      const done = await finalizeInterruptedDetaches(client, policy.table, timeouts);
      out.finalized.push(...done.finalized);
      out.sql.push(...done.sql);
    }
  }
  const info = pending.length && !dry ? await readPartitions(client, policy.table, { exact: !!options.exact }) : before;
  const plan = planRotation(spec, baseName(policy.table), existingPartitions(info, spec), now.getTime());
  out.adopted.push(...plan.adopt);
  out.unmanaged.push(...plan.unmanaged);

  // The catalog is read once per table: the creates and retires below plan from it.
  const context = plan.create.length ? await readCreateContext(client, policy.table, plan.create.map((slot) => partitionName(baseName(policy.table), slot)), info) : null;
  for (const slot of plan.create) {
    const name = partitionName(baseName(policy.table), slot);
    const create = { parent: policy.table, name, from: slot.from, to: slot.to, column: policy.column, moveFromDefault: true, ...timeouts };
    if (dry) {
      const planned = await planCreatePartition(client, create, context!);
      if (planned.action === 'create') {
        out.sql.push(...planned.sql);
        out.created.push({ name, from: slot.from, to: slot.to, movedFromDefault: planned.rowsToMove });
        out.movedFromDefault += planned.rowsToMove;
      }
      continue;
    }
    await run.lease?.check();
    const created = await createPartition(client, create, context!);
    out.sql.push(...created.sql);
    if (created.created) out.created.push({ name, from: slot.from, to: slot.to, movedFromDefault: created.movedFromDefault });
    out.movedFromDefault += created.movedFromDefault;
  }

  const cutoff = retentionCutoffMs(spec, now.getTime());
  const candidates = plan.retire.map((candidate) => info.partitions.find((p) => p.name === candidate.name)!);
  // Never retire a partition that holds a row newer than the cut-off, whatever its bounds say.
  const holding =
    cutoff === null ? new Set<string>() : await partitionsHoldingRowsFrom(client, candidates.map((p) => p.qualifiedName), policy.column, boundType, new Date(cutoff), spec.timezone);
  for (const partition of candidates) {
    if (holding.has(partition.qualifiedName)) {
      out.kept.push({ name: partition.name, reason: 'holds rows newer than the retention cut-off' });
      continue;
    }
    const rows = partition.exactRows ?? partition.estimatedRows;
    const ref = { parent: policy.table, name: partition.qualifiedName, concurrently: true, ...timeouts };
    const entry: RetiredEntry = { name: partition.name, mode: policy.retentionMode, nowAt: null, rows, bytes: partition.bytes, to: partition.to };
    if (dry) {
      // The statements the adapter would send, as it would send them.
      const planned = await planDetachPartition(client, ref, info);
      if (policy.retentionMode === 'drop') {
        for (const script of dropPartitionSql({ parent: policy.table, name: partition.qualifiedName, method: planned.method })) out.sql.push(...scriptText(script, timeouts.lockTimeoutMs));
      } else {
        if (planned.method !== 'not-attached') out.sql.push(...planned.sql);
        if (policy.retentionMode === 'archive') out.sql.push(...scriptText(archivePartitionSql({ name: partition.qualifiedName, archiveSchema: policy.archiveSchema }), timeouts.lockTimeoutMs));
      }
      entry.nowAt = policy.retentionMode === 'drop' ? null : policy.retentionMode === 'archive' ? `${policy.archiveSchema}.${partition.name}` : partition.qualifiedName;
      out.retired.push(entry);
      continue;
    }
    await run.lease?.check();
    if (policy.retentionMode === 'drop') {
      const dropped = await dropPartition(client, ref, info);
      out.sql.push(...dropped.sql);
      entry.method = dropped.method;
    } else {
      const detached = await detachPartition(client, ref, info);
      out.sql.push(...detached.sql);
      entry.method = detached.method;
      entry.nowAt = partition.qualifiedName;
      if (policy.retentionMode === 'archive') {
        const archived = await archivePartition(client, { name: partition.qualifiedName, archiveSchema: policy.archiveSchema, ...timeouts });
        out.sql.push(...archived.sql);
        entry.nowAt = archived.table;
      }
    }
    // Where the table went, for `partition list --retired` (fenced by the lease like the journal).
    await recordRetired(store.client, {
      shard: target.id, parent: policy.table, partition: partition.name, mode: policy.retentionMode, nowAt: entry.nowAt,
      boundFrom: partition.from, boundTo: partition.to, rows: entry.rows, bytes: entry.bytes, retiredBy: run.actor,
    });
    out.retired.push(entry);
  }
  out.status = out.created.length || out.retired.length || out.finalized.length ? 'changed' : 'unchanged';
}

function emptyRotation(table: string): TableRotation {
  return { table, status: 'unchanged', created: [], retired: [], kept: [], adopted: [], unmanaged: [], finalized: [], movedFromDefault: 0, sql: [] };
}

function summarize(now: Date, dryRun: boolean, shards: ShardRotation[]): RotateResult {
  const tables = shards.flatMap((s) => s.tables);
  const summary = {
    created: tables.reduce((n, t) => n + t.created.length, 0),
    retired: tables.reduce((n, t) => n + t.retired.length, 0),
    kept: tables.reduce((n, t) => n + t.kept.length, 0),
    movedFromDefault: tables.reduce((n, t) => n + t.movedFromDefault, 0),
    failedShards: shards.filter((s) => s.status === 'failed').length,
    changed: tables.some((t) => t.status === 'changed' || (dryRun && t.sql.length > 0)),
  };
  return { now: now.toISOString(), dryRun, shards, summary };
}

