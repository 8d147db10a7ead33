import type { TableConfig } from '../../config/schema.js';
import type { MoveState } from '../../core/move-state.js';
import { OperationError } from '../../errors.js';
import type { MoveRecord, PlanRecord, TableProgress } from '../../metadata/journal.js';
import { cleanupRange } from '../../mover/cleanup.js';
import { copyRange } from '../../mover/copy-range.js';
import { countInRanges, rangeChecksum } from '../../mover/verify.js';
import { publishCurrentRing, type PublishOutcome } from '../publish.js';
import { withConnections, type MoveEnv } from './env.js';
import { Budget, Throttle, type StopReason } from './throttle.js';

export interface ExecuteOptions {
  parallel: number;
  /** Moves one shard takes part in at once (as source or target). */
  perShard: number;
  batchSize: number;
  maxRowsPerSecond: number;
  maxDurationMs?: number;
  maxRows?: number;
  signal?: AbortSignal;
  onEvent?: (event: MoveEvent) => void;
}

export type MoveEvent =
  | { type: 'move-state'; moveNo: number; source: string; target: string; state: MoveState }
  | { type: 'progress'; moveNo: number; source: string; target: string; table: string; phase: 'copy' | 'cleanup'; rows: number; estRows: number; rowsPerSecond: number; etaSeconds: number | null }
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
  /** Rows left on the source after cleanup (not identical on the target): the next rebalance moves them. */
  rowsLeft: number;
  /** From the start of its copy to its cleanup (or to now), across runs. */
  seconds: number | null;
  tables: TableProgress[];
  error: string | null;
}

export interface ExecutionReport {
  planId: string;
  kind: string;
  /** done: finished; partial: a budget stopped it (run again to continue); failed; interrupted (SIGINT). */
  status: 'done' | 'partial' | 'failed' | 'interrupted';
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
  moves: MoveReport[];
}

type Outcome = 'ok' | 'stopped' | 'failed';

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
  let copiedThisRun = 0;
  let bytesThisRun = 0;
  let published: PublishOutcome | undefined;
  const ctx: MoveContext = {
    env,
    options,
    budget,
    throttle,
    onCopied: (rows, bytes) => {
      copiedThisRun += rows;
      bytesThisRun += bytes;
    },
  };

  let outcome: Outcome = 'ok';
  if (plan.state === 'running') {
    outcome = await schedule(plan.moves, options, budget, (move) => copyAndVerify(ctx, plan, move));
    if (outcome === 'ok') {
      plan = (await env.journal.getPlan(planId))!;
      const epoch = await env.journal.switchPlan(plan, env.run.actor, shardStatesAfter(plan), ringChanges(plan));
      published = await publishCurrentRing(env.config, env.store);
      options.onEvent?.({ type: 'switched', epoch, published });
      plan = (await env.journal.getPlan(planId))!;
    }
  } else if (plan.state === 'switched') {
    // A crash may have come between the switch and the publish: publishing again is harmless.
    published = await publishCurrentRing(env.config, env.store);
  }
  if (outcome === 'ok' && plan.state === 'switched') {
    outcome = await schedule(plan.moves, options, budget, (move) => cleanupMove(ctx, plan, move));
    if (outcome === 'ok') {
      await env.journal.setPlanState(planId, 'done');
      const removed = plan.options.removeShard as string | undefined;
      if (removed) await env.journal.setShardState(removed, 'retired');
    }
  }
  if (outcome === 'failed') await env.journal.setPlanState(planId, 'failed', 'a move failed; `shard resume` continues it');

  const final = (await env.journal.getPlan(planId))!;
  const seconds = (Date.now() - started) / 1000;
  const stop = budget.stopReason();
  const report: ExecutionReport = {
    planId,
    kind: final.kind,
    status: outcome === 'failed' ? 'failed' : outcome === 'stopped' ? (stop === 'signal' ? 'interrupted' : 'partial') : 'done',
    ...(outcome === 'stopped' && stop ? { stoppedBy: stop } : {}),
    planState: final.state,
    fromEpoch: final.fromEpoch,
    epoch: final.switchedEpoch ?? final.fromEpoch,
    ...(published ? { published } : {}),
    seconds,
    rowsCopied: copiedThisRun,
    rowsPerSecond: seconds > 0 ? Math.round(copiedThisRun / seconds) : 0,
    mbPerSecond: seconds > 0 ? +(bytesThisRun / 1e6 / seconds).toFixed(2) : 0,
    moves: final.moves.map(toReport),
  };
  return report;
}

/** Failed moves continue from the state they failed in; a failed plan becomes running (or switched) again. */
async function reopen(env: MoveEnv, planId: string): Promise<PlanRecord> {
  const plan = await env.journal.getPlan(planId);
  if (!plan) throw new OperationError(`no plan ${planId}`);
  if (plan.state === 'done' || plan.state === 'aborted') throw new OperationError(`plan ${planId} is ${plan.state}; nothing to resume`);
  for (const m of plan.moves) {
    if (m.state === 'failed') await env.journal.setMoveState(plan.id, m.moveNo, m.resumeState ?? 'planned', { error: null, resumeState: null });
  }
  if (plan.state === 'failed') await env.journal.setPlanState(plan.id, plan.switchedEpoch !== null ? 'switched' : 'running');
  return (await env.journal.getPlan(planId))!;
}

interface MoveContext {
  env: MoveEnv;
  options: ExecuteOptions;
  budget: Budget;
  throttle: Throttle;
  onCopied(rows: number, bytes: number): void;
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
  return new Promise((resolve) => {
    const startable = (m: MoveRecord) => (busy.get(m.source) ?? 0) < options.perShard && (busy.get(m.target) ?? 0) < options.perShard;
    const pump = () => {
      while (result === 'ok' && running < options.parallel && !budget.stopReason()) {
        const i = pending.findIndex(startable);
        if (i < 0) break;
        const [move] = pending.splice(i, 1) as [MoveRecord];
        running++;
        for (const s of [move.source, move.target]) busy.set(s, (busy.get(s) ?? 0) + 1);
        void run(move).then((outcome) => {
          running--;
          for (const s of [move.source, move.target]) busy.set(s, (busy.get(s) ?? 1) - 1);
          if (outcome === 'failed') result = 'failed';
          else if (outcome === 'stopped' && result === 'ok') result = 'stopped';
          pump();
        });
      }
      if (running === 0) {
        if (result === 'ok' && pending.length) result = 'stopped';
        resolve(result);
      }
    };
    pump();
  });
}

async function copyAndVerify(ctx: MoveContext, plan: PlanRecord, move: MoveRecord): Promise<Outcome> {
  const { env } = ctx;
  let state: MoveState = move.state;
  const setState = async (next: MoveState) => {
    await env.journal.setMoveState(plan.id, move.moveNo, next);
    state = next;
    ctx.options.onEvent?.({ type: 'move-state', moveNo: move.moveNo, source: move.source, target: move.target, state: next });
  };
  try {
    if (state === 'planned') {
      if (move.mode === 'fresh') await assertTargetEmpty(ctx, move);
      await setState('copying');
    }
    // Verification happens in the run that switches, whatever an earlier run found.
    for (let attempt = 0; ; attempt++) {
      if (state === 'copying') {
        for (const table of env.tables) {
          const progress = move.tables.find((t) => t.table === table.name)!;
          if (progress.copyDone) continue;
          if ((await copyTable(ctx, plan, move, table.name, progress)) === 'stopped') return 'stopped';
        }
        await setState('copied');
      }
      const mismatches = await verifyMove(ctx, plan, move);
      if (!mismatches.length) break;
      if (attempt >= 2) throw new OperationError(`move ${move.source} → ${move.target} does not verify after ${attempt + 1} attempts: ${mismatches.join('; ')}`);
      // Re-sync: copy the mismatching tables again from scratch (fresh mode clears the target's copies first).
      for (const name of mismatches) {
        const progress = move.tables.find((t) => t.table === name)!;
        Object.assign(progress, { copyCursor: -1, copyDone: false, rowsCopied: 0, bytesCopied: 0, resyncs: progress.resyncs + 1 });
        await env.journal.updateTable(plan.id, move.moveNo, name, { copyCursor: -1, copyDone: false, rowsCopied: 0, bytesCopied: 0, resyncs: progress.resyncs });
      }
      await setState('copying');
    }
    await setState('verified');
    return 'ok';
  } catch (err) {
    await fail(ctx, plan, move, state, err);
    return 'failed';
  }
}

/** A fresh target must hold nothing in the ranges it receives: anything there would be taken for a copy and lost on abort. */
async function assertTargetEmpty(ctx: MoveContext, move: MoveRecord): Promise<void> {
  await withConnections([ctx.env.connect(move.target, 'shard move')], async (target) => {
    for (const table of ctx.env.tables) {
      const shape = await ctx.env.shapeOn(target!, move.target, table);
      const n = await countInRanges(target!, shape, move.ranges);
      if (n > 0) {
        throw new OperationError(
          `shard ${move.target} already holds ${n} row(s) of ${table.name} in the ranges it is to receive from ${move.source}; \`shard verify\` shows them`,
        );
      }
    }
  });
}

async function copyTable(ctx: MoveContext, plan: PlanRecord, move: MoveRecord, table: string, progress: TableProgress): Promise<'ok' | 'stopped'> {
  const { env } = ctx;
  const tableConfig = env.tables.find((t) => t.name === table)!;
  const estRows = move.estRows;
  const movedBefore = move.tables.reduce((s, t) => s + t.rowsCopied, 0);
  const startedAt = Date.now();
  let rowsThisCall = 0;
  const result = await withConnections([env.connect(move.source, 'shard move'), env.connect(move.target, 'shard move')], async (source, target) => {
    const shape = await env.shapeOn(source!, move.source, tableConfig);
    return copyRange(source!, target!, shape, {
      mode: move.mode,
      ranges: move.ranges,
      cursor: progress.copyCursor,
      batchSize: env.config.migration.batchSize,
      onBatch: async (batch) => {
        progress.copyCursor = batch.cursor;
        progress.rowsCopied += batch.rows;
        progress.bytesCopied += batch.bytes;
        rowsThisCall += batch.rows;
        await env.journal.updateTable(plan.id, move.moveNo, table, { copyCursor: batch.cursor, rowsCopied: progress.rowsCopied, bytesCopied: progress.bytesCopied });
        ctx.budget.add(batch.rows);
        ctx.onCopied(batch.rows, batch.bytes);
        const done = movedBefore + rowsThisCall;
        const rate = rowsThisCall / Math.max(0.001, (Date.now() - startedAt) / 1000);
        ctx.options.onEvent?.({
          type: 'progress', moveNo: move.moveNo, source: move.source, target: move.target, table, phase: 'copy',
          rows: done, estRows, rowsPerSecond: Math.round(rate), etaSeconds: estRows > done && rate > 0 ? Math.round((estRows - done) / rate) : null,
        });
        await ctx.throttle.take(batch.rows, ctx.options.signal);
        return ctx.budget.stopReason() === null;
      },
    });
  });
  if (!result.done) return 'stopped';
  progress.copyDone = true;
  await env.journal.updateTable(plan.id, move.moveNo, table, { copyDone: true, copyCursor: result.cursor });
  return 'ok';
}

/** Row count and checksum per table on both sides (fresh moves); the tables that differ. */
async function verifyMove(ctx: MoveContext, plan: PlanRecord, move: MoveRecord): Promise<string[]> {
  // Merge moves add rows to a shard that has its own: they are confirmed row by row at cleanup instead.
  if (move.mode === 'merge') return [];
  const { env } = ctx;
  return withConnections([env.connect(move.source, 'shard verify'), env.connect(move.target, 'shard verify')], async (source, target) => {
    const mismatches: string[] = [];
    for (const table of env.tables) {
      const shape = await env.shapeOn(source!, move.source, table);
      const [s, t] = await Promise.all([rangeChecksum(source!, shape, move.ranges), rangeChecksum(target!, shape, move.ranges)]);
      await env.journal.updateTable(plan.id, move.moveNo, table.name, { sourceRows: s.rows, sourceSum: s.sum, targetRows: t.rows, targetSum: t.sum });
      if (s.rows !== t.rows || s.sum !== t.sum) mismatches.push(table.name);
    }
    return mismatches;
  });
}

async function cleanupMove(ctx: MoveContext, plan: PlanRecord, move: MoveRecord): Promise<Outcome> {
  const { env } = ctx;
  if (move.state === 'cleaned') return 'ok';
  try {
    // Children before parents: `tables` lists parents first (the copy's order), so foreign keys hold while rows leave.
    for (const table of [...env.tables].reverse()) {
      const progress = move.tables.find((t) => t.table === table.name)!;
      if (progress.cleanupDone) continue;
      const estRows = progress.rowsCopied || move.estRows;
      const startedAt = Date.now();
      const result = await withConnections([env.connect(move.target, 'shard cleanup'), env.connect(move.source, 'shard cleanup')], async (target, source) => {
        const shape = await env.shapeOn(source!, move.source, table);
        return cleanupRange(target!, source!, shape, {
          ranges: move.ranges,
          cursor: progress.cleanupCursor,
          batchSize: env.config.migration.batchSize,
          onBatch: async (batch) => {
            progress.cleanupCursor = batch.cursor;
            progress.rowsDeleted += batch.affected;
            await env.journal.updateTable(plan.id, move.moveNo, table.name, { cleanupCursor: batch.cursor, rowsDeleted: progress.rowsDeleted });
            const rate = progress.rowsDeleted / Math.max(0.001, (Date.now() - startedAt) / 1000);
            ctx.options.onEvent?.({
              type: 'progress', moveNo: move.moveNo, source: move.source, target: move.target, table: table.name, phase: 'cleanup',
              rows: progress.rowsDeleted, estRows, rowsPerSecond: Math.round(rate), etaSeconds: estRows > progress.rowsDeleted && rate > 0 ? Math.round((estRows - progress.rowsDeleted) / rate) : null,
            });
            return ctx.budget.stopReason() === null;
          },
        });
      });
      if (!result.done) return 'stopped';
      progress.rowsLeft = await rowsLeftOnSource(ctx, move, table, progress);
      progress.cleanupDone = true;
      await env.journal.updateTable(plan.id, move.moveNo, table.name, { cleanupDone: true, cleanupCursor: result.cursor, rowsLeft: progress.rowsLeft });
    }
    await env.journal.setMoveState(plan.id, move.moveNo, 'cleaned');
    ctx.options.onEvent?.({ type: 'move-state', moveNo: move.moveNo, source: move.source, target: move.target, state: 'cleaned' });
    return 'ok';
  } catch (err) {
    await fail(ctx, plan, move, 'switched', err);
    return 'failed';
  }
}

/**
 * Rows of the move's ranges still on the source: ones that differed from the
 * target (changed after the copy) and stayed. For a fresh move it is what the
 * source held at verification minus what cleanup deleted (no extra scan);
 * rows written to the source after that are found by `shard verify` and the
 * next rebalance. A merge move (no aggregate verification) counts them.
 */
async function rowsLeftOnSource(ctx: MoveContext, move: MoveRecord, table: TableConfig, progress: TableProgress): Promise<number> {
  if (move.mode === 'fresh' && progress.sourceRows !== null) return Math.max(0, progress.sourceRows - progress.rowsDeleted);
  return withConnections([ctx.env.connect(move.source, 'shard cleanup')], async (source) =>
    countInRanges(source!, await ctx.env.shapeOn(source!, move.source, table), move.ranges),
  );
}

async function fail(ctx: MoveContext, plan: PlanRecord, move: MoveRecord, state: MoveState, err: unknown): Promise<void> {
  const message = (err as Error).message ?? String(err);
  const where = /shard \S+/.test(message) ? message : `${move.source} → ${move.target}: ${message}`;
  await ctx.env.journal.setMoveState(plan.id, move.moveNo, 'failed', { error: where, resumeState: state });
  ctx.options.onEvent?.({ type: 'move-state', moveNo: move.moveNo, source: move.source, target: move.target, state: 'failed' });
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

function toReport(m: MoveRecord): MoveReport {
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
    error: m.error,
  };
}

