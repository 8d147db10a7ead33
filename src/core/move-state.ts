/**
 * The life of a move. Each state is journaled before the work of the next
 * step starts, so a crash at any instant leaves a state `shard resume`
 * continues from (or `shard abort` undoes, before the switch).
 *
 * Offline (`--offline`, a maintenance window):
 *   planned → copying → copied → verified → switched → cleaned
 *
 * Online (the default: the application keeps writing to the moving ranges):
 *   planned → capturing → copying → copied → catching-up ⇄ fenced → verified → switched → cleaned
 *
 *   capturing    triggers on the source record every change to the moving rows
 *                (README, "Online moves"); committed before the copy's snapshot
 *   catching-up  the captured changes are replayed to the target in rounds, then
 *                the whole ranges are compared in one source snapshot
 *   fenced       writes to the moving ranges are refused on the source until a
 *                deadline on the server's clock; the last changes land and are
 *                verified. Missing the deadline goes back to catching-up.
 *
 *        any unswitched state → aborted;   any state → failed (resumable)
 */
export const MOVE_STATES = ['planned', 'capturing', 'copying', 'copied', 'catching-up', 'fenced', 'verified', 'switched', 'cleaned', 'failed', 'aborted'] as const;
export type MoveState = (typeof MOVE_STATES)[number];

export type PlanState = 'running' | 'switched' | 'done' | 'failed' | 'aborted';

const UNSWITCHED: ReadonlySet<MoveState> = new Set(['planned', 'capturing', 'copying', 'copied', 'catching-up', 'fenced', 'verified']);

/** Before the ring changes, a move can still be undone. */
export function isUnswitched(state: MoveState): boolean {
  return UNSWITCHED.has(state);
}

/**
 * Where an online move continues after a crash or a stop. A fence or a
 * verification holds only in the run that switches (the fence may have lapsed,
 * writes may have come since), so fenced and verified go back to catching-up.
 */
export function onlineResumeState(state: MoveState): MoveState {
  if (state === 'fenced' || state === 'verified') return 'catching-up';
  return state;
}
