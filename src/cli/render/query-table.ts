import chalk from 'chalk';
import type { QueryColumn, QueryRow, QuerySummary, RowSink } from '../../engine/query/types.js';
import { ChunkedOutput } from './query-chunks.js';
import { fieldNames } from './query-keys.js';
import { renderTable } from './table.js';

export const DEFAULT_TABLE_MAX_ROWS = 1000;

/**
 * The table for a terminal: column widths need every row, so rows are kept
 * up to `maxRows` (default 1,000) and the rest only counted ("… N more rows"),
 * which keeps memory flat for a query that returns millions. Values are shown
 * as PostgreSQL printed them, as psql does; NULL is a dim `∅`, so it is never
 * mistaken for an empty string (blank) or the text 'NULL'.
 */
export class TableWriter implements RowSink {
  readonly #output: ChunkedOutput;
  readonly #maxRows: number;
  readonly #null: string;
  #head: string[] | null = null;
  #rows: string[][] = [];
  #more = 0;

  constructor(out: NodeJS.WritableStream, options: { maxRows?: number; color?: boolean }) {
    this.#output = new ChunkedOutput(out);
    this.#maxRows = Math.max(0, options.maxRows ?? DEFAULT_TABLE_MAX_ROWS);
    this.#null = options.color === false ? NULL_MARK : chalk.dim(NULL_MARK);
  }

  get closed(): boolean {
    return this.#output.closed;
  }

  columns(columns: QueryColumn[]): void {
    this.#head ??= fieldNames(columns);
  }

  row(row: QueryRow): void {
    if (!this.#head) throw new Error('query writer: row() before columns()');
    if (this.#rows.length >= this.#maxRows) {
      this.#more++;
      return;
    }
    const cells = [row.shard];
    for (let i = 1; i < this.#head.length; i++) cells.push(row.values[i - 1] ?? this.#null);
    this.#rows.push(cells);
  }

  end(_summary: QuerySummary): void | Promise<void> {
    return this.#render();
  }

  abort(): void | Promise<void> {
    return this.#render();
  }

  #render(): void | Promise<void> {
    const head = this.#head;
    if (!head) return;
    this.#head = null; // rendered once
    let text = renderTable(head, this.#rows) + '\n';
    if (!this.#rows.length) text += '(no rows)\n';
    if (this.#more) text += `… ${this.#more.toLocaleString('en-US')} more ${this.#more === 1 ? 'row' : 'rows'} (use --format csv|ndjson|json for all)\n`;
    this.#rows = [];
    return this.#output.write(text);
  }
}

const NULL_MARK = '∅';
