import { stripPassword } from '../../config/redact.js';
import type { ShardctlConfig } from '../../config/schema.js';
import type { RingMember } from '../../core/ring.js';
import { isUnswitched } from '../../core/move-state.js';
import { OperationError, UsageError } from '../../errors.js';
import type { PlanRecord } from '../../metadata/journal.js';
import { runMutation } from '../../metadata/mutation.js';
import type { RunInfo } from '../../metadata/run-info.js';
import type { MetadataStore } from '../../metadata/store.js';
import { coveredFraction, multirangeLiteral } from '../../core/move-plan.js';
import { hashExpression } from '../../mover/table-shape.js';
import { forgetBatches } from '../../mover/block-copy.js';
import { withMetadata, requireRing } from '../metadata-session.js';
import type { ExecutionReport } from '../moves/execute.js';
import { withConnections } from '../moves/env.js';
import { PLAN_FORMAT, planChange, planMisplaced, type PlanDocument, type RingChange } from '../moves/plan.js';
import { executeOptions, moveEnv, refuseIfPlanInProgress, resumePlan, startPlan, type MoveRunOptions } from '../moves/run-plan.js';
import { isOnlineMove, removeOnlineObjects } from '../moves/online.js';
import { PhaseMeter } from '../moves/phase-meter.js';
import { checkNewShard, prepareNewShard, type ShardPreparation, type ShardReadiness } from './prepare.js';

export interface ShardChangeResult {
  plan: PlanDocument;
  dryRun: boolean;
  /** Nothing to move and no ring change: `shard rebalance` from cron, most hours. */
  nothingToDo: boolean;
  preparation?: ShardPreparation;
  /** `shard add --dry-run` / `shard plan --add`: what the new shard needs first (read-only checks). */
  readiness?: ShardReadiness;
  /** `shard rebalance` found a plan in progress and continued it (its id). */
  resumed?: string;
  execution?: ExecutionReport;
}

/** A journaled plan as a plan document (what `shard rebalance` shows when it continues one). */
function documentOf(plan: PlanRecord): PlanDocument {
  return {
    format: PLAN_FORMAT,
    kind: plan.kind,
    fromEpoch: plan.fromEpoch,
    targetRing: plan.targetRing,
    estimate: 'statistics',
    moves: plan.moves.map((m) => ({
      source: m.source,
      target: m.target,
      mode: m.mode,
      ranges: m.ranges,
      fraction: coveredFraction(m.ranges),
      estRows: m.estRows,
      estBytes: m.estBytes,
      tables: m.tables.map((t) => ({ table: t.table, rows: t.rowsCopied, bytes: t.bytesCopied })),
    })),
    createdAt: plan.createdAt.toISOString(),
    createdBy: plan.createdBy,
  };
}

/** After a lost lock, a data-moving run leaves its plan journaled for the next one. */
const RESUME_HINT = 'the journal is consistent: `shard resume` continues the plan';

interface ChangeOptions extends MoveRunOptions {
  dryRun?: boolean;
}

/** `shard add ID --url URL [--weight W]`: prepare the shard, then move its ranges to it. */
export async function shardAdd(
  config: ShardctlConfig,
  run: RunInfo,
  options: ChangeOptions & { id: string; url?: string; weight?: number; migrationsDir?: string },
): Promise<ShardChangeResult> {
  const weight = options.weight ?? 1;
  return withMetadata(config, async (store) => {
    const current = await requireRing(store);
    if (current.members.some((m) => m.id === options.id)) throw new UsageError(`${options.id} is already in the ring`);
    const registered = (await store.listShards()).find((s) => s.id === options.id);
    if (registered?.state === 'retired') throw new UsageError(`${options.id} was retired; add it under a new id`);
    const url = options.url ?? config.shards.find((s) => s.id === options.id)?.url ?? registered?.url;
    if (!url) throw new UsageError(`--url is required: ${options.id} is neither in the config nor registered`);
    const change: RingChange = { kind: 'add', add: { id: options.id, weight } };
    const extra = { addShard: { id: options.id, url: stripPassword(url), weight } };
    if (options.dryRun) {
      const env = await moveEnv(config, store, run, { [options.id]: url });
      // The checks `shard add` makes before any row moves, read-only: a plan is only shown for a change that can run.
      const readiness = await checkNewShard(env, { id: options.id, url, migrationsDir: options.migrationsDir });
      return { plan: await planChange(env, change, { exact: !!options.exact, extra }), dryRun: true, nothingToDo: false, readiness };
    }
    return runMutation({ store, run, command: 'shard add', summarize: summarizeChange, afterLockLost: RESUME_HINT }, async (run) => {
      const env = await moveEnv(config, store, run, { [options.id]: url });
      await refuseIfPlanInProgress(env);
      const meter = new PhaseMeter();
      const preparation = await meter.time('prepare', {}, () => prepareNewShard(env, { id: options.id, url, migrationsDir: options.migrationsDir }));
      if (!registered) await store.registerShard({ id: options.id, url, weight, state: 'pending' });
      const plan = await meter.time('plan', {}, () => planChange(env, change, { exact: !!options.exact, extra }));
      return { plan, dryRun: false, nothingToDo: false, preparation, execution: await startPlan(env, plan, { ...options, meter }) };
    });
  });
}

/** `shard remove ID`: drain its ranges to the others, then retire it. */
export async function shardRemove(config: ShardctlConfig, run: RunInfo, options: ChangeOptions & { id: string }): Promise<ShardChangeResult> {
  return withMetadata(config, async (store) => {
    const current = await requireRing(store);
    if (!current.members.some((m) => m.id === options.id)) throw new UsageError(`${options.id} is not in the ring`);
    if (current.members.filter((m) => m.weight > 0).length <= 1) throw new UsageError(`${options.id} is the last shard: there is nowhere to move its rows`);
    const change: RingChange = { kind: 'remove', remove: options.id };
    if (options.dryRun) {
      const env = await moveEnv(config, store, run);
      return { plan: await planChange(env, change, { exact: !!options.exact, extra: { removeShard: options.id } }), dryRun: true, nothingToDo: false };
    }
    return runMutation({ store, run, command: 'shard remove', summarize: summarizeChange, afterLockLost: RESUME_HINT }, async (run) => {
      const env = await moveEnv(config, store, run);
      await refuseIfPlanInProgress(env);
      const meter = new PhaseMeter();
      const plan = await meter.time('plan', {}, () => planChange(env, change, { exact: !!options.exact, extra: { removeShard: options.id } }));
      return { plan, dryRun: false, nothingToDo: false, execution: await startPlan(env, plan, { ...options, meter }) };
    });
  });
}

/**
 * `shard rebalance [--weight ID=W …] [--from-config]`: applies weight changes
 * (flags; with --from-config also the config's weights and ring.vnodes where
 * they differ from the ring); with none, moves misplaced rows home; with
 * nothing to do, says so. A plan in progress is continued first. The ring,
 * not the config, is the authority: an hourly rebalance never undoes a
 * --weight given by hand.
 */
export async function shardRebalance(
  config: ShardctlConfig,
  run: RunInfo,
  options: ChangeOptions & { weights?: RingMember[]; fromConfig?: boolean },
): Promise<ShardChangeResult> {
  return withMetadata(config, async (store) => {
    const current = await requireRing(store);
    const change = rebalanceChange(config, current, options.weights ?? [], !!options.fromConfig);
    const plan = async (env: Awaited<ReturnType<typeof moveEnv>>) =>
      change ? planChange(env, change, { exact: !!options.exact }) : planMisplaced(env, current.members.map((m) => m.id));
    if (options.dryRun) {
      const env = await moveEnv(config, store, run);
      const doc = await plan(env);
      return { plan: doc, dryRun: true, nothingToDo: !change && doc.moves.length === 0 };
    }
    return runMutation({ store, run, command: 'shard rebalance', summarize: summarizeChange, afterLockLost: RESUME_HINT }, async (run) => {
      const env = await moveEnv(config, store, run);
      // From cron, the hourly run first finishes what an earlier run (a budget, a crash) left in progress.
      const active = await env.journal.activePlan();
      if (active) return { plan: documentOf(active), dryRun: false, nothingToDo: false, resumed: active.id, execution: await resumePlan(env, active.id, options) };
      const meter = new PhaseMeter();
      const doc = await meter.time('plan', {}, () => plan(env));
      if (!change && doc.moves.length === 0) return { plan: doc, dryRun: false, nothingToDo: true };
      return { plan: doc, dryRun: false, nothingToDo: false, execution: await startPlan(env, doc, { ...options, meter }) };
    });
  });
}

function rebalanceChange(config: ShardctlConfig, current: { vnodes: number; members: RingMember[] }, flags: RingMember[], fromConfig: boolean): RingChange | null {
  const inRing = new Map(current.members.map((m) => [m.id, m.weight]));
  for (const w of flags) if (!inRing.has(w.id)) throw new UsageError(`--weight ${w.id}: not in the ring (\`shard add\` adds shards)`);
  const weights = new Map<string, number>();
  if (fromConfig) for (const s of config.shards) if (inRing.has(s.id) && inRing.get(s.id) !== s.weight) weights.set(s.id, s.weight);
  for (const w of flags) weights.set(w.id, w.weight);
  for (const [id, w] of weights) if (inRing.get(id) === w) weights.delete(id);
  const vnodes = fromConfig && config.ring.vnodes !== undefined && config.ring.vnodes !== current.vnodes ? config.ring.vnodes : undefined;
  if (!weights.size && vnodes === undefined) return null;
  return { kind: 'rebalance', weights: [...weights].map(([id, weight]) => ({ id, weight })), ...(vnodes !== undefined ? { vnodes } : {}) };
}

/** `shard apply FILE`: run a reviewed plan, refused if the ring changed since it was made. */
export async function shardApply(config: ShardctlConfig, run: RunInfo, doc: PlanDocument, options: MoveRunOptions & { migrationsDir?: string }): Promise<ShardChangeResult> {
  if (doc.format !== PLAN_FORMAT) throw new UsageError(`not a shardctl plan (format ${PLAN_FORMAT}): read plan files with readPlanFile`);
  return withMetadata(config, async (store) =>
    runMutation({ store, run, command: 'shard apply', summarize: summarizeChange, afterLockLost: RESUME_HINT }, async (run) => {
      const url = doc.addShard ? (config.shards.find((s) => s.id === doc.addShard!.id)?.url ?? doc.addShard.url) : undefined;
      const env = await moveEnv(config, store, run, doc.addShard && url ? { [doc.addShard.id]: url } : {});
      const current = await env.currentRing();
      if (current.epoch !== doc.fromEpoch) {
        throw new OperationError(`stale plan: it was made from ring epoch ${doc.fromEpoch}, but the ring is at epoch ${current.epoch} now; make a new plan`);
      }
      await refuseIfPlanInProgress(env);
      let preparation: ShardPreparation | undefined;
      const meter = new PhaseMeter();
      if (doc.addShard && url) {
        preparation = await meter.time('prepare', {}, () => prepareNewShard(env, { id: doc.addShard!.id, url, migrationsDir: options.migrationsDir }));
        if (!(await store.listShards()).some((s) => s.id === doc.addShard!.id)) {
          await store.registerShard({ id: doc.addShard.id, url, weight: doc.addShard.weight, state: 'pending' });
        }
      }
      return { plan: doc, dryRun: false, nothingToDo: false, ...(preparation ? { preparation } : {}), execution: await startPlan(env, doc, { ...options, meter }) };
    }),
  );
}

/** `shard resume`: continue the plan in progress from its journal. */
export async function shardResume(config: ShardctlConfig, run: RunInfo, options: MoveRunOptions): Promise<{ plan: PlanRecord | null; execution?: ExecutionReport }> {
  return withMetadata(config, async (store) =>
    runMutation({ store, run, command: 'shard resume', summarize: (r) => ({ plan: r.plan?.id ?? null, status: r.execution?.status ?? 'nothing to resume' }), afterLockLost: RESUME_HINT }, async (run) => {
      const env = await moveEnv(config, store, run);
      const plan = await env.journal.activePlan();
      if (!plan) return { plan: null };
      return { plan, execution: await resumePlan(env, plan.id, options) };
    }),
  );
}

export interface AbortResult {
  planId: string;
  moves: Array<{ moveNo: number; source: string; target: string; rowsRemoved: number }>;
}

/** `shard abort PLAN`: undo an unswitched plan; the copies are removed from the targets. */
export async function shardAbort(config: ShardctlConfig, run: RunInfo, planId: string): Promise<AbortResult> {
  return withMetadata(config, async (store) =>
    runMutation({ store, run, command: 'shard abort', summarize: (r) => r, afterLockLost: 'the journal is consistent: run `shard abort` again' }, async (run) => {
      const env = await moveEnv(config, store, run);
      const plan = await env.journal.getPlan(planId);
      if (!plan) throw new UsageError(`no plan ${planId} (\`shard status\` lists them)`);
      if (plan.state === 'done' || plan.state === 'aborted') throw new UsageError(`plan ${planId} is already ${plan.state}`);
      if (plan.switchedEpoch !== null) {
        throw new OperationError(`plan ${planId} already switched the ring (epoch ${plan.switchedEpoch}): finish it with \`shard resume\`, or plan the reverse change`);
      }
      const result: AbortResult = { planId, moves: [] };
      for (const move of plan.moves) {
        const state = move.state === 'failed' ? (move.resumeState ?? 'planned') : move.state;
        if (!isUnswitched(state)) continue;
        let removed = 0;
        // An online move's capture and fence on the source first: writes to the ranges flow freely again, nothing is left.
        if (isOnlineMove(plan, move) && state !== 'planned') {
          await run.lease?.check();
          await removeOnlineObjects({ env }, plan, move, executeOptions(config, run, {}).online);
        }
        if (move.mode === 'fresh' && state !== 'planned') {
          removed = await withConnections([env.connect(move.target, 'shard abort')], async (target) => {
            await run.lease?.check();
            let n = 0;
            for (const table of [...env.tables].reverse()) {
              const shape = await env.shapeOn(target!, move.target, table);
              const { rowCount } = await target!.query(`DELETE FROM ${shape.sqlName} WHERE $1::int8multirange @> ${hashExpression(shape)}`, [multirangeLiteral(move.ranges)]);
              n += rowCount ?? 0;
            }
            await forgetBatches(target!, plan.id, move.moveNo);
            return n;
          });
        }
        await env.journal.setMoveState(plan.id, move.moveNo, 'aborted');
        result.moves.push({ moveNo: move.moveNo, source: move.source, target: move.target, rowsRemoved: removed });
      }
      await env.journal.setPlanState(plan.id, 'aborted');
      const removed = plan.options.removeShard as string | undefined;
      if (removed) await env.journal.setShardState(removed, 'active');
      return result;
    }),
  );
}

/** `shard status`: recent plans with their moves' states and progress. */
export async function shardStatus(config: ShardctlConfig, options: { limit: number; planId?: string }): Promise<{ plans: PlanRecord[] }> {
  return withMetadata(config, async (store: MetadataStore) => {
    await requireRing(store);
    const env = await moveEnv(config, store, { actor: 'status', commandLine: '', lockWaitMs: 0 });
    if (options.planId) {
      const plan = await env.journal.getPlan(options.planId);
      if (!plan) throw new UsageError(`no plan ${options.planId}`);
      return { plans: [plan] };
    }
    return { plans: await env.journal.listPlans(options.limit) };
  });
}

function summarizeChange(r: ShardChangeResult): unknown {
  return {
    kind: r.plan.kind,
    fromEpoch: r.plan.fromEpoch,
    moves: r.plan.moves.length,
    nothingToDo: r.nothingToDo,
    ...(r.execution ? { plan: r.execution.planId, status: r.execution.status, rowsCopied: r.execution.rowsCopied, epoch: r.execution.epoch } : {}),
  };
}
