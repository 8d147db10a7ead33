/**
 * `query --merge-order COL[:desc],…`: the pure parts of merging per-shard
 * results that are each ordered into one ordered result. Values are the text
 * PostgreSQL sent; each column compares by its type, the way PostgreSQL
 * orders it:
 *
 * - int2, int4, int8, oid: exactly, as integers of any size (sign, length,
 *   digits; never through a double).
 * - numeric: exactly, as decimals of any size; NaN above every number, as
 *   PostgreSQL sorts it; ±Infinity at the ends.
 * - float4, float8: as doubles (what they are); NaN above Infinity.
 * - bool: false before true.
 * - date, timestamp, timestamptz: parsed from the ISO text (the session
 *   forces DateStyle ISO and TimeZone UTC), so years past 9999, BC dates,
 *   ±infinity and any UTC offset compare by the instant they denote.
 * - time: as text (fixed-width fields).
 * - text, varchar, char(n), name, "char", uuid: by Unicode code point, which
 *   is PostgreSQL's order under COLLATE "C" (byte order of UTF-8). A shard's
 *   ORDER BY under another collation (en_US: "a" < "B") is not that order,
 *   so a text key needs `ORDER BY col COLLATE "C"` on the shards.
 *
 * NULLs sort last ascending and first descending, PostgreSQL's default.
 * Other types (interval, arrays, enums, …) are refused with a hint to cast.
 */

export interface MergeKey {
  column: string;
  descending: boolean;
}

export interface MergeColumn {
  name: string;
  typeOid: number;
}

/** Compares two non-NULL values of one type, ascending. */
export type ValueCompare = (a: string, b: string) => number;

export interface ResolvedMergeKey {
  column: string;
  index: number;
  descending: boolean;
  compare: ValueCompare;
  /** A text-like key: the shards must order it with COLLATE "C". */
  text: boolean;
}

export type Row = ReadonlyArray<string | null>;

/** "created_at:desc,id" → keys. Throws an Error whose message names the problem. */
export function parseMergeOrder(spec: string): MergeKey[] {
  const parts = spec.split(',').map((p) => p.trim());
  if (!spec.trim() || parts.some((p) => !p)) throw new Error(`--merge-order takes COL[:asc|:desc],… (e.g. created_at:desc,id), got "${spec}"`);
  const keys = parts.map((part) => {
    const colon = part.lastIndexOf(':');
    const direction = colon >= 0 ? part.slice(colon + 1).trim().toLowerCase() : 'asc';
    const column = (colon >= 0 ? part.slice(0, colon) : part).trim();
    if (!column) throw new Error(`--merge-order: "${part}" names no column`);
    if (direction !== 'asc' && direction !== 'desc') throw new Error(`--merge-order: "${part}": the direction is asc or desc, got "${direction}"`);
    return { column, descending: direction === 'desc' };
  });
  const seen = new Set<string>();
  for (const k of keys) {
    if (seen.has(k.column)) throw new Error(`--merge-order names "${k.column}" twice`);
    seen.add(k.column);
  }
  return keys;
}

/** The merge keys against the result's columns; throws an Error naming an unknown, ambiguous or incomparable column. */
export function resolveMergeKeys(keys: readonly MergeKey[], columns: readonly MergeColumn[]): ResolvedMergeKey[] {
  return keys.map((key) => {
    const matches = columns.flatMap((c, i) => (c.name === key.column ? [i] : []));
    if (matches.length === 0) {
      throw new Error(`--merge-order: the result has no column "${key.column}" (columns: ${columns.map((c) => c.name).join(', ') || 'none'})`);
    }
    if (matches.length > 1) throw new Error(`--merge-order: the result has ${matches.length} columns named "${key.column}"; give them distinct names with AS`);
    const index = matches[0]!;
    const kind = KIND_BY_OID.get(columns[index]!.typeOid);
    if (!kind) {
      throw new Error(
        `--merge-order: column "${key.column}" has a type (oid ${columns[index]!.typeOid}) shardctl cannot compare; order by a cast of it (e.g. ${key.column}::text COLLATE "C" AS ${key.column}_key, or an epoch number)`,
      );
    }
    return { column: key.column, index, descending: key.descending, compare: COMPARE[kind], text: kind === 'text' };
  });
}

/** Two rows by the keys: negative when `a` comes first. NULLs last ascending, first descending. */
export function compareRows(a: Row, b: Row, keys: readonly ResolvedMergeKey[]): number {
  for (const key of keys) {
    const x = a[key.index] ?? null;
    const y = b[key.index] ?? null;
    let c: number;
    if (x === null || y === null) c = x === y ? 0 : x === null ? 1 : -1;
    else c = key.compare(x, y);
    if (c !== 0) return key.descending ? -c : c;
  }
  return 0;
}

/** `ORDER BY …` that makes a shard's rows come in this merge order, for the error that asks for it. */
export function orderByClause(keys: readonly ResolvedMergeKey[]): string {
  return 'ORDER BY ' + keys.map((k) => `${quoteName(k.column)}${k.text ? ' COLLATE "C"' : ''}${k.descending ? ' DESC' : ''}`).join(', ');
}

function quoteName(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

/**
 * A binary min-heap. The merge keeps one entry per shard in it (its next
 * row), so a step costs O(log shards).
 */
export class MinHeap<T> {
  readonly #items: T[] = [];
  readonly #less: (a: T, b: T) => boolean;

  constructor(compare: (a: T, b: T) => number) {
    this.#less = (a, b) => compare(a, b) < 0;
  }

  get size(): number {
    return this.#items.length;
  }

  push(item: T): void {
    const items = this.#items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#less(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }

  pop(): T | undefined {
    const items = this.#items;
    if (items.length === 0) return undefined;
    const top = items[0]!;
    const last = items.pop()!;
    if (items.length > 0) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let smallest = i;
        if (l < items.length && this.#less(items[l]!, items[smallest]!)) smallest = l;
        if (r < items.length && this.#less(items[r]!, items[smallest]!)) smallest = r;
        if (smallest === i) break;
        [items[i], items[smallest]] = [items[smallest]!, items[i]!];
        i = smallest;
      }
    }
    return top;
  }
}

/**
 * The merge step on plain data: runs each ordered by `compare` → one ordered
 * sequence. Ties go to the earlier run, and within a run keep their order,
 * so the result is a stable sort of the runs concatenated. The engine does
 * the same over cursors, one batch at a time.
 */
export function mergeSortedRuns<T>(runs: readonly (readonly T[])[], compare: (a: T, b: T) => number): T[] {
  const heap = new MinHeap<{ run: number; at: number }>((a, b) => compare(runs[a.run]![a.at]!, runs[b.run]![b.at]!) || a.run - b.run);
  runs.forEach((run, i) => run.length && heap.push({ run: i, at: 0 }));
  const out: T[] = [];
  for (let head = heap.pop(); head; head = heap.pop()) {
    out.push(runs[head.run]![head.at]!);
    if (head.at + 1 < runs[head.run]!.length) heap.push({ run: head.run, at: head.at + 1 });
  }
  return out;
}

// ---- comparison by type ----

type Kind = 'integer' | 'numeric' | 'float' | 'bool' | 'datetime' | 'time' | 'text';

/** pg_type oids (pg_type.dat) of the types a merge key may have. */
const KIND_BY_OID = new Map<number, Kind>([
  [20, 'integer'], // int8
  [21, 'integer'], // int2
  [23, 'integer'], // int4
  [26, 'integer'], // oid
  [1700, 'numeric'],
  [700, 'float'], // float4
  [701, 'float'], // float8
  [16, 'bool'],
  [1082, 'datetime'], // date
  [1114, 'datetime'], // timestamp
  [1184, 'datetime'], // timestamptz
  [1083, 'time'],
  [25, 'text'],
  [1043, 'text'], // varchar
  [1042, 'text'], // bpchar
  [19, 'text'], // name
  [18, 'text'], // "char"
  [2950, 'text'], // uuid: lower-case hex of fixed width, so code-point order is its byte order
]);

const COMPARE: Record<Kind, ValueCompare> = {
  integer: compareIntegerText,
  numeric: compareNumericText,
  float: compareFloatText,
  bool: (a, b) => (a === b ? 0 : a === 'f' ? -1 : 1),
  datetime: compareDateTimeText,
  time: compareCodePoints,
  text: compareCodePoints,
};

const sign = (n: number): number => (n < 0 ? -1 : n > 0 ? 1 : 0);

/** Integers as PostgreSQL prints them ("-42", no leading zeros), exactly. */
export function compareIntegerText(a: string, b: string): number {
  if (a === b) return 0;
  const na = a.startsWith('-');
  const nb = b.startsWith('-');
  if (na !== nb) return na ? -1 : 1;
  const c = compareMagnitude(na ? a.slice(1) : a, nb ? b.slice(1) : b);
  return na ? -c : c;
}

/** Digit strings without leading zeros: longer is larger, else by digits. */
function compareMagnitude(a: string, b: string): number {
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** numeric as PostgreSQL prints it ("-123.4500", "NaN", "Infinity", "-Infinity"), exactly. */
export function compareNumericText(a: string, b: string): number {
  if (a === b) return 0;
  const ra = numericRank(a);
  const rb = numericRank(b);
  if (ra !== rb) return ra < rb ? -1 : 1;
  if (ra !== 0) return 0;
  const na = a.startsWith('-');
  const nb = b.startsWith('-');
  if (na !== nb) return na ? -1 : 1;
  const [ia = '', fa = ''] = (na ? a.slice(1) : a).split('.');
  const [ib = '', fb = ''] = (nb ? b.slice(1) : b).split('.');
  let c = compareMagnitude(stripLeadingZeros(ia), stripLeadingZeros(ib));
  if (c === 0) {
    const fx = fa.replace(/0+$/, '');
    const fy = fb.replace(/0+$/, '');
    c = fx < fy ? -1 : fx > fy ? 1 : 0;
  }
  return na ? -c : c;
}

function stripLeadingZeros(digits: string): string {
  let i = 0;
  while (i < digits.length - 1 && digits.charCodeAt(i) === 48) i++;
  return digits.slice(i);
}

/** -Infinity < numbers < Infinity < NaN. */
function numericRank(text: string): number {
  if (text === 'NaN') return 2;
  if (text === 'Infinity') return 1;
  if (text === '-Infinity') return -1;
  return 0;
}

/** float4/float8: doubles, NaN above everything (PostgreSQL's order). */
export function compareFloatText(a: string, b: string): number {
  if (a === b) return 0;
  const x = Number(a);
  const y = Number(b);
  const xn = Number.isNaN(x);
  const yn = Number.isNaN(y);
  if (xn || yn) return xn && yn ? 0 : xn ? 1 : -1;
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * UTF-16 strings in code-point order (JavaScript's < compares code units,
 * which puts U+E000…U+FFFF after the surrogate pairs of U+10000…). At the
 * first difference, when both units are at or above U+D800, surrogates move
 * up past U+FFFF and U+E000…U+FFFF move down: ICU's code-point-order fix-up.
 */
export function compareCodePoints(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x += x >= 0xe000 ? -0x800 : 0x2000;
      y += y >= 0xe000 ? -0x800 : 0x2000;
    }
    return x < y ? -1 : 1;
  }
  return sign(a.length - b.length);
}

const DATETIME = /^(\d{4,})-(\d\d)-(\d\d)(?: (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?)?(?:([+-])(\d\d)(?::(\d\d)(?::(\d\d))?)?)?( BC)?$/;
const DAY_MICROS = 86_400_000_000;

/** date, timestamp, timestamptz in ISO DateStyle: by the instant (UTC offsets applied), ±infinity at the ends. */
export function compareDateTimeText(a: string, b: string): number {
  if (a === b) return 0;
  const x = dateTimeKey(a);
  const y = dateTimeKey(b);
  return x[0] !== y[0] ? sign(x[0] - y[0]) : sign(x[1] - y[1]);
}

/** [day number, microseconds into the day (UTC)]; infinity as ±Infinity days. */
export function dateTimeKey(text: string): [number, number] {
  if (text === 'infinity') return [Infinity, 0];
  if (text === '-infinity') return [-Infinity, 0];
  const m = DATETIME.exec(text);
  if (!m) throw new Error(`cannot compare "${text}" as a date or timestamp: expected PostgreSQL's ISO format (DateStyle ISO)`);
  const [, y, mo, d, hh = '0', mi = '0', ss = '0', frac = '', tzSign, tzh = '0', tzm = '0', tzs = '0', bc] = m;
  const year = bc ? 1 - Number(y) : Number(y);
  let days = daysFromCivil(year, Number(mo), Number(d));
  let micros = ((Number(hh) * 60 + Number(mi)) * 60 + Number(ss)) * 1_000_000 + Number(frac.padEnd(6, '0'));
  if (tzSign) {
    const offset = ((Number(tzh) * 60 + Number(tzm)) * 60 + Number(tzs)) * 1_000_000;
    micros -= tzSign === '+' ? offset : -offset;
    while (micros < 0) (micros += DAY_MICROS), days--;
    while (micros >= DAY_MICROS) (micros -= DAY_MICROS), days++;
  }
  return [days, micros];
}

/** Days since 1970-01-01 of a proleptic Gregorian date (astronomical year numbering); H. Hinnant's algorithm. */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}
