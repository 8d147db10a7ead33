/**
 * Redis Stream entry IDs, `<ms>-<seq>`: two unsigned 64-bit integers, ordered
 * by ms, then seq. Held as bigints, never JavaScript numbers: a sequence number
 * (explicit XADD ids, `<ms>-*` bursts) can exceed 2^53, where numbers stop
 * being exact and two different ids would compare equal.
 */
export interface StreamId {
  readonly ms: bigint;
  readonly seq: bigint;
}

/** The largest value of either part (Redis keeps both as uint64). */
export const MAX_ID_PART = (1n << 64n) - 1n;
/** The smallest id; `MINID 0-0` removes nothing, and a group at `0-0` has read nothing. */
export const ZERO_STREAM_ID = '0-0';
export const MAX_STREAM_ID = `${MAX_ID_PART}-${MAX_ID_PART}`;

const ID_TEXT = /^(\d{1,20})-(\d{1,20})$/;

/** Whether `text` is a complete `<ms>-<seq>` id (no `*`, `$`, `>` or bare ms). */
export function isStreamId(text: string): boolean {
  const m = ID_TEXT.exec(text);
  return m !== null && BigInt(m[1]!) <= MAX_ID_PART && BigInt(m[2]!) <= MAX_ID_PART;
}

/** `"1700000000000-3"` → `{ ms: 1700000000000n, seq: 3n }`; throws a RangeError on anything else. */
export function parseStreamId(text: string): StreamId {
  if (!isStreamId(text)) throw new RangeError(`not a stream entry id: ${JSON.stringify(text)} (expected <ms>-<seq>, each at most 2^64-1)`);
  const [ms, seq] = text.split('-') as [string, string];
  return { ms: BigInt(ms), seq: BigInt(seq) };
}

/** The canonical text Redis prints (no leading zeros). */
export function formatStreamId(id: StreamId): string {
  return `${id.ms}-${id.seq}`;
}

/** Negative, zero or positive as `a` sorts before, with or after `b` in a stream. */
export function compareStreamIds(a: string, b: string): -1 | 0 | 1 {
  const x = parseStreamId(a);
  const y = parseStreamId(b);
  if (x.ms !== y.ms) return x.ms < y.ms ? -1 : 1;
  if (x.seq !== y.seq) return x.seq < y.seq ? -1 : 1;
  return 0;
}

/**
 * The id right after `id`: no id lies between them, so `MINID next(x)` removes
 * exactly the entries up to and including `x`. Throws after the largest id
 * (Redis itself refuses to go past it).
 */
export function nextStreamId(id: string): string {
  const { ms, seq } = parseStreamId(id);
  if (seq < MAX_ID_PART) return formatStreamId({ ms, seq: seq + 1n });
  if (ms < MAX_ID_PART) return formatStreamId({ ms: ms + 1n, seq: 0n });
  throw new RangeError(`no stream id follows ${id}`);
}

/** `<ms>-0`, the smallest id stamped at `ms`; a negative time gives `0-0`. */
export function firstIdAtMs(ms: number | bigint): string {
  const whole = typeof ms === 'bigint' ? ms : BigInt(Math.ceil(ms));
  if (whole < 0n) return ZERO_STREAM_ID;
  if (whole > MAX_ID_PART) throw new RangeError(`${ms} is beyond the largest stream id time`);
  return `${whole}-0`;
}

/** The millisecond timestamp an id carries (an auto id is the server's clock at XADD). */
export function streamIdMs(id: string): number {
  return Number(parseStreamId(id).ms);
}

export function minStreamId(first: string, ...rest: string[]): string {
  return rest.reduce((a, b) => (compareStreamIds(b, a) < 0 ? b : a), first);
}

export function maxStreamId(first: string, ...rest: string[]): string {
  return rest.reduce((a, b) => (compareStreamIds(b, a) > 0 ? b : a), first);
}

/** `1700000000000` or `1700000000000-5` (leading zeros allowed) → the canonical full id; throws on anything else (`*`, `$`). */
export function normalizeStreamId(id: string): string {
  const full = /^\d+$/.test(id) ? `${id}-0` : id;
  const m = /^(\d+)-(\d+)$/.exec(full);
  if (!m) throw new RangeError(`not a stream entry id: ${JSON.stringify(id)} (expected <ms>-<seq>)`);
  return formatStreamId(parseStreamId(`${BigInt(m[1]!)}-${BigInt(m[2]!)}`));
}

/** How old the entry is at `nowMs`, by its id's timestamp; negative when the id is from the future. */
export function streamIdAgeMs(id: string, nowMs: number): number {
  return nowMs - streamIdMs(id);
}

/** The MINID that keeps entries at most `maxAgeMs` old at `nowMs`: `<nowMs - maxAgeMs>-0` (whole ms, rounded down). */
export function minIdForMaxAge(maxAgeMs: number, nowMs: number): string {
  return firstIdAtMs(Math.floor(nowMs - maxAgeMs));
}
