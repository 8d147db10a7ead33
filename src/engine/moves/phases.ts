import type { TableConfig } from '../../config/schema.js';
import type { MoveState } from '../../core/move-state.js';
import { OperationError } from '../../errors.js';
import type { MoveRecord, PlanRecord, TableProgress } from '../../metadata/journal.js';
import { cleanupRange } from '../../mover/cleanup.js';
import { copyRange } from '../../mover/copy-range.js';
import { chooseDigest } from '../../mover/table-shape.js';
import { countInRanges, rangeChecksum } from '../../mover/verify.js';
import { withConnections, type MoveEnv } from './env.js';
import type { ExecuteOptions } from './execute.js';
import type { Budget, Throttle } from './throttle.js';

/**
 * The steps of one move: copy and verify (before the switch), cleanup (after).
 * Each journals its state and cursors before the work it describes, and
 * returns an outcome instead of throwing: a failure is journaled as `failed`
 * with the state to resume from.
 */

export type Outcome = 'ok' | 'stopped' | 'failed';

export interface MoveContext {
  env: MoveEnv;
  options: ExecuteOptions;
  budget: Budget;
  throttle: Throttle;
  onCopied(rows: number, bytes: number): void;
}

export async function copyAndVerify(ctx: MoveContext, plan: PlanRecord, move: MoveRecord): Promise<Outcome> {
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
      workMem: env.config.migration.workMem,
      onBatch: async (batch) => {
        progress.copyCursor = batch.cursor;
        progress.rowsCopied += batch.rows;
        progress.bytesCopied += batch.bytes;
        rowsThisCall += batch.rows;
        await env.journal.updateTable(plan.id, move.moveNo, table, { copyCursor: batch.cursor, rowsCopied: progress.rowsCopied, bytesCopied: progress.bytesCopied });
        ctx.budget.add(batch.rows);
        ctx.onCopied(batch.rows, batch.bytes);
        reportProgress(ctx, move, table, 'copy', { done: movedBefore + rowsThisCall, thisCall: rowsThisCall, estRows, startedAt });
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
      const digest = await chooseDigest(source!, target!, shape);
      const [s, t] = await Promise.all([rangeChecksum(source!, shape, move.ranges, digest), rangeChecksum(target!, shape, move.ranges, digest)]);
      await env.journal.updateTable(plan.id, move.moveNo, table.name, { sourceRows: s.rows, sourceSum: s.sum, targetRows: t.rows, targetSum: t.sum });
      if (s.rows !== t.rows || s.sum !== t.sum) mismatches.push(table.name);
    }
    return mismatches;
  });
}

export async function cleanupMove(ctx: MoveContext, plan: PlanRecord, move: MoveRecord): Promise<Outcome> {
  const { env } = ctx;
  if (move.state === 'cleaned') return 'ok';
  try {
    // Children before parents: `tables` lists parents first (the copy's order), so foreign keys hold while rows leave.
    for (const table of [...env.tables].reverse()) {
      const progress = move.tables.find((t) => t.table === table.name)!;
      if (progress.cleanupDone) continue;
      const estRows = progress.rowsCopied || move.estRows;
      const startedAt = Date.now();
      let deletedThisCall = 0;
      const result = await withConnections([env.connect(move.target, 'shard cleanup'), env.connect(move.source, 'shard cleanup')], async (target, source) => {
        const shape = await env.shapeOn(source!, move.source, table);
        return cleanupRange(target!, source!, shape, {
          ranges: move.ranges,
          digest: await chooseDigest(source!, target!, shape),
          cursor: progress.cleanupCursor,
          batchSize: env.config.migration.batchSize,
          workMem: env.config.migration.workMem,
          onBatch: async (batch) => {
            progress.cleanupCursor = batch.cursor;
            progress.rowsDeleted += batch.affected;
            deletedThisCall += batch.affected;
            await env.journal.updateTable(plan.id, move.moveNo, table.name, { cleanupCursor: batch.cursor, rowsDeleted: progress.rowsDeleted });
            reportProgress(ctx, move, table.name, 'cleanup', { done: progress.rowsDeleted, thisCall: deletedThisCall, estRows, startedAt });
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

/** Rows done of rows expected, the rate in this run, and an ETA. */
function reportProgress(
  ctx: MoveContext,
  move: MoveRecord,
  table: string,
  phase: 'copy' | 'cleanup',
  p: { done: number; thisCall: number; estRows: number; startedAt: number },
): void {
  const rate = p.thisCall / Math.max(0.001, (Date.now() - p.startedAt) / 1000);
  ctx.options.onEvent?.({
    type: 'progress',
    moveNo: move.moveNo,
    source: move.source,
    target: move.target,
    table,
    phase,
    rows: p.done,
    estRows: p.estRows,
    rowsPerSecond: Math.round(rate),
    etaSeconds: p.estRows > p.done && rate > 0 ? Math.round((p.estRows - p.done) / rate) : null,
  });
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
  const down = /shard \S+/.test(message) ? null : await unreachableShard(ctx.env, [move.target, move.source]);
  const where = /shard \S+/.test(message) ? message : down ? `shard ${down} stopped answering: ${message}` : `${move.source} → ${move.target}: ${message}`;
  await ctx.env.journal.setMoveState(plan.id, move.moveNo, 'failed', { error: where, resumeState: state });
  ctx.options.onEvent?.({ type: 'move-state', moveNo: move.moveNo, source: move.source, target: move.target, state: 'failed' });
}

/** The first of these shards that does not answer now, so a failure names the server that went away. */
async function unreachableShard(env: MoveEnv, shards: string[]): Promise<string | null> {
  for (const shard of shards) {
    try {
      await withConnections([env.connect(shard, 'shard probe')], (c) => c!.query('SELECT 1'));
    } catch {
      return shard;
    }
  }
  return null;
}
