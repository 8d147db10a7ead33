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

export interface RoutingFunctionResult {
  encoding: string;
}

export async function installRoutingFunction(client: PgClient): Promise<RoutingFunctionResult> {
  await client.query(ROUTE_HASH_SQL);
  const { rows } = await client.query<{ server_encoding: string }>('SHOW server_encoding');
  return { encoding: rows[0]?.server_encoding ?? 'unknown' };
}
