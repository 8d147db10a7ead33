/**
 * Stream entry IDs (`<ms>-<seq>`, both unsigned 64-bit). They are compared as
 * decimal strings, never as JavaScript numbers: a sequence number can exceed
 * 2^53, and the Lua side compares them the same way.
 */

const ID = /^(0|[1-9]\d{0,19})-(0|[1-9]\d{0,19})$/;

export interface StreamIdParts {
  ms: string;
  seq: string;
}

export function parseStreamId(id: string): StreamIdParts {
  const m = ID.exec(id);
  if (!m) throw new RangeError(`not a stream entry id: ${JSON.stringify(id)} (expected <ms>-<seq>)`);
  return { ms: m[1]!, seq: m[2]! };
}

/** `1700000000000` or `1700000000000-5` → the full id; rejects anything else (leading zeros, `*`). */
export function normalizeStreamId(id: string): string {
  const full = /^\d+$/.test(id) ? `${id}-0` : id;
  const { ms, seq } = parseStreamId(full.replace(/^0+(?=\d)/, '').replace(/-0+(?=\d)/, '-'));
  return `${ms}-${seq}`;
}

function compareDecimal(a: string, b: string): number {
  return a.length !== b.length ? a.length - b.length : a < b ? -1 : a > b ? 1 : 0;
}

/** Negative, zero or positive, as `a` sorts before, with or after `b` in a stream. */
export function compareStreamIds(a: string, b: string): number {
  const x = parseStreamId(a);
  const y = parseStreamId(b);
  return compareDecimal(x.ms, y.ms) || compareDecimal(x.seq, y.seq);
}

/** The millisecond timestamp an id carries (Redis' auto ids are the server clock at XADD). */
export function streamIdMs(id: string): number {
  return Number(parseStreamId(id).ms);
}

/** How old the entry is at `nowMs`, by its id's timestamp; negative when the id is from the future. */
export function streamIdAgeMs(id: string, nowMs: number): number {
  return nowMs - streamIdMs(id);
}

/** The MINID that keeps entries at most `maxAgeMs` old at `nowMs`: `<nowMs - maxAgeMs>-0`. */
export function minIdForMaxAge(maxAgeMs: number, nowMs: number): string {
  return `${Math.max(0, Math.floor(nowMs - maxAgeMs))}-0`;
}
