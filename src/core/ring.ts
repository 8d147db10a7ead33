import { HASH_SPACE, routingHash } from './routing-hash.js';

/**
 * The consistent-hash ring of the routing contract (SPEC.md, "The routing
 * contract"). Every application that routes keys must agree with this file,
 * so the rules are spelled out where they are applied:
 *
 * - a member with weight w owns round(vnodes × w) points,
 *   hash("<id>:<i>") for i = 0 … n-1;
 * - points are sorted by (point, shard id), shard ids compared by code point
 *   (= UTF-8 bytes = PostgreSQL's "C" collation; plain ASCII order for ids);
 * - a key belongs to the shard of the first point >= hash(key), wrapping round
 *   to the first point.
 */

export interface RingMember {
  id: string;
  weight: number;
}

export interface RingSpec {
  /** points per unit of weight */
  vnodes: number;
  members: RingMember[];
}

export interface RingPoint {
  point: number;
  shardId: string;
}

/** An inclusive interval [start, end] of the hash space and the shard that owns it. */
export interface HashRange {
  start: number;
  end: number;
  shardId: string;
}

/**
 * Points per unit of weight when the config does not say. Requirement: every
 * ring of 4 to 32 equal shards (ids shard-0 …) keeps its most loaded shard
 * within 10% of the mean over 1M random keys. Rings are fixed by their ids, so
 * this was measured, not derived: at 1500 the worst case over N = 4 … 32 is
 * 1.072 (1.077 as exact hash-space ownership, 1.086 over eight key samples);
 * 1000 and 1250 pass on one sample but reach 1.0995 and 1.1013 on others.
 * The table is in the README; test/unit/ring.test.ts asserts it.
 */
export const DEFAULT_VNODES = 1500;

const MAX_HASH = HASH_SPACE - 1;
// Points are sorted as one float64 each: point × 2^SHARD_BITS + shard rank.
// 32 + 20 bits stays below 2^53, so the packing is exact.
const SHARD_BITS = 20;
const SHARD_FACTOR = 2 ** SHARD_BITS;
const MAX_SHARDS = SHARD_FACTOR;
// A guard against a typo (vnodes: 1e9) eating the process's memory.
const MAX_POINTS = 2 ** 24;
// At most 2^16 buckets (a 256 KiB index), reached from 22 equal shards at DEFAULT_VNODES.
const MAX_BUCKET_BITS = 16;

export class Ring {
  /** The spec the ring was built from, members sorted by id; frozen. */
  readonly spec: RingSpec;
  /** Shard ids in tie-break order; a shard's rank is its index here. */
  readonly #shardIds: readonly string[];
  readonly #pointValues: Uint32Array;
  /** Parallel to #pointValues: the rank of the shard owning each point. */
  readonly #pointShards: Uint32Array;
  readonly #pointCounts: ReadonlyMap<string, number>;
  /**
   * A bucket index over the top bits of the hash, so a lookup searches only
   * the points of one bucket instead of the whole ring: bucket b holds the
   * points with index in [#bucketStarts[b], #bucketStarts[b + 1]). With one
   * to two buckets per point, locateHash ran about 8x faster than a binary
   * search over the whole ring (24000 points), whose steps miss the cache.
   */
  readonly #bucketShift: number;
  readonly #bucketStarts: Uint32Array;
  #pointsView: ReadonlyArray<RingPoint> | undefined;

  private constructor(
    spec: RingSpec,
    shardIds: readonly string[],
    pointValues: Uint32Array,
    pointShards: Uint32Array,
    pointCounts: ReadonlyMap<string, number>,
  ) {
    this.spec = spec;
    this.#shardIds = shardIds;
    this.#pointValues = pointValues;
    this.#pointShards = pointShards;
    this.#pointCounts = pointCounts;
    const bits = Math.min(MAX_BUCKET_BITS, Math.max(1, Math.ceil(Math.log2(pointValues.length))));
    this.#bucketShift = 32 - bits;
    this.#bucketStarts = bucketStarts(pointValues, bits);
  }

  /** Builds the ring of a spec; throws an Error naming the first problem found. */
  static build(spec: RingSpec): Ring {
    const canonical = canonicalSpec(spec);
    const shardIds = canonical.members.map((m) => m.id);
    const pointCounts = new Map<string, number>();
    let total = 0;
    for (const m of canonical.members) {
      const n = Math.round(canonical.vnodes * m.weight);
      pointCounts.set(m.id, n);
      total += n;
    }
    if (total === 0) {
      throw new Error('ring: no member owns any point (every weight rounds to 0 points)');
    }
    if (total > MAX_POINTS) {
      throw new Error(`ring: ${total} points is more than the limit of ${MAX_POINTS}; lower vnodes or the weights`);
    }

    const packed = new Float64Array(total);
    let k = 0;
    shardIds.forEach((id, rank) => {
      const n = pointCounts.get(id) ?? 0;
      for (let i = 0; i < n; i++) packed[k++] = routingHash(`${id}:${i}`) * SHARD_FACTOR + rank;
    });
    packed.sort();

    const pointValues = new Uint32Array(total);
    const pointShards = new Uint32Array(total);
    for (let i = 0; i < total; i++) {
      const v = packed[i]!;
      const rank = v % SHARD_FACTOR;
      pointShards[i] = rank;
      pointValues[i] = (v - rank) / SHARD_FACTOR;
    }
    return new Ring(canonical, Object.freeze(shardIds), pointValues, pointShards, pointCounts);
  }

  /** The owner shard of a key, given the key's string form (PostgreSQL's key::text). */
  locate(key: string): string {
    return this.locateHash(routingHash(key));
  }

  /** The owner shard of a hash in [0, 2^32 - 1]. */
  locateHash(hash: number): string {
    if (hash >>> 0 !== hash) throw new RangeError(`ring: hash ${hash} is not an integer in [0, 2^32 - 1]`);
    const values = this.#pointValues;
    const bucket = hash >>> this.#bucketShift;
    // Lower bound of hash within its bucket: the first point >= hash. Among
    // equal points it lands on the first, the one with the smallest shard id,
    // as the contract says. If no point of the bucket is >= hash, the answer
    // is hi, the first point of a later bucket, or past the end.
    let lo = this.#bucketStarts[bucket]!;
    let hi = this.#bucketStarts[bucket + 1]!;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (values[mid]! < hash) lo = mid + 1;
      else hi = mid;
    }
    // Past the last point: wrap round to the first.
    if (lo === values.length) lo = 0;
    return this.#shardIds[this.#pointShards[lo]!]!;
  }

  /** Every point, sorted by (point, shardId). */
  get points(): ReadonlyArray<RingPoint> {
    if (this.#pointsView === undefined) {
      const view: RingPoint[] = new Array(this.#pointValues.length);
      for (let i = 0; i < view.length; i++) {
        view[i] = Object.freeze({ point: this.#pointValues[i]!, shardId: this.#shardIds[this.#pointShards[i]!]! });
      }
      this.#pointsView = Object.freeze(view);
    }
    return this.#pointsView;
  }

  /** How many points a shard owns (0 for a weight-0 member or an unknown id). */
  pointCount(shardId: string): number {
    return this.#pointCounts.get(shardId) ?? 0;
  }

  /**
   * The hash ranges each shard owns: inclusive [start, end] intervals that
   * cover 0 … 2^32-1 exactly once, sorted by start, adjacent ranges of one
   * shard coalesced. The arc that wraps past 2^32-1 is split into its two
   * pieces, [0, first point] and [last point + 1, 2^32-1], so every range can
   * be tested in SQL with one BETWEEN.
   */
  ranges(): HashRange[] {
    const values = this.#pointValues;
    const shards = this.#pointShards;
    const ids = this.#shardIds;
    const out: HashRange[] = [];
    const push = (start: number, end: number, shardId: string): void => {
      const last = out[out.length - 1];
      if (last !== undefined && last.shardId === shardId) last.end = end;
      else out.push({ start, end, shardId });
    };
    let start = 0;
    for (let i = 0; i < values.length; i++) {
      const point = values[i]!;
      // A point equal to the one before owns nothing: the earlier one wins the tie.
      if (i > 0 && point === values[i - 1]) continue;
      push(start, point, ids[shards[i]!]!);
      start = point + 1;
    }
    // Hashes past the last point wrap round to the first point's shard.
    if (start <= MAX_HASH) push(start, MAX_HASH, ids[shards[0]!]!);
    return out;
  }

  /** The fraction of the 2^32 hash space owned by each member (0 for members without points). */
  ownership(): Map<string, number> {
    const owned = new Map<string, number>(this.#shardIds.map((id) => [id, 0]));
    for (const r of this.ranges()) owned.set(r.shardId, (owned.get(r.shardId) ?? 0) + (r.end - r.start + 1));
    for (const [id, size] of owned) owned.set(id, size / HASH_SPACE);
    return owned;
  }
}

/** For each of the 2^bits buckets of the hash space, the index of its first point (>= its start). */
function bucketStarts(sortedPoints: Uint32Array, bits: number): Uint32Array {
  const buckets = 2 ** bits;
  const width = 2 ** (32 - bits);
  const starts = new Uint32Array(buckets + 1);
  let i = 0;
  for (let b = 0; b < buckets; b++) {
    starts[b] = i;
    const end = (b + 1) * width;
    while (i < sortedPoints.length && sortedPoints[i]! < end) i++;
  }
  starts[buckets] = sortedPoints.length;
  return starts;
}

function canonicalSpec(spec: RingSpec): RingSpec {
  if (spec === null || typeof spec !== 'object') throw new Error('ring: spec must be an object');
  const { vnodes, members } = spec;
  if (!Number.isInteger(vnodes) || vnodes < 1) {
    throw new Error(`ring: vnodes must be a positive integer, got ${String(vnodes)}`);
  }
  if (!Array.isArray(members) || members.length === 0) throw new Error('ring: at least one member is required');
  if (members.length > MAX_SHARDS) throw new Error(`ring: at most ${MAX_SHARDS} members are supported`);
  const seen = new Set<string>();
  const copy: RingMember[] = [];
  for (const m of members) {
    const id: unknown = m?.id;
    const weight: unknown = m?.weight;
    if (typeof id !== 'string' || id.length === 0) throw new Error(`ring: member id must be a non-empty string`);
    if (seen.has(id)) throw new Error(`ring: duplicate shard id "${id}"`);
    seen.add(id);
    if (typeof weight !== 'number' || !Number.isFinite(weight) || weight < 0) {
      throw new Error(`ring: weight of shard "${id}" must be a finite number >= 0, got ${String(weight)}`);
    }
    copy.push(Object.freeze({ id, weight }));
  }
  copy.sort((a, b) => compareCodePoints(a.id, b.id));
  return Object.freeze({ vnodes, members: Object.freeze(copy) as RingMember[] });
}

/**
 * Orders strings by Unicode code point, which is the order of their UTF-8
 * bytes and so of PostgreSQL's "C" collation. (JavaScript's `<` compares
 * UTF-16 code units, which differs beyond U+FFFF.)
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    // After equal code points, a low surrogate compares equal too, so no skip is needed.
    if (x !== y) return x - y;
  }
  return a.length - b.length;
}
