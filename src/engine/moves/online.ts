import { setTimeout as sleep } from 'node:timers/promises';
import { caughtUp, fenceBackoffMs, fenceMarginMs, needsSnapshotVerify } from '../../core/catch-up.js';
import { onlineResumeState, type MoveState } from '../../core/move-state.js';
import { OperationError } from '../../errors.js';
import type { MoveRecord, OnlineStats, PlanRecord } from '../../metadata/journal.js';
import type { PgClient } from '../../postgres/connect.js';
import { blockCopyState, forgetBatches } from '../../mover/block-copy.js';
import {
  assertOnlineSupported,
  captureProblems,
  changeBacklog,
  installCapture,
  liftFence,
  makeFencePermanent,
  moveTag,
  raiseFence,
  removeCapture,
  waitForWritersBefore,
} from '../../mover/capture.js';
import { addKeys, catchUpRound, compareKeys, keyCount, newTracker, snapshotCompare, type CompareSide, type KeysByTable, type ReplayPair, type ReplayTracker } from '../../mover/catch-up.js';
import { deleteFencedRows } from '../../mover/cleanup.js';
import { rangeAccessFor } from '../../mover/range-access.js';
import { chooseDigest, describeTable, keysRepeat, relationBytes, type RowDigestKind, type TableShape } from '../../mover/table-shape.js';
import { withConnections } from './env.js';
import {
  assertTargetEmpty,
  checkLease,
  clearCopy,
  copyTables,
  deletedBytes,
  failOrLost,
  reportProgress,
  tableId,
  type MoveContext,
  type Outcome,
} from './phases.js';

/**
 * The online phases of a fresh move (README, "Online moves"): capture before
 * the copy, catch-up after it, then, for every move of the plan at once, the
 * fence, the last changes and their verification; after the switch a cleanup
 * that keeps the fence until the source's rows are gone.
 */

/** An online move as this run knows it beyond the journal. */
export interface LiveMove {
  /** Keys replayed since the last whole-range comparison: checked one by one inside the fence. */
  dirty: KeysByTable;
  /** Whether a whole-range comparison succeeded in this run (else one runs before the fence). */
  compared: boolean;
  /** Tables with changes replayed in this run: their source is known to have changed since the copy. */
  changed: Set<string>;
  /** Whether replay can be tracked since the copy (no replay in an earlier run), and the tracker once made. */
  trackable: boolean;
  tracker: ReplayTracker | null;
}

/** Change records a catch-up round takes at most. */
const ROUND_LIMIT = 5000;
/** Fences tried before the plan fails (resumable) for want of a quiet enough moment. */
const FENCE_ATTEMPTS = 6;
/** Heap blocks per cleanup transaction (about 40 MB of heap, as many as five offline cleanup batches of 10,000 rows of ~250 B span): each transaction also journals, so fewer pay. */
const CLEANUP_BLOCKS = 5000;

export interface OnlineSettings {
  fenceTimeoutMs: number;
  /** lock_timeout of the trigger DDL. */
  lockTimeoutMs: number;
}

export function isOnlineMove(plan: PlanRecord, move: MoveRecord): boolean {
  return plan.options.online === true && move.mode === 'fresh';
}

function liveOf(ctx: MoveContext, move: MoveRecord): LiveMove {
  let live = ctx.live.get(move.moveNo);
  if (!live) {
    ctx.live.set(move.moveNo, (live = { dirty: new Map(), compared: false, changed: new Set(), trackable: false, tracker: null }));
  }
  return live;
}

async function shapesOn(ctx: MoveContext, client: PgClient, shard: string): Promise<TableShape[]> {
  const shapes: TableShape[] = [];
  for (const t of ctx.env.tables) shapes.push(await ctx.env.shapeOn(client, shard, t));
  return shapes;
}

/** A table's columns and primary key, as text to compare. */
function shapeSignature(s: TableShape | null): string {
  return s ? `${s.allColumns.map((c) => `${c.name} ${c.type}`).join(', ')} / pk ${s.primaryKey.map((c) => c.name).join(', ')}` : 'dropped';
}

/**
 * DDL on a moving table (columns or primary key changed since capture began,
 * as journaled then, so also between runs) stops the move.
 */
async function assertShapesUnchanged(ctx: MoveContext, client: PgClient, move: MoveRecord, shapes: TableShape[]): Promise<void> {
  for (const [i, shape] of shapes.entries()) {
    const then = move.online?.shapes?.[shape.name] ?? shapeSignature(shape);
    const now = shapeSignature(await describeTable(client, ctx.env.tables[i]!));
    if (now !== then) {
      throw new OperationError(
        `${shape.name} changed on shard ${move.source} during an online move (${then} → ${now}): the move stopped (nothing was switched); \`shard abort\` it, then plan again`,
      );
    }
  }
}

/** The capture and fence triggers all present and ENABLE ALWAYS; else the move stops (resume installs them again and copies again). */
async function assertCaptureIntact(source: PgClient, plan: PlanRecord, move: MoveRecord, shapes: TableShape[]): Promise<void> {
  const problems = await captureProblems(source, { planId: plan.id, moveNo: move.moveNo, shapes });
  if (problems.length) {
    throw new OperationError(`the change capture of move ${move.moveNo} on shard ${move.source} was altered during the move (${problems.join('; ')}): changes may have been missed; \`shard resume\` installs it again and copies again`);
  }
}

async function record(ctx: MoveContext, plan: PlanRecord, move: MoveRecord, stats: OnlineStats): Promise<void> {
  move.online = { ...(move.online ?? {}), ...stats };
  await ctx.env.journal.setOnline(plan.id, move.moveNo, stats);
}

/**
 * Capture, copy and catch-up of one online move, up to "caught up and the
 * whole ranges compared": the fence comes after, for all moves at once
 * (fenceAndVerify). Resumes from any journaled state.
 */
export async function prepareOnline(ctx: MoveContext, plan: PlanRecord, move: MoveRecord, settings: OnlineSettings): Promise<Outcome> {
  const { env } = ctx;
  let state: MoveState = onlineResumeState(move.state);
  const setState = async (next: MoveState) => {
    await env.journal.setMoveState(plan.id, move.moveNo, next);
    state = next;
    move.state = next;
    ctx.options.onEvent?.({ type: 'move-state', moveNo: move.moveNo, source: move.source, target: move.target, state: next });
  };
  // The tracker can stand for the source only when it sees every replay since the copy: when the
  // copy is (still) this run's, since replay starts after it.
  const live = liveOf(ctx, move);
  if (!live.tracker) live.trackable = state === 'planned' || state === 'capturing' || state === 'copying';
  try {
    if (state === 'planned') {
      await assertTargetEmpty(ctx, move);
      await setState('capturing');
    }
    if (state === 'capturing') {
      await ctx.meter.time('capture', { moveNo: move.moveNo }, () => withConnections([env.connect(move.source, 'shard move')], async (source) => {
        await assertOnlineSupported(source!, move.source);
        const shapes = await shapesOn(ctx, source!, move.source);
        await installCapture(source!, { planId: plan.id, moveNo: move.moveNo, ranges: move.ranges, shapes }, settings, () => checkLease(ctx));
        await record(ctx, plan, move, { shapes: Object.fromEntries(shapes.map((s) => [s.name, shapeSignature(s)])) });
      }));
      await setState('copying');
    } else if ((await repairCapture(ctx, plan, move, settings)) === 'recopy') {
      await setState('copying');
    }
    for (let attempt = 0; ; attempt++) {
      if (state === 'copying') {
        if ((await copyTables(ctx, plan, move)) === 'stopped') return 'stopped';
        await setState('copied');
      }
      if (state !== 'catching-up') await setState('catching-up');
      const compared = await catchUpAndCompare(ctx, plan, move, true);
      if (compared === 'stopped') return 'stopped';
      if (!compared.length) return 'ok';
      if (attempt >= 2) throw new OperationError(`move ${move.source} → ${move.target} does not verify after ${attempt + 1} attempts: ${compared.join('; ')}`);
      // The copy differs from the source beyond what the capture explains: copy those tables again (capture goes on).
      for (const name of compared) await resetCopy(ctx, plan, move, name);
      await setState('copying');
    }
  } catch (err) {
    return failOrLost(ctx, plan, move, state, err);
  }
}

/** Copy a table again from scratch: its rows of the ranges and batch records off the target, its cursors reset. */
async function resetCopy(ctx: MoveContext, plan: PlanRecord, move: MoveRecord, name: string): Promise<void> {
  const progress = move.tables.find((t) => t.table === name)!;
  await clearCopy(ctx, move, tableId(plan, move, name));
  // A new copy of the table: what replay noted of the old one no longer applies; its first replays are noted again.
  const live = liveOf(ctx, move);
  live.tracker?.tables.delete(name);
  live.changed.delete(name);
  const reset = { copyCursor: -1, copyDone: false, rowsCopied: 0, bytesCopied: 0, resyncs: progress.resyncs + 1, copySnapshotXmin: null, copyTableRows: null };
  Object.assign(progress, reset);
  await ctx.env.journal.updateTable(plan.id, move.moveNo, name, reset);
}

/**
 * On resume: the capture must have run without a gap since before the copy
 * began, or the change table misses writes. A trigger gone or disabled
 * (someone dropped it, a restore) means the copy cannot be trusted: the
 * capture is installed again and every table copied again.
 */
async function repairCapture(ctx: MoveContext, plan: PlanRecord, move: MoveRecord, settings: OnlineSettings): Promise<'intact' | 'recopy'> {
  const { env } = ctx;
  const problems = await withConnections([env.connect(move.source, 'shard move')], async (source) => {
    const shapes = await shapesOn(ctx, source!, move.source);
    const found = await captureProblems(source!, { planId: plan.id, moveNo: move.moveNo, shapes });
    if (found.length) await installCapture(source!, { planId: plan.id, moveNo: move.moveNo, ranges: move.ranges, shapes }, settings, () => checkLease(ctx));
    return found;
  });
  if (!problems.length) return 'intact';
  for (const table of env.tables) await resetCopy(ctx, plan, move, table.name);
  ctx.live.delete(move.moveNo);
  // Every table is copied again in this run: replay since then can be tracked.
  liveOf(ctx, move).trackable = true;
  return 'recopy';
}

async function digestsFor(source: PgClient, target: PgClient, shapes: TableShape[]): Promise<Map<string, RowDigestKind>> {
  const digests = new Map<string, RowDigestKind>();
  for (const shape of shapes) digests.set(shape.name, await chooseDigest(source, target, shape));
  return digests;
}

/**
 * Catch-up rounds until a round finds the backlog empty, then (when the keys
 * to check in the fence would be too many, or nothing was compared in this
 * run) the whole-range comparison in a source snapshot. Returns the tables
 * that differ, or 'stopped' when the run's budget or a signal ends it.
 */
async function catchUpAndCompare(ctx: MoveContext, plan: PlanRecord, move: MoveRecord, compare: boolean): Promise<string[] | 'stopped'> {
  const { env } = ctx;
  const live = liveOf(ctx, move);
  const tag = moveTag(plan.id, move.moveNo);
  return withConnections([env.connect(move.source, 'shard catch-up'), env.connect(move.target, 'shard catch-up')], async (source, target) => {
    // A fence left by a run that died (it lapses by itself; a permanent one before the switch would not).
    await liftFence(source!, tag);
    const shapes = await shapesOn(ctx, source!, move.source);
    await assertShapesUnchanged(ctx, source!, move, shapes);
    await assertCaptureIntact(source!, plan, move, shapes);
    // Tracked from the first replay after a copy of this run: the comparison then need not read the source again.
    if (live.trackable && !live.tracker) live.tracker = newTracker(await digestsFor(source!, target!, shapes));
    const pair: ReplayPair = { source: source!, target: target!, shard: move.source, tag, shapes, ranges: move.ranges, beforeCommit: () => checkLease(ctx), ...(live.tracker ? { tracker: live.tracker } : {}) };
    const started = Date.now();
    let replayed = 0;
    let rounds = 0;
    for (;;) {
      const roundStarted = performance.now();
      const round = await catchUpRound(pair, ROUND_LIMIT);
      ctx.meter.add('catch-up', { moveNo: move.moveNo }, { seconds: (performance.now() - roundStarted) / 1000, bytesRead: round.bytes, bytesWritten: round.bytes });
      rounds++;
      replayed += round.written + round.deleted;
      addKeys(live.dirty, round.keys);
      for (const table of round.keys.keys()) live.changed.add(table);
      const rate = replayed / Math.max(0.001, (Date.now() - started) / 1000);
      reportProgress(ctx, move, ctx.env.tables[0]!.name, 'catch-up', { done: replayed, thisCall: replayed, estRows: replayed + (caughtUp({ taken: round.taken, limit: ROUND_LIMIT }) ? 0 : ROUND_LIMIT), startedAt: started });
      if (caughtUp({ taken: round.taken, limit: ROUND_LIMIT })) {
        await record(ctx, plan, move, {
          backlog: await changeBacklog(source!, tag),
          replayedRows: (move.online?.replayedRows ?? 0) + replayed,
          rowsPerSecond: Math.round(rate),
          catchUpRounds: (move.online?.catchUpRounds ?? 0) + rounds,
        });
        break;
      }
      if (ctx.budget.stopReason() !== null) return 'stopped';
    }
    if (!compare || !needsSnapshotVerify(keyCount(live.dirty), live.compared)) return [];
    const sides = new Map<string, CompareSide>();
    const digests = live.tracker?.digests ?? (await digestsFor(source!, target!, shapes));
    for (const shape of shapes) {
      const progress = move.tables.find((t) => t.table === shape.name)!;
      // A table whose moving rows changed since the copy cannot be unchanged: skip the check (a scan of the table).
      const unchangedKnown = !live.changed.has(shape.name);
      const snapshot =
        unchangedKnown && progress.copyOrder === 'block' && progress.copySnapshotXmin !== null && progress.copyTableRows !== null
          ? { xmin: progress.copySnapshotXmin, tableRows: progress.copyTableRows }
          : null;
      const records = progress.copyOrder === 'block' ? await blockCopyState(target!, tableId(plan, move, shape.name)) : null;
      sides.set(shape.name, {
        digest: digests.get(shape.name)!,
        sourceAccess: await rangeAccessFor(source!, shape, move.ranges),
        targetAccess: await rangeAccessFor(target!, shape, move.ranges),
        memo: await keysRepeat(source!, shape),
        targetMemo: await keysRepeat(target!, shape),
        ...(records ? { recorded: { rows: records.rows, sum: records.sum.toString(), snapshot }, copiedBy: tableId(plan, move, shape.name) } : {}),
      });
    }
    live.dirty = new Map();
    const compareStarted = performance.now();
    const result = await snapshotCompare(pair, sides);
    // Bytes read: the heaps scanned in full (every target table; a source table only when read again).
    let bytesRead = 0;
    for (const t of result.tables) {
      const shape = shapes.find((x) => x.name === t.table)!;
      bytesRead += (await relationBytes(target!, shape)) + (t.sourceSide === 'read' ? await relationBytes(source!, shape) : 0);
    }
    ctx.meter.add('verify', { moveNo: move.moveNo }, { seconds: (performance.now() - compareStarted) / 1000, bytesRead });
    const mismatches: string[] = [];
    for (const t of result.tables) {
      await env.journal.updateTable(plan.id, move.moveNo, t.table, { sourceRows: t.source.rows, sourceSum: t.source.sum, targetRows: t.target.rows, targetSum: t.target.sum });
      if (t.source.rows !== t.target.rows || BigInt(t.source.sum) !== BigInt(t.target.sum)) mismatches.push(t.table);
    }
    live.compared = mismatches.length === 0;
    await record(ctx, plan, move, { compared: Object.fromEntries(result.tables.map((t) => [t.table, t.sourceSide])) });
    return mismatches;
  });
}

interface FenceSession {
  move: MoveRecord;
  tag: string;
  source: PgClient;
  target: PgClient;
  shapes: TableShape[];
  digests: Map<string, RowDigestKind>;
}

type FenceResult = { ok: true } | { ok: false; reason: string; mismatch?: boolean };

/**
 * The fence for every online move of the plan at once (the ring switches
 * once, for all of them): raise each source's fence until the deadline, wait
 * for the writers that may have passed it before it rose, replay the last
 * changes, compare the keys replayed since the whole-range comparison, and
 * make every fence permanent while each deadline still has its margin.
 * Otherwise every fence is lifted, the moves catch up again, and the fence is
 * tried again after a jittered pause, up to FENCE_ATTEMPTS times.
 */
export async function fenceAndVerify(ctx: MoveContext, plan: PlanRecord, settings: OnlineSettings): Promise<Outcome> {
  const { env } = ctx;
  const moves = plan.moves.filter((m) => isOnlineMove(plan, m) && m.state !== 'failed' && m.state !== 'aborted');
  if (!moves.length) return 'ok';
  const clients = moves.flatMap((m) => [env.connect(m.source, 'shard fence'), env.connect(m.target, 'shard fence')]);
  try {
    return await withConnections(clients, async (...open) => {
      const sessions: FenceSession[] = [];
      for (const [i, move] of moves.entries()) {
        const source = open[2 * i]!;
        const target = open[2 * i + 1]!;
        const shapes = await shapesOn(ctx, source, move.source);
        sessions.push({ move, tag: moveTag(plan.id, move.moveNo), source, target, shapes, digests: await digestsFor(source, target, shapes) });
      }
      const margin = fenceMarginMs(settings.fenceTimeoutMs);
      for (let attempt = 1; ; attempt++) {
        // Unfenced first: the backlog that built up while other moves copied, and a whole-range comparison where due.
        const caught = await Promise.all(sessions.map((s) => catchUpAndCompare(ctx, plan, s.move, true)));
        if (caught.includes('stopped')) return 'stopped';
        for (const [i, s] of sessions.entries()) {
          const mismatches = caught[i] as string[];
          if (mismatches.length) throw new OperationError(`move ${s.move.source} → ${s.move.target}: ${mismatches.join(', ')} differ from the source after catch-up`);
        }
        for (const s of sessions) {
          await env.journal.setMoveState(plan.id, s.move.moveNo, 'fenced');
          ctx.options.onEvent?.({ type: 'move-state', moveNo: s.move.moveNo, source: s.move.source, target: s.move.target, state: 'fenced' });
        }
        await checkLease(ctx);
        const raisedAt = Date.now();
        let results: FenceResult[];
        try {
          results = await Promise.all(sessions.map((s) => fenceOne(ctx, plan, s, settings.fenceTimeoutMs, margin)));
        } catch (err) {
          // The fence would lapse by itself at its deadline; lifting it now lets writers through at once.
          await Promise.all(sessions.map((s) => liftFence(s.source, s.tag).catch(() => {})));
          throw err;
        }
        let held = results.every((r) => r.ok);
        if (held) held = (await Promise.all(sessions.map((s) => makeFencePermanent(s.source, s.tag, margin)))).every(Boolean);
        const ms = Date.now() - raisedAt;
        if (!held) await Promise.all(sessions.map((s) => liftFence(s.source, s.tag)));
        for (const [i, s] of sessions.entries()) {
          const r = results[i]!;
          ctx.meter.add('fence', { moveNo: s.move.moveNo }, { seconds: ms / 1000 });
          await record(ctx, plan, s.move, {
            fenceAttempts: (s.move.online?.fenceAttempts ?? 0) + 1,
            longestFenceMs: Math.max(s.move.online?.longestFenceMs ?? 0, ms),
            lastFenceMs: ms,
          });
          ctx.options.onEvent?.({ type: 'fence', moveNo: s.move.moveNo, source: s.move.source, target: s.move.target, outcome: held ? 'held' : 'missed', ms, ...(!r.ok ? { reason: r.reason } : {}) });
        }
        if (held) {
          for (const s of sessions) {
            await env.journal.setMoveState(plan.id, s.move.moveNo, 'verified');
            s.move.state = 'verified';
            ctx.options.onEvent?.({ type: 'move-state', moveNo: s.move.moveNo, source: s.move.source, target: s.move.target, state: 'verified' });
          }
          return 'ok';
        }
        for (const s of sessions) {
          await env.journal.setMoveState(plan.id, s.move.moveNo, 'catching-up');
          ctx.options.onEvent?.({ type: 'move-state', moveNo: s.move.moveNo, source: s.move.source, target: s.move.target, state: 'catching-up' });
        }
        const mismatch = results.find((r): r is Extract<FenceResult, { ok: false }> => !r.ok && !!r.mismatch);
        if (mismatch) throw new OperationError(`inside the fence: ${mismatch.reason}`);
        if (attempt >= FENCE_ATTEMPTS) {
          const reasons = [...new Set(results.flatMap((r) => (r.ok ? [] : [r.reason])))];
          throw new OperationError(
            `the fence missed its deadline (--fence-timeout ${settings.fenceTimeoutMs} ms) ${attempt} times${reasons.length ? ` (${reasons.join('; ')})` : ''}: writes to the moving ranges were never refused for longer; \`shard resume\` tries again (a larger --fence-timeout, or a quieter hour)`,
          );
        }
        await sleep(fenceBackoffMs(attempt, Math.random()));
      }
    });
  } catch (err) {
    // Every move goes back to catching-up (failed, resumable); a lost lease journals nothing.
    let outcome: 'failed' | 'lost' = 'failed';
    for (const m of moves) if ((await failOrLost(ctx, plan, m, 'catching-up', err)) === 'lost') outcome = 'lost';
    return outcome;
  }
}

/** One move's part of the fence; never throws for a missed deadline, only reports it. */
async function fenceOne(ctx: MoveContext, plan: PlanRecord, s: FenceSession, ttlMs: number, marginMs: number): Promise<FenceResult> {
  const raised = await raiseFence(s.source, s.tag, ttlMs);
  const deadline = raised.untilMs - marginMs;
  await record(ctx, plan, s.move, { fencedUntil: new Date(raised.untilMs).toISOString() });
  if (!(await waitForWritersBefore(s.source, s.shapes.map((x) => x.name), raised.at, deadline))) {
    return { ok: false, reason: `transactions that were writing to ${s.shapes.map((x) => x.name).join(', ')} on ${s.move.source} when the fence rose did not finish in time` };
  }
  const live = liveOf(ctx, s.move);
  for (;;) {
    const round = await catchUpRound(
      { source: s.source, target: s.target, shard: s.move.source, tag: s.tag, shapes: s.shapes, ranges: s.move.ranges, beforeCommit: () => checkLease(ctx), ...(live.tracker ? { tracker: live.tracker } : {}) },
      ROUND_LIMIT,
    );
    ctx.meter.add('fence', { moveNo: s.move.moveNo }, { bytesRead: round.bytes, bytesWritten: round.bytes });
    addKeys(live.dirty, round.keys);
    if (caughtUp({ taken: round.taken, limit: ROUND_LIMIT })) break;
    if (Date.now() >= deadline) return { ok: false, reason: `the last changes on ${s.move.source} took longer than the fence` };
  }
  // A trigger disabled or dropped now would let writes through unfenced and uncaptured, and DDL now would
  // change what was compared: both checked before the switch.
  await assertCaptureIntact(s.source, plan, s.move, s.shapes);
  await assertShapesUnchanged(ctx, s.source, s.move, s.shapes);
  const differing = await compareKeys(s.source, s.target, s.shapes, s.move.ranges, live.dirty, s.digests);
  if (differing.length) {
    return { ok: false, mismatch: true, reason: `${differing.map((d) => `${d.table}: ${d.keys.length} key(s) differ (${d.keys.slice(0, 3).join(', ')})`).join('; ')} between ${s.move.source} and ${s.move.target}` };
  }
  await record(ctx, plan, s.move, { fencedUntil: null, backlog: 0 });
  return { ok: true };
}

/**
 * After the switch: the capture goes (the fence stays, now permanent), the
 * source's rows of the ranges are deleted span by span (deleteFencedRows),
 * then the fence and every other object of the move. Resumable by block cursor.
 */
export async function cleanupOnline(ctx: MoveContext, plan: PlanRecord, move: MoveRecord, settings: OnlineSettings): Promise<Outcome> {
  const { env } = ctx;
  if (move.state === 'cleaned') return 'ok';
  const tables = env.tables.map((t) => t.name);
  try {
    await ctx.meter.time('cleanup', { moveNo: move.moveNo }, () =>
      withConnections([env.connect(move.source, 'shard cleanup')], async (source) => {
        await checkLease(ctx);
        await removeCapture(source!, { planId: plan.id, moveNo: move.moveNo, tables }, settings, false);
      }),
    );
    for (const table of [...env.tables].reverse()) {
      const progress = move.tables.find((t) => t.table === table.name)!;
      if (progress.cleanupDone) continue;
      const startedAt = Date.now();
      const deletedBefore = progress.rowsDeleted;
      let thisCall = 0;
      const onBatch = async (batch: { cursor: number; affected: number; rowsDeleted: number }): Promise<boolean> => {
        progress.cleanupCursor = batch.cursor;
        progress.rowsDeleted = batch.rowsDeleted;
        thisCall += batch.affected;
        await env.journal.updateTable(plan.id, move.moveNo, table.name, { cleanupCursor: progress.cleanupCursor, rowsDeleted: progress.rowsDeleted });
        reportProgress(ctx, move, table.name, 'cleanup', { done: progress.rowsDeleted, thisCall, estRows: progress.sourceRows ?? move.estRows, startedAt });
        return ctx.budget.stopReason() === null;
      };
      const result = await withConnections([env.connect(move.source, 'shard cleanup')], async (source) => {
        const shape = await env.shapeOn(source!, move.source, table);
        return deleteFencedRows(source!, shape, {
          ranges: move.ranges,
          memo: await keysRepeat(source!, shape),
          id: tableId(plan, move, table.name),
          blocksPerBatch: CLEANUP_BLOCKS,
          beforeCommit: () => checkLease(ctx),
          onBatch,
        });
      });
      if (!result.done) return 'stopped';
      progress.cleanupDone = true;
      progress.rowsLeft = 0;
      progress.rowsDeleted = result.rowsDeleted;
      ctx.meter.add('cleanup', { moveNo: move.moveNo, table: table.name }, { seconds: (Date.now() - startedAt) / 1000, bytesWritten: deletedBytes(progress, deletedBefore) });
      await env.journal.updateTable(plan.id, move.moveNo, table.name, { cleanupDone: true, rowsLeft: 0, rowsDeleted: result.rowsDeleted });
    }
    await withConnections([env.connect(move.target, 'shard cleanup'), env.connect(move.source, 'shard cleanup')], async (target, source) => {
      await checkLease(ctx);
      await forgetBatches(target!, plan.id, move.moveNo);
      await forgetBatches(source!, plan.id, move.moveNo);
      await removeCapture(source!, { planId: plan.id, moveNo: move.moveNo, tables }, settings, true);
    });
    await env.journal.setMoveState(plan.id, move.moveNo, 'cleaned');
    ctx.options.onEvent?.({ type: 'move-state', moveNo: move.moveNo, source: move.source, target: move.target, state: 'cleaned' });
    return 'ok';
  } catch (err) {
    return failOrLost(ctx, plan, move, 'switched', err);
  }
}

/** `shard abort` of an online move: the fence lifted and every capture object dropped on the source. */
export async function removeOnlineObjects(ctx: Pick<MoveContext, 'env'>, plan: PlanRecord, move: MoveRecord, settings: OnlineSettings): Promise<void> {
  await withConnections([ctx.env.connect(move.source, 'shard abort')], async (source) => {
    await liftFence(source!, moveTag(plan.id, move.moveNo));
    await removeCapture(source!, { planId: plan.id, moveNo: move.moveNo, tables: ctx.env.tables.map((t) => t.name) }, settings, true);
  });
}

