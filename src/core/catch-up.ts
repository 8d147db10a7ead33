/**
 * Decisions of an online move's catch-up and fence, on plain numbers (the
 * engine measures, this decides). See the README, "Online moves".
 */

export interface CatchUpRound {
  /** Change records taken this round (at most the round's limit). */
  taken: number;
  limit: number;
}

/** A round that took fewer records than it could found the backlog empty: the target has caught up. */
export function caughtUp(round: CatchUpRound): boolean {
  return round.taken < round.limit;
}

/**
 * The share of a fence's time that must be left when it is made permanent:
 * the switch is not started with less than this before the deadline (a margin
 * for the round trips of making it permanent and of the clock).
 */
export function fenceMarginMs(fenceTimeoutMs: number): number {
  return Math.max(50, Math.min(1000, Math.round(fenceTimeoutMs / 4)));
}

/**
 * How long to wait before fencing again after a fence missed its deadline:
 * jittered and growing, so writers that retried get through in between.
 * `random` in [0, 1).
 */
export function fenceBackoffMs(attempt: number, random: number): number {
  const base = Math.min(2000, 100 * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.5 + random));
}

/**
 * Keys replayed since the last whole-range comparison are verified one by one
 * inside the fence; past this many, compare the whole ranges again first (in a
 * snapshot, unfenced), so the fence stays short.
 */
export const MAX_KEYS_TO_VERIFY_IN_FENCE = 20_000;

export function needsSnapshotVerify(dirtyKeys: number, verifiedSinceCopy: boolean): boolean {
  return !verifiedSinceCopy || dirtyKeys > MAX_KEYS_TO_VERIFY_IN_FENCE;
}
