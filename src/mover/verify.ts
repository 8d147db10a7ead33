import { multirangeLiteral, type Interval } from '../core/move-plan.js';
import type { PgClient } from '../postgres/connect.js';
import { rowsInRanges } from './copy-range.js';
import { queryWithAccess, rangeAccessFor, SCAN, type RangeAccess } from './range-access.js';
import { rowDigestValue, type RowDigestKind, type TableShape } from './table-shape.js';

export interface RangeChecksum {
  rows: number;
  /** Sum of every row's digest as a number (see RowDigestKind): order-independent, exact (numeric). */
  sum: string;
}

/**
 * Row count and order-independent checksum of a table's rows in `ranges`: equal on source and target means the same rows.
 * `memo` (keysRepeat) serves a scan; `access` may read the ranges by the routing-hash index instead (rangeAccessFor).
 */
export async function rangeChecksum(client: PgClient, shape: TableShape, ranges: Interval[], digest: RowDigestKind, memo = false, access: RangeAccess = SCAN): Promise<RangeChecksum> {
  const [r] = await queryWithAccess<{ rows: number; sum: string }>(
    client,
    access,
    `SELECT count(*)::bigint AS rows, coalesce(sum(${rowDigestValue(shape, 's', digest)}), 0)::text AS sum FROM ${rowsInRanges(shape, ranges, -1, access, memo)}`,
  );
  return { rows: r!.rows, sum: r!.sum };
}

/** Rows of a table in `ranges` (e.g. rows left on a source after cleanup, or rows a shard holds for another). */
export async function countInRanges(client: PgClient, shape: TableShape, ranges: Interval[], given?: RangeAccess): Promise<number> {
  if (!ranges.length) return 0;
  // Unless told, by the routing-hash index where it serves.
  const access = given ?? (await rangeAccessFor(client, shape, ranges));
  const [r] = await queryWithAccess<{ n: number }>(client, access, `SELECT count(*)::bigint AS n FROM ${rowsInRanges(shape, ranges, -1, access)}`);
  return r!.n;
}

/**
 * In one read: how many rows of the table each other shard owns (the shard's
 * misplaced rows, by rightful owner). `owned` maps shard id → its ranges.
 * With the routing-hash index (rangeAccessFor over the other shards' ranges)
 * only misplaced rows are read, so an hourly check costs little on a
 * well-placed shard; otherwise every row is hashed.
 */
export async function misplacedByOwner(client: PgClient, shape: TableShape, self: string, owned: Map<string, Interval[]>): Promise<Map<string, number>> {
  const others = [...owned.entries()].filter(([id, ranges]) => id !== self && ranges.length);
  if (!others.length) return new Map();
  const elsewhere = othersRanges(others);
  const access = await rangeAccessFor(client, shape, elsewhere);
  const filters = others.map((_, i) => `count(*) FILTER (WHERE $${i + 1}::int8multirange @> s.shardctl_h)::bigint AS c${i}`);
  const rows = await queryWithAccess<Record<string, number>>(
    client,
    access,
    `SELECT ${filters.join(', ')} FROM ${rowsInRanges(shape, elsewhere, -1, access)}`,
    others.map(([, ranges]) => multirangeLiteral(ranges)),
  );
  const out = new Map<string, number>();
  others.forEach(([id], i) => {
    const n = rows[0]![`c${i}`] ?? 0;
    if (n > 0) out.set(id, n);
  });
  return out;
}

/** Every range the other shards own, in order, adjacent ones joined (fewer index ranges to read). */
function othersRanges(others: Array<[string, Interval[]]>): Interval[] {
  const sorted = others.flatMap(([, ranges]) => ranges).sort((a, b) => a.start - b.start);
  const joined: Interval[] = [];
  for (const r of sorted) {
    const last = joined.at(-1);
    if (last && last.end + 1 >= r.start) last.end = Math.max(last.end, r.end);
    else joined.push({ ...r });
  }
  return joined;
}
