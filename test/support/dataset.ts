import pg from 'pg';
import { Ring, type RingSpec } from '../../src/core/ring.js';

export const SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS public.messages (
  room_id bigint NOT NULL, id bigint NOT NULL, body text NOT NULL, created_at timestamptz NOT NULL DEFAULT '2026-01-01',
  PRIMARY KEY (room_id, id));
CREATE TABLE IF NOT EXISTS public.reactions (
  room_id bigint NOT NULL, message_id bigint NOT NULL, emoji text NOT NULL, user_id bigint NOT NULL,
  PRIMARY KEY (room_id, message_id, emoji, user_id));
`;

/** A short-lived connection for test setup and checks. */
export async function withPg<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function createSchema(urls: string[]): Promise<void> {
  for (const url of urls) await withPg(url, (c) => c.query(SCHEMA_SQL));
}

/**
 * `rooms` rooms with `perRoom` messages and a reaction on every third message,
 * each room on the shard `ring` gives it (shard ids → URLs in `urls`).
 */
export async function loadRooms(ring: RingSpec, urls: Record<string, string>, options: { rooms: number; perRoom: number; firstRoom?: number }): Promise<void> {
  const r = Ring.build(ring);
  const byShard = new Map<string, number[]>();
  for (let room = options.firstRoom ?? 1; room < (options.firstRoom ?? 1) + options.rooms; room++) {
    const owner = r.locate(String(room));
    byShard.set(owner, [...(byShard.get(owner) ?? []), room]);
  }
  for (const [shard, rooms] of byShard) {
    await withPg(urls[shard]!, async (c) => {
      await c.query(
        `INSERT INTO public.messages (room_id, id, body)
         SELECT r, m, 'message ' || m || ' in room ' || r || repeat('.', (m % 7) * 10) FROM unnest($1::bigint[]) r, generate_series(1, $2) m`,
        [rooms, options.perRoom],
      );
      await c.query(
        `INSERT INTO public.reactions SELECT room_id, id, '+1', id % 5 FROM public.messages WHERE room_id = ANY($1::bigint[]) AND id % 3 = 0`,
        [rooms],
      );
    });
  }
}

export interface Placement {
  /** Rows per table across every shard, and an order-independent checksum of them all. */
  totals: Record<string, { rows: number; sum: string }>;
  /** Rows sitting on a shard the ring does not give them to. */
  misplaced: number;
  perShard: Record<string, Record<string, number>>;
}

/** Where every row is, judged against `ring`, and the multiset of all rows (for "nothing lost, nothing duplicated"). */
export async function placement(ring: RingSpec, urls: Record<string, string>): Promise<Placement> {
  const r = Ring.build(ring);
  const owned = new Map<string, string>();
  for (const range of r.ranges()) owned.set(range.shardId, `${owned.get(range.shardId) ?? ''}${owned.has(range.shardId) ? ',' : ''}[${range.start},${range.end}]`);
  const totals: Placement['totals'] = {};
  const perShard: Placement['perShard'] = {};
  let misplaced = 0;
  for (const [shard, url] of Object.entries(urls)) {
    perShard[shard] = {};
    await withPg(url, async (c) => {
      for (const table of ['messages', 'reactions']) {
        const { rows } = await c.query<{ n: string; bad: string; sum: string }>(
          `SELECT count(*) AS n,
                  count(*) FILTER (WHERE NOT ($1::int8multirange @> ('x' || left(md5(room_id::text), 8))::bit(32)::bigint)) AS bad,
                  coalesce(sum(('x' || left(md5(t::text), 15))::bit(60)::bigint), 0)::text AS sum
             FROM public.${table} t`,
          [`{${owned.get(shard) ?? ''}}`],
        );
        const row = rows[0]!;
        perShard[shard]![table] = Number(row.n);
        misplaced += Number(row.bad);
        const prev = totals[table] ?? { rows: 0, sum: '0' };
        totals[table] = { rows: prev.rows + Number(row.n), sum: (BigInt(prev.sum) + BigInt(row.sum)).toString() };
      }
    });
  }
  return { totals, misplaced, perShard };
}
