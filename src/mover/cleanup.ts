import type { Interval } from '../core/move-plan.js';
import type { PgClient } from '../postgres/connect.js';
import { quoteIdent } from '../postgres/ident.js';
import { rowsInRanges, stagingTable } from './copy-range.js';
import { accessSettings, SCAN, type RangeAccess } from './range-access.js';
import { streamByHash, type HashBatch, type HashStreamResult } from './hash-stream.js';
import { columnList, rowDigest, type RowDigestKind, type TableShape } from './table-shape.js';

export interface CleanupOptions {
  ranges: Interval[];
  digest: RowDigestKind;
  /** Target rows with hash <= cursor have been confirmed against the source already. */
  cursor: number;
  batchSize: number;
  workMem?: string;
  /** How the target reads the ranges (rangeAccessFor); a scan when absent. */
  access?: RangeAccess;
  /** Runs just before each batch of deletes commits (the run's lease check); throwing rolls it back. */
  beforeCommit?: () => Promise<void>;
  /** Called after each batch of deletes commits (`affected` = rows deleted); journal here. Return false to stop. */
  onBatch: (batch: HashBatch) => Promise<boolean>;
}

/**
 * Deletes from the source the moved rows that are confirmed identical on the
 * target (SPEC invariant 1). The target's rows of the ranges are streamed in
 * hash order as (primary key, digest of the row) into a work table on the source,
 * a batch at a time, and each batch deletes, by primary key, only source rows
 * whose digest is the same: a row changed since the copy (a writer with a stale
 * ring) does not match and stays. No full scan of the source: the deletes are
 * primary-key lookups.
 */
export async function cleanupRange(target: PgClient, source: PgClient, shape: TableShape, options: CleanupOptions): Promise<HashStreamResult> {
  const pk = columnList(shape.primaryKey);
  const confirm = stagingTable(shape, 'confirm');
  await source.query(`CREATE TEMP TABLE IF NOT EXISTS ${confirm} AS SELECT ${pk}, ''::text AS shardctl_digest FROM ${shape.sqlName} WITH NO DATA`);
  await source.query(`TRUNCATE ${confirm}`);
  const match = shape.primaryKey.map((c) => `t.${quoteIdent(c.name)} = c.${quoteIdent(c.name)}`).join(' AND ');
  const access = options.access ?? SCAN;
  return streamByHash(target, source, options.cursor, {
    readSql: `COPY (SELECT s.shardctl_h, ${columnList(shape.primaryKey, 's')}, ${rowDigest(shape, 's', options.digest)}
                FROM ${rowsInRanges(shape, options.ranges, options.cursor, access)} ORDER BY 1) TO STDOUT`,
    readSettings: accessSettings(access, false),
    writeSql: `COPY ${confirm} (${pk}, shardctl_digest) FROM STDIN`,
    // A batch is a sliver of the table: delete by primary-key lookups. Left to itself the planner
    // hashes the work table and scans the whole source, computing every row's md5 (measured: 0.5 s
    // per 10,000-row batch on a 160k-row table, against 0.08 s by index). Local to the batch.
    afterBatch: [
      'SET LOCAL enable_hashjoin = off',
      'SET LOCAL enable_mergejoin = off',
      `ANALYZE ${confirm}`,
      `DELETE FROM ${shape.sqlName} t USING ${confirm} c WHERE ${match} AND ${rowDigest(shape, 't', options.digest)} = c.shardctl_digest`,
      // Rows of the batch no longer on the source: deleted just now, or by a run that crashed before journaling it.
      `DELETE FROM ${confirm} c WHERE NOT EXISTS (SELECT 1 FROM ${shape.sqlName} t WHERE ${match})`,
      `TRUNCATE ${confirm}`,
    ],
    affectedIndex: 4,
    ...(options.beforeCommit ? { beforeCommit: options.beforeCommit } : {}),
    batchSize: options.batchSize,
    ...(options.workMem ? { workMem: options.workMem } : {}),
    onBatch: options.onBatch,
  });
}
