/**
 * The life of a move. Each state is journaled before the work of the next
 * step starts, so a crash at any instant leaves a state `shard resume`
 * continues from (or `shard abort` undoes, before the switch).
 *
 *   planned → copying → copied → verified → switched → cleaned
 *        any unswitched state → aborted;   any state → failed (resumable)
 *
 * Online moves (the application keeps writing to the moving ranges) will add
 * two phases between `copied` and `verified`: `catching-up` (apply changes
 * captured on the source since the copy's snapshot) and `fenced` (writes to the
 * moving ranges briefly refused while the last changes land). The journal
 * already stores a per-table cursor and the source snapshot position they need.
 */
export const MOVE_STATES = ['planned', 'copying', 'copied', 'verified', 'switched', 'cleaned', 'failed', 'aborted'] as const;
export type MoveState = (typeof MOVE_STATES)[number];

export type PlanState = 'running' | 'switched' | 'done' | 'failed' | 'aborted';

/** Before the ring changes, a move can still be undone. */
export function isUnswitched(state: MoveState): boolean {
  return state === 'planned' || state === 'copying' || state === 'copied' || state === 'verified';
}
