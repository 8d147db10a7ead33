import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_VNODES, Ring, type RingSpec } from '../../src/core/ring.js';
import { routingHash } from '../../src/core/routing-hash.js';
import {
  balanceOf,
  countKeysByShard,
  mulberry32,
  randomKeys,
  sampleKeyHashes,
  simulateRingChange,
} from '../../src/core/simulate.js';

function equalShards(n: number, vnodes = DEFAULT_VNODES): RingSpec {
  return { vnodes, members: Array.from({ length: n }, (_, i) => ({ id: `shard-${i}`, weight: 1 })) };
}

const KEYS = 100_000;

describe('simulateRingChange', () => {
  it('moves nothing when the ring does not change', () => {
    const spec = equalShards(5, 50);
    const sim = simulateRingChange(spec, { ...spec, members: [...spec.members].reverse() }, 10_000);
    expect(sim.movedKeys).toBe(0);
    expect(sim.idealMovedFraction).toBe(0);
    for (const s of sim.perShard) expect(s.after).toBe(s.before);
  });

  it('counts moved keys exactly as a lookup per key in both rings does', () => {
    const before: RingSpec = { vnodes: 40, members: [{ id: 'a', weight: 1 }, { id: 'b', weight: 2 }, { id: 'c', weight: 1 }] };
    const after: RingSpec = { vnodes: 40, members: [{ id: 'a', weight: 1 }, { id: 'b', weight: 1 }, { id: 'd', weight: 1 }] };
    const ringBefore = Ring.build(before);
    const ringAfter = Ring.build(after);
    const keys = randomKeys(30_000, 7);
    const moved = keys.filter((k) => ringBefore.locate(k) !== ringAfter.locate(k)).length;
    const countIn = (ring: Ring, id: string) => keys.filter((k) => ring.locate(k) === id).length;

    const sim = simulateRingChange(before, after, 30_000, 7);
    expect(sim.movedKeys).toBe(moved);
    expect(sim.movedFraction).toBe(moved / 30_000);
    expect(sim.perShard).toEqual(
      ['a', 'b', 'c', 'd'].map((id) => ({
        id,
        before: countIn(ringBefore, id),
        after: countIn(ringAfter, id),
        share: countIn(ringAfter, id) / 30_000,
        idealShare: { a: 1 / 3, b: 1 / 3, c: 0, d: 1 / 3 }[id],
      })),
    );
    // ideal: d gains 1/3, a gains 1/3 - 1/4; b and c only lose
    expect(sim.idealMovedFraction).toBeCloseTo(1 / 3 + (1 / 3 - 1 / 4), 12);
  });

  it.each([4, 8, 16, 31])(
    'adding an equal shard to %i moves within 0.03 of the ideal 1/(N+1) at DEFAULT_VNODES, all to the new shard',
    (n) => {
      const before = equalShards(n);
      const after = equalShards(n + 1);
      const sim = simulateRingChange(before, after, KEYS);
      expect(sim.idealMovedFraction).toBeCloseTo(1 / (n + 1), 12);
      expect(Math.abs(sim.movedFraction - sim.idealMovedFraction)).toBeLessThanOrEqual(0.03);
      const added = sim.perShard.find((s) => s.id === `shard-${n}`)!;
      expect(added.before).toBe(0);
      expect(added.after).toBe(sim.movedKeys);
      for (const s of sim.perShard.filter((x) => x !== added)) expect(s.after).toBeLessThanOrEqual(s.before);
    },
  );

  it.each([5, 12, 32])('removing one of %i equal shards moves within 0.03 of the ideal 1/N, only its keys', (n) => {
    const before = equalShards(n);
    const after = { ...before, members: before.members.filter((m) => m.id !== 'shard-2') };
    const sim = simulateRingChange(before, after, KEYS);
    expect(sim.idealMovedFraction).toBeCloseTo(1 / n, 12);
    expect(Math.abs(sim.movedFraction - sim.idealMovedFraction)).toBeLessThanOrEqual(0.03);
    expect(sim.movedKeys).toBe(sim.perShard.find((s) => s.id === 'shard-2')!.before);
  });

  it('doubling one weight of 8 moves within 0.03 of the ideal 2/9 - 1/8', () => {
    const before = equalShards(8);
    const after = { ...before, members: before.members.map((m) => (m.id === 'shard-3' ? { ...m, weight: 2 } : m)) };
    const sim = simulateRingChange(before, after, KEYS);
    expect(sim.idealMovedFraction).toBeCloseTo(2 / 9 - 1 / 8, 12);
    expect(Math.abs(sim.movedFraction - sim.idealMovedFraction)).toBeLessThanOrEqual(0.03);
    expect(sim.perShard.find((s) => s.id === 'shard-3')!.share).toBeGreaterThan(0.2);
  });

  it('keeps every key somewhere: before and after counts each sum to the sample size', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 3000 }), (a, b, keys) => {
        const sim = simulateRingChange(equalShards(a, 30), equalShards(b, 30), keys);
        expect(sim.perShard.reduce((n, s) => n + s.before, 0)).toBe(keys);
        expect(sim.perShard.reduce((n, s) => n + s.after, 0)).toBe(keys);
        expect(sim.movedKeys).toBeLessThanOrEqual(keys);
        expect(sim.movedFraction).toBeGreaterThanOrEqual(0);
      }),
      { numRuns: 50 },
    );
  });

  it('reports the balance of the ring after the change', () => {
    const sim = simulateRingChange(equalShards(4, 40), equalShards(6, 40), 50_000, 2);
    const balance = balanceOf(Ring.build(equalShards(6, 40)), 50_000, 2);
    expect(sim.maxOverMean).toBe(balance.maxOverMean);
    expect(sim.coefficientOfVariation).toBe(balance.coefficientOfVariation);
  });

  it('rejects a key count that is not a positive integer', () => {
    expect(() => simulateRingChange(equalShards(2, 5), equalShards(3, 5), 0)).toThrow(/keys/);
    expect(() => simulateRingChange(equalShards(2, 5), equalShards(3, 5), 2.5)).toThrow(/keys/);
  });
});

describe('balanceOf', () => {
  it('is max/mean and coefficient of variation of keys per shard for equal weights', () => {
    const ring = Ring.build(equalShards(3, 20));
    const keys = randomKeys(9000, 4);
    const counts = ['shard-0', 'shard-1', 'shard-2'].map((id) => keys.filter((k) => ring.locate(k) === id).length);
    const mean = 3000;
    const sd = Math.sqrt(counts.reduce((a, c) => a + (c - mean) ** 2, 0) / 3);
    const balance = balanceOf(ring, 9000, 4);
    expect(balance.perShard.map((s) => s.keys)).toEqual(counts);
    expect(balance.maxOverMean).toBeCloseTo(Math.max(...counts) / mean, 12);
    expect(balance.coefficientOfVariation).toBeCloseTo(sd / mean, 12);
  });

  it('normalises load by weight, so a shard of weight 3 holding 3× the keys is balanced', () => {
    const ring = Ring.build({ vnodes: DEFAULT_VNODES, members: [{ id: 'big', weight: 3 }, { id: 'small', weight: 1 }, { id: 'off', weight: 0 }] });
    const balance = balanceOf(ring, 100_000);
    expect(balance.perShard.find((s) => s.id === 'big')!.share).toBeGreaterThan(0.7);
    expect(balance.perShard.find((s) => s.id === 'off')).toEqual({ id: 'off', keys: 0, share: 0, idealShare: 0 });
    expect(balance.maxOverMean).toBeLessThan(1.05);
    expect(balance.coefficientOfVariation).toBeLessThan(0.05);
  });

  it('flags an unbalanced ring', () => {
    // Two points per shard: far from even.
    const balance = balanceOf(Ring.build(equalShards(8, 2)), 20_000);
    expect(balance.maxOverMean).toBeGreaterThan(1.3);
    expect(balance.coefficientOfVariation).toBeGreaterThan(0.2);
  });
});

describe('countKeysByShard', () => {
  it('counts a hash that lands exactly on a range boundary for the shard that owns it', () => {
    const ring = Ring.build(equalShards(5, 6));
    const boundaries = ring.ranges().flatMap((r) => [r.start, r.end]);
    const hashes = Uint32Array.from(boundaries).sort();
    const expected = new Map(ring.spec.members.map((m) => [m.id, 0]));
    for (const h of hashes) expected.set(ring.locateHash(h), expected.get(ring.locateHash(h))! + 1);
    expect(countKeysByShard(ring, hashes)).toEqual(expected);
  });
});

describe('the key sample', () => {
  it('is the same for the same seed and differs between seeds', () => {
    expect(randomKeys(1000, 5)).toEqual(randomKeys(1000, 5));
    expect(randomKeys(1000, 5)).not.toEqual(randomKeys(1000, 6));
    expect(new Set(randomKeys(100_000, 1)).size).toBe(100_000);
  });

  it('hashes to the sorted routing hashes of the same keys', () => {
    const keys = randomKeys(5000, 11);
    expect([...sampleKeyHashes(5000, 11)]).toEqual(keys.map(routingHash).sort((a, b) => a - b));
  });

  it('comes from mulberry32, whose output is spread evenly', () => {
    const next = mulberry32(42);
    const buckets = new Array<number>(16).fill(0);
    for (let i = 0; i < 160_000; i++) buckets[next() >>> 28]!++;
    for (const b of buckets) expect(Math.abs(b - 10_000)).toBeLessThan(500);
  });
});
