import type { PgClient } from './connect.js';

/**
 * The routing hash of SPEC.md as a SQL function, so SQL (indexes, moves, an
 * application's own queries) routes exactly like the CLI:
 *   shardctl.route_hash(key::text) = first 4 bytes of md5(key) as unsigned big-endian int.
 * IMMUTABLE so it can back an expression index. md5() hashes the database's
 * bytes, so the contract holds in UTF8 databases; init warns about others.
 */
export const ROUTE_HASH_SQL = `
CREATE SCHEMA IF NOT EXISTS shardctl;
CREATE OR REPLACE FUNCTION shardctl.route_hash(key text) RETURNS bigint
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $fn$ SELECT ('x' || left(md5(key), 8))::bit(32)::bigint $fn$;
COMMENT ON FUNCTION shardctl.route_hash(text) IS
  'shardctl routing hash: first 4 bytes of md5(key) as an unsigned big-endian integer (SPEC.md, routing contract)';
`;

/**
 * On every shard, beside the function: the batches of a move in flight, each
 * recorded in the same transaction as its rows, so the shard itself says
 * exactly what it holds: on a target, the batches it received ('copied'); on
 * a source, the batches cleanup removed ('removed'). A crash between a
 * batch's commit and the metadata journal loses nothing. The records go when
 * the move is cleaned up or aborted.
 */
export const MOVE_BATCHES_SQL = `
CREATE TABLE IF NOT EXISTS shardctl.move_batches (
  plan_id     text NOT NULL,
  move_no     integer NOT NULL,
  table_name  text NOT NULL,
  batch_no    integer NOT NULL,
  kind        text NOT NULL DEFAULT 'copied' CHECK (kind IN ('copied', 'removed')),
  -- The source's heap blocks the batch read, first to last (the copy's cursor is the last).
  first_block bigint NOT NULL,
  last_block  bigint NOT NULL,
  rows        bigint NOT NULL,
  bytes       bigint NOT NULL,
  -- Sum of the rows' digests as the source had them when copied.
  digest_sum  numeric NOT NULL,
  -- A copied batch: where its rows were on the source (a tid[] literal, kept as text: only the
  -- source reads it as ctids), and the source table's file then (cleanup deletes by these ctids
  -- while the file is the same: src/mover/block-copy.ts, deleteCopiedRows).
  source_tids     text,
  source_filenode oid,
  PRIMARY KEY (plan_id, move_no, table_name, kind, batch_no)
);
-- Shards set up by an earlier version: the columns added since (looked up first, so no lock is taken once they exist).
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'shardctl.move_batches'::regclass AND attname = 'source_tids' AND NOT attisdropped) THEN
    ALTER TABLE shardctl.move_batches ADD COLUMN IF NOT EXISTS source_tids text, ADD COLUMN IF NOT EXISTS source_filenode oid;
  END IF;
END $$;
-- On a source: one row per online move whose change capture and fence are installed here
-- (src/mover/capture.ts), written with them and removed with them: what \`shard verify\` checks
-- leftovers against.
CREATE TABLE IF NOT EXISTS shardctl.move_captures (
  tag        text PRIMARY KEY,
  plan_id    text NOT NULL,
  move_no    integer NOT NULL,
  tables     text[] NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
`;

export interface RoutingFunctionResult {
  encoding: string;
}

export async function installRoutingFunction(client: PgClient): Promise<RoutingFunctionResult> {
  await client.query(ROUTE_HASH_SQL);
  await client.query(MOVE_BATCHES_SQL);
  const { rows } = await client.query<{ server_encoding: string }>('SHOW server_encoding');
  return { encoding: rows[0]?.server_encoding ?? 'unknown' };
}
