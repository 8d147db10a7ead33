import type { PgClient } from '../connect.js';
import { parseQualifiedName, quoteIdent, quoteQualified } from '../ident.js';
import { partitionedTableOf, partitionHeadSql, partitionInfoOf, partitionRowsSql, type PartitionedTable, type PartitionHead, type PartitionRow } from '../partitions/catalog.js';
import { DEFAULT_ROWS_LIMIT } from './partition-stats.js';
import { SAMPLE_ROWS, tableSizesSql, type SampledKey, type TableSize } from './sharding-stats.js';
import { readShardStatsRow, shardStatsColumns, type ShardStats, type ShardStatsRow } from './shard-stats.js';

/**
 * Everything `health` reads from one shard in one statement, whichever
 * groups ask: the stats of the shards group (shard-stats.ts), the sizes and
 * the misplaced-row sample of the sharded tables (sharding-stats.ts), and the
 * partitions of each configured partitioned table with its default
 * partition's rows counted up to a bound (what listTable reads through
 * readPartitions and boundedRowCount). One round trip instead of one or more
 * per check family: each statement costs both processes a wake-up and a
 * parse, and with 32 shards that, not the reading, was most of a run.
 *
 * Only the same catalog and statistics views and the same bounded sample and
 * count as the separate reads, under the session's statement_timeout and
 * lock_timeout. The default partition is counted through query_to_xml (its
 * name is known only from the catalog read in the same statement). The
 * sample names the sharded tables in the text, so a table missing on the
 * shard fails the statement: callers then read part by part as before (the
 * separate reads handle a missing table). Partition bounds are read in the
 * session's TimeZone, which a health session sets to UTC (readPartitions sets
 * it locally for the same reason).
 */

export interface SnapshotParts {
  /** The shards group's stats; the query-text length kept. */
  stats?: { queryChars: number };
  /** Sizes of these sharded tables, and with `sample` a bounded sample of each one's keys with their routing hash. */
  tables?: Array<{ table: string; key: string }>;
  sample?: boolean;
  /** Partitions (and the default partition's bounded row count) of these tables. */
  partitions?: string[];
}

export interface ShardSnapshot {
  stats?: ShardStats;
  sizes?: TableSize[];
  /** Per table of `tables`: the sampled keys, in sample order. */
  samples?: SampledKey[][];
  /** Per table of `partitions`: as readPartitions reads it, and the default partition's rows up to DEFAULT_ROWS_LIMIT (null: no default partition). */
  partitions?: Array<{ info: PartitionedTable; defaultRows: number | null }>;
}

/** Whether any part is asked for (an empty snapshot needs no statement). */
export function hasParts(parts: SnapshotParts): boolean {
  return Boolean(parts.stats || parts.tables?.length || parts.partitions?.length);
}

export async function readShardSnapshot(client: PgClient, parts: SnapshotParts): Promise<ShardSnapshot> {
  if (!hasParts(parts)) return {};
  const params: unknown[] = [];
  const param = (value: unknown): string => `$${params.push(value)}`;
  const columns: string[] = [];
  const ctes: string[] = [];
  if (parts.stats) columns.push(shardStatsColumns(param(parts.stats.queryChars)));
  const tables = parts.tables ?? [];
  if (tables.length) {
    ctes.push(`sz AS MATERIALIZED (${tableSizesSql(param(tables.map((t) => quoteQualified(t.table))))})`);
    columns.push(`(SELECT json_agg(json_build_array(sz.exists, sz.rows, sz.bytes) ORDER BY sz.ord) FROM sz) AS sizes`);
    if (parts.sample) {
      const limit = param(SAMPLE_ROWS);
      tables.forEach((t, i) => {
        const col = quoteIdent(t.key);
        // TABLESAMPLE SYSTEM at the share sampleShardKeys takes: about twice the limit's rows, from the table's estimated rows.
        // The keys as a JSON array and their hashes as one comma-separated text, in the same order: a pair per row cost the server twice as much.
        columns.push(`(SELECT json_build_array(coalesce(json_agg(k), '[]'), coalesce(string_agg((('x' || left(md5(k), 8))::bit(32)::bigint)::text, ','), ''))
          FROM (SELECT ${col}::text AS k FROM ${quoteQualified(t.table)}
                  TABLESAMPLE SYSTEM ((SELECT least(100, (200 * ${limit}::int)::float8 / greatest(1, coalesce(sz.rows, 0))) FROM sz WHERE sz.ord = ${i + 1}))
                 WHERE ${col} IS NOT NULL LIMIT ${limit}::int) sampled) AS sample${i}`);
      });
    }
  }
  const partitioned = parts.partitions ?? [];
  if (partitioned.length) {
    const limit = param(DEFAULT_ROWS_LIMIT);
    partitioned.forEach((table, i) => {
      const { schema, name } = parseQualifiedName(table);
      columns.push(`(WITH head AS MATERIALIZED (
          ${partitionHeadSql(param(schema), param(name))}
        ), parts AS MATERIALIZED (
          ${partitionRowsSql('(SELECT oid FROM head LIMIT 1)')}
        )
        SELECT json_build_array(
          (SELECT json_build_object('strategy', strategy, 'columns', columns, 'typname', typname, 'typschema', typschema) FROM head LIMIT 1),
          (SELECT coalesce(json_agg(json_build_object('schema', schema, 'name', name, 'bound', bound, 'detach_pending', detach_pending, 'reltuples', reltuples, 'bytes', bytes)), '[]') FROM parts),
          (SELECT (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM (SELECT 1 FROM %s LIMIT %s) AS bounded', parts.oid::regclass, ${limit}::int), false, true, '')))[1]::text::int
             FROM parts WHERE parts.bound = 'DEFAULT' LIMIT 1))) AS partitions${i}`);
    });
  }
  const sql = `${ctes.length ? `WITH ${ctes.join(', ')} ` : ''}SELECT ${columns.join(',\n       ')}`;
  const { rows } = await client.query<Record<string, unknown>>(sql, params);
  const row = rows[0]!;
  const out: ShardSnapshot = {};
  if (parts.stats) out.stats = await readShardStatsRow(client, row as unknown as ShardStatsRow);
  if (tables.length) {
    const sizes = (row.sizes as Array<[boolean, number | null, number | null]> | null) ?? [];
    out.sizes = tables.map((t, i) => ({ table: t.table, exists: sizes[i]?.[0] ?? false, rows: sizes[i]?.[1] ?? 0, bytes: sizes[i]?.[2] ?? 0 }));
    if (parts.sample) {
      out.samples = tables.map((_, i) => {
        const [keys, hashes] = row[`sample${i}`] as [string[], string];
        const h = hashes ? hashes.split(',') : [];
        return keys.map((key, j) => ({ key, hash: Number(h[j]) }));
      });
    }
  }
  if (partitioned.length) {
    out.partitions = partitioned.map((table, i) => {
      const [head, partitions, defaultRows] = row[`partitions${i}`] as [PartitionHead | null, PartitionRow[], number | null];
      return { info: partitionedTableOf(table, head, partitions.map(partitionInfoOf)), defaultRows };
    });
  }
  return out;
}

