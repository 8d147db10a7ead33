import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Ring, type RingSpec } from '../../src/core/ring.js';
import { exportRing, type RingExportFormat, type RingJsonExport } from '../../src/core/ring-export.js';

const spec: RingSpec = {
  vnodes: 16,
  members: [
    { id: 'shard-1', weight: 1 },
    { id: 'shard-0', weight: 2 },
    { id: 'draining', weight: 0 },
  ],
};

/** A minimal RFC 4180 reader, enough for the exporter's output. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  expect(field).toBe(''); // the document ends with a newline
  return rows;
}

// Shard ids are validated elsewhere; the exports must survive any id regardless.
const anyShardId = fc.string({
  unit: fc.constantFrom('a', 'B', '0', '-', ',', '"', "'", '\n', '\r', ' ', 'é', '\u{1F600}'),
  minLength: 1,
  maxLength: 8,
});
const anySpec: fc.Arbitrary<RingSpec> = fc
  .uniqueArray(anyShardId, { minLength: 1, maxLength: 5 })
  .chain((ids) =>
    fc.record({
      vnodes: fc.integer({ min: 1, max: 20 }),
      members: fc.constant(ids.map((id, i) => ({ id, weight: i === 0 ? 1 : (i % 3) * 0.5 }))),
    }),
  );

describe('exportRing json', () => {
  it('has the documented shape', () => {
    const ring = Ring.build(spec);
    const doc = JSON.parse(exportRing(ring, 'json', { epoch: 12 })) as RingJsonExport;
    expect(Object.keys(doc)).toEqual(['epoch', 'hash', 'vnodes', 'shards', 'points']);
    expect(doc).toMatchObject({ epoch: 12, hash: 'md5-be32', vnodes: 16 });
    expect(doc.shards).toEqual([
      { id: 'draining', weight: 0, points: 0 },
      { id: 'shard-0', weight: 2, points: 32 },
      { id: 'shard-1', weight: 1, points: 16 },
    ]);
    expect(doc.points).toHaveLength(48);
  });

  it('round-trips the points, and its shards rebuild the same ring', () => {
    fc.assert(
      fc.property(anySpec, fc.nat(), (s, epoch) => {
        const ring = Ring.build(s);
        const text = exportRing(ring, 'json', { epoch });
        expect(text.endsWith('\n')).toBe(true);
        const doc = JSON.parse(text) as RingJsonExport;
        expect(doc.epoch).toBe(epoch);
        expect(doc.points.map(([point, shardId]) => ({ point, shardId }))).toEqual(ring.points);
        const rebuilt = Ring.build({ vnodes: doc.vnodes, members: doc.shards.map(({ id, weight }) => ({ id, weight })) });
        expect(rebuilt.points).toEqual(ring.points);
      }),
      { numRuns: 100 },
    );
  });
});

describe('exportRing csv', () => {
  it('is a point,shard_id header and one row per point, in ring order', () => {
    const ring = Ring.build(spec);
    const lines = exportRing(ring, 'csv', { epoch: 1 }).trimEnd().split('\n');
    expect(lines[0]).toBe('point,shard_id');
    expect(lines.slice(1)).toEqual(ring.points.map((p) => `${p.point},${p.shardId}`));
  });

  it('round-trips the points, whatever characters the shard ids hold', () => {
    fc.assert(
      fc.property(anySpec, (s) => {
        const ring = Ring.build(s);
        const [header, ...rows] = parseCsv(exportRing(ring, 'csv', { epoch: 0 }));
        expect(header).toEqual(['point', 'shard_id']);
        expect(rows.map(([point, shardId]) => ({ point: Number(point), shardId }))).toEqual(ring.points);
      }),
      { numRuns: 200 },
    );
  });

  it('quotes ids holding a comma or a quote', () => {
    const ring = Ring.build({ vnodes: 1, members: [{ id: 'a,"b"', weight: 1 }] });
    expect(exportRing(ring, 'csv', { epoch: 0 })).toBe(`point,shard_id\n${ring.points[0]!.point},"a,""b"""\n`);
  });
});

describe('exportRing sql', () => {
  const valuesRow = /^\((\d+), '((?:[^']|'')*)'\)[,;]$/;

  function rowsOf(sql: string): Array<{ point: number; shardId: string }> {
    return sql
      .split('\n')
      .map((line) => valuesRow.exec(line))
      .filter((m) => m !== null)
      .map((m) => ({ point: Number(m[1]), shardId: m[2]!.replaceAll("''", "'") }));
  }

  it('creates the ring table keyed on (point, shard_id), since two shards can share a point', () => {
    const sql = exportRing(Ring.build(spec), 'sql', { epoch: 3 });
    expect(sql).toMatch(/CREATE TABLE IF NOT EXISTS shardctl_ring \(/);
    expect(sql).toMatch(/shard_id text COLLATE "C" NOT NULL/);
    expect(sql).toMatch(/PRIMARY KEY \(point, shard_id\)/);
    expect(sql).not.toMatch(/point bigint PRIMARY KEY/i);
  });

  it('inserts every point once, in ring order', () => {
    const ring = Ring.build({ vnodes: 700, members: [{ id: 'a', weight: 1 }, { id: 'b', weight: 1.5 }] });
    const sql = exportRing(ring, 'sql', { epoch: 3 });
    expect(rowsOf(sql)).toEqual(ring.points);
    // 1750 points are split into statements of at most 1000 rows.
    expect(sql.match(/^INSERT INTO shardctl_ring \(point, shard_id\) VALUES$/gm)).toHaveLength(2);
  });

  it('defines shardctl_locate with the contract: md5 hash, first point >= hash by (point, shard_id), wrapping', () => {
    const sql = exportRing(Ring.build(spec), 'sql', { epoch: 3 });
    expect(sql).toContain('CREATE OR REPLACE FUNCTION shardctl_locate(key text) RETURNS text');
    expect(sql).toContain("('x' || left(md5(key), 8))::bit(32)::bigint");
    expect(sql).toContain('WHERE r.point >= h.v ORDER BY r.point, r.shard_id LIMIT 1');
    // the wrap: no point >= hash falls back to the first point of the ring
    expect(sql).toContain('(SELECT r.shard_id FROM shardctl_ring r ORDER BY r.point, r.shard_id LIMIT 1))');
  });

  it('runs in one transaction that replaces the previous ring', () => {
    const sql = exportRing(Ring.build(spec), 'sql', { epoch: 3 });
    const statements = sql.split('\n').filter((l) => /^(BEGIN|COMMIT|DELETE FROM shardctl_ring)/.test(l));
    expect(statements).toEqual(['BEGIN;', 'DELETE FROM shardctl_ring;', 'COMMIT;']);
    expect(sql).toContain('SET standard_conforming_strings = on;');
    expect(sql).toContain('epoch 3');
  });

  it('escapes single quotes in shard ids', () => {
    const ring = Ring.build({ vnodes: 3, members: [{ id: "o'brien", weight: 1 }, { id: "'", weight: 1 }] });
    const sql = exportRing(ring, 'sql', { epoch: 0 });
    expect(sql).toContain("'o''brien'");
    expect(sql).not.toMatch(/[^']'brien/);
    expect(rowsOf(sql)).toEqual(ring.points);
  });
});

describe('exportRing arguments', () => {
  it('rejects an unknown format and a bad epoch', () => {
    const ring = Ring.build(spec);
    expect(() => exportRing(ring, 'yaml' as RingExportFormat, { epoch: 1 })).toThrow(/unknown format "yaml"/);
    expect(() => exportRing(ring, 'json', { epoch: -1 })).toThrow(/epoch/);
    expect(() => exportRing(ring, 'csv', { epoch: 1.5 })).toThrow(/epoch/);
  });
});
