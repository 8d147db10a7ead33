import { multirangeLiteral, type Interval, type MoveMode } from '../core/move-plan.js';
import type { PgClient } from '../postgres/connect.js';
import { quoteIdent, quoteLiteral } from '../postgres/ident.js';
import { streamByHash, type HashBatch, type HashStreamResult } from './hash-stream.js';
import { accessSettings, rangeTest, SCAN, type RangeAccess } from './range-access.js';
import { columnList, hashedRows, hashExpression, type TableShape } from './table-shape.js';

export interface CopyRangeOptions {
  mode: MoveMode;
  ranges: Interval[];
  /** Rows with hash <= cursor are already copied. */
  cursor: number;
  batchSize: number;
  workMem?: string;
  /** How the source reads the ranges (rangeAccessFor); a scan when absent. */
  access?: RangeAccess;
  /** Runs just before each batch commits on the target (the run's lease check); throwing rolls it back. */
  beforeCommit?: () => Promise<void>;
  /** Called after each batch is committed on the target; journal here. Return false to stop. */
  onBatch: (batch: HashBatch) => Promise<boolean>;
}

/**
 * The rows of `ranges` whose hash is above `cursor`, as shardctl filters them:
 * the ranges as one int8multirange (containment is a binary search), so
 * thousands of ranges cost one test per row. COPY cannot take bind
 * parameters; the literal is built only from integers.
 */
export function rangeFilter(shape: TableShape, ranges: Interval[], cursor: number, alias = ''): string {
  const hash = hashExpression(shape, alias);
  return `${quoteLiteral(multirangeLiteral(ranges))}::int8multirange @> ${hash} AND ${hash} > ${Math.trunc(cursor)}`;
}

/** The same filter over hashedRows(): on `s.shardctl_h`, and no cursor test on a first pass. */
export function hashedRangeFilter(ranges: Interval[], cursor: number): string {
  const inRanges = `${quoteLiteral(multirangeLiteral(ranges))}::int8multirange @> s.shardctl_h`;
  return cursor >= 0 ? `${inRanges} AND s.shardctl_h > ${Math.trunc(cursor)}` : inRanges;
}

/**
 * `FROM … WHERE …` text for the rows of `ranges` above `cursor` (-1: all), as
 * `s` with the hash as `s.shardctl_h`: every row hashed (scan; once per key
 * with `memo`), or only the ranges' rows read by the routing-hash index (run
 * it under accessSettings, e.g. with queryWithAccess).
 */
export function rowsInRanges(shape: TableShape, ranges: Interval[], cursor: number, access: RangeAccess, memo = false): string {
  if (access.kind === 'scan') return `${hashedRows(shape, memo)} WHERE ${hashedRangeFilter(ranges, cursor)}`;
  const above = cursor >= 0 ? ` WHERE s.shardctl_h > ${Math.trunc(cursor)}` : '';
  return `(SELECT ${hashExpression(shape, 't')} AS shardctl_h, t.* FROM ${shape.sqlName} t WHERE ${rangeTest(shape, ranges, access.kind)}) s${above}`;
}

/**
 * Copies a table's rows in `ranges` from source to target in hash order
 * (see streamByHash). In `fresh` mode the target does not own the ranges yet:
 * rows above the cursor there can only be a batch that committed before its
 * cursor was journaled, so they are cleared first. In `merge` mode the target
 * owns the ranges and has rows of its own: each batch lands in a staging table
 * and only rows whose primary key is absent are added; nothing is deleted.
 */
export async function copyRange(source: PgClient, target: PgClient, shape: TableShape, options: CopyRangeOptions): Promise<HashStreamResult> {
  const cols = columnList(shape.columns);
  const access = options.access ?? SCAN;
  const readSql = `COPY (SELECT s.shardctl_h, ${columnList(shape.columns, 's')} FROM ${rowsInRanges(shape, options.ranges, options.cursor, access)} ORDER BY 1) TO STDOUT`;
  const read = { readSql, readSettings: accessSettings(access, false), ...(options.beforeCommit ? { beforeCommit: options.beforeCommit } : {}) };
  if (options.mode === 'fresh') {
    await target.query(`DELETE FROM ${shape.sqlName} WHERE ${rangeFilter(shape, options.ranges, options.cursor)}`);
    return streamByHash(source, target, options.cursor, { ...read, writeSql: `COPY ${shape.sqlName} (${cols}) FROM STDIN`, batchSize: options.batchSize, ...(options.workMem ? { workMem: options.workMem } : {}), onBatch: options.onBatch });
  }
  const stage = stagingTable(shape, 'stage');
  await target.query(`CREATE TEMP TABLE IF NOT EXISTS ${stage} AS SELECT ${cols} FROM ${shape.sqlName} WITH NO DATA`);
  await target.query(`TRUNCATE ${stage}`);
  return streamByHash(source, target, options.cursor, {
    ...read,
    writeSql: `COPY ${stage} (${cols}) FROM STDIN`,
    // Empties the stage and adds what is new in one statement; its row count is the rows added.
    afterBatch: [`WITH staged AS (DELETE FROM ${stage} RETURNING *) INSERT INTO ${shape.sqlName} (${cols}) SELECT ${cols} FROM staged ON CONFLICT DO NOTHING`],
    batchSize: options.batchSize,
    ...(options.workMem ? { workMem: options.workMem } : {}),
    onBatch: options.onBatch,
  });
}

/** A session-local work table per sharded table. */
export function stagingTable(shape: TableShape, purpose: string): string {
  return quoteIdent(`shardctl_${purpose}_${shape.name.replace(/[^A-Za-z0-9_]/g, '_')}`);
}
