import { addCost, roundCosts, sumCosts, type MovePhase, type PhaseCost, type PhaseCosts } from '../../core/move-phases.js';

/**
 * This run's time and bytes by phase: for the run (plan, prepare, switch),
 * per move, and per table of a move. Overlapping moves each count their own
 * time, so the moves' seconds can add up to more than the run's wall time.
 */
export class PhaseMeter {
  readonly run: PhaseCosts = {};
  readonly #moves = new Map<number, { move: PhaseCosts; tables: Map<string, PhaseCosts> }>();

  #of(moveNo: number) {
    let m = this.#moves.get(moveNo);
    if (!m) this.#moves.set(moveNo, (m = { move: {}, tables: new Map() }));
    return m;
  }

  /** Adds to the run (no move), a move, or one of its tables. */
  add(phase: MovePhase, where: { moveNo?: number; table?: string }, delta: Partial<PhaseCost>): void {
    if (where.moveNo === undefined) return addCost(this.run, phase, delta);
    const m = this.#of(where.moveNo);
    if (where.table === undefined) return addCost(m.move, phase, delta);
    let t = m.tables.get(where.table);
    if (!t) m.tables.set(where.table, (t = {}));
    addCost(t, phase, delta);
  }

  /** Times `fn` as `phase` at `where`; bytes may be added after with add(). */
  async time<T>(phase: MovePhase, where: { moveNo?: number; table?: string }, fn: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await fn();
    } finally {
      this.add(phase, where, { seconds: (performance.now() - started) / 1000 });
    }
  }

  /** A move's phases: its own and its tables', added up; and each table's. */
  ofMove(moveNo: number): { phases: PhaseCosts; tables: Record<string, PhaseCosts> } {
    const m = this.#moves.get(moveNo);
    if (!m) return { phases: {}, tables: {} };
    const tables = Object.fromEntries([...m.tables].map(([name, c]) => [name, roundCosts(c)]));
    return { phases: roundCosts(sumCosts([m.move, ...m.tables.values()])), tables };
  }

  /** The run's phases: its own and every move's. */
  total(): PhaseCosts {
    return roundCosts(sumCosts([this.run, ...[...this.#moves.values()].flatMap((m) => [m.move, ...m.tables.values()])]));
  }
}
