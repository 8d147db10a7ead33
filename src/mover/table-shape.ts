import type { TableConfig } from '../config/schema.js';
import { OperationError } from '../errors.js';
import type { PgClient } from '../postgres/connect.js';
import { parseQualifiedName, quoteIdent, quoteQualified } from '../postgres/ident.js';

/** What the mover needs to know of a sharded table to copy, compare and delete its rows. */
export interface TableShape {
  /** As in the config: "public.messages". */
  name: string;
  /** Quoted, for SQL text. */
  sqlName: string;
  key: string;
  /** Columns to copy, in the source's order (generated columns are left to the target to compute). */
  columns: Array<{ name: string; type: string }>;
  /** Every column, for row checksums (generated ones included: both sides compute them alike). */
  allColumns: Array<{ name: string; type: string }>;
  primaryKey: Array<{ name: string; type: string }>;
}

/** Reads a table's columns and primary key; null when the table does not exist. */
export async function describeTable(client: PgClient, table: TableConfig): Promise<TableShape | null> {
  const qualified = parseQualifiedName(table.name);
  const { rows } = await client.query<{ attname: string; type: string; generated: string; pk: boolean }>(
    `SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attgenerated AS generated,
            coalesce(a.attnum = ANY (i.indkey), false) AS pk
       FROM pg_attribute a
       LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
      WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [quoteQualified(qualified)],
  );
  if (!rows.length) return null;
  const { rows: pkOrder } = await client.query<{ attname: string }>(
    `SELECT a.attname FROM pg_index i
       JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord) ON true
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
      WHERE i.indrelid = to_regclass($1) AND i.indisprimary ORDER BY k.ord`,
    [quoteQualified(qualified)],
  );
  const byName = new Map(rows.map((r) => [r.attname, r]));
  return {
    name: table.name,
    sqlName: quoteQualified(qualified),
    key: table.key,
    columns: rows.filter((r) => r.generated === '').map((r) => ({ name: r.attname, type: r.type })),
    allColumns: rows.map((r) => ({ name: r.attname, type: r.type })),
    primaryKey: pkOrder.map((p) => ({ name: p.attname, type: byName.get(p.attname)!.type })),
  };
}

/** The problems that stop a table from being moved between these two shards (empty: it can be). */
export function shapeProblems(table: string, source: TableShape | null, target: TableShape | null, names: { source: string; target: string }): string[] {
  if (!source) return [`${table} does not exist on ${names.source}`];
  if (!target) return [`${table} does not exist on ${names.target}`];
  const problems: string[] = [];
  if (!source.allColumns.some((c) => c.name === source.key)) problems.push(`${table}: key column ${source.key} does not exist on ${names.source}`);
  if (!source.primaryKey.length) problems.push(`${table} has no primary key on ${names.source}: shardctl needs one to confirm rows before deleting them`);
  const describe = (s: TableShape) => s.allColumns.map((c) => `${c.name} ${c.type}`).join(', ');
  if (describe(source) !== describe(target)) {
    problems.push(`${table} differs between ${names.source} (${describe(source)}) and ${names.target} (${describe(target)})`);
  }
  return problems;
}

export function assertMovable(problems: string[]): void {
  if (problems.length) throw new OperationError('tables cannot be moved as they are', { details: problems });
}

/** shardctl.route_hash(key::text): the expression an index must use to serve the mover's range scans. */
export function hashExpression(shape: Pick<TableShape, 'key'>, alias = ''): string {
  return `shardctl.route_hash((${alias ? `${alias}.` : ''}${quoteIdent(shape.key)})::text)`;
}

/**
 * The table's rows with their routing hash as `s.shardctl_h`, computed once per
 * row: OFFSET 0 keeps the planner from inlining the expression into every
 * place that uses it (measured: it halves a range scan). With `memo` (see
 * keysRepeat) the hash is computed once per distinct key instead.
 */
export function hashedRows(shape: TableShape, memo = false): string {
  if (memo) return `(SELECT x.shardctl_h, t.* FROM ${shape.sqlName} t ${memoHash(shape, 't', 'x')}) s`;
  return `(SELECT ${hashExpression(shape, 't')} AS shardctl_h, t.* FROM ${shape.sqlName} t OFFSET 0) s`;
}

/**
 * A lateral subquery giving `<as>.shardctl_h` for each row of `alias`: the
 * planner puts a Memoize node on it (keyed by the key column), so md5 runs
 * once per distinct key rather than once per row. Use it only when keys
 * repeat (keysRepeat): on unique keys the cache is pure overhead.
 */
export function memoHash(shape: Pick<TableShape, 'key'>, alias: string, as: string): string {
  return `CROSS JOIN LATERAL (SELECT ${hashExpression(shape, alias)} AS shardctl_h OFFSET 0) ${as}`;
}

/**
 * Whether the table's statistics say a key has several rows on average (at
 * most 30% distinct values): then hashing once per key (memoHash) wins.
 * Measured on 1.45M rows, 20 per key: a range scan 1.49 s → 0.94 s; on unique
 * keys it costs 55% more, so without statistics the answer is no.
 */
export async function keysRepeat(client: PgClient, shape: TableShape): Promise<boolean> {
  const q = parseQualifiedName(shape.name);
  const { rows } = await client.query<{ n_distinct: number; reltuples: number }>(
    `SELECT s.n_distinct::float8 AS n_distinct, c.reltuples::float8 AS reltuples
       FROM pg_stats s JOIN pg_class c ON c.oid = to_regclass($1)
      WHERE s.schemaname = $2 AND s.tablename = $3 AND s.attname = $4`,
    [quoteQualified(q), q.schema, q.name, shape.key],
  );
  const r = rows[0];
  if (!r) return false;
  const fraction = r.n_distinct < 0 ? -r.n_distinct : r.n_distinct / Math.max(1, r.reltuples);
  return fraction > 0 && fraction <= 0.3;
}

/** The table's heap size in bytes (what a full read of it scans). */
export async function relationBytes(client: PgClient, shape: TableShape): Promise<number> {
  const { rows } = await client.query<{ n: number }>(`SELECT pg_relation_size(to_regclass($1))::bigint AS n`, [shape.sqlName]);
  return Number(rows[0]?.n ?? 0);
}

/** The table's row count from statistics (0 when never analysed). */
export async function tableRowEstimate(client: PgClient, shape: TableShape): Promise<number> {
  const { rows } = await client.query<{ n: number }>(`SELECT greatest(reltuples, 0)::float8 AS n FROM pg_class WHERE oid = to_regclass($1)`, [shape.sqlName]);
  return rows[0]?.n ?? 0;
}

export function columnList(columns: Array<{ name: string }>, alias = ''): string {
  return columns.map((c) => `${alias ? `${alias}.` : ''}${quoteIdent(c.name)}`).join(', ');
}

/**
 * How a row is fingerprinted to compare it across shards: `hash` is
 * hash_record_extended() of the row (64 bits, about ten times cheaper than
 * building the row's text), used when both servers run the same major version
 * and every column type has an extended hash function; otherwise `md5` of the
 * row as text. Both sides of a comparison always use the same kind, and a
 * difference between servers can only make rows look different (a move
 * fails verification, a row is kept), never make different rows look equal.
 */
export type RowDigestKind = 'hash' | 'md5';

/** The row's digest as text, over every column in the source's order. */
export function rowDigest(shape: TableShape, alias = 't', kind: RowDigestKind = 'md5'): string {
  const row = `ROW(${shape.allColumns.map((c) => `${alias}.${quoteIdent(c.name)}`).join(', ')})`;
  return kind === 'hash' ? `hash_record_extended(${row}, 0)::text` : `md5(${row}::text)`;
}

/** The row's digest as a bigint, for order-independent sums. */
export function rowDigestValue(shape: TableShape, alias: string, kind: RowDigestKind): string {
  const row = `ROW(${shape.allColumns.map((c) => `${alias}.${quoteIdent(c.name)}`).join(', ')})`;
  return kind === 'hash' ? `hash_record_extended(${row}, 0)` : `('x' || left(md5(${row}::text), 15))::bit(60)::bigint`;
}

/** The digest two shards can both compute alike for this table (see RowDigestKind). */
export async function chooseDigest(source: PgClient, target: PgClient, shape: TableShape): Promise<RowDigestKind> {
  const version = async (c: PgClient) => Math.floor(Number((await c.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`)).rows[0]!.v) / 10000);
  if ((await version(source)) !== (await version(target))) return 'md5';
  try {
    // Fails at once for a column type without an extended hash function (json, point, …).
    await source.query(`SELECT hash_record_extended(ROW(${shape.allColumns.map((c) => `NULL::${c.type}`).join(', ')}), 0)`);
    return 'hash';
  } catch {
    return 'md5';
  }
}
