/**
 * The contract between `query`'s engine (which reads rows from the shards)
 * and its writers (table, JSON, NDJSON, CSV), so that rows stream from the
 * shards' cursors to stdout without being collected.
 */

/** A result column as PostgreSQL describes it. */
export interface QueryColumn {
  name: string;
  /** pg_type oid (RowDescription): how a writer types the value (int8 → number or string, bool → boolean, …). */
  typeOid: number;
}

/**
 * One row: the shard it came from and its values exactly as PostgreSQL sent
 * them in text format (no driver parsing: bigints, numerics and timestamps
 * arrive as PostgreSQL prints them), null for SQL NULL.
 */
export interface QueryRow {
  shard: string;
  values: Array<string | null>;
}

export type ShardStatus = 'ok' | 'failed' | 'timeout' | 'cancelled';

/** How one shard's part went. */
export interface ShardOutcome {
  shard: string;
  status: ShardStatus;
  rows: number;
  durationMs: number;
  /** The error, one line, redacted (PostgreSQL's message, or "no answer within 5s"). */
  error?: string;
  /** SQLSTATE, when PostgreSQL gave one. */
  code?: string;
}

export interface QuerySummary {
  shards: ShardOutcome[];
  rows: number;
  durationMs: number;
  /** Rows stopped at --limit. */
  limited: boolean;
  /**
   * The sink's reader went away (`| head`: EPIPE) and every shard was
   * stopped: the shards cancelled then did their part, as at --limit.
   */
  outputClosed?: boolean;
}

/**
 * Where rows go. `columns` is called once before the first row (also when no
 * shard returns a row but one described its result); `row` may return a
 * promise when the destination is full (back-pressure: the engine stops
 * reading until it settles); `end` once, after the last row, with the outcome
 * of every shard.
 */
export interface RowSink {
  columns(columns: QueryColumn[]): void | Promise<void>;
  row(row: QueryRow): void | Promise<void>;
  /**
   * Optional: `rows` whole rows of COPY text (each ending in "\n", NULL as
   * `\N`, COPY's backslash escapes), all from `shard`, in place of as many
   * row() calls: a writer that can turn them into its output without a
   * string per value. Same back-pressure as row().
   */
  copyRows?(shard: string, text: Buffer, rows: number): void | Promise<void>;
  end(summary: QuerySummary): void | Promise<void>;
}
