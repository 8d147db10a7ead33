import { parseDuration } from '../config/duration.js';
import { compareStreamIds, firstIdAtMs, ZERO_STREAM_ID } from './stream-id.js';

/**
 * The pure half of `stream trim`: which policy governs a stream, the id the
 * policy would trim to, the oldest entry some consumer group still needs (the
 * safe floor), and the id actually trimmed to. Every id is `<ms>-<seq>` text;
 * "trim to X" always means `XTRIM … MINID X`: every entry with an id strictly
 * below X goes, X and everything after it stays. MAXLEN is expressed the same
 * way (the id of the first entry to keep), so the two policies and the floor
 * combine with a plain min/max.
 */

/** One `streams:` entry of the config; the schema's type fits it. */
export interface StreamPolicy {
  /** A Redis glob, as `SCAN … MATCH` reads it. */
  match: string;
  maxLen?: number;
  /** A duration (`7d`) or milliseconds. */
  maxAge?: string | number;
  /** `~`: Redis may keep up to a radix-tree node more, for a much cheaper trim. */
  approximate?: boolean;
}

/** The first policy whose pattern matches the key (first match wins, as documented), or null. */
export function policyFor<P extends StreamPolicy>(policies: readonly P[], key: string | Uint8Array): P | null {
  return policies.find((p) => keyMatches(p.match, key)) ?? null;
}

export interface CutoffInput {
  nowMs: number;
  /** The stream's length (XLEN). */
  length: number;
  /**
   * The id of the entry at index `length - maxLen` (0-based), the first one a
   * MAXLEN trim keeps, read by the caller (`XREVRANGE key + - COUNT maxLen`,
   * its last id). Needed only when `length > maxLen`; with `maxLen: 0`, pass the
   * id right after the last entry (`nextStreamId(lastId)`).
   */
  idAtLengthMinusMaxLen?: string;
}

/**
 * The id the policy trims to, ignoring consumer groups: `maxAge` keeps
 * entries stamped at or after `nowMs - maxAge` (`MINID <nowMs - maxAge>-0`);
 * `maxLen` keeps the last `maxLen` entries; with both, the larger id (the
 * stricter policy wins). `0-0` when the stream is within the policy; null
 * when the policy sets neither limit.
 */
export function policyCutoff(policy: StreamPolicy, input: CutoffInput): string | null {
  const cutoffs: string[] = [];
  if (policy.maxAge !== undefined) cutoffs.push(firstIdAtMs(input.nowMs - parseDuration(policy.maxAge)));
  if (policy.maxLen !== undefined) {
    if (input.length <= policy.maxLen) cutoffs.push(ZERO_STREAM_ID);
    else if (input.idAtLengthMinusMaxLen === undefined) {
      throw new Error(`policyCutoff: a stream of ${input.length} entries over maxLen ${policy.maxLen} needs idAtLengthMinusMaxLen`);
    } else cutoffs.push(input.idAtLengthMinusMaxLen);
  }
  if (cutoffs.length === 0) return null;
  return cutoffs.reduce((a, b) => (compareStreamIds(b, a) > 0 ? b : a));
}

/** What the caller reads of one consumer group (XINFO GROUPS, XPENDING, one XRANGE). */
export interface GroupState {
  name: string;
  lastDeliveredId: string;
  pendingCount: number;
  /** The smallest id in the group's pending entries list; null when nothing is pending. */
  oldestPendingId: string | null;
  /** The first entry after lastDeliveredId (`XRANGE key (last + COUNT 1`); null when there is none. */
  firstUndeliveredId: string | null;
}

export type FloorReason = 'pending' | 'undelivered';

export interface SafeFloor {
  /** The smallest id any group still needs; null when no group needs anything. */
  floorId: string | null;
  /** The group that needs it, and why; the first such group on a tie. */
  heldBy: { group: string; reason: FloorReason } | null;
}

/**
 * The oldest entry some group still needs: the smallest, over groups, of the
 * oldest pending id (read but not acknowledged: XCLAIM / XAUTOCLAIM must still
 * find its body) and the first entry after the last-delivered id (not read yet
 * by anyone in the group). Trimming strictly below it removes nothing needed;
 * it is the smallest needed id itself, so nothing that could go is kept back.
 * A pending id may be of an entry already deleted: it still holds the floor,
 * which costs nothing (no entry lies below it that is not also below the next).
 */
export function safeTrimFloor(groups: readonly GroupState[]): SafeFloor {
  let floor: SafeFloor = { floorId: null, heldBy: null };
  const consider = (id: string | null, group: string, reason: FloorReason) => {
    if (id === null) return;
    if (floor.floorId === null || compareStreamIds(id, floor.floorId) < 0) floor = { floorId: id, heldBy: { group, reason } };
  };
  for (const g of groups) {
    if (g.pendingCount > 0 && g.oldestPendingId === null) {
      throw new Error(`group ${g.name}: ${g.pendingCount} pending entries but no oldest pending id`);
    }
    if (g.firstUndeliveredId !== null && compareStreamIds(g.firstUndeliveredId, g.lastDeliveredId) <= 0) {
      throw new Error(`group ${g.name}: first undelivered id ${g.firstUndeliveredId} is not after last-delivered id ${g.lastDeliveredId}`);
    }
    consider(g.oldestPendingId, g.name, 'pending');
    consider(g.firstUndeliveredId, g.name, 'undelivered');
  }
  return floor;
}

export interface TrimDecision {
  /** `XTRIM … MINID trimId`; null: trim nothing (no policy limit). */
  trimId: string | null;
  /** A group holds the trim below the policy's cut-off: the report warns, naming `floor.heldBy`. */
  policyHeldBack: boolean;
  /** `--force` trimmed past the floor: entries a group still needed were removed. */
  forcedPastFloor: boolean;
}

/**
 * `min(cut-off, floor)`, or the cut-off itself under `force`. The floor never
 * raises the trim id: a group that needs nothing old lets the policy act fully.
 */
export function effectiveTrimId(cutoffId: string | null, floor: SafeFloor, options: { force: boolean }): TrimDecision {
  if (cutoffId === null) return { trimId: null, policyHeldBack: false, forcedPastFloor: false };
  const below = floor.floorId !== null && compareStreamIds(floor.floorId, cutoffId) < 0;
  if (options.force) return { trimId: cutoffId, policyHeldBack: false, forcedPastFloor: below };
  return { trimId: below ? floor.floorId : cutoffId, policyHeldBack: below, forcedPastFloor: false };
}

const encoder = new TextEncoder();
const STAR = 0x2a;
const QUESTION = 0x3f;
const OPEN = 0x5b;
const CLOSE = 0x5d;
const CARET = 0x5e;
const BACKSLASH = 0x5c;
const DASH = 0x2d;
/** Redis gives up on a pattern nested deeper than this many `*` (an abusive pattern matches nothing). */
const MAX_STAR_NESTING = 1000;

/**
 * Whether `key` matches `pattern` exactly as `SCAN … MATCH` decides: a port of
 * Redis' `stringmatchlen` (util.c, case-sensitive), so that the policy chosen
 * for a key is the one whose SCAN found it. Redis matches bytes, so both sides
 * are UTF-8 bytes here and `?` is one byte. Its quirks are kept: `*` alone
 * matches every key (SCAN skips matching for it; `**` does not match the empty
 * key); `{` `}` are literal; an unclosed `[` runs to the end of the pattern;
 * `[a-]` is a range up to `]`; a range's ends may come in either order; and
 * range bytes compare as signed chars, as on the x86-64 builds this was
 * checked against (`char` is unsigned on ARM: a range with a non-ASCII end
 * may differ there).
 */
export function keyMatches(pattern: string, key: string | Uint8Array): boolean {
  if (pattern === '*') return true;
  const p = encoder.encode(pattern);
  const s = typeof key === 'string' ? encoder.encode(key) : key;
  const skipLongerMatches = { value: false };
  return matchFrom(p, 0, s, 0, skipLongerMatches, 0);
}

const signed = (byte: number) => (byte > 127 ? byte - 256 : byte);

function matchFrom(p: Uint8Array, pi: number, s: Uint8Array, si: number, skip: { value: boolean }, nesting: number): boolean {
  if (nesting > MAX_STAR_NESTING) return false;
  while (pi < p.length && si < s.length) {
    switch (p[pi]) {
      case STAR: {
        while (pi + 1 < p.length && p[pi + 1] === STAR) pi++;
        if (pi + 1 === p.length) return true;
        for (; si < s.length; si++) {
          if (matchFrom(p, pi + 1, s, si, skip, nesting + 1)) return true;
          // The rest matched nowhere in the remainder: a longer match for an earlier `*` cannot help.
          if (skip.value) return false;
        }
        skip.value = true;
        return false;
      }
      case QUESTION:
        si++;
        break;
      case OPEN: {
        pi++;
        const not = pi < p.length && p[pi] === CARET;
        if (not) pi++;
        let match = false;
        const c = s[si]!;
        for (;;) {
          if (p.length - pi >= 2 && p[pi] === BACKSLASH) {
            pi++;
            if (p[pi] === c) match = true;
          } else if (pi >= p.length) {
            // Unclosed: the class ends with the pattern (the step below leaves pi at its end).
            pi--;
            break;
          } else if (p[pi] === CLOSE) {
            break;
          } else if (p.length - pi >= 3 && p[pi + 1] === DASH) {
            let start = signed(p[pi]!);
            let end = signed(p[pi + 2]!);
            if (start > end) [start, end] = [end, start];
            pi += 2;
            if (signed(c) >= start && signed(c) <= end) match = true;
          } else if (p[pi] === c) {
            match = true;
          }
          pi++;
        }
        if (not) match = !match;
        if (!match) return false;
        si++;
        break;
      }
      default:
        // `\x` is the byte x, literally; a trailing `\` is itself.
        if (p[pi] === BACKSLASH && p.length - pi >= 2) pi++;
        if (p[pi] !== s[si]) return false;
        si++;
        break;
    }
    pi++;
    if (si === s.length) {
      while (pi < p.length && p[pi] === STAR) pi++;
      break;
    }
  }
  return pi === p.length && si === s.length;
}
