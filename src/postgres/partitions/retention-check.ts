import type { PgClient } from '../connect.js';
import { quoteIdent, quoteQualified } from '../ident.js';

/**
 * Whether a partition holds any row at or after `cutoff` (an instant): such a
 * partition is never retired, whatever its bounds say (a row can sit there
 * only if the bounds are wider than the calendar's, e.g. an adopted one). For
 * timestamp and date columns the instant is compared as wall time in `timezone`.
 */
export async function holdsRowsFrom(client: PgClient, partition: string, column: string, columnType: 'timestamptz' | 'timestamp' | 'date', cutoff: Date, timezone: string): Promise<boolean> {
  const bound = columnType === 'timestamptz' ? '$1::timestamptz' : `($1::timestamptz AT TIME ZONE $2::text)`;
  const { rows } = await client.query<{ found: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM ${quoteQualified(partition)} WHERE ${quoteIdent(column)} >= ${bound}) AS found`,
    columnType === 'timestamptz' ? [cutoff.toISOString()] : [cutoff.toISOString(), timezone],
  );
  return rows[0]!.found;
}
