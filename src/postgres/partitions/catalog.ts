import { OperationError } from '../../errors.js';
import { inTransaction, type PgClient } from '../connect.js';
import { parseQualifiedName, quoteIdent, quoteQualified } from '../ident.js';

/**
 * Reading a range-partitioned table's partitions from the catalog. Bounds are
 * rendered by pg_get_expr, which writes timestamptz values in the session's
 * TimeZone: every read here runs in a transaction with SET LOCAL TimeZone =
 * 'UTC', so bounds are comparable across shards whatever their settings, and
 * the session is left as it was.
 */

export type PartitionColumnType = 'timestamptz' | 'timestamp' | 'date' | 'other';

export interface PartitionInfo {
  schema: string;
  name: string;
  /** "public.messages_p20261201" (unquoted). */
  qualifiedName: string;
  /** pg_get_expr(relpartbound) in UTC: "FOR VALUES FROM ('2026-12-01 00:00:00+00') TO ('2026-12-02 00:00:00+00')" or "DEFAULT". */
  bound: string;
  /** The single-column lower and upper bound values as PostgreSQL prints them in UTC; null for DEFAULT, MINVALUE, MAXVALUE or several columns. */
  from: string | null;
  to: string | null;
  isDefault: boolean;
  /** An interrupted DETACH … CONCURRENTLY (pg_inherits.inhdetachpending): finish it with FINALIZE. */
  detachPending: boolean;
  /** reltuples; null when the table was never analyzed or vacuumed (-1). */
  estimatedRows: number | null;
  /** count(*), only with `exact`. */
  exactRows?: number;
  /** pg_total_relation_size: heap, indexes and TOAST. */
  bytes: number;
}

export interface PartitionedTable {
  table: string;
  exists: boolean;
  /** Partitioned by RANGE (false for a plain table, or LIST / HASH: see `strategy`). */
  rangePartitioned: boolean;
  strategy: 'range' | 'list' | 'hash' | null;
  /** The partition key's columns (an expression key gives none). */
  columns: string[];
  /** The type of the single key column. */
  columnType: PartitionColumnType | null;
  /** That type as SQL, quoted and schema-qualified ("pg_catalog"."timestamptz"), for casts. */
  columnTypeSql: string | null;
  /** Direct partitions, ordered by lower bound, the default last. */
  partitions: PartitionInfo[];
}

const STRATEGIES = { r: 'range', l: 'list', h: 'hash' } as const;

/** A table's partitioning as the catalog says (partitionHeadSql's row). */
export interface PartitionHead {
  oid: number;
  strategy: 'r' | 'l' | 'h' | null;
  columns: string[] | null;
  typname: string | null;
  typschema: string | null;
}

/** One partition's catalog row (partitionRowsSql's). */
export interface PartitionRow {
  schema: string;
  name: string;
  bound: string;
  detach_pending: boolean;
  reltuples: number;
  bytes: number | string;
}

/** The catalog read of a table's partitioning; `schema` and `name` are SQL expressions (placeholders). */
export function partitionHeadSql(schema: string, name: string): string {
  return `SELECT c.oid, p.partstrat AS strategy,
                 (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(p.partattrs::int2[]) WITH ORDINALITY AS k(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum) AS columns,
                 t.typname, tn.nspname AS typschema
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN pg_partitioned_table p ON p.partrelid = c.oid
            LEFT JOIN pg_attribute ka ON ka.attrelid = c.oid AND p.partnatts = 1 AND ka.attnum = p.partattrs[0]
            LEFT JOIN pg_type t ON t.oid = ka.atttypid
            LEFT JOIN pg_namespace tn ON tn.oid = t.typnamespace
           WHERE n.nspname = ${schema} AND c.relname = ${name} AND c.relkind IN ('r', 'p')`;
}

/** The catalog read of a table's partitions; `parent` is an SQL expression for its oid. */
export function partitionRowsSql(parent: string): string {
  return `SELECT c.oid, n.nspname AS schema, c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound, i.inhdetachpending AS detach_pending,
                 c.reltuples::float8 AS reltuples, pg_total_relation_size(c.oid) AS bytes
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE i.inhparent = ${parent} AND c.relkind IN ('r', 'p')`;
}

export async function readPartitions(client: PgClient, table: string, options: { exact?: boolean } = {}): Promise<PartitionedTable> {
  const { schema, name } = parseQualifiedName(table);
  return inTransaction(client, async () => {
    await client.query(`SET LOCAL TimeZone = 'UTC'`);
    const { rows: found } = await client.query<PartitionHead>(partitionHeadSql('$1', '$2'), [schema, name]);
    const head = found[0] ?? null;
    if (!head) return partitionedTableOf(table, null, []);
    const { rows } = await client.query<PartitionRow>(partitionRowsSql('$1::oid'), [head.oid]);
    const partitions = rows.map(partitionInfoOf);
    if (options.exact) for (const partition of partitions) partition.exactRows = await countRows(client, partition.qualifiedName);
    return partitionedTableOf(table, head, partitions);
  });
}

/** A table's partitioning and its partitions (in bound order, the default last), from the two catalog reads. */
export function partitionedTableOf(table: string, head: Omit<PartitionHead, 'oid'> | null, partitions: PartitionInfo[]): PartitionedTable {
  const { schema, name } = parseQualifiedName(table);
  const qualified = `${schema}.${name}`;
  if (!head) return { table: qualified, exists: false, rangePartitioned: false, strategy: null, columns: [], columnType: null, columnTypeSql: null, partitions: [] };
  const strategy = head.strategy ? STRATEGIES[head.strategy] : null;
  const typname = head.typname;
  const columnType: PartitionColumnType | null = typname === null ? null : typname === 'timestamptz' || typname === 'timestamp' || typname === 'date' ? typname : 'other';
  partitions.sort((a, b) => Number(a.isDefault) - Number(b.isDefault) || (a.from ?? '').localeCompare(b.from ?? '') || a.name.localeCompare(b.name));
  return {
    table: qualified,
    exists: true,
    rangePartitioned: strategy === 'range',
    strategy,
    columns: head.columns ?? [],
    columnType,
    columnTypeSql: typname && head.typschema ? `${quoteIdent(head.typschema)}.${quoteIdent(typname)}` : null,
    partitions,
  };
}

/**
 * The values of "FOR VALUES FROM ('a') TO ('b')" for a single-column key: the
 * quoted literal's text, null for MINVALUE / MAXVALUE. Null when the bound is
 * DEFAULT or has several columns.
 */
export function parseRangeBound(bound: string): { from: string | null; to: string | null } | null {
  const m = /^FOR VALUES FROM \((.*)\) TO \((.*)\)$/.exec(bound);
  if (!m) return null;
  const value = (text: string): string | null | undefined => {
    if (text === 'MINVALUE' || text === 'MAXVALUE') return null;
    const q = /^'((?:[^']|'')*)'$/.exec(text);
    if (q) return q[1]!.replace(/''/g, "'");
    return /^[-+0-9.e]+$/i.test(text) ? text : undefined; // an unquoted number; anything else has several columns
  };
  const from = value(m[1]!);
  const to = value(m[2]!);
  return from === undefined || to === undefined ? null : { from, to };
}

async function countRows(client: PgClient, table: string): Promise<number> {
  const { rows } = await client.query<{ n: number }>(`SELECT count(*) AS n FROM ${quoteQualified(table)}`);
  return rows[0]!.n;
}

function requireRange(info: PartitionedTable): PartitionedTable & { columnTypeSql: string } {
  if (!info.exists) throw new OperationError(`table ${info.table} does not exist`);
  if (!info.rangePartitioned || info.columns.length !== 1 || !info.columnTypeSql) {
    throw new OperationError(`table ${info.table} is not partitioned by RANGE on one column`);
  }
  return info as PartitionedTable & { columnTypeSql: string };
}

/** Rows in the table's default partition (count(*): the estimate of a default is rarely current), or null when it has none. */
export async function defaultPartitionRows(client: PgClient, table: string): Promise<number | null> {
  const info = await readPartitions(client, table);
  const def = info.partitions.find((p) => p.isDefault);
  return def ? countRows(client, def.qualifiedName) : null;
}

/**
 * Rows of `table` (a partition, typically the default) with `column` in
 * [from, to). The bounds are bound as text and cast to the column's type
 * inside a UTC transaction, so a timestamptz bound without an offset means UTC.
 */
export async function rowsInRange(client: PgClient, table: string, column: string, from: string, to: string): Promise<number> {
  const type = await columnTypeSql(client, table, column);
  return inTransaction(client, async () => {
    await client.query(`SET LOCAL TimeZone = 'UTC'`);
    const col = quoteIdent(column);
    const { rows } = await client.query<{ n: number }>(
      `SELECT count(*) AS n FROM ${quoteQualified(table)} WHERE ${col} >= $1::text::${type} AND ${col} < $2::text::${type}`,
      [from, to],
    );
    return rows[0]!.n;
  });
}

/** max(column) of one partition, as text in UTC ("2026-12-01 13:45:00+00"), null when it is empty: does it hold a row newer than a cut-off? */
export async function partitionMaxValue(client: PgClient, partition: string, column: string): Promise<string | null> {
  return inTransaction(client, async () => {
    await client.query(`SET LOCAL TimeZone = 'UTC'`);
    const { rows } = await client.query<{ max: string | null }>(`SELECT max(${quoteIdent(column)})::text AS max FROM ${quoteQualified(partition)}`);
    return rows[0]!.max;
  });
}

/** Whether two values are equal as `typeSql` (bounds written differently: '2026-12-01' and '2026-12-01 00:00:00+00'). */
export async function sameValues(client: PgClient, typeSql: string, pairs: Array<[string, string]>): Promise<boolean> {
  if (!pairs.length) return true;
  return inTransaction(client, async () => {
    await client.query(`SET LOCAL TimeZone = 'UTC'`);
    const { rows } = await client.query<{ same: boolean }>(
      `SELECT bool_and(a::text::${typeSql} = b::text::${typeSql}) AS same FROM unnest($1::text[], $2::text[]) AS v(a, b)`,
      [pairs.map((p) => p[0]), pairs.map((p) => p[1])],
    );
    return rows[0]!.same === true;
  });
}

async function columnTypeSql(client: PgClient, table: string, column: string): Promise<string> {
  const { rows } = await client.query<{ typname: string; typschema: string }>(
    `SELECT t.typname, tn.nspname AS typschema
       FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid JOIN pg_namespace tn ON tn.oid = t.typnamespace
      WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND NOT a.attisdropped`,
    [quoteQualified(table), column],
  );
  if (!rows[0]) throw new OperationError(`table ${table} has no column ${column}`);
  return `${quoteIdent(rows[0].typschema)}.${quoteIdent(rows[0].typname)}`;
}

export { requireRange };

/** A partition's catalog row (pg_class, pg_inherits, its bound as pg_get_expr prints it) as PartitionInfo. */
export function partitionInfoOf(r: PartitionRow): PartitionInfo {
  const values = parseRangeBound(r.bound);
  return {
    schema: r.schema,
    name: r.name,
    qualifiedName: `${r.schema}.${r.name}`,
    bound: r.bound,
    from: values?.from ?? null,
    to: values?.to ?? null,
    isDefault: r.bound === 'DEFAULT',
    detachPending: r.detach_pending,
    estimatedRows: r.reltuples < 0 ? null : r.reltuples,
    bytes: Number(r.bytes),
  };
}
