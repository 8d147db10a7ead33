import { multirangeLiteral, type Interval } from '../../core/move-plan.js';
import type { PgClient } from '../connect.js';
import { quoteIdent, quoteQualified } from '../ident.js';

/**
 * What `health` reads from one shard about its sharded tables: size
 * statistics from the catalog, and a bounded sample of each table's shard
 * keys, judged against the hash ranges the ring gives the shard. Reads only;
 * the sample takes the ACCESS SHARE lock of any SELECT, for one bounded
 * statement.
 */

export interface TableSize {
  table: string;
  exists: boolean;
  /** Live rows: pg_stat_user_tables.n_live_tup, else pg_class.reltuples (an estimate either way), summed over the leaf partitions. */
  rows: number;
  /** pg_total_relation_size (heap, indexes, TOAST), summed over the leaf partitions. */
  bytes: number;
}

/**
 * Rows and bytes of each table, in one round trip. A partitioned table has no
 * storage of its own, so the figures are summed over pg_partition_tree's
 * leaves (a plain table is its own only leaf). n_live_tup is kept current by
 * every write; reltuples only by ANALYZE and VACUUM, so it is the fallback for
 * a table whose statistics were reset. n_live_tup is read as
 * pg_stat_user_tables defines it (pg_stat_get_live_tuples): the view's first
 * read on a fresh session cost about 5 ms more, on every shard.
 */
export async function readTableSizes(client: PgClient, tables: string[]): Promise<TableSize[]> {
  const { rows } = await client.query<{ table: string; exists: boolean; rows: number | null; bytes: number | null }>(tableSizesSql('$1'), [tables.map((t) => quoteQualified(t))]);
  return rows.map((r, i) => ({ table: tables[i]!, exists: r.exists, rows: r.rows ?? 0, bytes: r.bytes ?? 0 }));
}

/** readTableSizes' statement (one row per table, in order), its table list bound as `tablesParam` (also a part of the one-statement shard snapshot). */
export function tableSizesSql(tablesParam: string): string {
  return `WITH t AS (SELECT name, ord, to_regclass(name) AS rel FROM unnest(${tablesParam}::text[]) WITH ORDINALITY AS u(name, ord)),
          leaf AS (
            SELECT t.ord, p.relid FROM t, pg_partition_tree(t.rel) p WHERE p.isleaf
            UNION ALL
            -- pg_partition_tree lists nothing for a plain table: it is its own leaf.
            SELECT t.ord, t.rel FROM t WHERE t.rel IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_partition_tree(t.rel)))
     SELECT t.ord, t.name AS table, t.rel IS NOT NULL AS exists,
            sum(COALESCE(NULLIF(pg_stat_get_live_tuples(l.relid), 0), greatest(c.reltuples, 0)::bigint))::float8 AS rows,
            sum(pg_total_relation_size(l.relid))::float8 AS bytes
       FROM t LEFT JOIN leaf l ON l.ord = t.ord
       LEFT JOIN pg_class c ON c.oid = l.relid
      GROUP BY t.ord, t.name, t.rel
      ORDER BY t.ord`;
}

export interface SampledKey {
  /** key::text, the string the routing contract hashes. */
  key: string;
  /** The routing hash, computed by the shard (SPEC.md: first 4 bytes of md5, big-endian). */
  hash: number;
}

/** Rows a misplaced-row sample reads at most. */
export const SAMPLE_ROWS = 1000;

/** A table's sample on one shard, counted by the shard itself. */
export interface MisplacedSample {
  /** Rows sampled (at most SAMPLE_ROWS). */
  sampled: number;
  /** Sampled rows whose hash is outside the shard's ranges and outside every range of a move in flight. */
  misplaced: number;
  /** Sampled rows outside the shard's ranges but in a range of a move in flight (expected on both ends until cleanup). */
  inFlight: number;
  /** The first misplaced row the sample met, with its routing hash (for its owner); null when none is. */
  example: SampledKey | null;
}

/** The SQLSTATE of a type that does not exist: int8multirange before PostgreSQL 14. */
const UNDEFINED_OBJECT = '42704';

/**
 * The same bounded sample of every table as sampleShardKeys takes, each key
 * placed by the shard itself, in one statement for all the tables: a key is
 * misplaced when its routing hash is outside `owned` (the ranges the ring
 * gives this shard), and expected when it is inside `moving` (ranges of a move
 * in flight to or from it). The ranges go as int8multirange parameters
 * (containment is a binary search, as for the mover), so only three counts
 * and one example key per table cross the network, not the sampled keys.
 * int8multirange needs PostgreSQL 14: on an older server this returns null,
 * and the caller samples the keys themselves (sampleShardKeys).
 */
export async function countMisplaced(
  client: PgClient,
  tables: Array<{ table: string; key: string; estimatedRows: number }>,
  ranges: { owned: Interval[]; moving: Interval[] },
  limit = SAMPLE_ROWS,
): Promise<MisplacedSample[] | null> {
  if (!tables.length) return [];
  const columns = tables.map(({ table, key }, i) => {
    const col = quoteIdent(key);
    return `(WITH s AS MATERIALIZED (
        SELECT k, ('x' || left(md5(k), 8))::bit(32)::bigint AS h
          FROM (SELECT ${col}::text AS k FROM ${quoteQualified(table)} TABLESAMPLE SYSTEM ($${i + 4}::float8) WHERE ${col} IS NOT NULL LIMIT $3) sampled
      ), c AS MATERIALIZED (
        SELECT k, h, NOT $1::int8multirange @> h AS away, $2::int8multirange @> h AS moving FROM s
      )
      SELECT json_build_object(
        'sampled', (SELECT count(*) FROM c),
        'misplaced', (SELECT count(*) FROM c WHERE away AND NOT moving),
        'inFlight', (SELECT count(*) FROM c WHERE away AND moving),
        'example', (SELECT json_build_object('key', k, 'hash', h) FROM c WHERE away AND NOT moving LIMIT 1))) AS t${i}`;
  });
  try {
    const { rows } = await client.query<Record<string, MisplacedSample>>(`SELECT ${columns.join(',\n       ')}`, [
      multirangeLiteral(ranges.owned),
      multirangeLiteral(ranges.moving),
      limit,
      ...tables.map((t) => samplePercent(t.estimatedRows, limit)),
    ]);
    return tables.map((_, i) => rows[0]![`t${i}`]!);
  } catch (err) {
    if ((err as { code?: string }).code === UNDEFINED_OBJECT && /multirange/.test((err as Error).message)) return null;
    throw err;
  }
}

/** The share of a table TABLESAMPLE SYSTEM reads for about twice `limit` rows, from its estimated row count. */
function samplePercent(estimatedRows: number, limit: number): number {
  return Math.min(100, (100 * 2 * limit) / Math.max(1, estimatedRows));
}

/**
 * Up to `limit` shard keys of a table with their routing hash. TABLESAMPLE
 * SYSTEM reads whole pages chosen at random, a share of the table sized to
 * give about twice `limit` rows from its estimated row count, so a large
 * table costs a few hundred pages, not a scan; a small one (the share is then
 * 100%) is read from the start until `limit` rows. The hash is the contract's
 * SQL form, so no shardctl function has to be installed on the shard. Used
 * where countMisplaced cannot be (PostgreSQL 13): the keys are then placed
 * on the ring by the caller.
 */
export async function sampleShardKeys(client: PgClient, table: string, key: string, estimatedRows: number, limit = SAMPLE_ROWS): Promise<SampledKey[]> {
  const percent = samplePercent(estimatedRows, limit);
  const col = quoteIdent(key);
  const { rows } = await client.query<{ key: string; hash: string }>(
    `SELECT ${col}::text AS key, ('x' || left(md5(${col}::text), 8))::bit(32)::bigint AS hash
       FROM ${quoteQualified(table)} TABLESAMPLE SYSTEM ($1::float8)
      WHERE ${col} IS NOT NULL
      LIMIT $2`,
    [percent, limit],
  );
  return rows.map((r) => ({ key: r.key, hash: Number(r.hash) }));
}
