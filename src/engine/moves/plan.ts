import { randomBytes } from 'node:crypto';
import { estimateShare, planMisplacedMoves, planRingChange, rangesByShard, type Interval, type MoveMode } from '../../core/move-plan.js';
import { Ring, type RingMember, type RingSpec } from '../../core/ring.js';
import { applyRingChange } from '../../core/ring-change.js';
import type { PlanKind } from '../../metadata/journal.js';
import { mapWithConcurrency } from '../concurrency.js';
import { countInRanges, misplacedByOwner } from '../../mover/verify.js';
import { quoteQualified } from '../../postgres/ident.js';
import { UsageError } from '../../errors.js';
import { withConnections, type MoveEnv } from './env.js';

export interface MovePlanEntry {
  source: string;
  target: string;
  mode: MoveMode;
  ranges: Interval[];
  fraction: number;
  estRows: number;
  estBytes: number;
  /** Per table, rows and bytes the move should carry. */
  tables: Array<{ table: string; rows: number; bytes: number }>;
}

/**
 * The plan file format written by `--plan-out`. Version 2 writes ranges as
 * `[start, end]` pairs (version 1 wrote `{start, end}` objects: four lines
 * each once indented, thousands for a large ring); `shard apply` reads both.
 */
export const PLAN_FORMAT = 'shardctl-plan/2';
const READABLE_FORMATS = new Set(['shardctl-plan/1', PLAN_FORMAT]);

/** A reviewable plan: what `--plan-out` writes (as a PlanFile) and `shard apply` reads. */
export interface PlanDocument {
  format: typeof PLAN_FORMAT;
  kind: PlanKind;
  fromEpoch: number;
  targetRing: RingSpec;
  /** For `shard add`: the shard to register (URL without password). */
  addShard?: { id: string; url: string; weight: number };
  removeShard?: string;
  estimate: 'statistics' | 'exact';
  moves: MovePlanEntry[];
  createdAt: string;
  createdBy: string;
}

/** An inclusive hash range as plan files and --json print it. */
export type RangePair = [start: number, end: number];

/** A plan as it is written to a file and printed under --json: every range a `[start, end]` pair. */
export type PlanFile = Omit<PlanDocument, 'moves'> & { moves: Array<Omit<MovePlanEntry, 'ranges'> & { ranges: RangePair[] }> };

export function planFileOf(doc: PlanDocument): PlanFile {
  return { ...doc, moves: doc.moves.map((m) => ({ ...m, ranges: m.ranges.map((r): RangePair => [r.start, r.end]) })) };
}

/**
 * A plan file's JSON as a plan: version 2 (`[start, end]` pairs) or version 1
 * (`{start, end}` objects). Anything else is refused as not a plan file.
 */
export function readPlanFile(value: unknown): PlanDocument {
  const doc = value as { format?: unknown; moves?: unknown } | null;
  if (typeof doc !== 'object' || doc === null || typeof doc.format !== 'string' || !READABLE_FORMATS.has(doc.format) || !Array.isArray(doc.moves)) {
    throw new UsageError(`not a shardctl plan file (format ${PLAN_FORMAT} or shardctl-plan/1)`);
  }
  const moves = doc.moves.map((m: { ranges?: unknown }, i: number) => {
    if (!Array.isArray(m?.ranges)) throw new UsageError(`not a shardctl plan file: move ${i + 1} has no ranges`);
    return { ...m, ranges: m.ranges.map((r: unknown) => intervalOf(r, i + 1)) };
  });
  return { ...(doc as unknown as PlanDocument), format: PLAN_FORMAT, moves: moves as MovePlanEntry[] };
}

function intervalOf(r: unknown, move: number): Interval {
  const [start, end] = Array.isArray(r) ? r : [(r as Interval | null)?.start, (r as Interval | null)?.end];
  const valid = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 0 && (n as number) < 2 ** 32;
  if (!valid(start) || !valid(end) || start > end) throw new UsageError(`not a shardctl plan file: move ${move} has a range that is not [start, end] in the hash space: ${JSON.stringify(r)}`);
  return { start, end };
}

export interface RingChange {
  kind: PlanKind;
  add?: RingMember;
  remove?: string;
  weights?: RingMember[];
  vnodes?: number;
}

/** The target ring of a change, from the current one. */
export function targetRingOf(current: RingSpec, change: RingChange): RingSpec {
  return applyRingChange(current, {
    ...(change.add ? { add: [change.add] } : {}),
    ...(change.remove ? { remove: [change.remove] } : {}),
    ...(change.weights ? { weights: change.weights } : {}),
    ...(change.vnodes !== undefined ? { vnodes: change.vnodes } : {}),
  });
}

/** Moves for a ring change, with estimates from statistics (or counted, with `exact`). */
export async function planChange(env: MoveEnv, change: RingChange, options: { exact?: boolean; extra?: Pick<PlanDocument, 'addShard' | 'removeShard'> } = {}): Promise<PlanDocument> {
  const current = await env.currentRing();
  const target = targetRingOf(current, change);
  const moves = planRingChange(Ring.build(current), Ring.build(target));
  return {
    format: PLAN_FORMAT,
    kind: change.kind,
    fromEpoch: current.epoch,
    targetRing: target,
    ...options.extra,
    estimate: options.exact ? 'exact' : 'statistics',
    moves: await estimate(env, moves, !!options.exact, Ring.build(current).ownership()),
    createdAt: new Date().toISOString(),
    createdBy: env.run.actor,
  };
}

/**
 * `shard rebalance` with no ring change: rows sitting on a shard the ring does
 * not give them to go home (merge moves; the ring stays as it is).
 */
export async function planMisplaced(env: MoveEnv, shards: string[]): Promise<PlanDocument> {
  const current = await env.currentRing();
  const ring = Ring.build(current);
  const owned = rangesByShard(ring);
  const pairs = await mapWithConcurrency(shards, 4, (shard) =>
    withConnections([env.connect(shard, 'shard rebalance')], async (client) => {
      const owners = new Set<string>();
      for (const table of env.tables) {
        const shape = await env.shapeOn(client!, shard, table);
        for (const [owner] of await misplacedByOwner(client!, shape, shard, owned)) owners.add(owner);
      }
      return [...owners].map((owner) => ({ shard, owner }));
    }),
  );
  const moves = planMisplacedMoves(ring, pairs.flat());
  return {
    format: PLAN_FORMAT,
    kind: 'rebalance',
    fromEpoch: current.epoch,
    targetRing: { vnodes: current.vnodes, members: current.members },
    estimate: 'exact',
    moves: await estimate(env, moves, true, ring.ownership()),
    createdAt: new Date().toISOString(),
    createdBy: env.run.actor,
  };
}

/**
 * Rows a move carries: the source's rows times the part of the source's own
 * hash space that moves (hashes are uniform, and the source holds only its own
 * ranges), or counted with `exact`.
 */
async function estimate(env: MoveEnv, moves: ReturnType<typeof planRingChange>, exact: boolean, ownership: Map<string, number>): Promise<MovePlanEntry[]> {
  return mapWithConcurrency(moves, 4, (move) =>
    withConnections([env.connect(move.source, 'shard plan')], async (client) => {
      const tables: MovePlanEntry['tables'] = [];
      for (const table of env.tables) {
        const shape = await env.shapeOn(client!, move.source, table);
        const { rows } = await client!.query<{ rows: number; bytes: number }>(
          `SELECT c.reltuples::bigint AS rows, pg_total_relation_size(c.oid)::bigint AS bytes FROM pg_class c WHERE c.oid = to_regclass($1)`,
          [quoteQualified(table.name)],
        );
        const stats = rows[0] ?? { rows: 0, bytes: 0 };
        const share = Math.min(1, move.fraction / Math.max(ownership.get(move.source) ?? 1, 1e-9));
        // A table never analysed has no row estimate (-1): count it rather than promise 0 rows.
        if (exact || stats.rows < 0) {
          const n = await countInRanges(client!, shape, move.ranges);
          tables.push({ table: table.name, rows: n, bytes: Math.round(stats.bytes * share) });
        } else {
          tables.push({ table: table.name, ...estimateShare(share, stats) });
        }
      }
      return {
        source: move.source,
        target: move.target,
        mode: move.mode,
        ranges: move.ranges,
        fraction: move.fraction,
        estRows: tables.reduce((s, t) => s + t.rows, 0),
        estBytes: tables.reduce((s, t) => s + t.bytes, 0),
        tables,
      };
    }),
  );
}

export function newPlanId(fromEpoch: number): string {
  const stamp = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return `p${fromEpoch}-${stamp}-${randomBytes(2).toString('hex')}`;
}
