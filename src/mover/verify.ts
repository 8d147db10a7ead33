import { multirangeLiteral, type Interval } from '../core/move-plan.js';
import type { PgClient } from '../postgres/connect.js';
import { hashedRows, rowDigestValue, type RowDigestKind, type TableShape } from './table-shape.js';

export interface RangeChecksum {
  rows: number;
  /** Sum of every row's digest as a number (see RowDigestKind): order-independent, exact (numeric). */
  sum: string;
}

/** Row count and order-independent checksum of a table's rows in `ranges`: equal on source and target means the same rows. */
export async function rangeChecksum(client: PgClient, shape: TableShape, ranges: Interval[], digest: RowDigestKind, memo = false): Promise<RangeChecksum> {
  const { rows } = await client.query<{ rows: number; sum: string }>(
    `SELECT count(*)::bigint AS rows,
            coalesce(sum(${rowDigestValue(shape, 's', digest)}), 0)::text AS sum
       FROM ${hashedRows(shape, memo)}
      WHERE $1::int8multirange @> s.shardctl_h`,
    [multirangeLiteral(ranges)],
  );
  return { rows: rows[0]!.rows, sum: rows[0]!.sum };
}

/** Rows of a table in `ranges` (e.g. rows left on a source after cleanup, or rows a shard holds for another). */
export async function countInRanges(client: PgClient, shape: TableShape, ranges: Interval[]): Promise<number> {
  if (!ranges.length) return 0;
  const { rows } = await client.query<{ n: number }>(
    `SELECT count(*)::bigint AS n FROM ${hashedRows(shape)} WHERE $1::int8multirange @> s.shardctl_h`,
    [multirangeLiteral(ranges)],
  );
  return rows[0]!.n;
}

/**
 * In one scan: how many rows of the table each other shard owns (the shard's
 * misplaced rows, by rightful owner). `owned` maps shard id → its ranges.
 */
export async function misplacedByOwner(client: PgClient, shape: TableShape, self: string, owned: Map<string, Interval[]>): Promise<Map<string, number>> {
  const others = [...owned.entries()].filter(([id, ranges]) => id !== self && ranges.length);
  if (!others.length) return new Map();
  const filters = others.map((_, i) => `count(*) FILTER (WHERE $${i + 1}::int8multirange @> s.shardctl_h)::bigint AS c${i}`);
  const { rows } = await client.query<Record<string, number>>(
    `SELECT ${filters.join(', ')} FROM ${hashedRows(shape)}`,
    others.map(([, ranges]) => multirangeLiteral(ranges)),
  );
  const out = new Map<string, number>();
  others.forEach(([id], i) => {
    const n = rows[0]![`c${i}`] ?? 0;
    if (n > 0) out.set(id, n);
  });
  return out;
}
