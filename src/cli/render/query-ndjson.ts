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
  #encoder: RowJsonEncoder | null = null;
  #copyEncoder: CopyNdjsonEncoder | null = null;

  constructor(out: NodeJS.WritableStream) {
    this.#output = new ChunkedOutput(out);
  }

  get closed(): boolean {
    return this.#output.closed;
  }

  columns(columns: QueryColumn[]): void {
    this.#encoder = new RowJsonEncoder(columns);
    this.#copyEncoder = new CopyNdjsonEncoder(columns);
  }

  copyRows(shard: string, text: Buffer, rows: number): void | Promise<void> {
    if (!this.#copyEncoder) throw new Error('query writer: copyRows() before columns()');
    return this.#output.writeBytes(this.#copyEncoder.encode(shard, text, rows));
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
