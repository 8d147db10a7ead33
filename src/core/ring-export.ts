import type { Ring } from './ring.js';
import { ROUTING_HASH_NAME } from './routing-hash.js';

export type RingExportFormat = 'json' | 'csv' | 'sql';

export interface RingExportMeta {
  /** The ring epoch from the metadata store, so consumers can tell rings apart. */
  epoch: number;
}

/**
 * The JSON export: a documented contract with applications, so fields are only
 * ever added. `points` is sorted by (point, shard id) and is all a router
 * needs; `shards` and `vnodes` let it be checked against the routing contract.
 */
export interface RingJsonExport {
  epoch: number;
  hash: typeof ROUTING_HASH_NAME;
  vnodes: number;
  shards: Array<{ id: string; weight: number; points: number }>;
  points: Array<[number, string]>;
}

/** Rows per INSERT in the SQL export: large enough to load fast, small enough to read and parse. */
const SQL_ROWS_PER_INSERT = 1000;

/** The ring as a document for applications; every format ends with a newline. */
export function exportRing(ring: Ring, format: RingExportFormat, meta: RingExportMeta): string {
  if (!Number.isSafeInteger(meta.epoch) || meta.epoch < 0) {
    throw new Error(`ring export: epoch must be a non-negative integer, got ${meta.epoch}`);
  }
  switch (format) {
    case 'json':
      return `${JSON.stringify(ringJson(ring, meta))}\n`;
    case 'csv':
      return ringCsv(ring);
    case 'sql':
      return ringSql(ring, meta);
    default:
      throw new Error(`ring export: unknown format ${JSON.stringify(format satisfies never)}`);
  }
}

export function ringJson(ring: Ring, meta: RingExportMeta): RingJsonExport {
  return {
    epoch: meta.epoch,
    hash: ROUTING_HASH_NAME,
    vnodes: ring.spec.vnodes,
    shards: ring.spec.members.map((m) => ({ id: m.id, weight: m.weight, points: ring.pointCount(m.id) })),
    points: ring.points.map((p) => [p.point, p.shardId]),
  };
}

function ringCsv(ring: Ring): string {
  const lines = ['point,shard_id'];
  for (const p of ring.points) lines.push(`${p.point},${csvField(p.shardId)}`);
  return `${lines.join('\n')}\n`;
}

/** RFC 4180: quote a field only when it holds a comma, a quote or a line break. */
function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/**
 * A script a DBA can run as is (psql -f): the ring as a table and
 * shardctl_locate(text), which applies the routing contract in SQL. It loads
 * in one transaction, so sessions routing meanwhile see the old ring or the
 * new one, never a mix, and re-running it replaces the previous ring.
 */
function ringSql(ring: Ring, meta: RingExportMeta): string {
  const { vnodes } = ring.spec;
  const points = ring.points;
  const description = `shardctl ring, epoch ${meta.epoch}, hash ${ROUTING_HASH_NAME}, vnodes ${vnodes}, ${points.length} points`;
  const out: string[] = [
    `-- ${description}.`,
    '-- Routing contract: hash(key) = first 4 bytes of md5(key::text), unsigned big-endian;',
    '-- a key belongs to the shard of the first point >= hash(key) in (point, shard_id) order,',
    '-- wrapping round to the first point. md5() hashes the database encoding: use a UTF8 database.',
    "SET client_encoding = 'UTF8';",
    'SET standard_conforming_strings = on;',
    'BEGIN;',
    '',
    // Two shards can own the same point, so the key is (point, shard_id); the
    // "C" collation makes the index order the contract's tie-break (bytewise),
    // whatever the database's default collation is.
    'CREATE TABLE IF NOT EXISTS shardctl_ring (',
    '  point bigint NOT NULL CHECK (point BETWEEN 0 AND 4294967295),',
    '  shard_id text COLLATE "C" NOT NULL,',
    '  PRIMARY KEY (point, shard_id)',
    ');',
    `COMMENT ON TABLE shardctl_ring IS ${sqlString(description)};`,
    // DELETE rather than TRUNCATE: TRUNCATE would block routing sessions until commit.
    'DELETE FROM shardctl_ring;',
    '',
  ];
  for (let i = 0; i < points.length; i += SQL_ROWS_PER_INSERT) {
    const rows = points
      .slice(i, i + SQL_ROWS_PER_INSERT)
      .map((p) => `(${p.point}, ${sqlString(p.shardId)})`)
      .join(',\n');
    out.push(`INSERT INTO shardctl_ring (point, shard_id) VALUES\n${rows};`);
  }
  out.push(
    '',
    // SET search_path FROM CURRENT pins the schema the table was created in, so
    // callers with another search_path still find this ring.
    'CREATE OR REPLACE FUNCTION shardctl_locate(key text) RETURNS text',
    'LANGUAGE sql STABLE STRICT PARALLEL SAFE',
    'SET search_path FROM CURRENT',
    'AS $shardctl$',
    "  WITH h AS (SELECT ('x' || left(md5(key), 8))::bit(32)::bigint AS v)",
    '  SELECT coalesce(',
    '    (SELECT r.shard_id FROM shardctl_ring r, h WHERE r.point >= h.v ORDER BY r.point, r.shard_id LIMIT 1),',
    '    (SELECT r.shard_id FROM shardctl_ring r ORDER BY r.point, r.shard_id LIMIT 1))',
    '$shardctl$;',
    `COMMENT ON FUNCTION shardctl_locate(text) IS ${sqlString(`owner shard of a key (pass key::text); ${description}`)};`,
    '',
    'COMMIT;',
  );
  return `${out.join('\n')}\n`;
}

/** A standard SQL string literal (standard_conforming_strings is on, so only quotes need doubling). */
function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}
