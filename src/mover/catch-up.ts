import { multirangeLiteral, type Interval } from '../core/move-plan.js';
import type { PgClient } from '../postgres/connect.js';
import { quoteIdent, quoteLiteral } from '../postgres/ident.js';
import { OperationError } from '../errors.js';
import { deleteChanges, pkJson, readChanges, type ChangeRecord } from './capture.js';
import { copiedRowsChecksum, sourceUnchangedSince, type MoveTableId } from './block-copy.js';
import { rowsInRanges } from './copy-range.js';
import { accessSettings, type RangeAccess } from './range-access.js';
import { columnList, hashExpression, rowDigest, rowDigestValue, type RowDigestKind, type TableShape } from './table-shape.js';
import { rangeChecksum, type RangeChecksum } from './verify.js';

/**
 * Replay of captured changes (capture.ts) from an online move's source to its
 * target, by primary key: each key's row is read from the source as it is now
 * and written to the target (inserted, or updated in place), or deleted from
 * the target when the source no longer has it in the moving ranges. Replay
 * is therefore idempotent and order-free: a key replayed twice, or out of
 * order, ends as the source has it. Values travel as their text forms (the
 * types' own output and input functions, as COPY's text format does), so
 * large values, jsonb, numeric, bigints and timestamps arrive exactly.
 */

/** Keys per table, as the capture triggers' primary-key jsonb text. */
export type KeysByTable = Map<string, Set<string>>;

function inRanges(shape: TableShape, ranges: Interval[], alias: string): string {
  return `${quoteLiteral(multirangeLiteral(ranges))}::int8multirange @> ${hashExpression(shape, alias)}`;
}

function pkJoin(shape: TableShape, a: string, b: string): string {
  return shape.primaryKey.map((c) => `${a}.${quoteIdent(c.name)} = ${b}.${quoteIdent(c.name)}`).join(' AND ');
}

function keysJson(keys: Iterable<string>): string {
  return `[${[...keys].join(',')}]`;
}

/** The source's rows of these keys that are in the ranges: primary key text and the row's column texts as a JSON array. */
async function readRows(source: PgClient, shape: TableShape, ranges: Interval[], keys: string[]): Promise<Array<{ pk: string; v: string }>> {
  const values = `to_jsonb(ARRAY[${shape.columns.map((c) => `t.${quoteIdent(c.name)}::text`).join(', ')}]::text[])::text`;
  const { rows } = await source.query<{ pk: string; v: string }>(
    `SELECT ${pkJson(shape, 't')} AS pk, ${values} AS v
       FROM ${shape.sqlName} t JOIN jsonb_populate_recordset(NULL::${shape.sqlName}, $1::jsonb) k ON ${pkJoin(shape, 't', 'k')}
      WHERE ${inRanges(shape, ranges, 't')}`,
    [keysJson(keys)],
  );
  return rows;
}

/** Deletes these keys' rows of the ranges from the target. */
async function deleteKeys(target: PgClient, shape: TableShape, ranges: Interval[], keys: string[]): Promise<number> {
  if (!keys.length) return 0;
  const { rowCount } = await target.query(
    `DELETE FROM ${shape.sqlName} t USING jsonb_populate_recordset(NULL::${shape.sqlName}, $1::jsonb) k WHERE ${pkJoin(shape, 't', 'k')} AND ${inRanges(shape, ranges, 't')}`,
    [keysJson(keys)],
  );
  return rowCount ?? 0;
}

/**
 * Writes the rows to the target: inserted, or updated in place where the key
 * is there (never delete-and-insert: a cascading foreign key would take the
 * children with it). A conflicting row outside the ranges (the target's own)
 * is left alone, and verification then finds the difference.
 */
async function upsertRows(target: PgClient, shape: TableShape, ranges: Interval[], rows: Array<{ v: string }>): Promise<number> {
  if (!rows.length) return 0;
  const casts = shape.columns.map((c, i) => `CAST(r ->> ${i} AS ${c.type})`).join(', ');
  const pk = new Set(shape.primaryKey.map((c) => c.name));
  const rest = shape.columns.filter((c) => !pk.has(c.name));
  const onConflict = rest.length
    ? `ON CONFLICT (${columnList(shape.primaryKey)}) DO UPDATE SET ${rest.map((c) => `${quoteIdent(c.name)} = EXCLUDED.${quoteIdent(c.name)}`).join(', ')} WHERE ${inRanges(shape, ranges, 'x')}`
    : 'ON CONFLICT DO NOTHING';
  const { rowCount } = await target.query(
    `INSERT INTO ${shape.sqlName} AS x (${columnList(shape.columns)}) SELECT ${casts} FROM jsonb_array_elements($1::jsonb) r ${onConflict}`,
    [`[${rows.map((r) => r.v).join(',')}]`],
  );
  return rowCount ?? 0;
}

export interface ReplayResult {
  /** Rows written to the target (inserted or updated) and deleted there. */
  written: number;
  deleted: number;
  bytes: number;
}

/** An online move's two sessions and what they replay between them. */
export interface ReplayPair {
  source: PgClient;
  target: PgClient;
  /** The source shard's id, for messages. */
  shard: string;
  /** The move's tag (capture.ts). */
  tag: string;
  /** Parents first. */
  shapes: TableShape[];
  ranges: Interval[];
  /** Runs just before each target commit (the run's lease check). */
  beforeCommit?: () => Promise<void>;
  /** When set, replay notes what the copy had written for each key it replaces first (see ReplayTracker). */
  tracker?: ReplayTracker;
}

/**
 * What replay has replaced on the target since the copy, per table: every key
 * replayed, and the count and digest sum of the target's rows those keys had
 * when first replayed (the versions the copy wrote). With the copy's batch
 * records, this lets the whole-range comparison check the target without
 * reading the source again (snapshotCompare). Valid only when it has seen
 * every replay since the copy.
 */
export interface ReplayTracker {
  digests: Map<string, RowDigestKind>;
  tables: Map<string, { keys: Set<string>; rows: number; sum: bigint }>;
  /** A replay that noted versions then rolled back: what was noted no longer matches the target. */
  lost: boolean;
}

export function newTracker(digests: Map<string, RowDigestKind>): ReplayTracker {
  return { digests, tables: new Map(), lost: false };
}

/**
 * Count and digest sum of the target's rows of these keys (in the ranges), as they are now;
 * with `copiedBy`, only those still as that copy's batches wrote them (copiedRowsChecksum).
 */
async function keyDigestSum(client: PgClient, shape: TableShape, ranges: Interval[], keys: string[], digest: RowDigestKind, copiedBy?: MoveTableId): Promise<{ rows: number; sum: bigint }> {
  let rows = 0;
  let sum = 0n;
  const copied = copiedBy
    ? ` AND t.xmin IN (SELECT b.xmin FROM shardctl.move_batches b WHERE b.plan_id = $2 AND b.move_no = $3 AND b.table_name = $4 AND b.kind = 'copied')`
    : '';
  for (let i = 0; i < keys.length; i += 5000) {
    const { rows: r } = await client.query<{ n: number; s: string }>(
      `SELECT count(*)::int AS n, coalesce(sum(${rowDigestValue(shape, 't', digest)}), 0)::text AS s
         FROM ${shape.sqlName} t JOIN jsonb_populate_recordset(NULL::${shape.sqlName}, $1::jsonb) k ON ${pkJoin(shape, 't', 'k')}
        WHERE ${inRanges(shape, ranges, 't')}${copied}`,
      [keysJson(keys.slice(i, i + 5000)), ...(copiedBy ? [copiedBy.planId, copiedBy.moveNo, copiedBy.table] : [])],
    );
    rows += r[0]!.n;
    sum += BigInt(r[0]!.s);
  }
  return { rows, sum };
}

/** Before a key's first replay: the target's row for it is what the copy wrote; note its digest. */
async function noteFirstReplays(pair: ReplayPair, shape: TableShape, keys: string[]): Promise<void> {
  const tracker = pair.tracker!;
  let entry = tracker.tables.get(shape.name);
  if (!entry) tracker.tables.set(shape.name, (entry = { keys: new Set(), rows: 0, sum: 0n }));
  const fresh = keys.filter((k) => !entry!.keys.has(k));
  if (!fresh.length) return;
  const found = await keyDigestSum(pair.target, shape, pair.ranges, fresh, tracker.digests.get(shape.name)!);
  entry.rows += found.rows;
  entry.sum += found.sum;
  for (const k of fresh) entry.keys.add(k);
}

/**
 * Replays the keys: reads their rows on the source (in whatever transaction
 * the source session is in: a snapshot, or each statement's own), then writes
 * the target in one transaction: deletes children first, writes parents
 * first (`shapes` lists parents first), so foreign keys hold.
 */
export async function replayKeys(pair: ReplayPair, keys: KeysByTable): Promise<ReplayResult> {
  const { source, target, ranges } = pair;
  const plan: Array<{ shape: TableShape; list: string[]; rows: Array<{ pk: string; v: string }>; absent: string[] }> = [];
  let bytes = 0;
  for (const shape of pair.shapes) {
    const wanted = keys.get(shape.name);
    if (!wanted?.size) continue;
    const list = [...wanted];
    const rows = await readRows(source, shape, ranges, list);
    const present = new Set(rows.map((r) => r.pk));
    for (const r of rows) bytes += r.v.length;
    plan.push({ shape, list, rows, absent: list.filter((k) => !present.has(k)) });
  }
  const result: ReplayResult = { written: 0, deleted: 0, bytes };
  if (!plan.length) return result;
  await target.query('BEGIN');
  try {
    if (pair.tracker) for (const p of plan) await noteFirstReplays(pair, p.shape, p.list);
    for (const p of [...plan].reverse()) result.deleted += await deleteKeys(target, p.shape, ranges, p.absent);
    for (const p of plan) result.written += await upsertRows(target, p.shape, ranges, p.rows);
    await pair.beforeCommit?.();
    await target.query('COMMIT');
  } catch (err) {
    await target.query('ROLLBACK').catch(() => {});
    // What was noted belongs to a transaction that did not commit: the tracker no longer knows the copy's versions.
    if (pair.tracker) pair.tracker.lost = true;
    throw err;
  }
  return result;
}

/** Groups change records by table; a TRUNCATE marker stops the move. */
export function keysOf(changes: ChangeRecord[], shard: string): KeysByTable {
  const keys: KeysByTable = new Map();
  for (const c of changes) {
    if (c.pk === null) {
      throw new OperationError(
        `${c.table} was truncated on shard ${shard} during an online move: the move stopped (nothing was switched); \`shard abort\` it, then plan again`,
      );
    }
    let set = keys.get(c.table);
    if (!set) keys.set(c.table, (set = new Set()));
    set.add(c.pk);
  }
  return keys;
}

export function addKeys(into: KeysByTable, from: KeysByTable): void {
  for (const [table, set] of from) {
    let mine = into.get(table);
    if (!mine) into.set(table, (mine = new Set()));
    for (const k of set) mine.add(k);
  }
}

export function keyCount(keys: KeysByTable): number {
  let n = 0;
  for (const s of keys.values()) n += s.size;
  return n;
}

export interface RoundResult extends ReplayResult {
  taken: number;
  keys: KeysByTable;
}

/**
 * One catch-up round: the oldest `limit` change records (all with null),
 * replayed, then exactly those records deleted from the source. A crash in
 * between replays them again (harmless).
 */
export async function catchUpRound(pair: ReplayPair, limit: number | null): Promise<RoundResult> {
  const changes = await readChanges(pair.source, pair.tag, limit);
  const keys = keysOf(changes, pair.shard);
  const replay = await replayKeys(pair, keys);
  await deleteChanges(pair.source, pair.tag, changes.map((c) => c.id));
  return { ...replay, taken: changes.length, keys };
}

/** How each table's two sides are read for the whole-range comparison. */
export interface CompareSide {
  digest: RowDigestKind;
  sourceAccess: RangeAccess;
  targetAccess: RangeAccess;
  /** Hash once per distinct key (keysRepeat), on each side. */
  memo: boolean;
  targetMemo: boolean;
  /**
   * A block-ordered copy made in one snapshot: what its batch records say was
   * read, and that snapshot. When the source table is provably unchanged
   * since (sourceUnchangedSince, in the comparison's snapshot), the records
   * stand for the source's side and the source is not hashed again.
   */
  recorded?: { rows: number; sum: string; snapshot: { xmin: string; tableRows: number } | null };
  /** That copy's batch records (a block-ordered copy): with a tracker, the target's side is read from them too (targetSince). */
  copiedBy?: MoveTableId;
}

export interface TableComparison {
  table: string;
  source: RangeChecksum;
  target: RangeChecksum;
  /** How the source's side was had: its copy's records and the keys replayed since, the records alone (unchanged), or read in full. */
  sourceSide: 'records+replayed' | 'records' | 'read';
}

/**
 * The whole-range comparison of an online move, unfenced: the source is read
 * in one REPEATABLE READ snapshot; first the change records visible in it are
 * replayed from that same snapshot, so the target then holds exactly the
 * snapshot's rows (the target is written by nobody else); then count and
 * checksum of both sides are compared, table by table. Changes committed
 * after the snapshot stay in the change table for later rounds, and only
 * those keys need checking again inside the fence.
 */
export async function snapshotCompare(pair: ReplayPair, sides: Map<string, CompareSide>): Promise<{ tables: TableComparison[]; replayed: number }> {
  const { source, target, shapes, ranges } = pair;
  await source.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  let ids: string[] = [];
  let replayed = 0;
  const tables: TableComparison[] = [];
  try {
    const changes = await readChanges(source, pair.tag, null);
    ids = changes.map((c) => c.id);
    replayed = (await replayKeys(pair, keysOf(changes, pair.shard))).written;
    for (const shape of shapes) {
      const side = sides.get(shape.name)!;
      const tracked = side.recorded && pair.tracker && !pair.tracker.lost && pair.tracker.digests.get(shape.name) === side.digest;
      // With every replay tracked, neither side needs its table hashed in full.
      const t = tracked && side.copiedBy ? await targetSince(pair, shape, side) : await rangeChecksum(target, shape, ranges, side.digest, side.targetMemo, side.targetAccess);
      if (tracked) {
        tables.push({ table: shape.name, source: await replacedSince(pair, shape, side), target: t, sourceSide: 'records+replayed' });
        continue;
      }
      let s: RangeChecksum;
      let how: TableComparison['sourceSide'] = 'read';
      if (side.recorded?.snapshot && (await sourceUnchangedSince(source, shape, side.recorded.snapshot))) {
        s = { rows: side.recorded.rows, sum: side.recorded.sum };
        how = 'records';
      } else {
        const settings = accessSettings(side.sourceAccess, true);
        if (settings) await source.query(settings);
        const { rows } = await source.query<{ rows: number; sum: string }>(
          `SELECT count(*)::bigint AS rows, coalesce(sum(${rowDigestValue(shape, 's', side.digest)}), 0)::text AS sum FROM ${rowsInRanges(shape, ranges, -1, side.sourceAccess, side.memo)}`,
        );
        s = { rows: Number(rows[0]!.rows), sum: rows[0]!.sum };
      }
      tables.push({ table: shape.name, source: s, target: t, sourceSide: how });
    }
    await source.query('COMMIT');
  } catch (err) {
    await source.query('ROLLBACK').catch(() => {});
    throw err;
  }
  await deleteChanges(source, pair.tag, ids);
  return { tables, replayed };
}

/**
 * The target's side of the comparison without hashing every row of its
 * table, when replay has tracked every key it wrote since the copy (K): the
 * target's rows of the ranges were written either by the copy's batches or
 * by replay, which wrote only keys of K (each write a new row version), so
 *   the rows still as the copy wrote them (found by its batches' xids)
 *   − those of them whose key is in K (a replay that changed nothing leaves one) + the rows of K now.
 * A row the copy wrote and something else changed since counts in neither
 * term: the sides then differ, as they should.
 */
async function targetSince(pair: ReplayPair, shape: TableShape, side: CompareSide): Promise<RangeChecksum> {
  const keys = [...(pair.tracker!.tables.get(shape.name)?.keys ?? [])];
  const copied = await copiedRowsChecksum(pair.target, shape, side.copiedBy!, side.digest);
  const kept = await keyDigestSum(pair.target, shape, pair.ranges, keys, side.digest, side.copiedBy);
  const now = await keyDigestSum(pair.target, shape, pair.ranges, keys, side.digest);
  return { rows: copied.rows - kept.rows + now.rows, sum: (BigInt(copied.sum) - kept.sum + now.sum).toString() };
}

/**
 * The source's side of the comparison without reading the whole source table
 * again, when replay has tracked every key it replaced since the copy (K).
 * A row whose key was never captured is as the copy read it (the capture
 * records every change), so the source in the snapshot sums to
 *   records − (the copy's versions of K, noted from the target at their first replay) + the snapshot's rows of K,
 * where the last term is read by primary key. The target's side is read
 * from the target's own rows (targetSince, or in full), so a copy that did
 * not land as read still shows.
 */
async function replacedSince(pair: ReplayPair, shape: TableShape, side: CompareSide): Promise<RangeChecksum> {
  const entry = pair.tracker!.tables.get(shape.name) ?? { keys: new Set<string>(), rows: 0, sum: 0n };
  // The source session is in the comparison's snapshot.
  const inSnapshot = await keyDigestSum(pair.source, shape, pair.ranges, [...entry.keys], side.digest);
  return {
    rows: side.recorded!.rows - entry.rows + inSnapshot.rows,
    sum: (BigInt(side.recorded!.sum) - entry.sum + inSnapshot.sum).toString(),
  };
}

/**
 * Inside the fence: the keys replayed since the whole-range comparison, row
 * by row on both sides (absent on both counts as equal). Returns the keys
 * that differ, per table.
 */
export async function compareKeys(source: PgClient, target: PgClient, shapes: TableShape[], ranges: Interval[], keys: KeysByTable, digests: Map<string, RowDigestKind>): Promise<Array<{ table: string; keys: string[] }>> {
  const out: Array<{ table: string; keys: string[] }> = [];
  for (const shape of shapes) {
    const wanted = keys.get(shape.name);
    if (!wanted?.size) continue;
    const list = [...wanted];
    const differing: string[] = [];
    for (let i = 0; i < list.length; i += 5000) {
      const chunk = list.slice(i, i + 5000);
      const sql = `SELECT ${pkJson(shape, 't')} AS pk, ${rowDigest(shape, 't', digests.get(shape.name)!)} AS d
                     FROM ${shape.sqlName} t JOIN jsonb_populate_recordset(NULL::${shape.sqlName}, $1::jsonb) k ON ${pkJoin(shape, 't', 'k')}
                    WHERE ${inRanges(shape, ranges, 't')}`;
      const [a, b] = await Promise.all([source.query<{ pk: string; d: string }>(sql, [keysJson(chunk)]), target.query<{ pk: string; d: string }>(sql, [keysJson(chunk)])]);
      const onTarget = new Map(b.rows.map((r) => [r.pk, r.d]));
      for (const r of a.rows) {
        if (onTarget.get(r.pk) !== r.d) differing.push(r.pk);
        onTarget.delete(r.pk);
      }
      differing.push(...onTarget.keys());
    }
    if (differing.length) out.push({ table: shape.name, keys: differing });
  }
  return out;
}
