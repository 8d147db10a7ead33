import { chooseRangeAccess, MAX_INDEX_RANGES, type RangeAccess } from '../core/range-access.js';
import { multirangeLiteral, type Interval } from '../core/move-plan.js';
import { inTransaction, type PgClient } from '../postgres/connect.js';
import { parseQualifiedName, quoteLiteral } from '../postgres/ident.js';
import { hashExpression, type TableShape } from './table-shape.js';

export type { RangeAccess } from '../core/range-access.js';

export const SCAN: RangeAccess = { kind: 'scan' };

/**
 * How to read `ranges` of the table on this server (see chooseRangeAccess):
 * by the routing-hash index when the planner can use one for the ranges (any
 * valid btree on shardctl.route_hash(key::text) first, e.g. `shard index`'s)
 * and its bitmap fits in work_mem; else a scan. Call it outside a
 * transaction: it asks the planner in one of its own.
 */
export async function rangeAccessFor(client: PgClient, shape: TableShape, ranges: Interval[]): Promise<RangeAccess> {
  if (!ranges.length) return SCAN;
  const { rows } = await client.query<{ pages: number; tuples: number; rows_per_page: number; work_mem_kb: number; index_stats: boolean }>(
    `SELECT (pg_relation_size(c.oid) / current_setting('block_size')::int)::bigint AS pages,
            greatest(c.reltuples, 0)::float8 AS tuples,
            CASE WHEN c.relpages > 0 AND c.reltuples > 0 THEN c.reltuples / c.relpages ELSE 0 END::float8 AS rows_per_page,
            (pg_size_bytes(current_setting('work_mem')) / 1024)::bigint AS work_mem_kb,
            EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_stats s ON s.schemaname = $2 AND s.tablename = ic.relname
                     WHERE i.indrelid = c.oid) AS index_stats
       FROM pg_class c WHERE c.oid = to_regclass($1)`,
    [shape.sqlName, parseQualifiedName(shape.name).schema],
  );
  const table = rows[0];
  if (!table || ranges.length > MAX_INDEX_RANGES) return SCAN;
  const plan = await planRangeRead(client, shape, ranges);
  // The planner's row estimate means something only once the index's expression has statistics
  // (ANALYZE after the index was built); half again as many, for safety. Otherwise: every row.
  const fraction = table.index_stats && table.tuples > 0 ? Math.min(1, (1.5 * plan.rows) / table.tuples) : 1;
  return chooseRangeAccess({
    indexUsable: plan.usesIndex,
    ranges: ranges.length,
    tablePages: table.pages,
    rowsPerPage: table.rows_per_page,
    fraction,
    workMemKb: Number(table.work_mem_kb),
  });
}

/**
 * Whether the planner can read the ranges by an index, and how many rows it
 * expects: asked of the planner itself (EXPLAIN with sequential scans off), so
 * any index it would match counts, and an invalid or unrelated one does not.
 * An index condition is what counts: with sequential scans off the planner
 * may walk a whole unrelated index (the primary key) and filter.
 */
async function planRangeRead(client: PgClient, shape: TableShape, ranges: Interval[]): Promise<{ usesIndex: boolean; rows: number }> {
  await client.query('BEGIN');
  try {
    await client.query(`SELECT set_config('enable_seqscan', 'off', true)`);
    const { rows } = await client.query<{ 'QUERY PLAN': Array<{ Plan: { 'Plan Rows': number } }> }>(
      `EXPLAIN (FORMAT JSON) SELECT 1 FROM ${shape.sqlName} t WHERE ${rangeTest(shape, ranges, 'index')}`,
    );
    const plan = rows[0]!['QUERY PLAN'];
    return { usesIndex: /"Index Cond"/.test(JSON.stringify(plan)), rows: plan[0]!.Plan['Plan Rows'] };
  } finally {
    await client.query('ROLLBACK');
  }
}

/**
 * The planner settings an index read needs: only bitmap scans (heap pages in
 * physical order, which block copies rely on; never a TID range scan that would
 * test every row against every range), and a work_mem that keeps the bitmap
 * exact. `local`: for the current transaction only.
 */
export function accessSettings(access: RangeAccess, local: boolean): string | null {
  if (access.kind === 'scan') return null;
  const set = (name: string, value: string) => `set_config('${name}', '${value}', ${local})`;
  return `SELECT ${[
    set('enable_seqscan', 'off'),
    set('enable_indexscan', 'off'),
    set('enable_indexonlyscan', 'off'),
    set('enable_tidscan', 'off'),
    set('enable_bitmapscan', 'on'),
    set('work_mem', `${Math.trunc(access.workMemKb)}kB`),
  ].join(', ')}`;
}

/**
 * The SQL test "the row's hash is in `ranges`" on table alias `alias`: one
 * int8multirange containment (one hash per row) for a scan; an OR of BETWEENs
 * on the indexed expression (one index range each) for an index read.
 * COPY takes no bind parameters: the text is built from integers only.
 */
export function rangeTest(shape: TableShape, ranges: Interval[], kind: RangeAccess['kind'], alias = 't'): string {
  if (!ranges.length) return 'false';
  const hash = hashExpression(shape, alias);
  if (kind === 'scan') return `${quoteLiteral(multirangeLiteral(ranges))}::int8multirange @> ${hash}`;
  return `(${ranges.map((r) => `${hash} BETWEEN ${Math.trunc(r.start)} AND ${Math.trunc(r.end)}`).join(' OR ')})`;
}

/** Runs one read under `access`'s settings: in a transaction of its own for an index read. */
export async function queryWithAccess<R extends Record<string, unknown>>(client: PgClient, access: RangeAccess, text: string, values: unknown[] = []): Promise<R[]> {
  const settings = accessSettings(access, true);
  if (!settings) return (await client.query<R>(text, values)).rows;
  return inTransaction(client, async () => {
    await client.query(settings);
    return (await client.query<R>(text, values)).rows;
  });
}
