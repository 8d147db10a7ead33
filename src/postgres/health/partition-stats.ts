import type { PgClient } from '../connect.js';
import { quoteQualified } from '../ident.js';

/** The rows a default-partition count reads at most: one more than the default critical level, so "at least" is exact up to it. */
export const DEFAULT_ROWS_LIMIT = 100_001;

/**
 * Rows of a partition (the default one), counted up to `limit`: a default
 * partition that filled up for weeks is not read to its end for a health
 * check. The count stops at the limit; the caller says "at least".
 */
export async function boundedRowCount(client: PgClient, partition: string, limit = DEFAULT_ROWS_LIMIT): Promise<number> {
  const { rows } = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM (SELECT 1 FROM ${quoteQualified(partition)} LIMIT $1) AS bounded`, [limit]);
  return rows[0]!.n;
}
