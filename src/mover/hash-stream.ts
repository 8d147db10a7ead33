import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { CopyRowSplitter, splitLeadingHash } from '../core/copy-text.js';
import type { PgClient } from '../postgres/connect.js';

export interface HashBatch {
  /** Highest hash whose rows this batch carried: the cursor to journal. */
  cursor: number;
  rows: number;
  bytes: number;
  /** What the batch's `afterBatch` statement reported (e.g. rows deleted). */
  affected: number;
}

export interface HashStreamOptions {
  /** `COPY (SELECT <hash>, <columns…> … ORDER BY 1) TO STDOUT` on the reader. */
  readSql: string;
  /** `COPY <table> (<columns…>) FROM STDIN` on the writer: receives each row without its leading hash. */
  writeSql: string;
  batchSize: number;
  /** work_mem for the reading session (e.g. "256MB"); the server's default when absent. */
  workMem?: string;
  /** Run on the reading session before the read (after workMem): e.g. an index read's planner settings. */
  readSettings?: string | null;
  /**
   * Run each batch in a transaction on the writer: BEGIN before the COPY,
   * these statements after it (the row count of the one at `affectedIndex`,
   * default 0, is `affected`), then COMMIT. Without them each batch's COPY
   * commits on its own.
   */
  afterBatch?: string[];
  affectedIndex?: number;
  /**
   * Runs just before each batch commits on the writer (the run's lease
   * check); a batch then always runs in a transaction. Throwing rolls the batch back.
   */
  beforeCommit?: () => Promise<void>;
  /** Called after each batch is committed; journal here. Return false to stop. */
  onBatch: (batch: HashBatch) => Promise<boolean>;
}

export interface HashStreamResult {
  done: boolean;
  cursor: number;
  rows: number;
  bytes: number;
  affected: number;
}

/**
 * Streams rows ordered by routing hash from one database into another, cut
 * into batches that commit on their own and end only where the hash changes,
 * so a journaled cursor says exactly what is done ("hash > cursor" is what is
 * left). Back-pressure flows from the writer to the reader; memory is bounded
 * by stream buffers, not by the table. When it stops early the reader's
 * connection is left mid-COPY: close it.
 */
export async function streamByHash(reader: PgClient, writer: PgClient, startCursor: number, options: HashStreamOptions): Promise<HashStreamResult> {
  // The read sorts by hash: with enough work_mem the sort stays in memory (measured on 163k rows: 0.47 s vs 0.80 s spilled).
  if (options.workMem) await reader.query(`SELECT set_config('work_mem', $1, false)`, [options.workMem]);
  if (options.readSettings) await reader.query(options.readSettings);
  const source = reader.query(copyTo(options.readSql));
  const splitter = new CopyRowSplitter();
  let batch: BatchWriter | null = null;
  let cursor = startCursor;
  let lastHash = -1;
  const total = { rows: 0, bytes: 0, affected: 0 };
  // A lease check before COMMIT needs a transaction around the batch, even with nothing else in it.
  const writerOptions = { ...options, afterBatch: options.afterBatch ?? (options.beforeCommit ? [] : undefined) };
  const closeBatch = async (): Promise<boolean> => {
    const done = await batch!.commit();
    batch = null;
    cursor = lastHash;
    total.rows += done.rows;
    total.bytes += done.bytes;
    total.affected += done.affected;
    return options.onBatch({ cursor, ...done });
  };
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      const out: Buffer[] = [];
      for (const row of splitter.push(chunk)) {
        const { hash, rest } = splitLeadingHash(row);
        // A batch ends only where the hash changes, so no key is split across a cursor.
        if (batch && hash !== lastHash && batch.rows + out.length >= options.batchSize) {
          if (out.length) await batch.write(Buffer.concat(out), out.length);
          out.length = 0;
          if (!(await closeBatch())) return { done: false, cursor, ...total };
        }
        batch ??= await BatchWriter.open(writer, writerOptions);
        out.push(rest);
        lastHash = hash;
      }
      if (out.length) await batch!.write(Buffer.concat(out), out.length);
    }
    if (splitter.pendingBytes) throw new Error('the COPY stream ended in the middle of a row');
    if (batch) await closeBatch();
    return { done: true, cursor, ...total };
  } finally {
    if (batch) await (batch as BatchWriter).abort();
  }
}

type BatchWriterOptions = Pick<HashStreamOptions, 'writeSql' | 'afterBatch' | 'affectedIndex' | 'beforeCommit'>;

/** One batch on the writer: a COPY FROM, in a transaction when there are statements to run with it. */
export class BatchWriter {
  rows = 0;
  bytes = 0;
  /**
   * The stream's first error. pg-copy-streams reports a dead connection by
   * emitting 'error' (not by destroying the stream), possibly before anyone
   * waits on it, and a wait for 'drain' or 'finish' that starts afterwards
   * would never end: every wait checks this first.
   */
  #failure: Error | null = null;

  private constructor(
    private readonly writer: PgClient,
    private readonly options: BatchWriterOptions,
    private readonly stream: NodeJS.WritableStream & { destroy(err?: Error): void },
  ) {
    // The writer's server dying mid-COPY emits 'error' here: without a listener that is an uncaught
    // exception. write() and commit() reject with it instead.
    stream.on('error', (err: Error) => (this.#failure ??= err));
  }

  static async open(writer: PgClient, options: BatchWriterOptions): Promise<BatchWriter> {
    if (options.afterBatch) await writer.query('BEGIN');
    return new BatchWriter(writer, options, writer.query(copyFrom(options.writeSql)));
  }

  async write(data: Buffer, rows: number): Promise<void> {
    this.#throwIfFailed();
    this.rows += rows;
    this.bytes += data.length;
    if (!this.stream.write(data)) await once(this.stream, 'drain');
  }

  /** Ends the COPY, runs the batch's statements (and `extra`, with its bound values) and commits. */
  async commit(extra?: { text: string; values: unknown[] }): Promise<{ rows: number; bytes: number; affected: number }> {
    this.#throwIfFailed();
    this.stream.end();
    await finished(this.stream);
    let affected = 0;
    if (this.options.afterBatch) {
      for (const [i, statement] of this.options.afterBatch.entries()) {
        const { rowCount } = await this.writer.query(statement);
        if (i === (this.options.affectedIndex ?? 0)) affected = rowCount ?? 0;
      }
      if (extra) await this.writer.query(extra.text, extra.values);
      await this.options.beforeCommit?.();
      await this.writer.query('COMMIT');
    }
    return { rows: this.rows, bytes: this.bytes, affected };
  }

  async abort(): Promise<void> {
    this.stream.destroy(new Error('batch aborted'));
    if (this.options.afterBatch) await this.writer.query('ROLLBACK').catch(() => {});
  }

  #throwIfFailed(): void {
    if (this.#failure) throw this.#failure;
  }
}
