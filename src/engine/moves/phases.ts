import type { TableConfig } from '../../config/schema.js';
import type { MoveState } from '../../core/move-state.js';
import { isLockLost, OperationError } from '../../errors.js';
import type { MoveRecord, PlanRecord, TableProgress } from '../../metadata/journal.js';
import { blockCopyState, clearBlockCopy, copiedRowsChecksum, copiedTids, copyByBlock, deleteBatches, deleteCopiedRows, forgetBatches, recordedBatches, removedState, sourceUnchangedSince, supportsBlockCopy, type BatchConfirmation, type BlockBatch, type MoveTableId } from '../../mover/block-copy.js';
import { cleanupRange } from '../../mover/cleanup.js';
import { copyRange } from '../../mover/copy-range.js';
import { cleanupUsesIndex } from '../../core/range-access.js';
import { rangeAccessFor, SCAN } from '../../mover/range-access.js';
import { chooseDigest, keysRepeat, relationBytes, tableRowEstimate } from '../../mover/table-shape.js';
import { countInRanges, rangeChecksum } from '../../mover/verify.js';
import { withConnections, type MoveEnv } from './env.js';
import type { LiveMove } from './online.js';
import type { PhaseMeter } from './phase-meter.js';
import type { ExecuteOptions } from './execute.js';
import type { Budget, Throttle } from './throttle.js';

/**
 * The steps of one move: copy and verify (before the switch), cleanup (after).
 * Each journals its state and cursors before the work it describes, and
 * returns an outcome instead of throwing: a failure is journaled as `failed`
 * with the state to resume from.
 */

/** `fn` run at its first call only; later calls get the same promise. */
function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let result: Promise<T> | null = null;
  return () => (result ??= fn());
}

/** lost: the run's lease was lost; the step stopped and journaled nothing more (the fence would refuse it). */
export type Outcome = 'ok' | 'stopped' | 'failed' | 'lost';

const UNIQUE_VIOLATION = '23505';

/** Copy batches a cleanup transaction takes at most (in rows: this many times migration.batchSize). */
const CLEANUP_GROUP = 5;

export interface MoveContext {
  env: MoveEnv;
  /** This run's time and bytes by phase. */
  meter: PhaseMeter;
  /** Online moves' state that lives only in this run (keys replayed since the last whole-range comparison). */
  live: Map<number, LiveMove>;
  options: ExecuteOptions;
  budget: Budget;
  throttle: Throttle;
  onCopied(rows: number, bytes: number): void;
}

/**
 * Confirms the run's lease just before a step commits on a shard (SPEC
 * invariant 3): a run that lost the metadata lock, noticed or not, finishes
 * at most the batch in flight. Without a lease (engine tests) there is nothing to check.
 */
export async function checkLease(ctx: MoveContext): Promise<void> {
  await ctx.options.lease?.check();
}

/** Journals a step's failure, unless the failure is the lost lease (then nothing more may be journaled). */
export async function failOrLost(ctx: MoveContext, plan: PlanRecord, move: MoveRecord, state: MoveState, err: unknown): Promise<'failed' | 'lost'> {
  if (isLockLost(err) || ctx.options.lease?.lostReason) return 'lost';
  try {
    await fail(ctx, plan, move, state, err);
  } catch (failErr) {
    if (isLockLost(failErr)) return 'lost';
    throw failErr;
  }
  return 'failed';
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
        if ((await copyTables(ctx, plan, move)) === 'stopped') return 'stopped';
        await setState('copied');
      }
      const mismatches = await verifyMove(ctx, plan, move);
      if (!mismatches.length) break;
      if (attempt >= 2) throw new OperationError(`move ${move.source} → ${move.target} does not verify after ${attempt + 1} attempts: ${mismatches.join('; ')}`);
      // Re-sync: copy the mismatching tables again from scratch (fresh mode clears the target's copies first).
      for (const name of mismatches) {
        const progress = move.tables.find((t) => t.table === name)!;
        if (progress.copyOrder === 'block') await clearCopy(ctx, move, tableId(plan, move, name));
        const reset = { copyCursor: -1, copyDone: false, rowsCopied: 0, bytesCopied: 0, resyncs: progress.resyncs + 1, copySnapshotXmin: null, copyTableRows: null };
        Object.assign(progress, reset);
        await env.journal.updateTable(plan.id, move.moveNo, name, reset);
      }
      await setState('copying');
    }
    await setState('verified');
    return 'ok';
  } catch (err) {
    return failOrLost(ctx, plan, move, state, err);
  }
}

/** Copies every table not yet copied, then analyzes the target (it just took many rows: fresh statistics serve verification and the application). */
export async function copyTables(ctx: MoveContext, plan: PlanRecord, move: MoveRecord): Promise<'ok' | 'stopped'> {
  for (const table of ctx.env.tables) {
    const progress = move.tables.find((t) => t.table === table.name)!;
    if (progress.copyDone) continue;
    const bytesBefore = progress.bytesCopied;
    const done = await ctx.meter.time('copy', { moveNo: move.moveNo, table: table.name }, () => copyTable(ctx, plan, move, table.name, progress));
    // COPY text read from the source is what is written to the target.
    const bytes = Math.max(0, progress.bytesCopied - bytesBefore);
    ctx.meter.add('copy', { moveNo: move.moveNo, table: table.name }, { bytesRead: bytes, bytesWritten: bytes });
    if (done === 'stopped') return 'stopped';
  }
  await ctx.meter.time('copy', { moveNo: move.moveNo }, () => analyzeTarget(ctx, move));
  return 'ok';
}

/** A fresh target must hold nothing in the ranges it receives: anything there would be taken for a copy and lost on abort. */
export async function assertTargetEmpty(ctx: MoveContext, move: MoveRecord): Promise<void> {
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
  const startedAt = Date.now();
  let rowsThisCall = 0;
  let resumedBlockCopy = false;
  /** Progress in memory and in the journal, alike. */
  const record = async (fields: Partial<Omit<TableProgress, 'table'>>) => {
    Object.assign(progress, fields);
    await env.journal.updateTable(plan.id, move.moveNo, table, fields);
  };
  const attempt = () => withConnections([env.connect(move.source, 'shard move'), env.connect(move.target, 'shard move')], async (source, target) => {
    await checkLease(ctx);
    const shape = await env.shapeOn(source!, move.source, tableConfig);
    // By the routing-hash index where there is one (`shard index`): only the moving rows are read.
    const access = await rangeAccessFor(source!, shape, move.ranges);
    // A fresh move on PostgreSQL 14+ copies in physical order (no sort); decided once, journaled before it starts.
    const undecided = progress.copyOrder === 'hash' && progress.copyCursor < 0 && progress.rowsCopied === 0;
    if (undecided && move.mode === 'fresh' && (await supportsBlockCopy(source!))) {
      await record({ copyOrder: 'block' });
    }
    const onRows = async (cursor: number, rows: number, bytes: number): Promise<boolean> => {
      await record({ copyCursor: cursor, rowsCopied: progress.rowsCopied + rows, bytesCopied: progress.bytesCopied + bytes });
      rowsThisCall += rows;
      ctx.budget.add(rows);
      ctx.onCopied(rows, bytes);
      const movedBefore = move.tables.reduce((s, t) => s + t.rowsCopied, 0);
      reportProgress(ctx, move, table, 'copy', { done: movedBefore, thisCall: rowsThisCall, estRows, startedAt });
      await ctx.throttle.take(rows, ctx.options.signal);
      return ctx.budget.stopReason() === null;
    };
    if (progress.copyOrder === 'block') {
      const id = tableId(plan, move, table);
      // The target's batch records are the truth (the journal may lag them by a batch).
      const held = await blockCopyState(target!, id);
      resumedBlockCopy = held.batches > 0;
      if (held.batches > 0) {
        // A copy that spans runs was not read in one snapshot: verification reads the source in full.
        await record({ copyCursor: held.lastBlock, rowsCopied: held.rows, bytesCopied: held.bytes, copySnapshotXmin: null, copyTableRows: null });
      }
      return copyByBlock(source!, target!, shape, {
        id,
        ranges: move.ranges,
        digest: await chooseDigest(source!, target!, shape),
        batchSize: env.config.migration.batchSize,
        memo: await keysRepeat(source!, shape),
        access,
        onStart: (snapshot) => record({ copySnapshotXmin: snapshot.xmin, copyTableRows: snapshot.tableRows }),
        beforeCommit: () => checkLease(ctx),
        onBatch: (batch) => onRows(batch.lastBlock, batch.rows, batch.bytes),
      }).then((r) => ({ done: r.done, cursor: r.state.lastBlock }));
    }
    return copyRange(source!, target!, shape, {
      mode: move.mode,
      ranges: move.ranges,
      cursor: progress.copyCursor,
      batchSize: env.config.migration.batchSize,
      workMem: env.config.migration.workMem,
      access,
      beforeCommit: () => checkLease(ctx),
      onBatch: (batch) => onRows(batch.cursor, batch.rows, batch.bytes),
    });
  });
  let result: { done: boolean; cursor: number };
  for (let restarts = 0; ; restarts++) {
    try {
      result = await attempt();
      break;
    } catch (err) {
      // A row updated on the source after an earlier run copied it can sit in a block after the
      // cursor: read again, it collides with its old version on the target. The source changed
      // under a paused copy: copy the table again from its first block (as verify would).
      if ((err as { code?: string }).code !== UNIQUE_VIOLATION || !resumedBlockCopy || restarts >= 2) throw err;
      await clearCopy(ctx, move, tableId(plan, move, table));
      await record({ copyCursor: -1, rowsCopied: 0, bytesCopied: 0, resyncs: progress.resyncs + 1, copySnapshotXmin: null, copyTableRows: null });
    }
  }
  if (!result.done) return 'stopped';
  progress.copyDone = true;
  await env.journal.updateTable(plan.id, move.moveNo, table, { copyDone: true, copyCursor: result.cursor });
  return 'ok';
}

async function analyzeTarget(ctx: MoveContext, move: MoveRecord): Promise<void> {
  await withConnections([ctx.env.connect(move.target, 'shard move')], async (target) => {
    for (const table of ctx.env.tables) await target!.query(`ANALYZE ${(await ctx.env.shapeOn(target!, move.target, table)).sqlName}`);
  });
}

export function tableId(plan: PlanRecord, move: MoveRecord, table: string): MoveTableId {
  return { planId: plan.id, moveNo: move.moveNo, table };
}

/** Removes a block-ordered copy of a table from the move's target (rows and batch records). */
export async function clearCopy(ctx: MoveContext, move: MoveRecord, id: MoveTableId): Promise<void> {
  const table = ctx.env.tables.find((t) => t.name === id.table)!;
  await withConnections([ctx.env.connect(move.target, 'shard move')], async (target) => {
    await checkLease(ctx);
    await clearBlockCopy(target!, await ctx.env.shapeOn(target!, move.target, table), id, move.ranges);
  });
}

/**
 * Row count and checksum per table on both sides (fresh moves); the tables that differ.
 * For a block-ordered copy the target must still hold, unchanged, every row its batch
 * records say was read from the source (copiedRowsChecksum: found by their batches' xids,
 * not by hashing every row), and the source's side is those records when the table is
 * provably unchanged since the copy's snapshot (sourceUnchangedSince), else a full read.
 */
async function verifyMove(ctx: MoveContext, plan: PlanRecord, move: MoveRecord): Promise<string[]> {
  // Merge moves add rows to a shard that has its own: they are confirmed row by row at cleanup instead.
  if (move.mode === 'merge') return [];
  const { env } = ctx;
  return withConnections([env.connect(move.source, 'shard verify'), env.connect(move.target, 'shard verify')], async (source, target) => {
    const mismatches: string[] = [];
    for (const table of env.tables) {
      const started = performance.now();
      const progress = move.tables.find((t) => t.table === table.name)!;
      const shape = await env.shapeOn(source!, move.source, table);
      const digest = await chooseDigest(source!, target!, shape);
      let sourceRead = false;
      // The source's side is read only when its records cannot stand for it: decide how then.
      const readSource = async (memo: boolean) => {
        sourceRead = true;
        return rangeChecksum(source!, shape, move.ranges, digest, memo, await rangeAccessFor(source!, shape, move.ranges));
      };
      let s: { rows: number; sum: string };
      let t: { rows: number; sum: string };
      if (progress.copyOrder === 'block') {
        const snapshot = progress.copySnapshotXmin !== null && progress.copyTableRows !== null ? { xmin: progress.copySnapshotXmin, tableRows: progress.copyTableRows } : null;
        const [onTarget, unchanged] = await Promise.all([
          copiedRowsChecksum(target!, shape, tableId(plan, move, table.name), digest),
          snapshot ? sourceUnchangedSince(source!, shape, snapshot) : false,
        ]);
        t = onTarget;
        const read = await blockCopyState(target!, tableId(plan, move, table.name));
        if (read.rows !== t.rows || read.sum !== BigInt(t.sum)) {
          // The target does not hold what was read: whatever the source says now, copy again.
          s = { rows: read.rows, sum: read.sum.toString() };
        } else {
          s = unchanged ? { rows: read.rows, sum: read.sum.toString() } : await readSource(await keysRepeat(source!, shape));
        }
      } else {
        const targetAccess = await rangeAccessFor(target!, shape, move.ranges);
        [s, t] = await Promise.all([readSource(false), rangeChecksum(target!, shape, move.ranges, digest, false, targetAccess)]);
      }
      await env.journal.updateTable(plan.id, move.moveNo, table.name, { sourceRows: s.rows, sourceSum: s.sum, targetRows: t.rows, targetSum: t.sum });
      if (s.rows !== t.rows || BigInt(s.sum) !== BigInt(t.sum)) mismatches.push(table.name);
      // Bytes read: the heaps scanned (the target's always, the source's when it was read again).
      const bytesRead = (await relationBytes(target!, shape)) + (sourceRead ? await relationBytes(source!, shape) : 0);
      ctx.meter.add('verify', { moveNo: move.moveNo, table: table.name }, { seconds: (performance.now() - started) / 1000, bytesRead });
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
      const started = performance.now();
      const deletedBefore = progress.rowsDeleted;
      const measure = () => ctx.meter.add('cleanup', { moveNo: move.moveNo, table: table.name }, { seconds: (performance.now() - started) / 1000, bytesWritten: deletedBytes(progress, deletedBefore) });
      if (progress.copyOrder === 'block') {
        if ((await cleanupBlocks(ctx, plan, move, table, progress)) === 'stopped') return 'stopped';
        if (progress.cleanupMismatches > 0 && (await cleanupRows(ctx, plan, move, table, progress)) === 'stopped') return 'stopped';
      } else if ((await cleanupRows(ctx, plan, move, table, progress)) === 'stopped') {
        return 'stopped';
      }
      progress.rowsLeft = await rowsLeftOnSource(ctx, move, table, progress);
      measure();
      progress.cleanupDone = true;
      // rowsDeleted too: a resumed block cleanup may have learnt it from the source's records alone.
      await env.journal.updateTable(plan.id, move.moveNo, table.name, { cleanupDone: true, rowsLeft: progress.rowsLeft, rowsDeleted: progress.rowsDeleted });
    }
    await withConnections([env.connect(move.target, 'shard cleanup'), env.connect(move.source, 'shard cleanup')], async (target, source) => {
      await checkLease(ctx);
      await forgetBatches(target!, plan.id, move.moveNo);
      await forgetBatches(source!, plan.id, move.moveNo);
    });
    await env.journal.setMoveState(plan.id, move.moveNo, 'cleaned');
    ctx.options.onEvent?.({ type: 'move-state', moveNo: move.moveNo, source: move.source, target: move.target, state: 'cleaned' });
    return 'ok';
  } catch (err) {
    return failOrLost(ctx, plan, move, 'switched', err);
  }
}

/**
 * Cleanup of a block-ordered copy: batch by batch, the batch's rows are
 * deleted on the source if they are still exactly the ones copied (by the
 * copy's ctids and snapshot when it read one, else by span and digests).
 * Batches that differ are counted; their rows are then confirmed one by one
 * (cleanupRows).
 */
async function cleanupBlocks(ctx: MoveContext, plan: PlanRecord, move: MoveRecord, table: TableConfig, progress: TableProgress): Promise<'ok' | 'stopped'> {
  const { env } = ctx;
  const id = tableId(plan, move, table.name);
  const estRows = progress.rowsCopied || move.estRows;
  const startedAt = Date.now();
  let deletedThisCall = 0;
  return withConnections([env.connect(move.target, 'shard cleanup'), env.connect(move.source, 'shard cleanup')], async (target, source) => {
    const shape = await env.shapeOn(source!, move.source, table);
    const snapshot = progress.copySnapshotXmin !== null ? { snapshotXmin: progress.copySnapshotXmin } : null;
    // The source's records are the truth for what was removed (the journal may lag them by a batch).
    const removed = await removedState(source!, id);
    const after = Math.max(progress.cleanupBatch, removed.lastBatch);
    if (progress.cleanupCursor < 0) progress.rowsDeleted = removed.rows;
    // Batches go in groups of up to CLEANUP_GROUP (fewer, larger transactions); a group that
    // does not match is tried again batch by batch, so only the batches that differ are left.
    const pending = await recordedBatches(target!, id, after);
    const groupRows = env.config.migration.batchSize * CLEANUP_GROUP;
    // By index, each group reads the whole move's index ranges: worth it only for few groups of a small share.
    const pendingRows = pending.reduce((n, b) => n + b.rows, 0);
    // How a span is read and confirmed, asked of the servers only when a span is deleted (not by ctids).
    const spans = once(async () => {
      const groups = Math.ceil(pendingRows / groupRows);
      const fraction = pendingRows / Math.max(1, await tableRowEstimate(source!, shape));
      const byIndex = await rangeAccessFor(source!, shape, move.ranges);
      return {
        access: cleanupUsesIndex(byIndex, groups, fraction) ? byIndex : SCAN,
        memo: await keysRepeat(source!, shape),
        digest: await chooseDigest(source!, target!, shape),
      };
    });
    const bySpan = async (group: BlockBatch[], confirm: BatchConfirmation | null) => {
      const { access, memo, digest } = await spans();
      return deleteBatches(source!, shape, id, move.ranges, confirm ?? digest, group, memo, access, () => checkLease(ctx));
    };
    // A copy read in one snapshot is confirmed by it first: its rows are deleted where the copy
    // found them (deleteCopiedRows: no row hashed, none read but them), or, for records without
    // ctids, span by span with an xid test per row. What that cannot confirm (a row newer than the
    // snapshot, which a transaction left open elsewhere during the copy can also cause; a
    // rewritten table) is tried by its digests.
    const bySnapshot = async (group: BlockBatch[]): Promise<number | null> => {
      if (!snapshot) return null;
      const where = await copiedTids(target!, id, group);
      return where ? deleteCopiedRows(source!, shape, id, snapshot.snapshotXmin, group, where, () => checkLease(ctx)) : bySpan(group, snapshot);
    };
    const remove = async (group: BlockBatch[]) => (await bySnapshot(group)) ?? bySpan(group, null);
    while (pending.length) {
      const group = [pending.shift()!];
      while (pending.length && group.reduce((n, b) => n + b.rows, 0) + pending[0]!.rows <= groupRows) group.push(pending.shift()!);
      let deleted = await remove(group);
      if (deleted === null && group.length > 1) {
        pending.unshift(...group.slice(1));
        group.length = 1;
        deleted = await remove(group);
      }
      if (deleted === null) progress.cleanupMismatches++;
      else progress.rowsDeleted += deleted;
      deletedThisCall += deleted ?? 0;
      progress.cleanupBatch = group.at(-1)!.batchNo;
      await env.journal.updateTable(plan.id, move.moveNo, table.name, { cleanupBatch: progress.cleanupBatch, cleanupMismatches: progress.cleanupMismatches, rowsDeleted: progress.rowsDeleted });
      reportProgress(ctx, move, table.name, 'cleanup', { done: progress.rowsDeleted, thisCall: deletedThisCall, estRows, startedAt });
      if (ctx.budget.stopReason() !== null) return 'stopped';
    }
    return 'ok';
  });
}

/**
 * Row-by-row cleanup: the target's rows stream as (primary key, digest) to the
 * source, which deletes only identical rows (cleanupRange). It counts every
 * row of the ranges no longer on the source, so after a block pass it starts
 * the count again from zero.
 */
async function cleanupRows(ctx: MoveContext, plan: PlanRecord, move: MoveRecord, table: TableConfig, progress: TableProgress): Promise<'ok' | 'stopped'> {
  const { env } = ctx;
  const estRows = progress.rowsCopied || move.estRows;
  const startedAt = Date.now();
  let deletedThisCall = 0;
  if (progress.copyOrder === 'block' && progress.cleanupCursor < 0) progress.rowsDeleted = 0;
  const result = await withConnections([env.connect(move.target, 'shard cleanup'), env.connect(move.source, 'shard cleanup')], async (target, source) => {
    const shape = await env.shapeOn(source!, move.source, table);
    return cleanupRange(target!, source!, shape, {
      ranges: move.ranges,
      digest: await chooseDigest(source!, target!, shape),
      cursor: progress.cleanupCursor,
      batchSize: env.config.migration.batchSize,
      workMem: env.config.migration.workMem,
      access: await rangeAccessFor(target!, shape, move.ranges),
      beforeCommit: () => checkLease(ctx),
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
  await env.journal.updateTable(plan.id, move.moveNo, table.name, { cleanupCursor: result.cursor });
  return 'ok';
}

/** Bytes a cleanup deleted from the source: rows deleted since `before` × the copy's average row size. */
export function deletedBytes(progress: TableProgress, before: number): number {
  const perRow = progress.rowsCopied > 0 ? progress.bytesCopied / progress.rowsCopied : 0;
  return Math.max(0, progress.rowsDeleted - before) * perRow;
}

/** Rows done of rows expected, the rate in this run, and an ETA. */
export function reportProgress(
  ctx: MoveContext,
  move: MoveRecord,
  table: string,
  phase: 'copy' | 'catch-up' | 'cleanup',
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
