import { Ring, compareCodePoints, type HashRange, type RingSpec } from './ring.js';
import { routingHash } from './routing-hash.js';

/**
 * What a ring change would do to a sample of keys, without touching a
 * database: how many keys move, how that compares with the least any weighted
 * split must move, and how even the new ring is.
 */
export interface RingChangeSimulation {
  keys: number;
  movedKeys: number;
  movedFraction: number;
  /** The fraction that must move in the ideal weighted split: Σ max(0, idealShareAfter − idealShareBefore). */
  idealMovedFraction: number;
  /** Every member of either ring, sorted by id; before/after are key counts. */
  perShard: Array<{ id: string; before: number; after: number; share: number; idealShare: number }>;
  /** Of the ring after the change, weight-normalised (see balanceOf). */
  maxOverMean: number;
  coefficientOfVariation: number;
}

export interface RingBalance {
  keys: number;
  /** Members sorted by id; share = keys / total, idealShare = weight / total weight. */
  perShard: Array<{ id: string; keys: number; share: number; idealShare: number }>;
  /** max over shards of (keys / weight), divided by the mean of the same; 1 is perfect. */
  maxOverMean: number;
  /** standard deviation of (keys / weight) over shards, divided by its mean; 0 is perfect. */
  coefficientOfVariation: number;
}

export function simulateRingChange(before: RingSpec, after: RingSpec, keys: number, seed = 1): RingChangeSimulation {
  assertKeyCount(keys);
  const ringBefore = Ring.build(before);
  const ringAfter = Ring.build(after);
  const hashes = sampleKeyHashes(keys, seed);

  const countsBefore = countKeysByShard(ringBefore, hashes);
  const countsAfter = countKeysByShard(ringAfter, hashes);
  const idealBefore = idealShares(ringBefore.spec);
  const idealAfter = idealShares(ringAfter.spec);
  const ids = [...new Set([...idealBefore.keys(), ...idealAfter.keys()])].sort(compareCodePoints);

  let idealMovedFraction = 0;
  for (const id of ids) idealMovedFraction += Math.max(0, (idealAfter.get(id) ?? 0) - (idealBefore.get(id) ?? 0));

  const movedKeys = countMovedKeys(ringBefore.ranges(), ringAfter.ranges(), hashes);
  const balance = balanceOfCounts(ringAfter.spec, countsAfter, keys);
  return {
    keys,
    movedKeys,
    movedFraction: movedKeys / keys,
    idealMovedFraction,
    perShard: ids.map((id) => ({
      id,
      before: countsBefore.get(id) ?? 0,
      after: countsAfter.get(id) ?? 0,
      share: (countsAfter.get(id) ?? 0) / keys,
      idealShare: idealAfter.get(id) ?? 0,
    })),
    maxOverMean: balance.maxOverMean,
    coefficientOfVariation: balance.coefficientOfVariation,
  };
}

/**
 * How evenly a ring spreads `keys` pseudo-random keys, weight-normalised so
 * that a shard of weight 2 holding twice the keys of a shard of weight 1 is
 * perfectly balanced. Members of weight 0 are left out of the statistics.
 */
export function balanceOf(ring: Ring, keys: number, seed = 1): RingBalance {
  assertKeyCount(keys);
  return balanceOfCounts(ring.spec, countKeysByShard(ring, sampleKeyHashes(keys, seed)), keys);
}

function balanceOfCounts(spec: RingSpec, counts: Map<string, number>, keys: number): RingBalance {
  const ideal = idealShares(spec);
  const perShard = spec.members.map((m) => {
    const n = counts.get(m.id) ?? 0;
    return { id: m.id, keys: n, share: n / keys, idealShare: ideal.get(m.id) ?? 0 };
  });
  const loads = spec.members.filter((m) => m.weight > 0).map((m) => (counts.get(m.id) ?? 0) / m.weight);
  const mean = loads.reduce((a, b) => a + b, 0) / loads.length;
  const variance = loads.reduce((a, x) => a + (x - mean) ** 2, 0) / loads.length;
  return {
    keys,
    perShard,
    maxOverMean: Math.max(...loads) / mean,
    coefficientOfVariation: Math.sqrt(variance) / mean,
  };
}

function idealShares(spec: RingSpec): Map<string, number> {
  const total = spec.members.reduce((a, m) => a + m.weight, 0);
  return new Map(spec.members.map((m) => [m.id, m.weight / total]));
}

/**
 * Counts keys per shard from sorted key hashes and the ring's ranges: one
 * binary search per range instead of one ring lookup per key, which makes
 * million-key samples cheap enough for unit tests.
 */
export function countKeysByShard(ring: Ring, sortedHashes: Uint32Array): Map<string, number> {
  const counts = new Map<string, number>(ring.spec.members.map((m) => [m.id, 0]));
  for (const r of ring.ranges()) {
    const n = upperBound(sortedHashes, r.end) - lowerBound(sortedHashes, r.start);
    counts.set(r.shardId, (counts.get(r.shardId) ?? 0) + n);
  }
  return counts;
}

/** Keys whose owner differs between two rings, found by walking both range lists together. */
function countMovedKeys(before: HashRange[], after: HashRange[], sortedHashes: Uint32Array): number {
  let moved = 0;
  let i = 0;
  let j = 0;
  while (i < before.length && j < after.length) {
    const a = before[i]!;
    const b = after[j]!;
    if (a.shardId !== b.shardId) {
      const start = Math.max(a.start, b.start);
      const end = Math.min(a.end, b.end);
      moved += upperBound(sortedHashes, end) - lowerBound(sortedHashes, start);
    }
    if (a.end < b.end) i++;
    else if (b.end < a.end) j++;
    else {
      i++;
      j++;
    }
  }
  return moved;
}

/**
 * Deterministic pseudo-random keys: "k:" followed by 16 hex digits from
 * mulberry32(seed). Distinct with overwhelming probability; the form does not
 * matter to md5, only that the same seed always gives the same keys.
 */
export function randomKeys(count: number, seed = 1): string[] {
  const next = mulberry32(seed);
  const keys: string[] = new Array(count);
  for (let i = 0; i < count; i++) keys[i] = `k:${hex8(next())}${hex8(next())}`;
  return keys;
}

/** The routing hashes of randomKeys(count, seed), sorted ascending. */
export function sampleKeyHashes(count: number, seed = 1): Uint32Array {
  const next = mulberry32(seed);
  const hashes = new Uint32Array(count);
  for (let i = 0; i < count; i++) hashes[i] = routingHash(`k:${hex8(next())}${hex8(next())}`);
  return hashes.sort();
}

/** mulberry32: a tiny, well-mixed 32-bit PRNG; returns unsigned 32-bit integers. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function lowerBound(sorted: Uint32Array, value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function upperBound(sorted: Uint32Array, value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function assertKeyCount(keys: number): void {
  if (!Number.isInteger(keys) || keys < 1) throw new Error(`simulate: keys must be a positive integer, got ${keys}`);
}
