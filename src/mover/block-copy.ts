import { BlockRowReader, DigestSum, TidList } from '../core/block-copy-rows.js';
import { multirangeLiteral, type Interval } from '../core/move-plan.js';
import { inTransaction, type PgClient } from '../postgres/connect.js';
import { CopyOut } from '../postgres/copy-out.js';
import { quoteLiteral } from '../postgres/ident.js';
import { BatchWriter } from './hash-stream.js';
import { accessSettings, rangeTest, SCAN, type RangeAccess } from './range-access.js';
import { columnList, memoHash, rowDigestValue, type RowDigestKind, type TableShape } from './table-shape.js';

/**
 * The fast path of a fresh move: rows are read in the source's physical
 * order (a sequential scan, no sort), so the source streams from its first
 * block while the target writes, as a raw `psql` pipe does. A batch is a run
 * of whole heap blocks; it commits on the target together with a record of
 * itself in `shardctl.move_batches` there (block span, rows, bytes, and the
 * sum of the rows' digests as the source had them), so the target always
 * knows exactly what it holds: resuming continues after its last block, and
 * no journal lag can lose or duplicate a batch.
 *
 * Later steps use the records: verification compares the target with the
 * digests read from the source (one fewer pass over the source), and cleanup
 * deletes each batch's block span on the source, committing only when the
 * deleted rows are the batch's: its count, and no row newer than the copy's
 * snapshot (or, when the copy spanned runs, its digest sum; see deleteBatches).
 *
 * Needs PostgreSQL 14 or later on the source (TID range scans); the hash-ordered
 * path serves older servers.
 */

export interface MoveTableId {
  planId: string;
  moveNo: number;
  table: string;
}

export interface BlockBatch {
  batchNo: number;
  firstBlock: number;
  lastBlock: number;
  rows: number;
  bytes: number;
  /** Sum of the rows' digests (RowDigestKind values) as the source had them. */
  sum: bigint;
}

/** What the target holds of a move's table, from its batch records. */
export interface BlockCopyState {
  batches: number;
  /** Last source block copied (-1: none): the cursor. */
  lastBlock: number;
  rows: number;
  bytes: number;
  sum: bigint;
}

const BY_ID = 'plan_id = $1 AND move_no = $2 AND table_name = $3';
const COPIED = `${BY_ID} AND kind = 'copied'`;
const idValues = (id: MoveTableId) => [id.planId, id.moveNo, id.table];

/** The first server version with TID range scans, which block-ordered batches need. */
export const BLOCK_COPY_MIN_VERSION = 140000;

export async function supportsBlockCopy(source: PgClient): Promise<boolean> {
  const { rows } = await source.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
  return Number(rows[0]!.v) >= BLOCK_COPY_MIN_VERSION;
}

export async function blockCopyState(target: PgClient, id: MoveTableId): Promise<BlockCopyState> {
  const { rows } = await target.query<{ batches: number; last_block: number; rows: number; bytes: number; sum: string }>(
    `SELECT count(*)::int AS batches, coalesce(max(last_block), -1)::bigint AS last_block, coalesce(sum(rows), 0)::bigint AS rows,
            coalesce(sum(bytes), 0)::bigint AS bytes, coalesce(sum(digest_sum), 0)::text AS sum
       FROM shardctl.move_batches WHERE ${COPIED}`,
    idValues(id),
  );
  const r = rows[0]!;
  return { batches: r.batches, lastBlock: r.last_block, rows: r.rows, bytes: r.bytes, sum: BigInt(r.sum) };
}

/**
 * Count and digest sum of the rows the move's batches wrote to the target
 * that are still as they were written. A batch's rows and its record are
 * written by one transaction, so they share its xid: a row still carrying the
 * xid of one of the move's records is a copied row nobody has changed since
 * (an update leaves a newer xmin, a delete leaves nothing). Finding them
 * costs an xid lookup per row of the table instead of its routing hash,
 * about a quarter of the time. Equal to the records' rows and sum: the target
 * holds every row read from the source, unchanged.
 */
export async function copiedRowsChecksum(target: PgClient, shape: TableShape, id: MoveTableId, digest: RowDigestKind): Promise<{ rows: number; sum: string }> {
  const { rows } = await target.query<{ rows: number; sum: string }>(
    `SELECT count(*)::bigint AS rows, coalesce(sum(${rowDigestValue(shape, 't', digest)}), 0)::text AS sum
       FROM ${shape.sqlName} t
      WHERE t.xmin IN (SELECT b.xmin FROM shardctl.move_batches b WHERE ${COPIED})`,
    idValues(id),
  );
  return rows[0]!;
}

/** The recorded batches after `afterBatch`, in order (for cleanup). */
export async function recordedBatches(target: PgClient, id: MoveTableId, afterBatch: number): Promise<BlockBatch[]> {
  const { rows } = await target.query<{ batch_no: number; first_block: number; last_block: number; rows: number; bytes: number; sum: string }>(
    `SELECT batch_no, first_block, last_block, rows, bytes, digest_sum::text AS sum
       FROM shardctl.move_batches WHERE ${COPIED} AND batch_no > $4 ORDER BY batch_no`,
    [...idValues(id), afterBatch],
  );
  return rows.map((r) => ({ batchNo: r.batch_no, firstBlock: r.first_block, lastBlock: r.last_block, rows: r.rows, bytes: r.bytes, sum: BigInt(r.sum) }));
}

/** Removes a table's copy from the target (its rows in the ranges and its batch records), in one transaction. */
export async function clearBlockCopy(target: PgClient, shape: TableShape, id: MoveTableId, ranges: Interval[]): Promise<number> {
  return inTransaction(target, async () => {
    const { rowCount } = await target.query(`DELETE FROM ${shape.sqlName} t WHERE ${rangeTest(shape, ranges, 'scan')}`);
    await target.query(`DELETE FROM shardctl.move_batches WHERE ${BY_ID}`, idValues(id));
    return rowCount ?? 0;
  });
}

/** Drops a finished (or aborted) move's batch records from a shard (its target, or its source). */
export async function forgetBatches(target: PgClient, planId: string, moveNo: number): Promise<void> {
  await target.query(`DELETE FROM shardctl.move_batches WHERE plan_id = $1 AND move_no = $2`, [planId, moveNo]);
}

export interface BlockCopyOptions {
  id: MoveTableId;
  ranges: Interval[];
  digest: RowDigestKind;
  batchSize: number;
  /** Hash once per distinct key (keysRepeat); a scan only. */
  memo?: boolean;
  /** Scan the table, or read the ranges by the routing-hash index (rangeAccessFor); a scan when absent. */
  access?: RangeAccess;
  /**
   * Called before the first batch when the copy starts from the table's first
   * block: the snapshot the whole copy reads (its xmin) and the table's row
   * count in it (see sourceUnchangedSince).
   */
  onStart?: (snapshot: { xmin: string; tableRows: number }) => Promise<void>;
  /** Runs just before each batch commits on the target (the run's lease check); throwing rolls it back. */
  beforeCommit?: () => Promise<void>;
  /** Called after each batch committed on the target; journal here. Return false to stop. */
  onBatch: (batch: BlockBatch) => Promise<boolean>;
}

/**
 * Copies the table's rows in `ranges` from source to target in physical
 * order, from the block after the target's last recorded batch. Memory is
 * bounded by stream buffers (back-pressure from the target to the source).
 * When it stops early the source's connection is left mid-COPY: close it.
 */
export async function copyByBlock(source: PgClient, target: PgClient, shape: TableShape, options: BlockCopyOptions): Promise<{ done: boolean; state: BlockCopyState }> {
  const state = await blockCopyState(target, options.id);
  // One snapshot for the whole read; a plain scan in one process, from block 0 (not where another scan is).
  await source.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  await source.query(
    `SELECT set_config('enable_indexscan', 'off', true), set_config('enable_indexonlyscan', 'off', true), set_config('enable_bitmapscan', 'off', true),
            set_config('synchronize_seqscans', 'off', true), set_config('max_parallel_workers_per_gather', '0', true), set_config('jit', 'off', true)`,
  );
  // The table's file, read while the copy holds a lock that keeps it: a rewrite (VACUUM FULL, CLUSTER)
  // gives it a new one and moves every row, which is what makes the recorded ctids stale (deleteCopiedRows).
  await source.query(`LOCK TABLE ${shape.sqlName} IN ACCESS SHARE MODE`);
  const { rows: file } = await source.query<{ filenode: string }>(`SELECT pg_relation_filenode($1::regclass)::text AS filenode`, [shape.sqlName]);
  const filenode = file[0]!.filenode;
  if (state.batches === 0 && options.onStart) {
    const { rows } = await source.query<{ xmin: string; n: number }>(
      `SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin, (SELECT count(*) FROM ${shape.sqlName})::bigint AS n`,
    );
    await options.onStart({ xmin: rows[0]!.xmin, tableRows: rows[0]!.n });
  }
  const from = state.lastBlock + 1;
  const access = options.access ?? SCAN;
  const memo = access.kind === 'scan' && options.memo;
  // An index read is a bitmap heap scan: physical order as well, and no hash computed per row.
  const settings = accessSettings(access, true);
  if (settings) await source.query(settings);
  const inRangesTest = memo ? memoInRanges(options.ranges) : rangeTest(shape, options.ranges, access.kind);
  const readSql = `COPY (SELECT t.ctid, ${columnList(shape.columns, 't')}, ${rowDigestValue(shape, 't', options.digest)}
                           FROM ${shape.sqlName} t ${memo ? memoHash(shape, 't', 'x') : ''}
                          WHERE ${from > 0 ? `t.ctid >= '(${from},0)'::tid AND ` : ''}${inRangesTest}) TO STDOUT`;
  const writeSql = `COPY ${shape.sqlName} (${columnList(shape.columns)}) FROM STDIN`;
  const stream = source.query(new CopyOut(readSql) as unknown as never) as unknown as CopyOut;
  const reader = new BlockRowReader();
  const batches = new BatchPipeline(() => BatchWriter.open(target, { writeSql, afterBatch: [], ...(options.beforeCommit ? { beforeCommit: options.beforeCommit } : {}) }));
  let first = -1;
  let last = state.lastBlock;
  let rowsInBatch = 0;
  let batchNo = state.batches;
  const digests = new DigestSum();
  const tids = new TidList();
  /** Ends the batch read so far: what it commits with is taken now, the commit runs while the next is read. */
  const cut = (): Promise<boolean> => {
    const record: BlockBatch = { batchNo: batchNo++, firstBlock: first, lastBlock: last, rows: 0, bytes: 0, sum: digests.take() };
    const tidList = tids.take();
    rowsInBatch = 0;
    return batches.cut(async (writer) => {
      const done = await writer.commit({
        text: `INSERT INTO shardctl.move_batches (plan_id, move_no, table_name, batch_no, first_block, last_block, rows, bytes, digest_sum, source_tids, source_filenode)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::oid)`,
        values: [...idValues(options.id), record.batchNo, record.firstBlock, record.lastBlock, writer.rows, writer.bytes, record.sum.toString(), tidList, filenode],
      });
      record.rows = done.rows;
      record.bytes = done.bytes;
      Object.assign(state, { batches: state.batches + 1, lastBlock: record.lastBlock, rows: state.rows + done.rows, bytes: state.bytes + done.bytes, sum: state.sum + record.sum });
      return options.onBatch(record);
    });
  };
  try {
    // Whole rows as each socket read brings them, valid until the next read: they are copied out before it.
    for (let read = await stream.read(); read; read = await stream.read()) {
      reader.feed(read.text);
      // The chunk's rows, less their ctid and digest, go to the target in one buffer.
      let out = Buffer.allocUnsafe(reader.unreadBytes);
      let at = 0;
      let rows = 0;
      for (let block = reader.peekBlock(); block >= 0; block = reader.peekBlock()) {
        if (block < last) throw new Error(`the source returned block ${block} after block ${last}: not a physical-order scan`);
        // A batch ends only where the block changes, so the last block is a whole cursor.
        if (rowsInBatch >= options.batchSize && block !== last) {
          if (rows && !(await batches.write(out.subarray(0, at), rows))) return { done: false, state };
          out = Buffer.allocUnsafe(reader.unreadBytes);
          at = 0;
          rows = 0;
          if (!(await cut())) return { done: false, state };
        }
        if (rowsInBatch === 0) first = block;
        at = reader.take(out, at, digests, tids);
        rows++;
        rowsInBatch++;
        last = block;
      }
      if (rows && !(await batches.write(out.subarray(0, at), rows))) return { done: false, state };
      // The read's memory is reused by the next one: nothing of it may be left for later.
      if (reader.pendingRow) throw new Error('the COPY read ended in the middle of a row');
    }
    if (rowsInBatch > 0 && !(await cut())) return { done: false, state };
    if (!(await batches.finish())) return { done: false, state };
    await source.query('COMMIT');
    return { done: true, state };
  } finally {
    await batches.abort();
  }
}

/** Bytes of the next batch's rows held in memory while the batch before it commits: ~100 ms of a move's stream here, twice what a commit takes, and per move (at most `migration.parallel` at once). */
const HOLD_BYTES = 4 * 1024 * 1024;

/**
 * The target's side of a block copy. A batch's commit (the end of its COPY,
 * its record, the lease check, COMMIT, the journal) runs while the next
 * batch's rows are read and held in memory (up to HOLD_BYTES), so the source
 * does not stop at every batch boundary until the target has caught up and
 * committed: with 10,000-row batches that wait cost about 45 ms a batch, a
 * third of a whole move. Batches still commit one after another, in order,
 * each in its own transaction; one whose journal says stop stops the rest.
 */
class BatchPipeline {
  #writer: BatchWriter | null = null;
  #held: Array<{ data: Buffer; rows: number }> = [];
  #heldBytes = 0;
  /** The batch before this one, committing; and whether that is over. */
  #closing: Promise<boolean> | null = null;
  #closed = true;
  #stopped = false;

  constructor(private readonly open: () => Promise<BatchWriter>) {}

  /** Rows of the batch being read; false once a batch's journal said stop. */
  async write(data: Buffer, rows: number): Promise<boolean> {
    if (this.#writer) {
      await this.#writer.write(data, rows);
      return true;
    }
    this.#held.push({ data, rows });
    this.#heldBytes += data.length;
    // Held while the batch before commits, unless that is over or the memory is spent.
    if (!this.#closed && this.#heldBytes < HOLD_BYTES) return true;
    return this.#openWriter();
  }

  /** Ends the batch being read: `commit` runs on its writer once the batch before has committed. False: stop. */
  async cut(commit: (writer: BatchWriter) => Promise<boolean>): Promise<boolean> {
    if (!(await this.#openWriter())) return false;
    const writer = this.#writer!;
    this.#writer = null;
    this.#closed = false;
    this.#closing = commit(writer).then(
      (goOn) => {
        this.#closed = true;
        return goOn;
      },
      async (err: unknown) => {
        this.#closed = true;
        await writer.abort();
        throw err;
      },
    );
    // Seen when next awaited; until then a failure must not count as unhandled.
    this.#closing.catch(() => {});
    return true;
  }

  /** Waits for the last commit; false if its journal said stop. */
  async finish(): Promise<boolean> {
    return this.#settle();
  }

  /** After a stop or a failure: the open batch rolled back, the one committing left to end. */
  async abort(): Promise<void> {
    await this.#closing?.catch(() => {});
    if (this.#writer) await this.#writer.abort();
    this.#writer = null;
  }

  /** The batch before this one committed, then this one's writer opened with what was held. */
  async #openWriter(): Promise<boolean> {
    if (!(await this.#settle())) return false;
    if (!this.#writer) this.#writer = await this.open();
    for (const h of this.#held) await this.#writer.write(h.data, h.rows);
    this.#held = [];
    this.#heldBytes = 0;
    return true;
  }

  async #settle(): Promise<boolean> {
    if (this.#closing) {
      const closing = this.#closing;
      this.#closing = null;
      if (!(await closing)) this.#stopped = true;
    }
    return !this.#stopped;
  }
}

/**
 * How a cleanup transaction confirms that the rows it deletes are the rows
 * copied: by their digests (the sum must equal the batches'), or, when the
 * whole copy read one snapshot, by that snapshot's xmin: a row version created
 * before it was visible to the copy, so a row of the ranges with such an xmin
 * is one the copy read and has not changed since (an update or an insert
 * leaves a newer xmin). The second costs an xid comparison per row instead of
 * a hash of every column.
 */
export type BatchConfirmation = RowDigestKind | { snapshotXmin: string };

/**
 * Cleanup of consecutive batches on the source: deletes the rows of the moved
 * ranges in the batches' block span and commits only if they are exactly the
 * rows the batches copied (same count, and the same digest sum or no row
 * newer than the copy's snapshot: the rows confirmed on the target by
 * verification, SPEC invariant 1), recording the batches as removed in the
 * same transaction; otherwise rolls back and returns null. A row changed or
 * added since the copy makes the span differ.
 */
export async function deleteBatches(
  source: PgClient,
  shape: TableShape,
  id: MoveTableId,
  ranges: Interval[],
  confirm: BatchConfirmation,
  batches: BlockBatch[],
  memo = false,
  access: RangeAccess = SCAN,
  /** Runs just before the delete commits (the run's lease check); throwing rolls it back. */
  beforeCommit?: () => Promise<void>,
): Promise<number | null> {
  const rows = batches.reduce((n, b) => n + b.rows, 0);
  const sum = batches.reduce((n, b) => n + b.sum, 0n);
  return removeBatches(source, id, batches, beforeCommit, async () => {
    await source.query(`SELECT set_config('jit', 'off', true)`);
    const settings = accessSettings(access, true);
    if (settings) await source.query(settings);
    const span = `t.ctid >= '(${Math.trunc(batches[0]!.firstBlock)},0)'::tid AND t.ctid < '(${Math.trunc(batches.at(-1)!.lastBlock) + 1},0)'::tid`;
    // By index the span only filters the move's rows; a scan reads the span (a TID range scan).
    // DELETE cannot join the table laterally to itself: with memo, the rows are found by ctid first.
    const which =
      memo && access.kind === 'scan'
        ? `t.ctid = ANY (ARRAY(SELECT t.ctid FROM ${shape.sqlName} t ${memoHash(shape, 't', 'x')} WHERE ${span} AND ${memoInRanges(ranges)}))`
        : `${span} AND ${rangeTest(shape, ranges, access.kind)}`;
    const confirmed =
      typeof confirm === 'string'
        ? { returning: rowDigestValue(shape, 't', confirm), check: `coalesce(sum(g), 0)::text`, values: [] as string[] }
        : { returning: `age(t.xmin) <= ${snapshotAge('$1')}`, check: `count(*) FILTER (WHERE g)::text`, values: [confirm.snapshotXmin] };
    const { rows: found } = await source.query<{ n: number; check: string }>(
      `WITH d AS (DELETE FROM ${shape.sqlName} t WHERE ${which} RETURNING ${confirmed.returning} AS g)
       SELECT count(*)::bigint AS n, ${confirmed.check} AS check FROM d`,
      confirmed.values,
    );
    // By digest the sum must be the batches'; by snapshot no deleted row may be newer than it.
    return found[0]!.n === rows && BigInt(found[0]!.check) === (typeof confirm === 'string' ? sum : 0n);
  });
}

/**
 * One cleanup transaction on the source: `deleted` runs the delete and says
 * whether the rows were the batches' as copied; then the batches are recorded
 * as removed and, after the lease check, it commits. Their row count, or null
 * (rolled back) when they were not.
 */
async function removeBatches(source: PgClient, id: MoveTableId, batches: BlockBatch[], beforeCommit: (() => Promise<void>) | undefined, deleted: () => Promise<boolean>): Promise<number | null> {
  await source.query('BEGIN');
  try {
    if (!(await deleted())) {
      await source.query('ROLLBACK');
      return null;
    }
    await recordRemoved(source, id, batches);
    await beforeCommit?.();
    await source.query('COMMIT');
    return batches.reduce((n, b) => n + b.rows, 0);
  } catch (err) {
    await source.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/**
 * Where the batches' rows were on the source, as the target's records say:
 * one `tid[]` literal for all of them, and the source table's file then;
 * null when a record has none (written by an earlier version) or the
 * batches were read from different files.
 */
export async function copiedTids(target: PgClient, id: MoveTableId, batches: BlockBatch[]): Promise<{ tids: string; filenode: string } | null> {
  const { rows } = await target.query<{ n: number; files: number; filenode: string | null; tids: string | null }>(
    `WITH b AS (SELECT source_tids, source_filenode FROM shardctl.move_batches WHERE ${COPIED} AND batch_no = ANY ($4))
     SELECT (SELECT count(*) FROM b WHERE source_tids IS NOT NULL AND source_filenode IS NOT NULL)::int AS n,
            (SELECT count(DISTINCT source_filenode) FROM b)::int AS files,
            (SELECT min(source_filenode::text) FROM b) AS filenode,
            (SELECT '{' || string_agg(btrim(source_tids, '{}'), ',') || '}' FROM b WHERE source_tids <> '{}') AS tids`,
    [...idValues(id), batches.map((b) => b.batchNo)],
  );
  const r = rows[0]!;
  if (r.n !== batches.length || r.files !== 1 || r.filenode === null || r.tids === null) return null;
  return { tids: r.tids, filenode: r.filenode };
}

/**
 * Cleanup of consecutive batches by where their rows were: deletes the rows
 * at the batches' ctids on the source and commits only if there are exactly
 * the batches' rows there and none is newer than the copy's snapshot. While
 * the table keeps the file the copy read (no VACUUM FULL or CLUSTER since,
 * checked under a lock that keeps it so until commit), a ctid holds the row
 * version the copy read until that version is gone: a row updated or
 * deleted since is not found there, and a row put in its place later has a
 * newer xmin. So the rows deleted are the rows copied, unchanged, and no
 * row is hashed or scanned but them. Records the batches as removed in the
 * same transaction; null (rolled back) when they are not all there as copied.
 */
export async function deleteCopiedRows(
  source: PgClient,
  shape: TableShape,
  id: MoveTableId,
  snapshotXmin: string,
  batches: BlockBatch[],
  where: { tids: string; filenode: string },
  beforeCommit?: () => Promise<void>,
): Promise<number | null> {
  const rows = batches.reduce((n, b) => n + b.rows, 0);
  return removeBatches(source, id, batches, beforeCommit, async () => {
    // Priced as random page reads, a batch's ctids look dearer to the planner than a scan of the
    // whole table; they are not (28.7k rows of 1.45M: 33-56 ms by ctid, 370-400 ms scanning).
    await source.query(`SELECT set_config('jit', 'off', true), set_config('enable_seqscan', 'off', true)`);
    // The lock the DELETE takes anyway, taken first: no rewrite can start before this commits.
    await source.query(`LOCK TABLE ${shape.sqlName} IN ROW EXCLUSIVE MODE`);
    const { rows: file } = await source.query<{ same: boolean }>(`SELECT pg_relation_filenode($1::regclass) = $2::oid AS same`, [shape.sqlName, where.filenode]);
    if (!file[0]!.same) return false;
    const { rows: found } = await source.query<{ n: number; fresh: number }>(
      `WITH d AS (DELETE FROM ${shape.sqlName} t WHERE t.ctid = ANY ($1::tid[]) RETURNING age(t.xmin) <= ${snapshotAge('$2')} AS fresh)
       SELECT count(*)::bigint AS n, count(*) FILTER (WHERE fresh)::bigint AS fresh FROM d`,
      [where.tids, snapshotXmin],
    );
    return found[0]!.n === rows && found[0]!.fresh === 0;
  });
}

/** The source's own record that these batches are done, written in the transaction that deletes them. */
async function recordRemoved(source: PgClient, id: MoveTableId, batches: BlockBatch[]): Promise<void> {
  await source.query(
    `INSERT INTO shardctl.move_batches (plan_id, move_no, table_name, batch_no, kind, first_block, last_block, rows, bytes, digest_sum)
     SELECT $1, $2, $3, b.no, 'removed', b.first, b.last, b.rows, b.bytes, b.sum
       FROM unnest($4::int[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::numeric[]) AS b(no, first, last, rows, bytes, sum)`,
    [
      ...idValues(id),
      batches.map((b) => b.batchNo),
      batches.map((b) => b.firstBlock),
      batches.map((b) => b.lastBlock),
      batches.map((b) => b.rows),
      batches.map((b) => b.bytes),
      batches.map((b) => b.sum.toString()),
    ],
  );
}

/** What cleanup removed from the source so far: the batches recorded there as removed. */
export async function removedState(source: PgClient, id: MoveTableId): Promise<{ lastBatch: number; rows: number }> {
  const { rows } = await source.query<{ last: number; rows: number }>(
    `SELECT coalesce(max(batch_no), -1)::int AS last, coalesce(sum(rows), 0)::bigint AS rows
       FROM shardctl.move_batches WHERE ${BY_ID} AND kind = 'removed'`,
    idValues(id),
  );
  return { lastBatch: rows[0]!.last, rows: rows[0]!.rows };
}

/**
 * Whether the source table is as it was in the copy's snapshot, without
 * hashing a row: the same row count, and no row version created by a
 * transaction at or after the snapshot's xmin (an insert or update shows as
 * one; a delete changes the count unless an insert hides it, which itself
 * shows). Conservative: any write to the table since, in the moved ranges or
 * not, answers false, and verification then reads the source in full.
 */
export async function sourceUnchangedSince(source: PgClient, shape: TableShape, snapshot: { xmin: string; tableRows: number }): Promise<boolean> {
  const { rows } = await source.query<{ n: number; fresh: number }>(
    `SELECT count(*)::bigint AS n, count(*) FILTER (WHERE age(t.xmin) <= ${snapshotAge('$1')})::bigint AS fresh
       FROM ${shape.sqlName} t`,
    [snapshot.xmin],
  );
  return rows[0]!.n === snapshot.tableRows && rows[0]!.fresh === 0;
}

/**
 * The age of a snapshot's xmin (a 64-bit xid as text, bound at `param`) as a
 * 32-bit xid: `age(t.xmin) <= it` holds for a row version created at or
 * after the snapshot's xmin, i.e. one the snapshot may not have seen. A frozen
 * xmin's age is the largest there is: old.
 */
function snapshotAge(param: string): string {
  return `age(((${param}::bigint) % 4294967296)::text::xid)`;
}

/** The row's hash, taken from memoHash's `x.shardctl_h`, is in the ranges. */
function memoInRanges(ranges: Interval[]): string {
  return `${quoteLiteral(multirangeLiteral(ranges))}::int8multirange @> x.shardctl_h`;
}
