import { finished } from 'node:stream/promises';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { CopyRowSplitter, splitLeadingHash } from '../core/copy-text.js';
import { multirangeLiteral, type Interval, type MoveMode } from '../core/move-plan.js';
import type { PgClient } from '../postgres/connect.js';
import { quoteIdent, quoteLiteral } from '../postgres/ident.js';
import { columnList, hashExpression, type TableShape } from './table-shape.js';

export interface CopyBatch {
  /** Highest hash whose rows are now on the target: the cursor to journal. */
  cursor: number;
  rows: number;
  bytes: number;
}

export interface CopyRangeOptions {
  mode: MoveMode;
  ranges: Interval[];
  /** Rows with hash <= cursor are already copied. */
  cursor: number;
  batchSize: number;
  /** Called after each batch is committed on the target; journal here. Return false to stop. */
  onBatch: (batch: CopyBatch) => Promise<boolean>;
}

export interface CopyRangeResult {
  done: boolean;
  cursor: number;
  rows: number;
  bytes: number;
}

/**
 * The rows of `ranges` whose hash is above `cursor` in the filter shardctl
 * sends: the ranges as an int8multirange (containment is a binary search), so
 * thousands of ranges cost one test per row. COPY cannot take bind parameters;
 * the literal is built only from integers.
 */
export function rangeFilter(shape: TableShape, ranges: Interval[], cursor: number): string {
  return `${quoteLiteral(multirangeLiteral(ranges))}::int8multirange @> ${hashExpression(shape)} AND ${hashExpression(shape)} > ${Math.trunc(cursor)}`;
}

/**
 * Streams a table's rows in `ranges` from source to target, ordered by hash,
 * in batches that each commit on the target on their own and end on a hash
 * boundary, so a journaled cursor says exactly what is done. Memory is bounded
 * by stream buffers, not by the table.
 *
 * In `fresh` mode the target does not own the ranges yet: rows above the
 * cursor there can only be a batch that committed before its cursor was
 * journaled, so they are cleared first. In `merge` mode the target owns the
 * ranges and has rows of its own: batches go through a staging table and only
 * rows whose primary key is absent are added.
 */
export async function copyRange(source: PgClient, target: PgClient, shape: TableShape, options: CopyRangeOptions): Promise<CopyRangeResult> {
  const cols = columnList(shape.columns);
  if (options.mode === 'fresh') {
    await target.query(`DELETE FROM ${shape.sqlName} WHERE ${rangeFilter(shape, options.ranges, options.cursor)}`);
  } else {
    await target.query(`CREATE TEMP TABLE IF NOT EXISTS ${stageName(shape)} AS SELECT ${cols} FROM ${shape.sqlName} WITH NO DATA`);
    await target.query(`TRUNCATE ${stageName(shape)}`);
  }
  const sourceStream = source.query(
    copyTo(`COPY (SELECT ${hashExpression(shape)}, ${cols} FROM ${shape.sqlName} WHERE ${rangeFilter(shape, options.ranges, options.cursor)} ORDER BY 1) TO STDOUT`),
  );
  const splitter = new CopyRowSplitter();
  let batch: BatchWriter | null = null;
  let cursor = options.cursor;
  let lastHash = -1;
  let total = { rows: 0, bytes: 0 };
  const closeBatch = async (): Promise<boolean> => {
    if (!batch) return true;
    const { rows, bytes } = await batch.commit();
    batch = null;
    cursor = lastHash;
    total = { rows: total.rows + rows, bytes: total.bytes + bytes };
    return options.onBatch({ cursor, rows, bytes });
  };
  try {
    for await (const chunk of sourceStream as AsyncIterable<Buffer>) {
      const out: Buffer[] = [];
      for (const row of splitter.push(chunk)) {
        const { hash, rest } = splitLeadingHash(row);
        // A batch ends only where the hash changes, so no key is split across a cursor.
        if (batch && hash !== lastHash && batch.rows + out.length >= options.batchSize) {
          if (out.length) await batch.write(Buffer.concat(out), out.length);
          out.length = 0;
          if (!(await closeBatch())) {
            return { done: false, cursor, ...total };
          }
        }
        batch ??= await BatchWriter.open(target, shape, cols, options.mode);
        out.push(rest);
        lastHash = hash;
      }
      if (out.length) {
        batch ??= await BatchWriter.open(target, shape, cols, options.mode);
        await batch.write(Buffer.concat(out), out.length);
      }
    }
    if (splitter.pendingBytes) throw new Error('the source COPY stream ended in the middle of a row');
    if (batch) await closeBatch();
    return { done: true, cursor: lastHash === -1 ? cursor : lastHash, ...total };
  } finally {
    if (batch) await (batch as BatchWriter).abort();
  }
}

/** A session-local staging table per sharded table (merge mode). */
function stageName(shape: TableShape): string {
  return quoteIdent(`shardctl_stage_${shape.name.replace(/[^A-Za-z0-9_]/g, '_')}`);
}

/** One batch on the target: a COPY FROM (fresh) or COPY into staging plus INSERT … ON CONFLICT DO NOTHING (merge). */
class BatchWriter {
  rows = 0;
  bytes = 0;
  readonly #stream: NodeJS.WritableStream & { destroy(err?: Error): void };

  private constructor(
    private readonly target: PgClient,
    private readonly shape: TableShape,
    private readonly cols: string,
    private readonly mode: MoveMode,
    stream: NodeJS.WritableStream & { destroy(err?: Error): void },
  ) {
    this.#stream = stream;
  }

  static async open(target: PgClient, shape: TableShape, cols: string, mode: MoveMode): Promise<BatchWriter> {
    if (mode === 'merge') await target.query('BEGIN');
    const into = mode === 'merge' ? stageName(shape) : shape.sqlName;
    const stream = target.query(copyFrom(`COPY ${into} (${cols}) FROM STDIN`));
    return new BatchWriter(target, shape, cols, mode, stream);
  }

  async write(data: Buffer, rows: number): Promise<void> {
    this.rows += rows;
    this.bytes += data.length;
    if (!this.#stream.write(data)) await new Promise<void>((resolve) => this.#stream.once('drain', resolve));
  }

  async commit(): Promise<{ rows: number; bytes: number }> {
    this.#stream.end();
    await finished(this.#stream);
    if (this.mode === 'merge') {
      await this.target.query(`INSERT INTO ${this.shape.sqlName} (${this.cols}) SELECT ${this.cols} FROM ${stageName(this.shape)} ON CONFLICT DO NOTHING`);
      await this.target.query(`TRUNCATE ${stageName(this.shape)}`);
      await this.target.query('COMMIT');
    }
    return { rows: this.rows, bytes: this.bytes };
  }

  async abort(): Promise<void> {
    this.#stream.destroy(new Error('batch aborted'));
    if (this.mode === 'merge') await this.target.query('ROLLBACK').catch(() => {});
  }
}
