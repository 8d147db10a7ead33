import type { PgClient } from '../connect.js';
import { quoteIdent, quoteQualified } from '../ident.js';

/**
 * Which of a table's partitions hold any row at or after `cutoff` (an
 * instant), in one query: such a partition is never retired, whatever its
 * bounds say (a row can sit there only if the bounds are wider than the
 * calendar's, e.g. an adopted one). For timestamp and date columns the
 * instant is compared as wall time in `timezone`.
 */
export async function partitionsHoldingRowsFrom(
  client: PgClient,
  partitions: string[],
  column: string,
  columnType: 'timestamptz' | 'timestamp' | 'date',
  cutoff: Date,
  timezone: string,
): Promise<Set<string>> {
  if (!partitions.length) return new Set();
  const bound = columnType === 'timestamptz' ? '$1::timestamptz' : `($1::timestamptz AT TIME ZONE $2::text)`;
  const { rows } = await client.query<Record<string, boolean>>(
    `SELECT ${partitions.map((p, i) => `EXISTS (SELECT 1 FROM ${quoteQualified(p)} WHERE ${quoteIdent(column)} >= ${bound}) AS "${i}"`).join(', ')}`,
    columnType === 'timestamptz' ? [cutoff.toISOString()] : [cutoff.toISOString(), timezone],
  );
  return new Set(partitions.filter((_, i) => rows[0]![String(i)] === true));
}
