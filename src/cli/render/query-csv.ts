import { stringify, type Options } from 'csv-stringify/sync';
import type { QueryColumn, QueryRow, QuerySummary, RowSink } from '../../engine/query/types.js';
import { CHUNK_CHARS, ChunkedOutput } from './query-chunks.js';
import { CopyCsvEncoder } from './query-csv-copy.js';
import { fieldNames } from './query-keys.js';
import { writeEncoded } from './query-ndjson.js';

/**
 * `--format csv`, RFC 4180 as csv-stringify writes it: a header once
 * (`shard`, then the field names), records ending in CRLF as RFC 4180 says,
 * a field holding a comma, a quote, CR or LF quoted with its quotes doubled.
 * Values are PostgreSQL's text, unchanged (t/f, timestamps as printed,
 * arrays as {…}). NULL is an empty unquoted field and the empty string is
 * `""`, as PostgreSQL's own COPY … CSV writes them, so a reader that tells
 * the two apart (COPY FROM, csv-parse with `quoting`) gets NULL back.
 */
const CSV_OPTIONS: Options = {
  record_delimiter: '\r\n',
  // With an explicit record delimiter csv-stringify quotes only that sequence; a lone LF or CR in a value must be quoted too.
  quote_record_delimiter: true,
  // Only the empty string: a NULL (null) stays an empty unquoted field.
  quoted_match: /^$/,
  eof: true,
};

/** Rows are stringified a batch at a time (one csv-stringify call per ~64 KiB), not one call per row. */
export class CsvWriter implements RowSink {
  readonly #output: ChunkedOutput;
  readonly #reuseBuffers: boolean;
  readonly #copyEncoder = new CopyCsvEncoder((value) => stringify([[value]], { ...CSV_OPTIONS, eof: false }));
  #batch: Array<Array<string | null>> = [];
  #batchChars = 0;
  #width = -1;

  /** `reuseBuffers`: as NdjsonWriter's (default: only for process.stdout). */
  constructor(out: NodeJS.WritableStream, options: { reuseBuffers?: boolean } = {}) {
    this.#output = new ChunkedOutput(out);
    this.#reuseBuffers = options.reuseBuffers ?? out === process.stdout;
  }

  get closed(): boolean {
    return this.#output.closed;
  }

  columns(columns: QueryColumn[]): void | Promise<void> {
    if (this.#width >= 0) return;
    this.#width = columns.length;
    this.#batch.push(fieldNames(columns));
  }

  row(row: QueryRow): void | Promise<void> {
    if (this.#width < 0) throw new Error('query writer: row() before columns()');
    const record = new Array<string | null>(this.#width + 1);
    record[0] = row.shard;
    let chars = row.shard.length + this.#width + 2;
    for (let i = 0; i < this.#width; i++) {
      const value = row.values[i] ?? null;
      record[i + 1] = value;
      if (value !== null) chars += value.length;
    }
    this.#batch.push(record);
    this.#batchChars += chars;
    if (this.#batchChars >= CHUNK_CHARS) return this.#flush();
  }

  /** COPY text straight to CSV records (CopyCsvEncoder), after whatever row() has batched (the header first). */
  copyRows(shard: string, text: Buffer, rows: number): void | Promise<void> {
    if (this.#width < 0) throw new Error('query writer: copyRows() before columns()');
    const pending = this.#batch.length ? this.#flush() : undefined;
    const write = () => writeEncoded(this.#output, this.#copyEncoder, this.#copyEncoder.encode(shard, text, rows), this.#reuseBuffers);
    return pending ? pending.then(write) : write();
  }

  end(_summary: QuerySummary): void | Promise<void> {
    return this.#flush();
  }

  abort(): void | Promise<void> {
    return this.#flush();
  }

  #flush(): void | Promise<void> {
    if (!this.#batch.length) return this.#output.flush();
    const text = stringify(this.#batch, CSV_OPTIONS);
    this.#batch = [];
    this.#batchChars = 0;
    return this.#output.write(text);
  }
}
