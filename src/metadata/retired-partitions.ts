import type { PgClient } from '../postgres/connect.js';

/** A partition that `partition rotate` retired, as the metadata database records it. */
export interface RetiredPartition {
  shard: string;
  parent: string;
  partition: string;
  mode: 'drop' | 'detach' | 'archive';
  /** schema.name of the table now (detach: where it was; archive: in the archive schema); null once dropped. */
  nowAt: string | null;
  boundFrom: string | null;
  boundTo: string | null;
  rows: number | null;
  bytes: number | null;
  retiredAt?: Date;
  retiredBy: string;
}

/** Every statement sent to shardctl.retired_partitions. Writes are fenced by the lease like the journal's. */
export async function recordRetired(client: PgClient, entry: RetiredPartition): Promise<void> {
  await client.query(
    `INSERT INTO shardctl.retired_partitions (shard, parent, partition, mode, now_at, bound_from, bound_to, rows, bytes, retired_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    [entry.shard, entry.parent, entry.partition, entry.mode, entry.nowAt, entry.boundFrom, entry.boundTo, entry.rows, entry.bytes, entry.retiredBy],
  );
}

export async function listRetired(client: PgClient, options: { parent?: string; limit: number }): Promise<RetiredPartition[]> {
  const { rows } = await client.query<{
    shard: string; parent: string; partition: string; mode: RetiredPartition['mode']; now_at: string | null;
    bound_from: string | null; bound_to: string | null; rows: number | null; bytes: number | null; retired_at: Date; retired_by: string;
  }>(
    `SELECT shard, parent, partition, mode, now_at, bound_from, bound_to, rows, bytes, retired_at, retired_by
       FROM shardctl.retired_partitions WHERE ($1::text IS NULL OR parent = $1) ORDER BY retired_at DESC, id DESC LIMIT $2`,
    [options.parent ?? null, options.limit],
  );
  return rows.map((r) => ({
    shard: r.shard, parent: r.parent, partition: r.partition, mode: r.mode, nowAt: r.now_at, boundFrom: r.bound_from,
    boundTo: r.bound_to, rows: r.rows, bytes: r.bytes, retiredAt: r.retired_at, retiredBy: r.retired_by,
  }));
}
