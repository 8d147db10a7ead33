import { compareShardIds } from './shard-id.js';
import type { Ring } from './ring.js';

/**
 * Which hash ranges move where when the ring changes. Pure: rings in, moves out.
 * A move carries every range that goes from one source to one target, for all
 * sharded tables at once (they are co-located by key), so a key's rows are
 * never split across shards once the move is switched.
 */

/** An inclusive interval of the 32-bit hash space. */
export interface Interval {
  start: number;
  end: number;
}

export type MoveMode =
  /** The target does not own these ranges yet: it receives them empty, so a retried batch may first clear what it wrote. */
  | 'fresh'
  /** The target already owns the ranges (misplaced rows going home): rows are added only where absent, nothing is ever deleted there. */
  | 'merge';

export interface PlannedMove {
  source: string;
  target: string;
  ranges: Interval[];
  /** Share of the 2^32 hash space the ranges cover. */
  fraction: number;
  mode: MoveMode;
}

const HASH_SPACE = 2 ** 32;

/** The moves that take the data placed by `before` to where `after` places it. */
export function planRingChange(before: Ring, after: Ring): PlannedMove[] {
  const a = before.ranges();
  const b = after.ranges();
  const moves = new Map<string, PlannedMove>();
  let i = 0;
  let j = 0;
  let start = 0;
  // Both range lists cover the whole space in order: walk their common refinement.
  while (i < a.length && j < b.length) {
    const ra = a[i]!;
    const rb = b[j]!;
    const end = Math.min(ra.end, rb.end);
    if (ra.shardId !== rb.shardId) {
      const key = `${ra.shardId}\u0000${rb.shardId}`;
      let move = moves.get(key);
      if (!move) {
        move = { source: ra.shardId, target: rb.shardId, ranges: [], fraction: 0, mode: 'fresh' };
        moves.set(key, move);
      }
      appendInterval(move.ranges, { start, end });
    }
    start = end + 1;
    if (ra.end === end) i++;
    if (rb.end === end) j++;
  }
  return finish([...moves.values()]);
}

/**
 * Moves that send rows found on the wrong shard (a writer with a stale ring,
 * an interrupted manual copy) to the shard the ring names. `misplaced` lists
 * (shard holding rows, owner of those rows) pairs that have any.
 */
export function planMisplacedMoves(ring: Ring, misplaced: Array<{ shard: string; owner: string }>): PlannedMove[] {
  const owned = rangesByShard(ring);
  const pairs = new Map<string, { shard: string; owner: string }>();
  for (const m of misplaced) if (m.shard !== m.owner) pairs.set(`${m.shard}\u0000${m.owner}`, m);
  const moves = [...pairs.values()].map((m) => ({
    source: m.shard,
    target: m.owner,
    // Each move gets its own copy: moves are journaled and changed independently.
    ranges: (owned.get(m.owner) ?? []).map((r) => ({ ...r })),
    fraction: 0,
    mode: 'merge' as const,
  }));
  return finish(moves.filter((m) => m.ranges.length > 0));
}

export function rangesByShard(ring: Ring): Map<string, Interval[]> {
  const out = new Map<string, Interval[]>();
  for (const r of ring.ranges()) {
    const list = out.get(r.shardId) ?? [];
    list.push({ start: r.start, end: r.end });
    out.set(r.shardId, list);
  }
  return out;
}

export function coveredFraction(ranges: Interval[]): number {
  return ranges.reduce((sum, r) => sum + (r.end - r.start + 1), 0) / HASH_SPACE;
}

/**
 * A PostgreSQL int8multirange literal for the intervals, e.g. `{[0,99],[200,299]}`.
 * Containment of a value in a multirange is a binary search on the server,
 * so one filter covers thousands of ranges at the cost of one.
 */
export function multirangeLiteral(ranges: Interval[]): string {
  return `{${ranges.map((r) => `[${r.start},${r.end}]`).join(',')}}`;
}

/** Rows and bytes a move should carry, from a table's size and the hash share it moves (hashes are uniform). */
export function estimateShare(fraction: number, table: { rows: number; bytes: number }): { rows: number; bytes: number } {
  return { rows: Math.round(table.rows * fraction), bytes: Math.round(table.bytes * fraction) };
}

function appendInterval(list: Interval[], next: Interval): void {
  const last = list[list.length - 1];
  if (last && last.end + 1 === next.start) last.end = next.end;
  else list.push(next);
}

function finish(moves: PlannedMove[]): PlannedMove[] {
  for (const m of moves) m.fraction = coveredFraction(m.ranges);
  return moves.sort((x, y) => (x.source === y.source ? cmp(x.target, y.target) : cmp(x.source, y.source)));
}

const cmp = compareShardIds;
