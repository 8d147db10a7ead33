import type { ShardctlConfig } from '../../config/schema.js';
import { isUnswitched } from '../../core/move-state.js';
import { rangesByShard } from '../../core/move-plan.js';
import { Ring } from '../../core/ring.js';
import type { PlanRecord } from '../../metadata/journal.js';
import { listCaptures } from '../../mover/capture.js';
import { chooseDigest } from '../../mover/table-shape.js';
import { rangeAccessFor } from '../../mover/range-access.js';
import { countInRanges, misplacedByOwner, rangeChecksum } from '../../mover/verify.js';
import { mapWithConcurrency } from '../concurrency.js';
import { requireRing, withMetadata } from '../metadata-session.js';
import { withConnections } from '../moves/env.js';
import { moveEnv } from '../moves/run-plan.js';
import { isOnlineMove } from '../moves/online.js';

export interface VerifyShardReport {
  shard: string;
  tables: Array<{
    table: string;
    /** Rows here that the current ring gives to another shard, by that shard. */
    misplaced: Record<string, number>;
    /** Rows here that are copies of an unswitched move in flight (expected, not misplaced). */
    inFlightCopies: number;
  }>;
  error?: string;
}

export interface VerifyReport {
  epoch: number;
  shards: VerifyShardReport[];
  /** Moves in flight whose copies differ from their source, per table. */
  mismatches: Array<{ plan: string; moveNo: number; source: string; target: string; table: string; source_: { rows: number; sum: string }; target_: { rows: number; sum: string } }>;
  misplacedRows: number;
  /**
   * Online-move objects (triggers, functions, change table, fence sequence,
   * registry row) on a shard that no move in flight accounts for: debris of an
   * interrupted move, or objects without a registry row. planId and moveNo
   * come from the registry row (null: none); planState is the plan's state in
   * the journal (null: unknown to it).
   */
  leftovers: Array<{ shard: string; tag: string; planId: string | null; moveNo: number | null; planState: string | null; objects: string[] }>;
  ok: boolean;
}

/**
 * Whether a capture (by its registry row) belongs to a move in flight: a move
 * of the active online plan, not cleaned or aborted (a failed one by the state
 * it resumes from), whose source is the shard.
 */
function expectedCapture(active: PlanRecord | null, shard: string, planId: string | null, moveNo: number | null): boolean {
  if (!active || active.options.online !== true || planId !== active.id || moveNo === null) return false;
  const move = active.moves.find((m) => m.moveNo === moveNo);
  if (!move || move.source !== shard || move.mode !== 'fresh') return false;
  const state = move.state === 'failed' ? (move.resumeState ?? 'planned') : move.state;
  return state !== 'cleaned' && state !== 'aborted';
}

/**
 * `shard verify`: reads every shard and changes nothing. Finds rows the
 * current ring places elsewhere, and copies of in-flight moves that no longer
 * match their source, and online-move objects (capture, fence) that no move
 * in flight accounts for.
 */
export async function shardVerify(config: ShardctlConfig): Promise<VerifyReport> {
  return withMetadata(config, async (store) => {
    const current = await requireRing(store);
    const env = await moveEnv(config, store, { actor: 'verify', commandLine: '', lockWaitMs: 0 });
    const owned = rangesByShard(Ring.build(current));
    const active = await env.journal.activePlan();
    const inFlight = active && active.switchedEpoch === null
      ? active.moves.filter((m) => m.mode === 'fresh' && isUnswitched(m.state === 'failed' ? (m.resumeState ?? 'planned') : m.state) && m.state !== 'planned')
      : [];
    const shards = (await store.listShards()).filter((s) => (s.state !== 'retired' && s.state !== 'pending') || inFlight.some((m) => m.target === s.id));
    const leftovers: VerifyReport['leftovers'] = [];
    const reports = await mapWithConcurrency(shards, 4, async (s): Promise<VerifyShardReport> => {
      try {
        return await withConnections([env.connect(s.id, 'shard verify')], async (client) => {
          for (const c of await listCaptures(client!)) {
            if (expectedCapture(active, s.id, c.planId, c.moveNo)) continue;
            leftovers.push({ shard: s.id, tag: c.tag, planId: c.planId, moveNo: c.moveNo, planState: null, objects: c.objects });
          }
          const tables: VerifyShardReport['tables'] = [];
          for (const table of env.tables) {
            const shape = await env.shapeOn(client!, s.id, table);
            const byOwner = await misplacedByOwner(client!, shape, s.id, owned);
            let copies = 0;
            for (const m of inFlight.filter((m) => m.target === s.id)) {
              const n = await countInRanges(client!, shape, m.ranges);
              copies += n;
              byOwner.set(m.source, (byOwner.get(m.source) ?? 0) - n);
              if ((byOwner.get(m.source) ?? 0) <= 0) byOwner.delete(m.source);
            }
            tables.push({ table: table.name, misplaced: Object.fromEntries(byOwner), inFlightCopies: copies });
          }
          return { shard: s.id, tables };
        });
      } catch (err) {
        return { shard: s.id, tables: [], error: (err as Error).message };
      }
    });
    const mismatches: VerifyReport['mismatches'] = [];
    // An online move's target trails its source by the capture backlog until the fence: only offline copies are compared.
    for (const m of inFlight.filter((m) => ['copied', 'verified'].includes(m.state) && !isOnlineMove(active!, m))) {
      await withConnections([env.connect(m.source, 'shard verify'), env.connect(m.target, 'shard verify')], async (source, target) => {
        for (const table of env.tables) {
          const shape = await env.shapeOn(source!, m.source, table);
          const digest = await chooseDigest(source!, target!, shape);
          const checksum = async (c: typeof source) => rangeChecksum(c!, shape, m.ranges, digest, false, await rangeAccessFor(c!, shape, m.ranges));
          const [a, b] = await Promise.all([checksum(source), checksum(target)]);
          if (a.rows !== b.rows || a.sum !== b.sum) mismatches.push({ plan: active!.id, moveNo: m.moveNo, source: m.source, target: m.target, table: table.name, source_: a, target_: b });
        }
      });
    }
    const misplacedRows = reports.reduce((sum, r) => sum + r.tables.reduce((s, t) => s + Object.values(t.misplaced).reduce((a, b) => a + b, 0), 0), 0);
    const planStates = new Map<string, string | null>();
    for (const l of leftovers) {
      if (l.planId === null) continue;
      if (!planStates.has(l.planId)) planStates.set(l.planId, (await env.journal.getPlan(l.planId))?.state ?? null);
      l.planState = planStates.get(l.planId)!;
    }
    leftovers.sort((a, b) => a.shard.localeCompare(b.shard) || a.tag.localeCompare(b.tag));
    return {
      epoch: current.epoch,
      shards: reports,
      mismatches,
      misplacedRows,
      leftovers,
      ok: misplacedRows === 0 && mismatches.length === 0 && leftovers.length === 0 && reports.every((r) => !r.error),
    };
  });
}
