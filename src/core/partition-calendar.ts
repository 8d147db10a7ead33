import { isTimeZoneName } from './time-zone.js';
import { Temporal } from 'temporal-polyfill';

/**
 * The calendar of time-partition maintenance: which partitions a table should
 * have at a given instant, what they are called, what their bounds are as
 * PostgreSQL text, and what `partition rotate` creates, adopts, leaves alone
 * and retires. Pure: the current time is always an argument.
 *
 * Bounds fall on local boundaries of `timezone` (an IANA zone): hour starts,
 * midnights, Mondays, firsts of the month, January 1sts. Slots are computed on
 * the local wall clock (Temporal's PlainDateTime) and then placed in time with
 * Temporal's `compatible` rule, so a daily partition across a DST change spans
 * 23 or 25 hours, and a wall time that does not exist (the hour skipped in
 * spring) begins at the transition. Temporal (through temporal-polyfill) is
 * the one place with time zone rules; this file is the only one importing it.
 *
 * Naming: `<table>_p<stamp>`, the stamp being the local wall time of the lower
 * bound: hourly `p2026120113`, daily `p20261201`, weekly `p2026w49` (ISO
 * week-year and week), monthly `p202612`, yearly `p2026`.
 */

export type PartitionInterval = 'hourly' | 'daily' | 'weekly' | 'monthly' | 'yearly';
/** The partition column's type: bounds are written, and read back, in its form. */
export type BoundType = 'timestamptz' | 'timestamp' | 'date';

export const PARTITION_INTERVALS: readonly PartitionInterval[] = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'];

export interface CalendarSpec {
  interval: PartitionInterval;
  /** IANA zone whose local boundaries the bounds fall on ('UTC', 'Europe/Berlin'). */
  timezone: string;
  /** Slots kept ready beyond the one holding now. */
  premake: number;
  /** Age after which a partition whose upper bound is older is retired; null keeps everything. */
  retentionMs: number | null;
  boundType: BoundType;
}

export interface PartitionSlot {
  /** `p<stamp>`, appended to the table name with `_`. */
  suffix: string;
  /** The literal texts of `FOR VALUES FROM ('from') TO ('to')`. */
  from: string;
  to: string;
  /** The bounds in UTC epoch ms (a timestamp or date bound read as wall time in the spec's zone). */
  fromMs: number;
  toMs: number;
}

export interface ExistingPartition {
  /** The partition's relation name (a schema prefix is ignored when matching the pattern). */
  name: string;
  isDefault: boolean;
  /** Bounds in epoch ms (±Infinity for MINVALUE/MAXVALUE); ignored for the default partition. */
  fromMs: number;
  toMs: number;
}

export interface Runway {
  /** Until when partitions exist without a gap from now on; null when nothing holds now. Infinity for MAXVALUE. */
  untilMs: number | null;
  /** Whole intervals covered after the one holding now, counted up to MAX_RUNWAY_INTERVALS (Infinity for MAXVALUE). */
  intervals: number;
}

/**
 * Runway intervals are counted one slot at a time (DST makes them uneven), so
 * the count stops here: 10,000 is over a year of hourly partitions and 27
 * years of daily ones, far past any premake; untilMs still gives the real end.
 */
export const MAX_RUNWAY_INTERVALS = 10_000;

export interface RotationPlan {
  /** Wanted slots that no partition covers, in time order: none overlaps an existing partition, none is already past the cut-off. */
  create: PartitionSlot[];
  /** Existing partitions that follow the pattern (name and bounds) and hold a wanted slot. */
  adopt: string[];
  /** Existing non-default partitions that do not follow the pattern: left alone (never retired) and reported. */
  unmanaged: string[];
  /**
   * Pattern partitions whose upper bound is at or before the cut-off, oldest
   * first; never the default, never the last one (after the plan's creations,
   * which come first: an executor that fails to create should not retire).
   */
  retire: Array<{ name: string; toMs: number }>;
  /** Of the partitions as they exist before the plan is applied. */
  runway: Runway;
}

/** PostgreSQL's identifier limit (NAMEDATALEN - 1), in bytes: a longer name would be truncated in silence. */
export const MAX_IDENTIFIER_BYTES = 63;

export { isTimeZoneName };

function checkSpec(spec: CalendarSpec): void {
  if (!PARTITION_INTERVALS.includes(spec.interval)) throw new Error(`unknown partition interval "${String(spec.interval)}"`);
  if (spec.boundType === 'date' && spec.interval === 'hourly') {
    throw new Error('an hourly interval needs a timestamp or timestamptz column: a date column has no hours');
  }
  if (!isTimeZoneName(spec.timezone)) throw new Error(`unknown time zone "${spec.timezone}" (expected an IANA name such as UTC or Europe/Berlin)`);
  if (!Number.isInteger(spec.premake) || spec.premake < 0) throw new Error(`premake must be a whole number >= 0, not ${spec.premake}`);
}

/** The start of the local period holding wall time `t`. */
function floorWall(t: Temporal.PlainDateTime, interval: PartitionInterval): Temporal.PlainDateTime {
  const midnight = t.with({ hour: 0, minute: 0, second: 0, millisecond: 0, microsecond: 0, nanosecond: 0 });
  switch (interval) {
    case 'hourly':
      return t.with({ minute: 0, second: 0, millisecond: 0, microsecond: 0, nanosecond: 0 });
    case 'daily':
      return midnight;
    case 'weekly':
      return midnight.subtract({ days: midnight.dayOfWeek - 1 });
    case 'monthly':
      return midnight.with({ day: 1 });
    case 'yearly':
      return midnight.with({ month: 1, day: 1 });
  }
}

const STEP: Record<PartitionInterval, Temporal.DurationLike> = {
  hourly: { hours: 1 },
  daily: { days: 1 },
  weekly: { weeks: 1 },
  monthly: { months: 1 },
  yearly: { years: 1 },
};

const pad = (n: number, width = 2) => String(n).padStart(width, '0');
const year = (y: number) => (y < 0 ? `-${pad(-y, 4)}` : pad(y, 4));

function stampOf(start: Temporal.PlainDateTime, interval: PartitionInterval): string {
  const ymd = `${year(start.year)}${pad(start.month)}${pad(start.day)}`;
  switch (interval) {
    case 'hourly':
      return `p${ymd}${pad(start.hour)}`;
    case 'daily':
      return `p${ymd}`;
    case 'weekly':
      return `p${year(start.toPlainDate().yearOfWeek!)}w${pad(start.toPlainDate().weekOfYear!)}`;
    case 'monthly':
      return `p${year(start.year)}${pad(start.month)}`;
    case 'yearly':
      return `p${year(start.year)}`;
  }
}

/** Wall time in `timezone` → epoch ms; a skipped wall time maps to the transition, a repeated one to its first occurrence. */
function wallToMs(t: Temporal.PlainDateTime, timezone: string): number {
  return t.toZonedDateTime(timezone, { disambiguation: 'compatible' }).epochMilliseconds;
}

function msToWall(ms: number, timezone: string): Temporal.PlainDateTime {
  return Temporal.Instant.fromEpochMilliseconds(ms).toZonedDateTimeISO(timezone).toPlainDateTime();
}

const datePart = (t: Temporal.PlainDateTime) => `${year(t.year)}-${pad(t.month)}-${pad(t.day)}`;
const timePart = (t: Temporal.PlainDateTime) => `${pad(t.hour)}:${pad(t.minute)}:${pad(t.second)}`;

function boundText(wall: Temporal.PlainDateTime, ms: number, boundType: BoundType): string {
  if (boundType === 'date') return datePart(wall);
  if (boundType === 'timestamp') return `${datePart(wall)} ${timePart(wall)}`;
  // As PostgreSQL prints a timestamptz with TimeZone = 'UTC', so that a bound read back compares equal as text too.
  const utc = msToWall(ms, 'UTC');
  return `${datePart(utc)} ${timePart(utc)}+00`;
}

function slotFromStart(spec: CalendarSpec, start: Temporal.PlainDateTime): PartitionSlot {
  const end = start.add(STEP[spec.interval]);
  const fromMs = wallToMs(start, spec.timezone);
  const toMs = wallToMs(end, spec.timezone);
  return {
    suffix: stampOf(start, spec.interval),
    from: boundText(start, fromMs, spec.boundType),
    to: boundText(end, toMs, spec.boundType),
    fromMs,
    toMs,
  };
}

function wallStartOf(spec: CalendarSpec, slot: PartitionSlot): Temporal.PlainDateTime {
  // from is always the wall text for timestamp/date; for timestamptz it is UTC, so go through the instant.
  if (spec.boundType === 'timestamptz') return floorWall(msToWall(slot.fromMs, spec.timezone), spec.interval);
  return Temporal.PlainDateTime.from(slot.from.replace(' ', 'T'));
}

/**
 * Whether a slot is a real range of the column's values. A timestamp column
 * holds wall times, so the wall hour skipped in spring is a range of values
 * (fromMs === toMs there); for timestamptz that hour is empty and has no slot.
 */
function isEmptySlot(spec: CalendarSpec, slot: PartitionSlot): boolean {
  return spec.boundType === 'timestamptz' && slot.toMs <= slot.fromMs;
}

/**
 * The slot holding `instantMs`. For a timestamp or date column that is the
 * slot holding the instant's local wall time (the value a row written then
 * carries); for timestamptz the slot whose [fromMs, toMs) holds the instant.
 */
export function slotAt(spec: CalendarSpec, instantMs: number): PartitionSlot {
  checkSpec(spec);
  if (!Number.isFinite(instantMs)) throw new Error(`not an instant: ${instantMs}`);
  let slot = slotFromStart(spec, floorWall(msToWall(instantMs, spec.timezone), spec.interval));
  if (spec.boundType !== 'timestamptz') return slot;
  // A repeated midnight (a fall-back at 24:00) puts the second 23:xx in the next day's range.
  while (instantMs >= slot.toMs) slot = nextSlot(spec, slot);
  while (instantMs < slot.fromMs) slot = previousSlot(spec, slot);
  return slot;
}

/** The slot right after `slot`: its from is `slot`'s to. */
export function nextSlot(spec: CalendarSpec, slot: PartitionSlot): PartitionSlot {
  checkSpec(spec);
  return stepSlot(spec, slot, 1);
}

function previousSlot(spec: CalendarSpec, slot: PartitionSlot): PartitionSlot {
  return stepSlot(spec, slot, -1);
}

function stepSlot(spec: CalendarSpec, slot: PartitionSlot, direction: 1 | -1): PartitionSlot {
  let wall = wallStartOf(spec, slot);
  let slotThere: PartitionSlot;
  do {
    wall = direction === 1 ? wall.add(STEP[spec.interval]) : wall.subtract(STEP[spec.interval]);
    slotThere = slotFromStart(spec, wall);
  } while (isEmptySlot(spec, slotThere));
  return slotThere;
}

/** The slot holding now and the `premake` slots after it, in time order. */
export function wantedSlots(spec: CalendarSpec, nowMs: number): PartitionSlot[] {
  const slots = [slotAt(spec, nowMs)];
  for (let i = 0; i < spec.premake; i++) slots.push(nextSlot(spec, slots[slots.length - 1]!));
  return slots;
}

/** now − retention, or null without retention: a partition whose toMs is at or before it is retirable. */
export function retentionCutoffMs(spec: CalendarSpec, nowMs: number): number | null {
  return spec.retentionMs === null ? null : nowMs - spec.retentionMs;
}

/**
 * `<table>_p<stamp>`, the table's schema left out (a partition is created in
 * its parent's schema). Throws when longer than PostgreSQL's 63 bytes, which
 * it would truncate in silence, making two partitions' names collide.
 */
export function partitionName(baseTable: string, slot: Pick<PartitionSlot, 'suffix'>): string {
  const table = baseTable.slice(baseTable.lastIndexOf('.') + 1);
  const name = `${table}_${slot.suffix}`;
  const bytes = new TextEncoder().encode(name).length;
  if (bytes > MAX_IDENTIFIER_BYTES) {
    throw new Error(`partition name ${name} is ${bytes} bytes, more than PostgreSQL's ${MAX_IDENTIFIER_BYTES}: use a shorter table name`);
  }
  return name;
}

const BOUND_PATTERN =
  /^(\d{4,})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?(?:\s*(Z|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?))?( BC)?$/;

/**
 * The epoch ms of one bound as `pg_get_expr(relpartbound, oid)` prints it
 * under `SET TimeZone = 'UTC'`: '2026-12-01 00:00:00+00' (timestamptz: the
 * offset is honoured; none means the session's UTC), '2026-12-01 00:00:00'
 * (timestamp) and '2026-12-01' (date), both read as wall time in `timezone`.
 * MINVALUE/MAXVALUE (and 'infinity') give ±Infinity. The quotes are optional.
 */
export function parseBound(text: string, boundType: BoundType, timezone: string): number {
  const bare = text.trim().replace(/^'(.*)'$/s, '$1').trim();
  const word = bare.toLowerCase();
  if (word === 'minvalue' || word === '-infinity') return -Infinity;
  if (word === 'maxvalue' || word === 'infinity') return Infinity;
  const m = BOUND_PATTERN.exec(bare);
  if (!m) throw new Error(`cannot read partition bound ${JSON.stringify(text)} as a ${boundType}`);
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', offset, bc] = m;
  if (boundType !== 'timestamptz' && offset) throw new Error(`a ${boundType} bound has no time zone offset: ${JSON.stringify(text)}`);
  if (boundType === 'date' && m[4] !== undefined) throw new Error(`a date bound has no time of day: ${JSON.stringify(text)}`);
  // PostgreSQL writes 1 BC as year 0001 BC; ISO year 0 is 1 BC.
  const isoYear = bc ? 1 - Number(y) : Number(y);
  const wall = Temporal.PlainDateTime.from({
    year: isoYear,
    month: Number(mo),
    day: Number(d),
    hour: Number(h),
    minute: Number(mi),
    second: Number(s),
    millisecond: Number(frac.padEnd(3, '0').slice(0, 3)),
  });
  if (boundType !== 'timestamptz') return wallToMs(wall, timezone);
  return wallToMs(wall, offset === undefined || offset === 'Z' ? 'UTC' : normaliseOffset(offset));
}

function normaliseOffset(offset: string): string {
  const digits = offset.slice(1).replace(/:/g, '');
  const [hh, mm = '00', ss] = [digits.slice(0, 2), digits.slice(2, 4) || '00', digits.slice(4, 6)];
  if (ss && ss !== '00') throw new Error(`a bound with a seconds offset (${offset}) is not supported: read bounds with TimeZone = 'UTC'`);
  return `${offset[0]}${hh}:${mm}`;
}

/**
 * A whole `pg_get_expr(relpartbound, oid)`: 'DEFAULT', or a one-column range
 * `FOR VALUES FROM ('…') TO ('…')` (MINVALUE/MAXVALUE unquoted). Throws on a
 * list or hash bound, or a range over more than one column.
 */
export function parsePartitionBound(expr: string, boundType: BoundType, timezone: string): { default: true } | { fromMs: number; toMs: number } {
  const text = expr.trim();
  if (/^default$/i.test(text)) return { default: true };
  const value = String.raw`('(?:[^']|'')*'|MINVALUE|MAXVALUE)`;
  const m = new RegExp(String.raw`^FOR VALUES FROM \(${value}\) TO \(${value}\)$`, 'i').exec(text);
  if (!m) throw new Error(`not a one-column range partition bound: ${text}`);
  return { fromMs: parseBound(m[1]!, boundType, timezone), toMs: parseBound(m[2]!, boundType, timezone) };
}

/** The pattern slot an existing partition is, or undefined when its name or bounds differ from the pattern's. */
function patternSlotOf(spec: CalendarSpec, baseTable: string, p: ExistingPartition): PartitionSlot | undefined {
  if (p.isDefault || !Number.isFinite(p.fromMs) || !Number.isFinite(p.toMs)) return undefined;
  const slot = slotAt(spec, p.fromMs);
  // The wall hour a timestamp column keeps through a spring gap starts where the next hour does: it is the one before.
  const candidates = p.fromMs === p.toMs ? [previousSlot(spec, slot)] : [slot];
  const relname = p.name.slice(p.name.lastIndexOf('.') + 1);
  return candidates.find((c) => c.fromMs === p.fromMs && c.toMs === p.toMs && relname === partitionName(baseTable, c));
}

/**
 * Until when partitions exist without a gap from now, and how many whole
 * intervals after the one holding now that is. Default partitions do not count.
 */
export function runwayOf(spec: CalendarSpec, partitions: readonly ExistingPartition[], nowMs: number): Runway {
  const ranges = partitions.filter((p) => !p.isDefault).sort((a, b) => a.fromMs - b.fromMs);
  let until: number | null = null;
  for (const p of ranges) {
    if (until === null) {
      if (p.fromMs <= nowMs && nowMs < p.toMs) until = p.toMs;
    } else if (p.fromMs <= until && p.toMs > until) {
      until = p.toMs;
    }
  }
  if (until === null) return { untilMs: null, intervals: 0 };
  if (until === Infinity) return { untilMs: Infinity, intervals: Infinity };
  // Walks wall-clock ends only (the texts are not needed): a wall step whose end maps to the same instant is an empty timestamptz slot.
  const current = slotAt(spec, nowMs);
  let end = wallStartOf(spec, current).add(STEP[spec.interval]);
  let previousMs = current.toMs;
  let intervals = 0;
  while (intervals < MAX_RUNWAY_INTERVALS) {
    end = end.add(STEP[spec.interval]);
    const toMs = wallToMs(end, spec.timezone);
    if (toMs > until) break;
    if (toMs > previousMs || spec.boundType !== 'timestamptz') intervals++;
    previousMs = toMs;
  }
  return { untilMs: until, intervals };
}

/**
 * What `partition rotate` does to one table, as of `nowMs`: create the wanted
 * slots nothing covers, adopt pattern partitions already there, report the
 * others, retire pattern partitions past retention.
 *
 * Catch-up rule (pg_partman#649): after an outage only the slot holding now
 * and those ahead are wanted, never the missed ones, and no slot whose upper
 * bound is at or before the retention cut-off is ever created; retention
 * would drop it at once. Rows of a missed period stay where they are (the
 * default partition, if any).
 *
 * Only pattern partitions are retired: a partition someone made by hand has
 * bounds and a lifetime of its own (reported as unmanaged). When the plan
 * creates nothing, the newest non-default partition is never retired, so a
 * table is never left with only its default partition, or none.
 */
export function planRotation(spec: CalendarSpec, baseTable: string, existing: readonly ExistingPartition[], nowMs: number): RotationPlan {
  checkSpec(spec);
  const cutoff = retentionCutoffMs(spec, nowMs);
  const ranges = existing.filter((p) => !p.isDefault);
  const pattern = new Map<string, PartitionSlot>();
  const unmanaged: string[] = [];
  for (const p of ranges) {
    const slot = patternSlotOf(spec, baseTable, p);
    if (slot) pattern.set(p.name, slot);
    else unmanaged.push(p.name);
  }

  const wanted = wantedSlots(spec, nowMs).filter((s) => cutoff === null || s.toMs > cutoff);
  const adopt: string[] = [];
  const create: PartitionSlot[] = [];
  for (const slot of wanted) {
    const holder = ranges.find((p) => pattern.get(p.name)?.suffix === slot.suffix);
    if (holder) adopt.push(holder.name);
    else if (!ranges.some((p) => p.fromMs < slot.toMs && slot.fromMs < p.toMs)) create.push(slot);
  }

  let retire: Array<{ name: string; toMs: number }> = [];
  if (cutoff !== null) {
    retire = ranges
      .filter((p) => pattern.has(p.name) && p.toMs <= cutoff)
      .sort((a, b) => a.toMs - b.toMs)
      .map((p) => ({ name: p.name, toMs: p.toMs }));
    // Never the last remaining partition: counting those the plan creates (before it retires), so a second run agrees.
    if (retire.length === ranges.length && create.length === 0) retire.pop();
  }

  return { create, adopt, unmanaged, retire, runway: runwayOf(spec, existing, nowMs) };
}
