import type { QueryColumn, QueryRow, QuerySummary, RowSink } from '../../engine/query/types.js';
import { ChunkedOutput } from './query-chunks.js';
import { CopyNdjsonEncoder } from './query-ndjson-copy.js';
import { RowJsonEncoder } from './query-row-json.js';

/**
 * `--format ndjson`: one JSON object per row and line, nothing else (no
 * header, no trailer: per-shard outcomes and the summary go to stderr), so
 * `wc -l` counts rows and `jq -c` reads it as it streams.
 */
export class NdjsonWriter implements RowSink {
  readonly #output: ChunkedOutput;
  readonly #reuseBuffers: boolean;
  #encoder: RowJsonEncoder | null = null;
  #copyEncoder: CopyNdjsonEncoder | null = null;

  /**
   * `reuseBuffers`: `out` keeps no reference to bytes it has written (see
   * ChunkedOutput.settled), so the COPY encoder may write over its output once
   * the stream has settled. Default: only for process.stdout.
   */
  constructor(out: NodeJS.WritableStream, options: { reuseBuffers?: boolean } = {}) {
    this.#output = new ChunkedOutput(out);
    this.#reuseBuffers = options.reuseBuffers ?? out === process.stdout;
  }

  get closed(): boolean {
    return this.#output.closed;
  }

  columns(columns: QueryColumn[]): void {
    this.#encoder = new RowJsonEncoder(columns);
    this.#copyEncoder = new CopyNdjsonEncoder(columns);
  }

  copyRows(shard: string, text: Buffer, rows: number): void | Promise<void> {
    const encoder = this.#copyEncoder;
    if (!encoder) throw new Error('query writer: copyRows() before columns()');
    return writeEncoded(this.#output, encoder, encoder.encode(shard, text, rows), this.#reuseBuffers);
  }

  row(row: QueryRow): void | Promise<void> {
    if (!this.#encoder) throw new Error('query writer: row() before columns()');
    return this.#output.append(this.#encoder.encode(row) + '\n');
  }

  end(_summary: QuerySummary): void | Promise<void> {
    return this.#output.flush();
  }

  abort(): void | Promise<void> {
    return this.#output.flush();
  }
}

/**
 * Writes what a COPY encoder (NDJSON, CSV) made; with `reuseBuffers` (the stream keeps
 * no reference to written bytes once settled), lets the encoder write over
 * its buffers again once everything is out.
 */
export function writeEncoded(output: ChunkedOutput, encoder: { recycle(): void }, bytes: Buffer, reuseBuffers: boolean): void | Promise<void> {
  const pending = output.writeBytes(bytes);
  if (!reuseBuffers) return pending;
  if (!pending) {
    if (output.settled) encoder.recycle();
    return;
  }
  return pending.then(() => {
    if (output.settled) encoder.recycle();
  });
}
