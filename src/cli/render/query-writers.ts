import type { RowSink } from '../../engine/query/types.js';
import { CsvWriter } from './query-csv.js';
import { JsonDocumentWriter, type QueryAbort } from './query-json.js';
import { NdjsonWriter } from './query-ndjson.js';
import { TableWriter } from './query-table.js';

export type QueryFormat = 'table' | 'json' | 'ndjson' | 'csv';
export const QUERY_FORMATS: readonly QueryFormat[] = ['table', 'json', 'ndjson', 'csv'];
export type { QueryAbort } from './query-json.js';

export interface QueryWriterOptions {
  /** The command's name for the JSON envelope ("query"). */
  command: string;
  /** Colour in the table (a dim ∅ for NULL); off unless true. chalk.level still applies. */
  color?: boolean;
  /** Rows the table shows before it only counts the rest (default 1,000). */
  tableMaxRows?: number;
  /** NDJSON, JSON and CSV: `out` keeps no reference to written bytes once settled (default: out is process.stdout); see NdjsonWriter. */
  reuseBuffers?: boolean;
}

/**
 * A RowSink that writes the merged result to `out` as it streams, with
 * back-pressure (row() returns a promise while `out` is full). Beyond the
 * contract:
 * - `closed`: the reader went away (EPIPE: `| head`): nothing more is
 *   written, and the engine may stop reading.
 * - `abort(error)`: the run ended without end() (interrupted, a bug): under
 *   json the document is closed with `ok` false and the error, so stdout
 *   still holds one valid document (the command must then print no second
 *   envelope); the other formats write what they hold.
 */
export interface QueryWriter extends RowSink {
  readonly closed: boolean;
  abort(error: QueryAbort): void | Promise<void>;
}

export function createQueryWriter(format: QueryFormat, out: NodeJS.WritableStream, options: QueryWriterOptions): QueryWriter {
  switch (format) {
    case 'json':
      return new JsonDocumentWriter(out, options.command, { reuseBuffers: options.reuseBuffers });
    case 'ndjson':
      return new NdjsonWriter(out, { reuseBuffers: options.reuseBuffers });
    case 'csv':
      return new CsvWriter(out, { reuseBuffers: options.reuseBuffers });
    case 'table':
      return new TableWriter(out, { maxRows: options.tableMaxRows, color: options.color === true });
  }
}
