/**
 * Where a data-moving run's time and bytes go, by phase (README, "Where the
 * time goes"). Pure: the engine measures, this adds up.
 *
 *   plan      the plan (ring change, estimates), before the journal
 *   prepare   a new shard made ready (migrations, route_hash, table checks)
 *   capture   an online move's triggers installed on its source
 *   copy      rows streamed source → target, and the target analyzed
 *   catch-up  captured changes replayed (online)
 *   verify    count and checksum compared (offline: verify; online: the snapshot comparison)
 *   fence     the fence up: last changes, keys checked, made permanent (online)
 *   switch    the new ring epoch written and published
 *   cleanup   the moved rows deleted from the source, the move's objects removed
 */
export const MOVE_PHASES = ['plan', 'prepare', 'capture', 'copy', 'catch-up', 'verify', 'fence', 'switch', 'cleanup'] as const;
export type MovePhase = (typeof MOVE_PHASES)[number];

export interface PhaseCost {
  seconds: number;
  /** Bytes read from PostgreSQL for the phase (what each counts: README, "Where the time goes"). */
  bytesRead: number;
  bytesWritten: number;
}

export type PhaseCosts = Partial<Record<MovePhase, PhaseCost>>;

export function addCost(costs: PhaseCosts, phase: MovePhase, delta: Partial<PhaseCost>): void {
  const c = (costs[phase] ??= { seconds: 0, bytesRead: 0, bytesWritten: 0 });
  c.seconds += delta.seconds ?? 0;
  c.bytesRead += delta.bytesRead ?? 0;
  c.bytesWritten += delta.bytesWritten ?? 0;
}

/** The phases of several parts added up, in phase order. */
export function sumCosts(parts: PhaseCosts[]): PhaseCosts {
  const out: PhaseCosts = {};
  for (const phase of MOVE_PHASES) for (const p of parts) if (p[phase]) addCost(out, phase, p[phase]);
  return out;
}

/** For reports: phases in order, seconds to the millisecond, bytes whole. */
export function roundCosts(costs: PhaseCosts): PhaseCosts {
  const out: PhaseCosts = {};
  for (const phase of MOVE_PHASES) {
    const c = costs[phase];
    if (c) out[phase] = { seconds: Math.round(c.seconds * 1000) / 1000, bytesRead: Math.round(c.bytesRead), bytesWritten: Math.round(c.bytesWritten) };
  }
  return out;
}
