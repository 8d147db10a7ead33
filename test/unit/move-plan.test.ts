import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  coveredFraction,
  estimateShare,
  multirangeLiteral,
  planMisplacedMoves,
  planRingChange,
  rangesByShard,
  type Interval,
  type PlannedMove,
} from '../../src/core/move-plan.js';
import { MOVE_STATES, isUnswitched, onlineResumeState, type MoveState } from '../../src/core/move-state.js';
import { Ring, type RingMember, type RingSpec } from '../../src/core/ring.js';
import { HASH_SPACE } from '../../src/core/routing-hash.js';

const MAX_HASH = HASH_SPACE - 1;

// ---------------------------------------------------------------------------
// Oracles, built only from the ring's points and locateHash (not from ranges()
// and not from the planner), so the planner is checked against the contract.
// ---------------------------------------------------------------------------

interface Segment {
  start: number;
  end: number;
  from: string;
  to: string;
}

/**
 * Cuts the hash space at every point of either ring. Inside one piece no point
 * of either ring lies before its end, so each ring names one owner for the
 * whole piece: the owner of its last hash.
 */
function ownershipSegments(before: Ring, after: Ring): Segment[] {
  const cuts = [...new Set([...before.points, ...after.points].map((p) => p.point))].sort((x, y) => x - y);
  const out: Segment[] = [];
  let start = 0;
  for (const end of cuts) {
    out.push({ start, end, from: before.locateHash(end), to: after.locateHash(end) });
    start = end + 1;
  }
  if (start <= MAX_HASH) out.push({ start, end: MAX_HASH, from: before.locateHash(MAX_HASH), to: after.locateHash(MAX_HASH) });
  return out;
}

/** The exact moves the contract implies: changed pieces grouped by (from, to), adjacent pieces joined. */
function expectedMoves(before: Ring, after: Ring): Map<string, Interval[]> {
  const out = new Map<string, Interval[]>();
  for (const s of ownershipSegments(before, after)) {
    if (s.from === s.to) continue;
    const key = `${s.from} -> ${s.to}`;
    const list = out.get(key) ?? [];
    const last = list[list.length - 1];
    if (last && last.end + 1 === s.start) last.end = s.end;
    else list.push({ start: s.start, end: s.end });
    out.set(key, list);
  }
  return out;
}

function changedSize(before: Ring, after: Ring): number {
  return ownershipSegments(before, after)
    .filter((s) => s.from !== s.to)
    .reduce((sum, s) => sum + (s.end - s.start + 1), 0);
}

function size(ranges: Interval[]): number {
  return ranges.reduce((sum, r) => sum + (r.end - r.start + 1), 0);
}

function movesContaining(moves: PlannedMove[], h: number): PlannedMove[] {
  return moves.filter((m) => m.ranges.some((r) => r.start <= h && h <= r.end));
}

function equalShards(n: number): RingMember[] {
  return Array.from({ length: n }, (_, i) => ({ id: `shard-${i}`, weight: 1 }));
}

const natural = (a: string, b: string): number => a.localeCompare(b, 'en', { numeric: true });

// ---------------------------------------------------------------------------
// Arbitraries: pairs of rings, before and after one kind of change.
// ---------------------------------------------------------------------------

const shardId = fc.stringMatching(/^[A-Za-z0-9_-]{1,8}$/);
const positiveWeight = fc.constantFrom(0.5, 1, 1, 1, 1.5, 2, 3);
const anyWeight = fc.constantFrom(0, 0.5, 1, 1, 1, 1.5, 2, 3);
const hash = fc.integer({ min: 0, max: MAX_HASH });

interface RingPair {
  kind: string;
  before: RingSpec;
  after: RingSpec;
}

/** A spec of the given ids; the first member always owns points so the ring builds. */
function specOf(vnodes: number, ids: string[], weights: number[]): RingSpec {
  return { vnodes, members: ids.map((id, i) => ({ id, weight: i === 0 ? Math.max(0.5, weights[i]!) : weights[i]! })) };
}

function ringPair(vnodes: fc.Arbitrary<number>): fc.Arbitrary<RingPair> {
  const base = fc.record({
    vnodes,
    ids: fc.uniqueArray(shardId, { minLength: 2, maxLength: 8 }),
    weights: fc.array(anyWeight, { minLength: 8, maxLength: 8 }),
    newWeight: positiveWeight,
    otherWeights: fc.array(anyWeight, { minLength: 8, maxLength: 8 }),
    pick: fc.nat(),
    keep: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
    otherVnodes: vnodes,
  });
  return base.chain((b) => {
    const n = b.ids.length;
    // The last id is held back so it can be added.
    const present = b.ids.slice(0, n - 1);
    const before = specOf(b.vnodes, present, b.weights);
    const add: RingPair = {
      kind: 'add',
      before,
      after: { vnodes: b.vnodes, members: [...before.members, { id: b.ids[n - 1]!, weight: b.newWeight }] },
    };
    const pairs: RingPair[] = [add];
    if (present.length >= 2) {
      // Remove one member other than the first, which always owns points.
      const gone = 1 + (b.pick % (present.length - 1));
      pairs.push({ kind: 'remove', before, after: { vnodes: b.vnodes, members: before.members.filter((_, i) => i !== gone) } });
      const changed = 1 + (b.pick % (present.length - 1));
      pairs.push({
        kind: 'reweight',
        before,
        after: {
          vnodes: b.vnodes,
          members: before.members.map((m, i) => (i === changed ? { id: m.id, weight: b.otherWeights[i]! } : m)),
        },
      });
    }
    // Several changes at once: members come and go, weights and vnodes change.
    const kept = b.ids.filter((_, i) => i === 0 || b.keep[i]!);
    pairs.push({ kind: 'several', before, after: specOf(b.otherVnodes, kept, b.otherWeights) });
    return fc.constantFrom(...pairs);
  });
}

const smallPairs = ringPair(fc.integer({ min: 5, max: 50 }));
const largePairs = ringPair(fc.constant(1500));

// ---------------------------------------------------------------------------

describe('planRingChange', () => {
  /** Every property of a plan, checked for one pair of rings. */
  function checkPlan(pair: RingPair, hashes: number[], offsets: number[]): void {
    const before = Ring.build(pair.before);
    const after = Ring.build(pair.after);
    const moves = planRingChange(before, after);

    // The plan is exactly the contract's: same (source, target) pairs, same ranges.
    const expected = expectedMoves(before, after);
    expect(new Map(moves.map((m) => [`${m.source} -> ${m.target}`, m.ranges]))).toEqual(expected);
    expect(moves).toHaveLength(expected.size);

    for (const move of moves) {
      expect(move.source).not.toBe(move.target);
      expect(move.mode).toBe('fresh');
      expect(move.ranges.length).toBeGreaterThan(0);
      move.ranges.forEach((r, k) => {
        expect(Number.isInteger(r.start) && Number.isInteger(r.end)).toBe(true);
        expect(0 <= r.start && r.start <= r.end && r.end <= MAX_HASH).toBe(true);
        // Sorted, disjoint and coalesced: a gap of at least one hash before the next range.
        const next = move.ranges[k + 1];
        if (next) expect(r.end + 1).toBeLessThan(next.start);
        // Every hash of the range leaves the source and lands on the target.
        const inside = [r.start, r.end, r.start + Math.floor((r.end - r.start) / 2), ...offsets.map((o) => r.start + (o % (r.end - r.start + 1)))];
        for (const h of inside) {
          expect(before.locateHash(h)).toBe(move.source);
          expect(after.locateHash(h)).toBe(move.target);
        }
      });
      expect(move.fraction).toBe(size(move.ranges) / HASH_SPACE);
    }

    // One move per (source, target), listed by source then target.
    const keys = moves.map((m) => `${m.source}\u0000${m.target}`);
    expect(new Set(keys).size).toBe(keys.length);
    for (let k = 1; k < moves.length; k++) {
      const x = moves[k - 1]!;
      const y = moves[k]!;
      const order = x.source === y.source ? natural(x.target, y.target) : natural(x.source, y.source);
      expect(order).toBeLessThanOrEqual(0);
    }

    // Random hashes: in exactly one move if their owner changed, in none otherwise.
    for (const h of hashes) {
      const from = before.locateHash(h);
      const to = after.locateHash(h);
      const containing = movesContaining(moves, h);
      if (from === to) {
        expect(containing).toEqual([]);
      } else {
        expect(containing).toHaveLength(1);
        expect(containing[0]!.source).toBe(from);
        expect(containing[0]!.target).toBe(to);
      }
    }

    // The plan moves exactly the share of the hash space whose owner changed.
    const total = moves.reduce((sum, m) => sum + m.fraction, 0);
    expect(total).toBeCloseTo(changedSize(before, after) / HASH_SPACE, 12);
  }

  it('moves every changed hash from its old owner to its new one, and nothing else (small rings, every kind of change)', () => {
    fc.assert(
      fc.property(
        smallPairs,
        fc.array(hash, { minLength: 50, maxLength: 200 }),
        fc.array(fc.nat(), { minLength: 3, maxLength: 3 }),
        (pair, hashes, offsets) => checkPlan(pair, hashes, offsets),
      ),
      { numRuns: 250 },
    );
  });

  it('moves every changed hash from its old owner to its new one, and nothing else (vnodes 1500)', () => {
    fc.assert(
      fc.property(
        largePairs,
        fc.array(hash, { minLength: 200, maxLength: 200 }),
        fc.array(fc.nat(), { minLength: 2, maxLength: 2 }),
        (pair, hashes, offsets) => checkPlan(pair, hashes, offsets),
      ),
      // Shrinking rings of this size takes minutes; the small-ring test above shrinks well.
      { numRuns: 6, endOnFailure: true },
    );
  });

  it('finds the hashes that change owner, sampled where the rings disagree', () => {
    // Hashes drawn from inside the disagreeing pieces, so the check is not
    // dominated by hashes that stay put.
    fc.assert(
      fc.property(smallPairs, fc.array(fc.nat(), { minLength: 20, maxLength: 20 }), (pair, picks) => {
        const before = Ring.build(pair.before);
        const after = Ring.build(pair.after);
        const moves = planRingChange(before, after);
        const changed = ownershipSegments(before, after).filter((s) => s.from !== s.to);
        fc.pre(changed.length > 0);
        for (const p of picks) {
          const s = changed[p % changed.length]!;
          const h = s.start + (p % (s.end - s.start + 1));
          const containing = movesContaining(moves, h);
          expect(containing.map((m) => [m.source, m.target])).toEqual([[s.from, s.to]]);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('plans no moves when the ring does not change', () => {
    fc.assert(
      fc.property(smallPairs, (pair) => {
        expect(planRingChange(Ring.build(pair.before), Ring.build(pair.before))).toEqual([]);
        expect(planRingChange(Ring.build(pair.after), Ring.build(pair.after))).toEqual([]);
      }),
      { numRuns: 100 },
    );
  });

  it('plans no moves between rings that differ only in member order or in weight-0 members', () => {
    const members = equalShards(5);
    const before = Ring.build({ vnodes: 40, members });
    expect(planRingChange(before, Ring.build({ vnodes: 40, members: [...members].reverse() }))).toEqual([]);
    expect(planRingChange(before, Ring.build({ vnodes: 40, members: [...members, { id: 'shard-9', weight: 0 }] }))).toEqual([]);
  });

  it('moves only to the new shard when one shard joins N equal shards, about 1/(N+1) of the space at vnodes 1500', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 12 }), (n) => {
        const before = Ring.build({ vnodes: 1500, members: equalShards(n) });
        const after = Ring.build({ vnodes: 1500, members: [...equalShards(n), { id: 'shard-new', weight: 1 }] });
        const moves = planRingChange(before, after);
        expect(moves.length).toBe(n);
        expect(new Set(moves.map((m) => m.source))).toEqual(new Set(equalShards(n).map((m) => m.id)));
        for (const m of moves) expect(m.target).toBe('shard-new');
        const total = moves.reduce((sum, m) => sum + m.fraction, 0);
        // Everything the new shard owns came from the others, and nothing else moved.
        expect(total).toBeCloseTo(after.ownership().get('shard-new')!, 12);
        expect(Math.abs(total - 1 / (n + 1))).toBeLessThan(0.03);
      }),
      { numRuns: 5, endOnFailure: true },
    );
  });

  it('moves only from the removed shard when one of N equal shards leaves, exactly what it owned', () => {
    fc.assert(
      fc.property(fc.integer({ min: 3, max: 12 }), fc.nat(), fc.constantFrom(7, 30, 1500), (n, pick, vnodes) => {
        const members = equalShards(n);
        const gone = members[pick % n]!.id;
        const before = Ring.build({ vnodes, members });
        const after = Ring.build({ vnodes, members: members.filter((m) => m.id !== gone) });
        const moves = planRingChange(before, after);
        expect(moves.length).toBeGreaterThan(0);
        for (const m of moves) {
          expect(m.source).toBe(gone);
          expect(m.target).not.toBe(gone);
        }
        const total = moves.reduce((sum, m) => sum + m.fraction, 0);
        expect(total).toBeCloseTo(before.ownership().get(gone)!, 12);
        if (vnodes === 1500) expect(Math.abs(total - 1 / n)).toBeLessThan(0.03);
      }),
      { numRuns: 12, endOnFailure: true },
    );
  });

  it('moves only to a shard whose weight goes up, and only from a shard whose weight goes down', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 5, max: 50 }),
        fc.integer({ min: 2, max: 6 }),
        fc.nat(),
        fc.constantFrom(0, 0.5, 2, 3),
        (vnodes, n, pick, weight) => {
          const members = equalShards(n);
          const changed = members[pick % n]!.id;
          const before = Ring.build({ vnodes, members });
          const after = Ring.build({ vnodes, members: members.map((m) => (m.id === changed ? { id: m.id, weight } : m)) });
          const moves = planRingChange(before, after);
          expect(moves.length).toBeGreaterThan(0);
          for (const m of moves) {
            if (weight > 1) expect(m.target).toBe(changed);
            else expect(m.source).toBe(changed);
          }
        },
      ),
      { numRuns: 100 },
    );
  });

  it('splits a move at the top of the hash space instead of joining the wrapping arc into one range', () => {
    // A single shard owns everything; a second shard then takes some arcs,
    // including the wrapping one: [0, its first point] and [last point + 1, max].
    const before = Ring.build({ vnodes: 3, members: [{ id: 'a', weight: 1 }] });
    const after = Ring.build({ vnodes: 3, members: [{ id: 'a', weight: 1 }, { id: 'b', weight: 1 }] });
    const moves = planRingChange(before, after);
    const expected = after.ranges().filter((r) => r.shardId === 'b').map(({ start, end }) => ({ start, end }));
    expect(moves).toEqual([{ source: 'a', target: 'b', ranges: expected, fraction: size(expected) / HASH_SPACE, mode: 'fresh' }]);
    for (const r of expected) {
      expect(after.locateHash(r.start)).toBe('b');
      expect(after.locateHash(r.end)).toBe('b');
    }
  });

  it('lists moves by source then target in natural id order (shard-2 before shard-10)', () => {
    const ids = ['shard-1', 'shard-2', 'shard-10'];
    const before = Ring.build({ vnodes: 50, members: ids.map((id) => ({ id, weight: 1 })) });
    const after = Ring.build({ vnodes: 50, members: [{ id: 'shard-3', weight: 1 }, { id: 'shard-20', weight: 1 }] });
    const moves = planRingChange(before, after);
    const sources = [...new Set(moves.map((m) => m.source))];
    expect(sources).toEqual(['shard-1', 'shard-2', 'shard-10']);
    for (const source of ids) {
      const targets = moves.filter((m) => m.source === source).map((m) => m.target);
      expect(targets).toEqual(['shard-3', 'shard-20']);
    }
  });

  it('leaves both rings unchanged', () => {
    const before = Ring.build({ vnodes: 20, members: equalShards(3) });
    const after = Ring.build({ vnodes: 20, members: equalShards(4) });
    const rangesBefore = JSON.stringify(before.ranges());
    const rangesAfter = JSON.stringify(after.ranges());
    const moves = planRingChange(before, after);
    for (const m of moves) m.ranges.push({ start: 0, end: 0 });
    expect(JSON.stringify(before.ranges())).toBe(rangesBefore);
    expect(JSON.stringify(after.ranges())).toBe(rangesAfter);
  });
});

describe('planMisplacedMoves', () => {
  const ring = Ring.build({
    vnodes: 30,
    members: [
      { id: 'shard-0', weight: 1 },
      { id: 'shard-1', weight: 2 },
      { id: 'shard-2', weight: 1 },
      { id: 'shard-10', weight: 0.5 },
    ],
  });
  const ids = ['shard-0', 'shard-1', 'shard-2', 'shard-10'];

  it('plans one merge move per (holder, owner) pair, carrying every range the owner owns', () => {
    const moves = planMisplacedMoves(ring, [
      { shard: 'shard-1', owner: 'shard-0' },
      { shard: 'shard-0', owner: 'shard-2' },
      { shard: 'shard-2', owner: 'shard-2' },
      { shard: 'shard-10', owner: 'shard-0' },
    ]);
    const owned = (id: string): Interval[] =>
      ring.ranges().filter((r) => r.shardId === id).map(({ start, end }) => ({ start, end }));
    expect(moves).toEqual([
      { source: 'shard-0', target: 'shard-2', ranges: owned('shard-2'), fraction: ring.ownership().get('shard-2'), mode: 'merge' },
      { source: 'shard-1', target: 'shard-0', ranges: owned('shard-0'), fraction: ring.ownership().get('shard-0'), mode: 'merge' },
      { source: 'shard-10', target: 'shard-0', ranges: owned('shard-0'), fraction: ring.ownership().get('shard-0'), mode: 'merge' },
    ]);
  });

  it('drops pairs whose holder is already the owner, and plans nothing for an empty list', () => {
    expect(planMisplacedMoves(ring, ids.map((id) => ({ shard: id, owner: id })))).toEqual([]);
    expect(planMisplacedMoves(ring, [])).toEqual([]);
  });

  it('for any set of pairs: a merge move for each pair with holder !== owner, with the owner\'s ranges', () => {
    const pair = fc.record({ shard: fc.constantFrom(...ids), owner: fc.constantFrom(...ids) });
    fc.assert(
      fc.property(fc.uniqueArray(pair, { selector: (p) => `${p.shard}\u0000${p.owner}`, maxLength: 16 }), (pairs) => {
        const moves = planMisplacedMoves(ring, pairs);
        const wanted = pairs.filter((p) => p.shard !== p.owner);
        expect(moves.map((m) => `${m.source}>${m.target}`).sort()).toEqual(wanted.map((p) => `${p.shard}>${p.owner}`).sort());
        for (const m of moves) {
          expect(m.mode).toBe('merge');
          // Every range the target owns, and nothing it does not.
          expect(m.ranges.every((r) => ring.locateHash(r.start) === m.target && ring.locateHash(r.end) === m.target)).toBe(true);
          expect(size(m.ranges)).toBe(Math.round(ring.ownership().get(m.target)! * HASH_SPACE));
          expect(m.fraction).toBe(size(m.ranges) / HASH_SPACE);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('plans one move for a pair reported more than once (say, once per sharded table)', () => {
    const moves = planMisplacedMoves(ring, [
      { shard: 'shard-1', owner: 'shard-0' },
      { shard: 'shard-1', owner: 'shard-0' },
    ]);
    expect(moves.map((m) => [m.source, m.target])).toEqual([['shard-1', 'shard-0']]);
  });

  it('gives each move its own ranges, so changing one move never changes another', () => {
    const moves = planMisplacedMoves(ring, [
      { shard: 'shard-1', owner: 'shard-0' },
      { shard: 'shard-2', owner: 'shard-0' },
    ]);
    expect(moves).toHaveLength(2);
    const [first, second] = moves as [PlannedMove, PlannedMove];
    const secondBefore = structuredClone(second.ranges);
    first.ranges.pop();
    first.ranges[0]!.end = first.ranges[0]!.start;
    expect(second.ranges).toEqual(secondBefore);
  });
});

describe('rangesByShard', () => {
  it('gives each owning shard its ranges in order, which together cover the space once and agree with locateHash', () => {
    fc.assert(
      fc.property(smallPairs, fc.array(hash, { minLength: 20, maxLength: 20 }), (pair, hashes) => {
        const ring = Ring.build(pair.after);
        const byShard = rangesByShard(ring);
        const all = [...byShard.values()].flat().sort((x, y) => x.start - y.start);
        expect(all[0]!.start).toBe(0);
        expect(all[all.length - 1]!.end).toBe(MAX_HASH);
        for (let k = 1; k < all.length; k++) expect(all[k]!.start).toBe(all[k - 1]!.end + 1);
        for (const [id, list] of byShard) {
          expect(ring.pointCount(id)).toBeGreaterThan(0);
          expect(coveredFraction(list)).toBeCloseTo(ring.ownership().get(id)!, 12);
          list.forEach((r, k) => {
            if (k > 0) expect(list[k - 1]!.end).toBeLessThan(r.start);
            expect(ring.locateHash(r.start)).toBe(id);
            expect(ring.locateHash(r.end)).toBe(id);
          });
        }
        for (const h of hashes) {
          const owner = ring.locateHash(h);
          expect(byShard.get(owner)!.some((r) => r.start <= h && h <= r.end)).toBe(true);
        }
      }),
      { numRuns: 100 },
    );
  });

  it('leaves out members without points', () => {
    const ring = Ring.build({ vnodes: 10, members: [{ id: 'a', weight: 1 }, { id: 'b', weight: 0 }] });
    expect([...rangesByShard(ring).keys()]).toEqual(['a']);
    expect(rangesByShard(ring).get('a')).toEqual([{ start: 0, end: MAX_HASH }]);
  });
});

describe('coveredFraction', () => {
  it('is the covered size over 2^32, counting both ends of each inclusive range', () => {
    expect(coveredFraction([])).toBe(0);
    expect(coveredFraction([{ start: 0, end: MAX_HASH }])).toBe(1);
    expect(coveredFraction([{ start: 5, end: 5 }])).toBe(1 / HASH_SPACE);
    expect(coveredFraction([{ start: 0, end: 2 ** 31 - 1 }])).toBe(0.5);
    expect(coveredFraction([{ start: 0, end: 99 }, { start: 200, end: 299 }])).toBe(200 / HASH_SPACE);
  });

  it('adds up over disjoint pieces', () => {
    fc.assert(
      fc.property(fc.uniqueArray(hash, { minLength: 2, maxLength: 20 }), (cuts) => {
        const sorted = [...cuts].sort((x, y) => x - y);
        const ranges = sorted.slice(1).map((end, k) => ({ start: sorted[k]! + 1, end }));
        const whole = [{ start: sorted[0]! + 1, end: sorted[sorted.length - 1]! }];
        expect(coveredFraction(ranges)).toBeCloseTo(coveredFraction(whole), 15);
        expect(coveredFraction(whole)).toBe((sorted[sorted.length - 1]! - sorted[0]!) / HASH_SPACE);
      }),
    );
  });
});

describe('multirangeLiteral', () => {
  it('writes PostgreSQL multirange text with inclusive bounds', () => {
    expect(multirangeLiteral([{ start: 0, end: 99 }, { start: 200, end: 299 }])).toBe('{[0,99],[200,299]}');
    expect(multirangeLiteral([{ start: 7, end: 7 }])).toBe('{[7,7]}');
    expect(multirangeLiteral([{ start: 0, end: MAX_HASH }])).toBe('{[0,4294967295]}');
  });

  it('writes the empty multirange for no ranges', () => {
    expect(multirangeLiteral([])).toBe('{}');
  });

  it('writes plain integers (never exponents or separators) that read back as the same ranges', () => {
    const interval = fc.tuple(hash, hash).map(([x, y]) => ({ start: Math.min(x, y), end: Math.max(x, y) }));
    fc.assert(
      fc.property(fc.array(interval, { maxLength: 30 }), (ranges) => {
        const text = multirangeLiteral(ranges);
        expect(text).toMatch(/^\{(\[\d+,\d+\](,\[\d+,\d+\])*)?\}$/);
        const back = [...text.matchAll(/\[(\d+),(\d+)\]/g)].map((m) => ({ start: Number(m[1]), end: Number(m[2]) }));
        expect(back).toEqual(ranges);
      }),
    );
  });
});

describe('estimateShare', () => {
  it('scales rows and bytes by the moved share, rounded to whole numbers', () => {
    expect(estimateShare(0, { rows: 1000, bytes: 8192 })).toEqual({ rows: 0, bytes: 0 });
    expect(estimateShare(1, { rows: 1000, bytes: 8192 })).toEqual({ rows: 1000, bytes: 8192 });
    expect(estimateShare(0.25, { rows: 1000, bytes: 8192 })).toEqual({ rows: 250, bytes: 2048 });
    expect(estimateShare(1 / 3, { rows: 10, bytes: 20 })).toEqual({ rows: 3, bytes: 7 });
  });

  it('is within half a unit of the exact share, and never more for a smaller share', () => {
    const table = fc.record({ rows: fc.nat({ max: 1e9 }), bytes: fc.nat({ max: 2 ** 40 }) });
    const share = fc.double({ min: 0, max: 1, noNaN: true });
    fc.assert(
      fc.property(table, share, share, (t, f, g) => {
        const e = estimateShare(f, t);
        expect(Number.isInteger(e.rows) && Number.isInteger(e.bytes)).toBe(true);
        expect(Math.abs(e.rows - t.rows * f)).toBeLessThanOrEqual(0.5);
        expect(Math.abs(e.bytes - t.bytes * f)).toBeLessThanOrEqual(0.5);
        const [lo, hi] = f <= g ? [f, g] : [g, f];
        expect(estimateShare(lo, t).rows).toBeLessThanOrEqual(estimateShare(hi, t).rows);
        expect(estimateShare(lo, t).bytes).toBeLessThanOrEqual(estimateShare(hi, t).bytes);
      }),
    );
  });
});

describe('move states', () => {
  const progress: MoveState[] = ['planned', 'capturing', 'copying', 'copied', 'catching-up', 'fenced', 'verified', 'switched', 'cleaned'];

  it('lists every state of the journal, in the order of a move', () => {
    expect([...MOVE_STATES]).toEqual([...progress, 'failed', 'aborted']);
  });

  it('counts a move as unswitched, so abortable, only from planned to verified', () => {
    const table = Object.fromEntries(MOVE_STATES.map((s) => [s, isUnswitched(s)]));
    expect(table).toEqual({
      planned: true,
      capturing: true,
      copying: true,
      copied: true,
      'catching-up': true,
      fenced: true,
      verified: true,
      switched: false,
      cleaned: false,
      failed: false,
      aborted: false,
    });
  });

  it('an online move resumes a fence or a verification as catching-up: neither holds past the run that made it', () => {
    expect(MOVE_STATES.map((s) => [s, onlineResumeState(s)]).filter(([a, b]) => a !== b)).toEqual([
      ['fenced', 'catching-up'],
      ['verified', 'catching-up'],
    ]);
  });
});
