import { LOCK_NAMESPACE } from '../../src/postgres/advisory-lock.js';
import { sql } from './migrations.js';

/** The backend that holds the metadata lock in this database now, or null. */
export async function metadataLockHolder(metaUrl: string): Promise<number | null> {
  const rows = await sql<{ pid: number }>(
    metaUrl,
    `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1::bigint::oid AND objid = 1 AND objsubid = 2
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [LOCK_NAMESPACE],
  );
  return rows[0]?.pid ?? null;
}
