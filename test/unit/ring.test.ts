import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_VNODES, Ring, compareCodePoints, type RingMember, type RingSpec } from '../../src/core/ring.js';
import { HASH_SPACE, routingHash } from '../../src/core/routing-hash.js';
import { countKeysByShard, randomKeys, sampleKeyHashes } from '../../src/core/simulate.js';

const MAX_HASH = HASH_SPACE - 1;

/** The contract read literally: scan the sorted points for the first one >= hash. */
function referenceOwner(ring: Ring, hash: number): string {
  const points = ring.points;
  return (points.find((p) => p.point >= hash) ?? points[0]!).shardId;
}

function equalShards(n: number, vnodes = DEFAULT_VNODES): RingSpec {
  return { vnodes, members: Array.from({ length: n }, (_, i) => ({ id: `shard-${i}`, weight: 1 })) };
}

/** Hashes in every segment where two rings disagree, from their ranges (the whole space, not a sample). */
function disagreements(before: Ring, after: Ring): Array<{ start: number; end: number; from: string; to: string }> {
  const a = before.ranges();
  const b = after.ranges();
  const out: Array<{ start: number; end: number; from: string; to: string }> = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i]!;
    const y = b[j]!;
    if (x.shardId !== y.shardId) {
      out.push({ start: Math.max(x.start, y.start), end: Math.min(x.end, y.end), from: x.shardId, to: y.shardId });
    }
    if (x.end <= y.end) i++;
    if (y.end <= x.end) j++;
  }
  return out;
}

const shardId = fc.stringMatching(/^[A-Za-z0-9_-]{1,10}$/);
const weight = fc.constantFrom(0, 0.5, 1, 1, 1, 1.5, 2, 3);
/** Specs whose first member always owns points, so every spec is buildable. */
const ringSpec: fc.Arbitrary<RingSpec> = fc
  .record({
    vnodes: fc.integer({ min: 1, max: 60 }),
    ids: fc.uniqueArray(shardId, { minLength: 1, maxLength: 7 }),
    weights: fc.array(weight, { minLength: 7, maxLength: 7 }),
  })
  .map(({ vnodes, ids, weights }) => ({
    vnodes,
    members: ids.map((id, i) => ({ id, weight: i === 0 ? Math.max(1, weights[i]!) : weights[i]! })),
  }));
const keys = fc.array(fc.string({ maxLength: 12 }), { minLength: 1, maxLength: 200 });
const hash = fc.integer({ min: 0, max: MAX_HASH });

describe('routingHash', () => {
  it('matches the test vectors of the routing contract', () => {
    expect(routingHash('room-1')).toBe(878070096);
    expect(routingHash('room-42')).toBe(2226950767);
    expect(routingHash('42')).toBe(2714814184);
  });

  it('is the first 4 bytes of md5(utf8(s)) as an unsigned big-endian integer, for any string', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (s) => {
        const expected = createHash('md5').update(Buffer.from(s, 'utf8')).digest().readUInt32BE(0);
        expect(routingHash(s)).toBe(expected);
      }),
      { numRuns: 500 },
    );
  });
});

describe('Ring.build', () => {
  it.each([
    ['no members', { vnodes: 10, members: [] }, /at least one member/],
    ['a duplicate id', { vnodes: 10, members: [{ id: 'a', weight: 1 }, { id: 'a', weight: 2 }] }, /duplicate shard id "a"/],
    ['an empty id', { vnodes: 10, members: [{ id: '', weight: 1 }] }, /non-empty string/],
    ['a negative weight', { vnodes: 10, members: [{ id: 'a', weight: -1 }] }, /weight of shard "a"/],
    ['a NaN weight', { vnodes: 10, members: [{ id: 'a', weight: NaN }] }, /weight of shard "a"/],
    ['an infinite weight', { vnodes: 10, members: [{ id: 'a', weight: Infinity }] }, /weight of shard "a"/],
    ['only zero weights', { vnodes: 10, members: [{ id: 'a', weight: 0 }, { id: 'b', weight: 0 }] }, /no member owns/],
    ['weights that round to no points', { vnodes: 10, members: [{ id: 'a', weight: 0.01 }] }, /no member owns/],
    ['fractional vnodes', { vnodes: 2.5, members: [{ id: 'a', weight: 1 }] }, /vnodes/],
    ['zero vnodes', { vnodes: 0, members: [{ id: 'a', weight: 1 }] }, /vnodes/],
  ] as Array<[string, RingSpec, RegExp]>)('rejects %s', (_, spec, message) => {
    expect(() => Ring.build(spec)).toThrow(message);
  });

  it('gives a shard of weight w round(vnodes × w) points, hash("<id>:<i>") for i = 0 … n-1', () => {
    const ring = Ring.build({
      vnodes: 10,
      members: [
        { id: 'a', weight: 1 },
        { id: 'b', weight: 0.25 },
        { id: 'c', weight: 0 },
        { id: 'd', weight: 2.04 },
      ],
    });
    expect(['a', 'b', 'c', 'd', 'unknown'].map((id) => ring.pointCount(id))).toEqual([10, 3, 0, 20, 0]);
    const pointsOf = (id: string) => ring.points.filter((p) => p.shardId === id).map((p) => p.point);
    const expected = (id: string, n: number) => Array.from({ length: n }, (_, i) => routingHash(`${id}:${i}`));
    expect(pointsOf('b')).toEqual(expected('b', 3).sort((x, y) => x - y));
    expect(pointsOf('d')).toEqual(expected('d', 20).sort((x, y) => x - y));
    expect(ring.points).toHaveLength(33);
  });

  it('keeps a weight-0 member in the spec and ownership, with nothing owned', () => {
    const ring = Ring.build({ vnodes: 20, members: [{ id: 'live', weight: 1 }, { id: 'draining', weight: 0 }] });
    expect(ring.spec.members.map((m) => m.id)).toEqual(['draining', 'live']);
    expect(ring.ownership()).toEqual(new Map([['draining', 0], ['live', 1]]));
    expect(ring.locate('room-1')).toBe('live');
  });

  it('sorts points by (point, shardId)', () => {
    fc.assert(
      fc.property(ringSpec, (spec) => {
        const ring = Ring.build(spec);
        const points = ring.points;
        expect(points.length).toBe(spec.members.reduce((n, m) => n + Math.round(spec.vnodes * m.weight), 0));
        for (let i = 1; i < points.length; i++) {
          const a = points[i - 1]!;
          const b = points[i]!;
          expect(a.point < b.point || (a.point === b.point && compareCodePoints(a.shardId, b.shardId) <= 0)).toBe(true);
        }
      }),
      { numRuns: 100 },
    );
  });
});

describe('Ring lookups', () => {
  it('give every key the shard of the first point >= hash(key), wrapping round', () => {
    fc.assert(
      fc.property(ringSpec, keys, fc.array(hash, { maxLength: 50 }), (spec, ks, hs) => {
        const ring = Ring.build(spec);
        for (const k of ks) expect(ring.locate(k)).toBe(referenceOwner(ring, routingHash(k)));
        // the edges of the space, every point and the hashes either side of it
        const probes = [0, MAX_HASH, ...hs, ...ring.points.flatMap((p) => [p.point, p.point - 1, p.point + 1])];
        for (const h of probes.filter((x) => x >= 0 && x <= MAX_HASH)) {
          expect(ring.locateHash(h)).toBe(referenceOwner(ring, h));
        }
      }),
      { numRuns: 100 },
    );
  });

  it('wrap hashes above the last point round to the first point', () => {
    const ring = Ring.build({ vnodes: 30, members: [{ id: 'a', weight: 1 }, { id: 'b', weight: 1 }] });
    const first = ring.points[0]!;
    const last = ring.points[ring.points.length - 1]!;
    expect(ring.locateHash(last.point)).toBe(last.shardId);
    expect(ring.locateHash(last.point + 1)).toBe(first.shardId);
    expect(ring.locateHash(MAX_HASH)).toBe(first.shardId);
    expect(ring.locateHash(0)).toBe(first.shardId);
  });

  it('give the same owners whatever the order of members in the spec', () => {
    fc.assert(
      fc.property(
        ringSpec.chain((spec) => fc.tuple(fc.constant(spec), fc.shuffledSubarray(spec.members, { minLength: spec.members.length }))),
        keys,
        ([spec, shuffled], ks) => {
          const a = Ring.build(spec);
          const b = Ring.build({ vnodes: spec.vnodes, members: shuffled });
          expect(b.points).toEqual(a.points);
          expect(ks.map((k) => b.locate(k))).toEqual(ks.map((k) => a.locate(k)));
          expect(b.spec).toEqual(a.spec);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('are deterministic: two builds of one spec agree, and always name a member that owns points', () => {
    fc.assert(
      fc.property(ringSpec, keys, (spec, ks) => {
        const a = Ring.build(spec);
        const b = Ring.build(structuredClone(spec));
        for (const k of ks) {
          const owner = a.locate(k);
          expect(b.locate(k)).toBe(owner);
          expect(a.pointCount(owner)).toBeGreaterThan(0);
        }
      }),
      { numRuns: 100 },
    );
  });

  it('break a tie between two shards on one point in favour of the smaller shard id', () => {
    // A real md5 collision, found by search: both shards' only point is 2415572550.
    // "t42060" < "t9748" as strings, though not as numbers.
    const point = 2415572550;
    expect(routingHash('t9748:0')).toBe(point);
    expect(routingHash('t42060:0')).toBe(point);
    for (const members of [
      [{ id: 't9748', weight: 1 }, { id: 't42060', weight: 1 }, { id: 'u', weight: 1 }],
      [{ id: 'u', weight: 1 }, { id: 't42060', weight: 1 }, { id: 't9748', weight: 1 }],
    ]) {
      const ring = Ring.build({ vnodes: 1, members });
      expect(ring.points.filter((p) => p.point === point).map((p) => p.shardId)).toEqual(['t42060', 't9748']);
      expect(ring.locateHash(point)).toBe('t42060');
      // The loser of the tie owns no hash at all.
      expect(ring.ownership().get('t9748')).toBe(0);
      expect(ring.ranges().some((r) => r.shardId === 't9748')).toBe(false);
    }
  });

  it('find a point that sits exactly on the boundary of a lookup bucket, for any ring size', () => {
    // hash("edge-611164:0") = 832 × 2^22, a multiple of every bucket width the ring uses.
    const point = 3489660928;
    expect(routingHash('edge-611164:0')).toBe(point);
    for (const vnodes of [4, 50, 1500, 9000]) {
      const ring = Ring.build({
        vnodes,
        members: [...equalShards(4, vnodes).members, { id: 'edge-611164', weight: 1 / vnodes }],
      });
      expect(ring.locateHash(point)).toBe('edge-611164');
      for (const h of [point - 1, point + 1]) expect(ring.locateHash(h)).toBe(referenceOwner(ring, h));
    }
  });

  it('order tied shard ids by code point, as PostgreSQL\'s "C" collation does', () => {
    expect(['b', 'a', 'B', '_', '-', '0'].sort(compareCodePoints)).toEqual(['-', '0', 'B', '_', 'a', 'b']);
    // Beyond U+FFFF, UTF-16 order (JavaScript's <) and code point order differ.
    expect(compareCodePoints('\u{1F600}', '\uFF5E')).toBeGreaterThan(0);
    expect('\u{1F600}' < '\uFF5E').toBe(true);
  });

  it('reject hashes outside [0, 2^32 - 1]', () => {
    const ring = Ring.build(equalShards(3, 10));
    for (const bad of [-1, HASH_SPACE, 1.5, NaN]) expect(() => ring.locateHash(bad)).toThrow(RangeError);
  });
});

describe('Ring.ranges', () => {
  it('covers the hash space exactly once, sorted, coalesced, and agrees with locateHash', () => {
    fc.assert(
      fc.property(ringSpec, fc.array(hash, { maxLength: 100 }), (spec, hs) => {
        const ring = Ring.build(spec);
        const ranges = ring.ranges();
        expect(ranges[0]!.start).toBe(0);
        expect(ranges[ranges.length - 1]!.end).toBe(MAX_HASH);
        for (let i = 0; i < ranges.length; i++) {
          const r = ranges[i]!;
          expect(r.start).toBeLessThanOrEqual(r.end);
          if (i > 0) {
            expect(r.start).toBe(ranges[i - 1]!.end + 1);
            expect(r.shardId).not.toBe(ranges[i - 1]!.shardId);
          }
          expect(ring.locateHash(r.start)).toBe(r.shardId);
          expect(ring.locateHash(r.end)).toBe(r.shardId);
        }
        for (const h of hs) {
          const r = ranges.find((x) => x.start <= h && h <= x.end)!;
          expect(ring.locateHash(h)).toBe(r.shardId);
        }
        const owned = ring.ownership();
        expect([...owned.values()].reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
        expect([...owned.keys()].sort()).toEqual(spec.members.map((m) => m.id).sort());
      }),
      { numRuns: 200 },
    );
  });

  it('agrees with locateHash at every boundary of a large ring (the largest lookup index)', () => {
    const ring = Ring.build(equalShards(32));
    const points = ring.points;
    let previous = -1;
    let mismatches = 0;
    for (const r of ring.ranges()) {
      expect(r.start).toBe(previous + 1);
      previous = r.end;
      if (ring.locateHash(r.start) !== r.shardId || ring.locateHash(r.end) !== r.shardId) mismatches++;
    }
    expect(previous).toBe(MAX_HASH);
    expect(mismatches).toBe(0);
    // every point is owned by its own shard (no ties in this ring)
    expect(points.filter((p) => ring.locateHash(p.point) !== p.shardId)).toEqual([]);
  });

  it('splits the arc that wraps past 2^32 - 1 into a head and a tail range of the first point\'s shard', () => {
    // A ring whose first and last points belong to different shards, so the tail cannot coalesce.
    const ring = [4, 5, 6, 7, 8]
      .map((vnodes) => Ring.build(equalShards(4, vnodes)))
      .find((r) => r.points[0]!.shardId !== r.points[r.points.length - 1]!.shardId)!;
    const ranges = ring.ranges();
    const first = ring.points[0]!;
    const last = ring.points[ring.points.length - 1]!;
    expect(ranges[0]).toEqual({ start: 0, end: expect.any(Number), shardId: first.shardId });
    expect(ranges[ranges.length - 2]).toMatchObject({ end: last.point, shardId: last.shardId });
    expect(ranges[ranges.length - 1]).toEqual({ start: last.point + 1, end: MAX_HASH, shardId: first.shardId });
  });

  it('is one range covering everything for a single shard', () => {
    expect(Ring.build({ vnodes: 5, members: [{ id: 'only', weight: 1 }] }).ranges()).toEqual([
      { start: 0, end: MAX_HASH, shardId: 'only' },
    ]);
  });
});

describe('Ring changes move the fewest keys', () => {
  const newId = fc.stringMatching(/^new-[a-z0-9]{1,6}$/);

  it('adding a shard moves keys only to the new shard', () => {
    fc.assert(
      fc.property(ringSpec, newId, fc.constantFrom(0.5, 1, 2), keys, (spec, id, w, ks) => {
        const before = Ring.build(spec);
        const after = Ring.build({ ...spec, members: [...spec.members, { id, weight: w }] });
        for (const d of disagreements(before, after)) expect(d.to).toBe(id);
        for (const k of ks) {
          const owner = after.locate(k);
          if (owner !== before.locate(k)) expect(owner).toBe(id);
        }
      }),
      { numRuns: 150 },
    );
  });

  it("removing a shard moves only its keys, and they go to the remaining shards", () => {
    fc.assert(
      fc.property(
        ringSpec.filter((s) => s.members.length >= 2),
        fc.nat(),
        keys,
        (spec, pick, ks) => {
          const removed = spec.members[1 + (pick % (spec.members.length - 1))]!.id;
          const before = Ring.build(spec);
          const after = Ring.build({ ...spec, members: spec.members.filter((m) => m.id !== removed) });
          for (const d of disagreements(before, after)) {
            expect(d.from).toBe(removed);
            expect(d.to).not.toBe(removed);
          }
          for (const k of ks) {
            if (before.locate(k) === removed) expect(after.locate(k)).not.toBe(removed);
            else expect(after.locate(k)).toBe(before.locate(k));
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('changing one weight moves keys only to that shard (up) or only from it (down)', () => {
    fc.assert(
      fc.property(ringSpec, fc.nat(), weight, keys, (spec, pick, w, ks) => {
        const target = spec.members[pick % spec.members.length]!;
        const members: RingMember[] = spec.members.map((m) => (m === target ? { id: m.id, weight: w } : m));
        fc.pre(members.some((m) => Math.round(spec.vnodes * m.weight) > 0));
        const before = Ring.build(spec);
        const after = Ring.build({ ...spec, members });
        const grew = Math.round(spec.vnodes * w) >= Math.round(spec.vnodes * target.weight);
        for (const d of disagreements(before, after)) {
          if (grew) expect(d.to).toBe(target.id);
          else expect(d.from).toBe(target.id);
        }
        for (const k of ks) {
          const [from, to] = [before.locate(k), after.locate(k)];
          if (from !== to) expect(grew ? to : from).toBe(target.id);
        }
      }),
      { numRuns: 150 },
    );
  });
});

describe('DEFAULT_VNODES', () => {
  it('keeps max/mean load <= 1.10 over 1M random keys for every ring of 4 to 32 equal shards', () => {
    const hashes = sampleKeyHashes(1_000_000, 1);
    const worst: Array<[number, number]> = [];
    for (let n = 4; n <= 32; n++) {
      const counts = [...countKeysByShard(Ring.build(equalShards(n)), hashes).values()];
      worst.push([n, Math.max(...counts) / (hashes.length / n)]);
    }
    expect(worst.filter(([, ratio]) => ratio > 1.1)).toEqual([]);
  }, 30_000);

  it('counts keys per shard the same way a lookup per key does', () => {
    // countKeysByShard (used above) goes through ranges(); check it against locate.
    const ring = Ring.build(equalShards(7, 40));
    const sample = randomKeys(20_000, 3);
    const direct = new Map<string, number>();
    for (const k of sample) {
      const owner = ring.locate(k);
      direct.set(owner, (direct.get(owner) ?? 0) + 1);
    }
    expect(countKeysByShard(ring, sampleKeyHashes(20_000, 3))).toEqual(
      new Map(ring.spec.members.map((m) => [m.id, direct.get(m.id) ?? 0])),
    );
  });
});
