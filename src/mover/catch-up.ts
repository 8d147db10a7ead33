import { multirangeLiteral, type Interval } from '../core/move-plan.js';
import type { PgClient } from '../postgres/connect.js';
import { quoteIdent, quoteLiteral } from '../postgres/ident.js';
import { OperationError } from '../errors.js';
import { deleteChanges, pkJson, readChanges, type ChangeRecord } from './capture.js';
import { sourceUnchangedSince } from './block-copy.js';
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

/**
 * Replays the keys: reads their rows on the source (in whatever transaction
 * the source session is in: a snapshot, or each statement's own), then writes
 * the target in one transaction: deletes children first, writes parents
 * first (`shapes` lists parents first), so foreign keys hold.
 */
export async function replayKeys(source: PgClient, target: PgClient, shapes: TableShape[], ranges: Interval[], keys: KeysByTable, beforeCommit?: () => Promise<void>): Promise<ReplayResult> {
  const plan: Array<{ shape: TableShape; rows: Array<{ pk: string; v: string }>; absent: string[] }> = [];
  let bytes = 0;
  for (const shape of shapes) {
    const wanted = keys.get(shape.name);
    if (!wanted?.size) continue;
    const list = [...wanted];
    const rows = await readRows(source, shape, ranges, list);
    const present = new Set(rows.map((r) => r.pk));
    for (const r of rows) bytes += r.v.length;
    plan.push({ shape, rows, absent: list.filter((k) => !present.has(k)) });
  }
  const result: ReplayResult = { written: 0, deleted: 0, bytes };
  if (!plan.length) return result;
  await target.query('BEGIN');
  try {
    for (const p of [...plan].reverse()) result.deleted += await deleteKeys(target, p.shape, ranges, p.absent);
    for (const p of plan) result.written += await upsertRows(target, p.shape, ranges, p.rows);
    await beforeCommit?.();
    await target.query('COMMIT');
  } catch (err) {
    await target.query('ROLLBACK').catch(() => {});
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
export async function catchUpRound(
  source: PgClient,
  target: PgClient,
  shard: string,
  tag: string,
  shapes: TableShape[],
  ranges: Interval[],
  limit: number | null,
  beforeCommit?: () => Promise<void>,
): Promise<RoundResult> {
  const changes = await readChanges(source, tag, limit);
  const keys = keysOf(changes, shard);
  const replay = await replayKeys(source, target, shapes, ranges, keys, beforeCommit);
  await deleteChanges(source, tag, changes.map((c) => c.id));
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
  recorded?: { rows: number; sum: string; snapshot: { xmin: string; tableRows: number } };
}

export interface TableComparison {
  table: string;
  source: RangeChecksum;
  target: RangeChecksum;
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
export async function snapshotCompare(
  source: PgClient,
  target: PgClient,
  shard: string,
  tag: string,
  shapes: TableShape[],
  ranges: Interval[],
  sides: Map<string, CompareSide>,
  beforeCommit?: () => Promise<void>,
): Promise<{ tables: TableComparison[]; replayed: number }> {
  await source.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  let ids: string[] = [];
  let replayed = 0;
  const tables: TableComparison[] = [];
  try {
    const changes = await readChanges(source, tag, null);
    ids = changes.map((c) => c.id);
    replayed = (await replayKeys(source, target, shapes, ranges, keysOf(changes, shard), beforeCommit)).written;
    for (const shape of shapes) {
      const side = sides.get(shape.name)!;
      const sourceSide = async (): Promise<RangeChecksum> => {
        if (side.recorded && (await sourceUnchangedSince(source, shape, side.recorded.snapshot))) return { rows: side.recorded.rows, sum: side.recorded.sum };
        const settings = accessSettings(side.sourceAccess, true);
        if (settings) await source.query(settings);
        const { rows } = await source.query<{ rows: number; sum: string }>(
          `SELECT count(*)::bigint AS rows, coalesce(sum(${rowDigestValue(shape, 's', side.digest)}), 0)::text AS sum FROM ${rowsInRanges(shape, ranges, -1, side.sourceAccess, side.memo)}`,
        );
        return { rows: Number(rows[0]!.rows), sum: rows[0]!.sum };
      };
      const [s, t] = await Promise.all([sourceSide(), rangeChecksum(target, shape, ranges, side.digest, side.targetMemo, side.targetAccess)]);
      tables.push({ table: shape.name, source: s, target: t });
    }
    await source.query('COMMIT');
  } catch (err) {
    await source.query('ROLLBACK').catch(() => {});
    throw err;
  }
  await deleteChanges(source, tag, ids);
  return { tables, replayed };
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
