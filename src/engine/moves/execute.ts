import type { MoveState } from '../../core/move-state.js';
import { OperationError } from '../../errors.js';
import type { MoveRecord, OnlineStats, PlanRecord, TableProgress } from '../../metadata/journal.js';
import { publishCurrentRing, type PublishOutcome } from '../publish.js';
import { withConnections, type MoveEnv } from './env.js';
import { installRoutingFunction } from '../../postgres/routing-function.js';
import { cleanupMove, copyAndVerify, type MoveContext, type Outcome } from './phases.js';
import { cleanupOnline, fenceAndVerify, isOnlineMove, prepareOnline, type OnlineSettings } from './online.js';
import { Budget, Throttle, type StopReason } from './throttle.js';
import { PhaseMeter } from './phase-meter.js';
import type { PhaseCosts } from '../../core/move-phases.js';
import type { LeaseGuard } from '../../metadata/lease.js';
import type { PlanDocument } from './plan.js';

export interface ExecuteOptions {
  parallel: number;
  /** Moves one shard takes part in at once (as source or target). */
  perShard: number;
  batchSize: number;
  maxRowsPerSecond: number;
  maxDurationMs?: number;
  maxRows?: number;
  signal?: AbortSignal;
  /** The run's lease: checked before every commit on a shard; when lost, the run stops at its next step. */
  lease?: LeaseGuard;
  onEvent?: (event: MoveEvent) => void;
  /** Online moves' fence deadline and DDL lock timeout (the plan says whether it moves online). */
  online: OnlineSettings;
  /** Where this run's time goes, by phase (plan and prepare may already be in it). */
  meter?: PhaseMeter;
}

export type MoveEvent =
  /** A new plan, before anything is journaled (startPlan): what is about to run. */
  | { type: 'plan'; plan: PlanDocument }
  /** A run of a journaled plan begins: its moves and what they have done so far. */
  | { type: 'started'; planId: string; moves: Array<{ moveNo: number; source: string; target: string; state: MoveState; estRows: number; rowsCopied: number }> }
  | { type: 'move-state'; moveNo: number; source: string; target: string; state: MoveState }
  | { type: 'progress'; moveNo: number; source: string; target: string; table: string; phase: 'copy' | 'catch-up' | 'cleanup'; rows: number; estRows: number; rowsPerSecond: number; etaSeconds: number | null }
  /** An online move's fence came down: held (switched next) or missed its deadline (catch-up again). */
  | { type: 'fence'; moveNo: number; source: string; target: string; outcome: 'held' | 'missed' | 'lifted'; ms: number; reason?: string }
  | { type: 'switched'; epoch: number; published: PublishOutcome };

export interface MoveReport {
  moveNo: number;
  source: string;
  target: string;
  mode: string;
  state: MoveState;
  estRows: number;
  rowsCopied: number;
  bytesCopied: number;
  rowsDeleted: number;
  /** Rows left on the source after cleanup: not identical on the target (see the README, "Cleanup"). */
  rowsLeft: number;
  /** From the start of its copy to its cleanup (or to now), across runs. */
  seconds: number | null;
  tables: TableProgress[];
  /** Online moves: capture backlog, replay rate, fence attempts and times (null when offline). */
  online: OnlineStats | null;
  /** This run's seconds and bytes by phase for the move (its tables' included), and per table. */
  phases: PhaseCosts;
  tablePhases: Record<string, PhaseCosts>;
  error: string | null;
}

export interface ExecutionReport {
  planId: string;
  kind: string;
  /** done: finished; partial: a budget stopped it (run again to continue); failed; interrupted (SIGINT); lock-lost (fenced: nothing more was written). */
  status: 'done' | 'partial' | 'failed' | 'interrupted' | 'lock-lost';
  stoppedBy?: StopReason;
  planState: string;
  fromEpoch: number;
  epoch: number;
  published?: PublishOutcome;
  seconds: number;
  /** Rows copied in this run, and their rate over the whole run (copy, verify, switch and cleanup). */
  rowsCopied: number;
  rowsPerSecond: number;
  mbPerSecond: number;
  /** Whether the plan moves online (capture, catch-up, fence), and its longest fenced interval in ms (null: no fence held). */
  online: boolean;
  longestFenceMs: number | null;
  /** This run's seconds and bytes by phase, every move's and the run's own (plan, prepare, switch) added up. */
  phases: PhaseCosts;
  moves: MoveReport[];
}


/**
 * Runs (or resumes) a journaled plan: every move through copy and verify, then
 * the switch of the whole ring, then cleanup. Every step is journaled before
 * it runs; a batch boundary is the unit of progress. Returns a report; a
 * failed move fails the run only after the others reached a safe point.
 */
export async function executePlan(env: MoveEnv, planId: string, options: ExecuteOptions): Promise<ExecutionReport> {
  const started = Date.now();
  const budget = new Budget(options);
  const throttle = new Throttle(options.maxRowsPerSecond);
  let plan = await reopen(env, planId);
  options.onEvent?.({
    type: 'started',
    planId,
    moves: plan.moves.map((m) => ({ moveNo: m.moveNo, source: m.source, target: m.target, state: m.state, estRows: m.estRows, rowsCopied: m.tables.reduce((n, t) => n + t.rowsCopied, 0) })),
  });
  let copiedThisRun = 0;
  let bytesThisRun = 0;
  let published: PublishOutcome | undefined;
  const meter = options.meter ?? new PhaseMeter();
  const ctx: MoveContext = {
    env,
    meter,
    live: new Map(),
    options,
    budget,
    throttle,
    onCopied: (rows, bytes) => {
      copiedThisRun += rows;
      bytesThisRun += bytes;
    },
  };

  let outcome: Outcome = 'ok';
  // After a lost lease nothing more is written (the fence would refuse it): the report reads the journal only.
  const lost = () => outcome === 'lost' || budget.stopReason() === 'lock-lost';
  if (plan.state === 'running') {
    outcome = await schedule(plan.moves, options, budget, (move) => (isOnlineMove(plan, move) ? prepareOnline(ctx, plan, move, options.online) : copyAndVerify(ctx, plan, move)));
    // Online moves: the fence, the last changes and their check, for every move at once, just before the switch.
    if (outcome === 'ok') outcome = await fenceAndVerify(ctx, plan, options.online);
    if (outcome === 'ok') {
      plan = (await env.journal.getPlan(planId))!;
      const switchStarted = performance.now();
      const epoch = await env.journal.switchPlan(plan, env.run.actor, shardStatesAfter(plan), ringChanges(plan));
      published = await publishCurrentRing(env.config, env.store);
      meter.add('switch', {}, { seconds: (performance.now() - switchStarted) / 1000 });
      options.onEvent?.({ type: 'switched', epoch, published });
      plan = (await env.journal.getPlan(planId))!;
    }
  } else if (plan.state === 'switched') {
    // A crash may have come between the switch and the publish: publishing again is harmless.
    published = await publishCurrentRing(env.config, env.store);
  }
  if (outcome === 'ok' && plan.state === 'switched') {
    outcome = await schedule(plan.moves, options, budget, (move) => (isOnlineMove(plan, move) ? cleanupOnline(ctx, plan, move, options.online) : cleanupMove(ctx, plan, move)));
    if (outcome === 'ok') {
      await env.journal.setPlanState(planId, 'done');
      const removed = plan.options.removeShard as string | undefined;
      if (removed) await env.journal.setShardState(removed, 'retired');
    }
  }
  if (outcome === 'failed' && !lost()) await env.journal.setPlanState(planId, 'failed', 'a move failed; `shard resume` continues it');

  const final = (await env.journal.getPlan(planId))!;
  const seconds = (Date.now() - started) / 1000;
  const stop = budget.stopReason();
  const report: ExecutionReport = {
    planId,
    kind: final.kind,
    status: lost() ? 'lock-lost' : outcome === 'failed' ? 'failed' : outcome === 'stopped' ? (stop === 'signal' ? 'interrupted' : 'partial') : 'done',
    ...(outcome === 'stopped' && stop ? { stoppedBy: stop } : {}),
    planState: final.state,
    fromEpoch: final.fromEpoch,
    epoch: final.switchedEpoch ?? final.fromEpoch,
    ...(published ? { published } : {}),
    seconds,
    rowsCopied: copiedThisRun,
    rowsPerSecond: seconds > 0 ? Math.round(copiedThisRun / seconds) : 0,
    mbPerSecond: seconds > 0 ? +(bytesThisRun / 1e6 / seconds).toFixed(2) : 0,
    online: final.options.online === true,
    longestFenceMs: final.moves.reduce<number | null>((max, m) => (m.online?.longestFenceMs !== undefined ? Math.max(max ?? 0, m.online.longestFenceMs) : max), null),
    phases: meter.total(),
    moves: final.moves.map((m) => toReport(m, meter)),
  };
  return report;
}

/** Failed moves continue from the state they failed in; a failed plan becomes running (or switched) again. */
async function reopen(env: MoveEnv, planId: string): Promise<PlanRecord> {
  const plan = await env.journal.getPlan(planId);
  if (!plan) throw new OperationError(`no plan ${planId}`);
  if (plan.state === 'done' || plan.state === 'aborted') throw new OperationError(`plan ${planId} is ${plan.state}; nothing to resume`);
  // Before the journal changes: every shard of the plan answers (else the plan stays as it is), and has
  // shardctl.route_hash() (a server restored from a backup, or one that lost unflushed commits, may not).
  const shards = [...new Set(plan.moves.flatMap((m) => [m.source, m.target]))];
  await Promise.all(shards.map((id) => withConnections([env.connect(id, 'shard resume')], (c) => installRoutingFunction(c!))));
  for (const m of plan.moves) {
    if (m.state === 'failed') await env.journal.setMoveState(plan.id, m.moveNo, m.resumeState ?? 'planned', { error: null, resumeState: null });
  }
  if (plan.state === 'failed') await env.journal.setPlanState(plan.id, plan.switchedEpoch !== null ? 'switched' : 'running');
  return (await env.journal.getPlan(planId))!;
}


/**
 * Moves run with at most `parallel` at once and at most `perShard` touching any
 * one shard. After a failure or a stop no new move starts; running ones reach
 * their next batch boundary.
 */
async function schedule(moves: MoveRecord[], options: ExecuteOptions, budget: Budget, run: (move: MoveRecord) => Promise<Outcome>): Promise<Outcome> {
  const pending = [...moves];
  const busy = new Map<string, number>();
  let running = 0;
  let result: Outcome = 'ok';
  let crashed: { error: unknown } | undefined;
  return new Promise((resolve, reject) => {
    const startable = (m: MoveRecord) => (busy.get(m.source) ?? 0) < options.perShard && (busy.get(m.target) ?? 0) < options.perShard;
    const pump = () => {
      while (result === 'ok' && running < options.parallel && !budget.stopReason()) {
        const i = pending.findIndex(startable);
        if (i < 0) break;
        const [move] = pending.splice(i, 1) as [MoveRecord];
        running++;
        for (const s of [move.source, move.target]) busy.set(s, (busy.get(s) ?? 0) + 1);
        const settle = (outcome: Outcome) => {
          running--;
          for (const s of [move.source, move.target]) busy.set(s, (busy.get(s) ?? 1) - 1);
          if (outcome === 'lost') result = 'lost';
          else if (outcome === 'failed' && result !== 'lost') result = 'failed';
          else if (outcome === 'stopped' && result === 'ok') result = 'stopped';
          pump();
        };
        // A step that could not even journal its failure (the metadata database went away): the run fails with it.
        void run(move).then(settle, (error: unknown) => {
          crashed ??= { error };
          settle('failed');
        });
      }
      if (running === 0) {
        if (crashed) return reject(crashed.error);
        if (result === 'ok' && pending.length) result = 'stopped';
        resolve(result);
      }
    };
    pump();
  });
}

/** What the switch does to the shard registry. */
function shardStatesAfter(plan: PlanRecord): Array<{ id: string; state: 'active' | 'draining'; weight?: number }> {
  const states: Array<{ id: string; state: 'active' | 'draining'; weight?: number }> = plan.targetRing.members.map((m) => ({ id: m.id, state: 'active', weight: m.weight }));
  const removed = plan.options.removeShard as string | undefined;
  if (removed) states.push({ id: removed, state: 'draining' });
  return states;
}

function ringChanges(plan: PlanRecord): boolean {
  return plan.options.ringChange !== false;
}

function toReport(m: MoveRecord, meter: PhaseMeter): MoveReport {
  const costs = meter.ofMove(m.moveNo);
  return {
    moveNo: m.moveNo,
    source: m.source,
    target: m.target,
    mode: m.mode,
    state: m.state,
    estRows: m.estRows,
    rowsCopied: m.tables.reduce((s, t) => s + t.rowsCopied, 0),
    bytesCopied: m.tables.reduce((s, t) => s + t.bytesCopied, 0),
    rowsDeleted: m.tables.reduce((s, t) => s + t.rowsDeleted, 0),
    rowsLeft: m.tables.reduce((s, t) => s + (t.rowsLeft ?? 0), 0),
    seconds: m.startedAt ? +(((m.finishedAt ?? new Date()).getTime() - m.startedAt.getTime()) / 1000).toFixed(2) : null,
    tables: m.tables,
    online: m.online,
    phases: costs.phases,
    tablePhases: costs.tables,
    error: m.error,
  };
}

