import { pgTypeName } from '../../core/pg-values.js';
import type { QueryColumn, QueryRow, QuerySummary, RowSink } from '../../engine/query/types.js';
import { ChunkedOutput } from './query-chunks.js';
import { fieldNames } from './query-keys.js';
import { CopyNdjsonEncoder } from './query-ndjson-copy.js';
import { writeEncoded } from './query-ndjson.js';
import { RowJsonEncoder } from './query-row-json.js';
import { failedShards, failureLines, slowestShard } from './query-verdict.js';

/** What abort() records: a ShardctlError has this shape. */
export interface QueryAbort {
  kind: string;
  message: string;
  exitCode: number;
  details?: string[];
}

/**
 * `--json`: the documented envelope, written as the rows come, one row per
 * line, never collected:
 *
 *     {"command":"query","data":{"columns":[…],"rows":[
 *     {"shard":"s1","id":1},
 *     …
 *     ],"shards":[…],"summary":{…}},"ok":true}
 *
 * `ok` is the last key because it is known only once every shard has
 * answered, after the last row; a document parser (`jq .ok`, JSON.parse)
 * does not care where it is. With a shard failed, `ok` is false and
 * `error` follows it ({kind, message, exitCode, details}, the shape of every
 * other command's error envelope) while `data` still holds every row the
 * other shards sent. The document is whole (valid JSON) for any number of
 * rows, also none; the command must not print a second envelope after it.
 */
export class JsonDocumentWriter implements RowSink {
  readonly #output: ChunkedOutput;
  readonly #command: string;
  readonly #reuseBuffers: boolean;
  #encoder: RowJsonEncoder | null = null;
  #copyEncoder: CopyNdjsonEncoder | null = null;
  #rowSeparator = '\n';
  #finished = false;

  /** `reuseBuffers`: as NdjsonWriter's (default: only for process.stdout). */
  constructor(out: NodeJS.WritableStream, command: string, options: { reuseBuffers?: boolean } = {}) {
    this.#output = new ChunkedOutput(out);
    this.#command = command;
    this.#reuseBuffers = options.reuseBuffers ?? out === process.stdout;
  }

  get closed(): boolean {
    return this.#output.closed;
  }

  columns(columns: QueryColumn[]): void | Promise<void> {
    if (this.#encoder) return;
    this.#encoder = new RowJsonEncoder(columns);
    this.#copyEncoder = new CopyNdjsonEncoder(columns, 'items');
    const names = fieldNames(columns);
    const described = [
      { name: 'shard', key: 'shard', type: 'text', typeOid: 25 },
      ...columns.map((c, i) => ({ name: c.name, key: names[i + 1]!, type: pgTypeName(c.typeOid), typeOid: c.typeOid })),
    ];
    return this.#output.append(
      `{"command":${JSON.stringify(this.#command)},"data":{"columns":${JSON.stringify(described)},"rows":[`,
    );
  }

  row(row: QueryRow): void | Promise<void> {
    if (!this.#encoder) throw new Error('query writer: row() before columns()');
    const text = this.#rowSeparator + this.#encoder.encode(row);
    this.#rowSeparator = ',\n';
    return this.#output.append(text);
  }

  /** COPY text straight to the document's rows (the same objects as row() writes): `,\n{…}` each. */
  copyRows(shard: string, text: Buffer, rows: number): void | Promise<void> {
    const encoder = this.#copyEncoder;
    if (!encoder) throw new Error('query writer: copyRows() before columns()');
    let bytes = encoder.encode(shard, text, rows);
    if (bytes.length === 0) return;
    // The document's first row has no comma before it (row() writes "\n" first, ",\n" later).
    if (this.#rowSeparator === '\n') bytes = bytes.subarray(1);
    this.#rowSeparator = ',\n';
    return writeEncoded(this.#output, encoder, bytes, this.#reuseBuffers);
  }

  end(summary: QuerySummary): void | Promise<void> {
    const failed = failedShards(summary);
    const slowest = slowestShard(summary);
    const tail = {
      shards: summary.shards,
      summary: {
        shards: summary.shards.length,
        failed: failed.length,
        rows: summary.rows,
        durationMs: summary.durationMs,
        limited: summary.limited,
        slowest: slowest ? { shard: slowest.shard, durationMs: slowest.durationMs } : null,
      },
    };
    const error: QueryAbort | null = failed.length
      ? {
          kind: 'operation',
          message: `${failed.length} of ${summary.shards.length} shards failed: ${failed.map((s) => s.shard).join(', ')}`,
          exitCode: 1,
          details: failureLines(failed),
        }
      : null;
    return this.#finish(JSON.stringify(tail).slice(1, -1), error);
  }

  /**
   * Closes the document when the run ended without end() (interrupted, a
   * bug): stdout still holds one valid document, with `ok` false, the rows
   * already written, and the error; `shards` and `summary` are null.
   */
  abort(error: QueryAbort): void | Promise<void> {
    return this.#finish('"shards":null,"summary":null', {
      kind: error.kind,
      message: error.message,
      exitCode: error.exitCode,
      details: error.details ?? [],
    });
  }

  #finish(dataTail: string, error: QueryAbort | null): void | Promise<void> {
    if (this.#finished) return;
    this.#finished = true;
    if (!this.#encoder) void this.columns([]); // appends only: write() below flushes it
    const rowsEnd = this.#rowSeparator === '\n' ? ']' : '\n]';
    const verdict = error ? `"ok":false,"error":${JSON.stringify(error)}` : '"ok":true';
    return this.#output.write(`${rowsEnd},${dataTail}},${verdict}}\n`);
  }
}
