import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type BoundType,
  type CalendarSpec,
  type ExistingPartition,
  type PartitionInterval,
  type PartitionSlot,
  isTimeZoneName,
  MAX_RUNWAY_INTERVALS,
  nextSlot,
  parseBound,
  parsePartitionBound,
  partitionName,
  planRotation,
  retentionCutoffMs,
  runwayOf,
  slotAt,
  wantedSlots,
} from '../../src/core/partition-calendar.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const at = (iso: string) => Date.parse(iso);
const spec = (over: Partial<CalendarSpec> = {}): CalendarSpec => ({
  interval: 'daily',
  timezone: 'UTC',
  premake: 7,
  retentionMs: null,
  boundType: 'timestamptz',
  ...over,
});
const partitionOf = (table: string, slot: PartitionSlot): ExistingPartition => ({
  name: partitionName(table, slot),
  isDefault: false,
  fromMs: slot.fromMs,
  toMs: slot.toMs,
});
const DEFAULT: ExistingPartition = { name: 'messages_default', isDefault: true, fromMs: NaN, toMs: NaN };

describe('partition slots', () => {
  it('daily in UTC: bounds at midnight, written as PostgreSQL prints a timestamptz under TimeZone UTC', () => {
    expect(slotAt(spec(), at('2026-12-01T13:45:00Z'))).toEqual({
      suffix: 'p20261201',
      from: '2026-12-01 00:00:00+00',
      to: '2026-12-02 00:00:00+00',
      fromMs: at('2026-12-01T00:00:00Z'),
      toMs: at('2026-12-02T00:00:00Z'),
    });
  });

  it('names each interval by the local wall time of its lower bound', () => {
    const now = at('2026-12-01T13:45:00Z');
    const suffix = (interval: PartitionInterval) => slotAt(spec({ interval }), now).suffix;
    expect(suffix('hourly')).toBe('p2026120113');
    expect(suffix('daily')).toBe('p20261201');
    expect(suffix('weekly')).toBe('p2026w49');
    expect(suffix('monthly')).toBe('p202612');
    expect(suffix('yearly')).toBe('p2026');
    expect(partitionName('public.messages', slotAt(spec({ interval: 'monthly' }), now))).toBe('messages_p202612');
  });

  it('weekly slots start on Monday at local midnight and carry the ISO week-year', () => {
    // 2027-01-01 is a Friday in ISO week 2026-W53.
    const week = slotAt(spec({ interval: 'weekly' }), at('2027-01-01T12:00:00Z'));
    expect(week).toMatchObject({ suffix: 'p2026w53', from: '2026-12-28 00:00:00+00', to: '2027-01-04 00:00:00+00' });
    expect(nextSlot(spec({ interval: 'weekly' }), week).suffix).toBe('p2027w01');
  });

  it('month and year boundaries: December rolls into January of the next year', () => {
    const dec = slotAt(spec({ interval: 'monthly' }), at('2026-12-31T23:59:59Z'));
    expect(dec).toMatchObject({ from: '2026-12-01 00:00:00+00', to: '2027-01-01 00:00:00+00' });
    expect(nextSlot(spec({ interval: 'monthly' }), dec)).toMatchObject({ suffix: 'p202701', to: '2027-02-01 00:00:00+00' });
    expect(slotAt(spec({ interval: 'yearly' }), at('2027-01-01T00:00:00Z'))).toMatchObject({ suffix: 'p2027', from: '2027-01-01 00:00:00+00' });
    const feb = slotAt(spec({ interval: 'daily' }), at('2028-02-28T10:00:00Z'));
    expect(nextSlot(spec(), feb).suffix).toBe('p20280229');
  });

  it('in a zone, bounds fall on local midnights, written in UTC for timestamptz', () => {
    const berlin = spec({ timezone: 'Europe/Berlin' });
    // 23:30 UTC on Nov 30 is already Dec 1 in Berlin.
    expect(slotAt(berlin, at('2026-11-30T23:30:00Z'))).toMatchObject({
      suffix: 'p20261201',
      from: '2026-11-30 23:00:00+00',
      to: '2026-12-01 23:00:00+00',
    });
  });

  it('a daily partition across a DST change spans 23 hours in spring and 25 in autumn', () => {
    const berlin = spec({ timezone: 'Europe/Berlin' });
    const spring = slotAt(berlin, at('2026-03-29T12:00:00Z'));
    expect(spring).toMatchObject({ suffix: 'p20260329', from: '2026-03-28 23:00:00+00', to: '2026-03-29 22:00:00+00' });
    expect(spring.toMs - spring.fromMs).toBe(23 * HOUR);
    const autumn = slotAt(berlin, at('2026-10-25T12:00:00Z'));
    expect(autumn).toMatchObject({ from: '2026-10-24 22:00:00+00', to: '2026-10-25 23:00:00+00' });
    expect(autumn.toMs - autumn.fromMs).toBe(25 * HOUR);
  });

  it('hourly timestamptz across DST: the skipped hour has no partition, the repeated hour is one partition of two hours', () => {
    const berlin = spec({ timezone: 'Europe/Berlin', interval: 'hourly' });
    const one = slotAt(berlin, at('2026-03-29T00:30:00Z')); // 01:30 CET
    expect(one.suffix).toBe('p2026032901');
    const three = nextSlot(berlin, one);
    expect(three).toMatchObject({ suffix: 'p2026032903', from: '2026-03-29 01:00:00+00', to: '2026-03-29 02:00:00+00' });
    const repeated = slotAt(berlin, at('2026-10-25T01:30:00Z')); // 02:30 CET, the second 02:xx
    expect(repeated).toMatchObject({ suffix: 'p2026102502', from: '2026-10-25 00:00:00+00', to: '2026-10-25 02:00:00+00' });
  });

  it('timestamp columns get local wall-time bounds, read in the zone for their instants', () => {
    const slot = slotAt(spec({ timezone: 'Europe/Berlin', boundType: 'timestamp' }), at('2026-11-30T23:30:00Z'));
    expect(slot).toEqual({
      suffix: 'p20261201',
      from: '2026-12-01 00:00:00',
      to: '2026-12-02 00:00:00',
      fromMs: at('2026-11-30T23:00:00Z'),
      toMs: at('2026-12-01T23:00:00Z'),
    });
  });

  it('hourly timestamp keeps the wall hour skipped in spring: the column can hold such values', () => {
    const berlin = spec({ timezone: 'Europe/Berlin', interval: 'hourly', boundType: 'timestamp' });
    const two = nextSlot(berlin, slotAt(berlin, at('2026-03-29T00:30:00Z')));
    expect(two).toMatchObject({ suffix: 'p2026032902', from: '2026-03-29 02:00:00', to: '2026-03-29 03:00:00' });
    expect(two.toMs).toBe(two.fromMs);
  });

  it('date columns get date bounds; an hourly interval on one is an error', () => {
    expect(slotAt(spec({ boundType: 'date', interval: 'monthly', timezone: 'Europe/Berlin' }), at('2026-12-15T00:00:00Z'))).toEqual({
      suffix: 'p202612',
      from: '2026-12-01',
      to: '2027-01-01',
      fromMs: at('2026-11-30T23:00:00Z'),
      toMs: at('2026-12-31T23:00:00Z'),
    });
    expect(() => slotAt(spec({ boundType: 'date', interval: 'hourly' }), 0)).toThrow(/hourly interval needs a timestamp/);
  });

  it('a zone whose midnight is skipped starts that day at the transition (America/Santiago, 2026-09-06)', () => {
    const day = slotAt(spec({ timezone: 'America/Santiago' }), at('2026-09-06T12:00:00Z'));
    expect(day.suffix).toBe('p20260906');
    expect(day.toMs - day.fromMs).toBe(23 * HOUR);
    expect(day.from).toBe('2026-09-06 04:00:00+00'); // 01:00 -03, the first instant of that day
  });

  it('an unknown zone is an error naming it', () => {
    expect(isTimeZoneName('Europe/Berlin')).toBe(true);
    expect(isTimeZoneName('Mars/Olympus')).toBe(false);
    expect(isTimeZoneName('+01:00')).toBe(false);
    expect(() => slotAt(spec({ timezone: 'Mars/Olympus' }), 0)).toThrow(/unknown time zone "Mars\/Olympus"/);
  });

  it('wanted slots: the one holding now plus premake ahead', () => {
    const slots = wantedSlots(spec({ premake: 3 }), at('2026-12-01T10:00:00Z'));
    expect(slots.map((s) => s.suffix)).toEqual(['p20261201', 'p20261202', 'p20261203', 'p20261204']);
    expect(wantedSlots(spec({ premake: 0 }), at('2026-12-01T10:00:00Z'))).toHaveLength(1);
  });

  it('names longer than 63 bytes are refused, not truncated', () => {
    const slot = slotAt(spec(), 0);
    expect(partitionName('t'.repeat(53), slot)).toHaveLength(63);
    expect(() => partitionName('t'.repeat(54), slot)).toThrow(/64 bytes, more than PostgreSQL's 63/);
    expect(() => partitionName('é'.repeat(27), slot)).toThrow(/bytes/); // 54 bytes of UTF-8
  });
});

describe('retention cut-off', () => {
  it('is now minus retention, or null without retention', () => {
    expect(retentionCutoffMs(spec({ retentionMs: 90 * DAY }), at('2026-12-01T00:00:00Z'))).toBe(at('2026-09-02T00:00:00Z'));
    expect(retentionCutoffMs(spec(), 123)).toBeNull();
  });
});

describe('reading bounds back from pg_get_expr', () => {
  it('reads timestamptz with its offset, timestamp and date in the zone, MINVALUE/MAXVALUE as infinities', () => {
    expect(parseBound("'2026-12-01 00:00:00+00'", 'timestamptz', 'Europe/Berlin')).toBe(at('2026-12-01T00:00:00Z'));
    expect(parseBound('2026-12-01 01:00:00+01', 'timestamptz', 'UTC')).toBe(at('2026-12-01T00:00:00Z'));
    expect(parseBound('2026-12-01 05:30:00+05:30', 'timestamptz', 'UTC')).toBe(at('2026-12-01T00:00:00Z'));
    expect(parseBound('2026-12-01 00:00:00.25+00', 'timestamptz', 'UTC')).toBe(at('2026-12-01T00:00:00.250Z'));
    expect(parseBound("'2026-12-01 00:00:00'", 'timestamp', 'Europe/Berlin')).toBe(at('2026-11-30T23:00:00Z'));
    expect(parseBound("'2026-12-01'", 'date', 'UTC')).toBe(at('2026-12-01T00:00:00Z'));
    expect(parseBound('MINVALUE', 'date', 'UTC')).toBe(-Infinity);
    expect(parseBound('MAXVALUE', 'timestamptz', 'UTC')).toBe(Infinity);
    expect(parseBound("'infinity'", 'timestamptz', 'UTC')).toBe(Infinity);
  });

  it('refuses what is not a bound of that type', () => {
    expect(() => parseBound("'tomorrow'", 'date', 'UTC')).toThrow(/cannot read partition bound/);
    expect(() => parseBound("'2026-12-01 00:00:00+00'", 'timestamp', 'UTC')).toThrow(/no time zone offset/);
    expect(() => parseBound("'2026-12-01 00:00:00'", 'date', 'UTC')).toThrow(/no time of day/);
  });

  it('reads a whole partition bound expression, or DEFAULT', () => {
    expect(parsePartitionBound("FOR VALUES FROM ('2026-12-01 00:00:00+00') TO ('2026-12-02 00:00:00+00')", 'timestamptz', 'UTC')).toEqual({
      fromMs: at('2026-12-01T00:00:00Z'),
      toMs: at('2026-12-02T00:00:00Z'),
    });
    expect(parsePartitionBound("FOR VALUES FROM (MINVALUE) TO ('2026-12-01')", 'date', 'UTC')).toEqual({ fromMs: -Infinity, toMs: at('2026-12-01T00:00:00Z') });
    expect(parsePartitionBound('DEFAULT', 'date', 'UTC')).toEqual({ default: true });
    expect(() => parsePartitionBound("FOR VALUES IN ('a')", 'date', 'UTC')).toThrow(/not a one-column range/);
    expect(() => parsePartitionBound("FOR VALUES FROM ('2026-12-01', 1) TO ('2026-12-02', 1)", 'date', 'UTC')).toThrow(/not a one-column range/);
  });

  it("every slot's texts read back to its epoch ms", () => {
    for (const boundType of ['timestamptz', 'timestamp', 'date'] as BoundType[]) {
      const s = spec({ boundType, timezone: 'America/New_York', interval: 'monthly' });
      for (const slot of wantedSlots({ ...s, premake: 24 }, at('2026-01-15T00:00:00Z'))) {
        expect(parsePartitionBound(`FOR VALUES FROM ('${slot.from}') TO ('${slot.to}')`, boundType, s.timezone)).toEqual({ fromMs: slot.fromMs, toMs: slot.toMs });
      }
    }
  });
});

describe('planning a rotation', () => {
  const now = at('2026-12-01T10:00:00Z');
  const daily = spec({ premake: 2, retentionMs: 3 * DAY });

  it('an empty table gets the slot holding now and premake ahead', () => {
    const plan = planRotation(daily, 'public.messages', [DEFAULT], now);
    expect(plan.create.map((s) => partitionName('messages', s))).toEqual(['messages_p20261201', 'messages_p20261202', 'messages_p20261203']);
    expect(plan).toMatchObject({ adopt: [], unmanaged: [], retire: [], runway: { untilMs: null, intervals: 0 } });
  });

  it('adopts partitions that follow the pattern, leaves the others alone and reports them', () => {
    const [today, tomorrow] = wantedSlots(daily, now) as [PartitionSlot, PartitionSlot];
    const byHand: ExistingPartition = { name: 'messages_dec_2026', isDefault: false, fromMs: tomorrow.toMs, toMs: tomorrow.toMs + 5 * DAY };
    const misnamed: ExistingPartition = { ...partitionOf('messages', tomorrow), name: 'messages_tomorrow' };
    const plan = planRotation(daily, 'public.messages', [DEFAULT, partitionOf('messages', today), misnamed, byHand], now);
    expect(plan.adopt).toEqual(['messages_p20261201']);
    expect(plan.unmanaged).toEqual(['messages_tomorrow', 'messages_dec_2026']);
    expect(plan.create).toEqual([]); // the other two slots are covered, though not by the pattern
    expect(plan.runway).toEqual({ untilMs: byHand.toMs, intervals: 6 });
  });

  it('never creates a slot overlapping an existing partition', () => {
    const half: ExistingPartition = { name: 'odd', isDefault: false, fromMs: at('2026-12-02T12:00:00Z'), toMs: at('2026-12-03T12:00:00Z') };
    const plan = planRotation(daily, 'messages', [half], now);
    expect(plan.create.map((s) => s.suffix)).toEqual(['p20261201']);
  });

  it('retires pattern partitions whose upper bound is at or before the cut-off, oldest first', () => {
    const old = wantedSlots({ ...daily, premake: 6 }, at('2026-11-24T10:00:00Z')).map((s) => partitionOf('messages', s));
    const plan = planRotation(daily, 'messages', [DEFAULT, ...old], now);
    // cut-off 2026-11-28 10:00: the partitions up to Nov 27 ended by then; Nov 28's did not.
    expect(plan.retire.map((r) => r.name)).toEqual(['messages_p20261124', 'messages_p20261125', 'messages_p20261126', 'messages_p20261127']);
    expect(plan.retire.every((r) => r.toMs <= now - 3 * DAY)).toBe(true);
  });

  it('never retires the default partition; an old last partition goes only because the plan creates newer ones', () => {
    const ancient = partitionOf('messages', slotAt(daily, at('2025-01-01T00:00:00Z')));
    const plan = planRotation(daily, 'messages', [DEFAULT, ancient], now);
    expect(plan.retire).toEqual([{ name: 'messages_p20250101', toMs: at('2025-01-02T00:00:00Z') }]);
    expect(plan.create).toHaveLength(3);
  });

  it('after an outage creates nothing retention would drop at once (pg_partman#649), and fills no gap behind now', () => {
    const lastBeforeOutage = partitionOf('messages', slotAt(daily, at('2026-10-01T00:00:00Z')));
    const plan = planRotation({ ...daily, retentionMs: 30 * DAY }, 'messages', [lastBeforeOutage], now);
    expect(plan.create.map((s) => s.suffix)).toEqual(['p20261201', 'p20261202', 'p20261203']);
    expect(plan.retire.map((r) => r.name)).toEqual(['messages_p20261001']);
  });

  it('a retention shorter than one interval still creates the slot holding now', () => {
    const plan = planRotation({ ...daily, retentionMs: HOUR, premake: 0 }, 'messages', [], now);
    expect(plan.create.map((s) => s.suffix)).toEqual(['p20261201']);
  });

  it('a second run does nothing', () => {
    const first = planRotation(daily, 'messages', [DEFAULT], now);
    const second = planRotation(daily, 'messages', [DEFAULT, ...first.create.map((s) => partitionOf('messages', s))], now);
    expect(second).toMatchObject({ create: [], retire: [], unmanaged: [] });
    expect(second.adopt).toHaveLength(3);
    expect(second.runway).toEqual({ untilMs: at('2026-12-04T00:00:00Z'), intervals: 2 });
  });

  it('unmanaged partitions are never retired, and a MAXVALUE partition is an endless runway', () => {
    const handmade: ExistingPartition = { name: 'messages_old', isDefault: false, fromMs: -Infinity, toMs: at('2026-01-01T00:00:00Z') };
    const rest: ExistingPartition = { name: 'messages_rest', isDefault: false, fromMs: at('2026-01-01T00:00:00Z'), toMs: Infinity };
    const plan = planRotation(daily, 'messages', [handmade, rest], now);
    expect(plan).toMatchObject({ create: [], retire: [], unmanaged: ['messages_old', 'messages_rest'] });
    expect(plan.runway).toEqual({ untilMs: Infinity, intervals: Infinity });
  });

  it('runway stops counting at MAX_RUNWAY_INTERVALS, untilMs still the real end', () => {
    const far: ExistingPartition = { name: 'messages_future', isDefault: false, fromMs: now - HOUR, toMs: at('9999-01-01T00:00:00Z') };
    expect(runwayOf(spec({ interval: 'hourly' }), [far], now)).toEqual({ untilMs: far.toMs, intervals: MAX_RUNWAY_INTERVALS });
  });

  it('runway across DST counts the partitions, not the wall hours: Berlin in spring has one hour fewer', () => {
    const berlin = spec({ interval: 'hourly', timezone: 'Europe/Berlin' });
    const start = at('2026-03-28T23:00:00Z'); // midnight local
    const day: ExistingPartition = { name: 'messages_day', isDefault: false, fromMs: start, toMs: at('2026-03-29T22:00:00Z') };
    expect(runwayOf(berlin, [day], start)).toEqual({ untilMs: day.toMs, intervals: 22 });
    expect(runwayOf({ ...berlin, boundType: 'timestamp' }, [day], start).intervals).toBe(23);
  });

  it('runway counts whole intervals after the current one up to the first gap', () => {
    const slots = wantedSlots(spec({ premake: 5 }), now).map((s) => partitionOf('messages', s));
    slots.splice(3, 1); // Dec 4 missing
    expect(runwayOf(spec(), slots, now)).toEqual({ untilMs: at('2026-12-04T00:00:00Z'), intervals: 2 });
  });
});

// ---- properties ----

const zones = fc.constantFrom('UTC', 'Europe/Berlin', 'America/New_York', 'Australia/Sydney', 'Asia/Kolkata', 'America/Santiago', 'Australia/Lord_Howe', 'Pacific/Chatham');
const intervals = fc.constantFrom<PartitionInterval>('hourly', 'daily', 'weekly', 'monthly', 'yearly');
const boundTypes = fc.constantFrom<BoundType>('timestamptz', 'timestamp', 'date');
const instants = fc.integer({ min: at('1990-01-01T00:00:00Z'), max: at('2100-01-01T00:00:00Z') });
const specs = fc
  .record({
    interval: intervals,
    timezone: zones,
    premake: fc.integer({ min: 0, max: 40 }),
    retentionMs: fc.option(fc.integer({ min: 0, max: 400 * DAY }), { nil: null }),
    boundType: boundTypes,
  })
  .filter((s) => !(s.boundType === 'date' && s.interval === 'hourly'));

describe('calendar properties', () => {
  it('wanted slots are contiguous, non-overlapping, ordered and distinctly named; the first holds now', () => {
    fc.assert(
      fc.property(specs, instants, (s, now) => {
        const slots = wantedSlots(s, now);
        expect(slots).toHaveLength(s.premake + 1);
        const first = slots[0]!;
        if (s.boundType === 'timestamptz') expect(first.fromMs <= now && now < first.toMs).toBe(true);
        for (let i = 1; i < slots.length; i++) {
          expect(slots[i]!.from).toBe(slots[i - 1]!.to);
          expect(slots[i]!.fromMs).toBe(slots[i - 1]!.toMs);
        }
        expect(new Set(slots.map((x) => x.suffix)).size).toBe(slots.length);
      }),
      { numRuns: 300 },
    );
  });

  it("every slot's from is before its to (in ms too, but for the wall hour a timestamp keeps through a spring gap)", () => {
    fc.assert(
      fc.property(specs, instants, (s, now) => {
        for (const slot of wantedSlots({ ...s, premake: Math.min(s.premake, 10) }, now)) {
          expect(slot.from < slot.to).toBe(true);
          if (s.boundType === 'timestamp' && s.interval === 'hourly') expect(slot.fromMs).toBeLessThanOrEqual(slot.toMs);
          else expect(slot.fromMs).toBeLessThan(slot.toMs);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('in UTC every daily slot is exactly 24 hours and starts at midnight', () => {
    fc.assert(
      fc.property(boundTypes, instants, (boundType, now) => {
        const slot = slotAt(spec({ boundType }), now);
        expect(slot.toMs - slot.fromMs).toBe(DAY);
        expect(slot.fromMs % DAY).toBe(0);
      }),
    );
  });

  it('in Europe/Berlin a daily slot is 24 hours, or 23/25 on the days the clocks change', () => {
    fc.assert(
      fc.property(instants, (now) => {
        const slot = slotAt(spec({ timezone: 'Europe/Berlin' }), now);
        const hours = (slot.toMs - slot.fromMs) / HOUR;
        expect([23, 24, 25]).toContain(hours);
        const month = slot.from.slice(5, 7);
        if (hours !== 24) expect(['03', '10', '09', '04']).toContain(month); // EU rules; 1990s changed in late September
      }),
    );
  });

  it('slotAt of any instant inside a slot is that slot', () => {
    fc.assert(
      fc.property(specs, instants, fc.double({ min: 0, max: 1, noNaN: true }), (s, now, f) => {
        if (s.boundType !== 'timestamptz') return;
        const slot = slotAt(s, now);
        const inside = Math.min(slot.toMs - 1, slot.fromMs + Math.floor(f * (slot.toMs - slot.fromMs)));
        expect(slotAt(s, inside)).toEqual(slot);
      }),
    );
  });

  const existingOf = (s: CalendarSpec, now: number) =>
    fc.record({
      // Pattern partitions around now: some in the past, with gaps.
      offsets: fc.uniqueArray(fc.integer({ min: -30, max: 30 }), { maxLength: 20 }),
      withDefault: fc.boolean(),
      stray: fc.option(fc.record({ start: fc.integer({ min: -40 * DAY, max: 40 * DAY }), length: fc.integer({ min: 1, max: 10 * DAY }) }), { nil: undefined }),
    }).map(({ offsets, withDefault, stray }) => {
      let slot = slotAt(s, now);
      for (let i = 0; i > -30; i--) slot = previousOf(s, slot);
      const all: PartitionSlot[] = [];
      for (let i = -30; i <= 30; i++, slot = nextSlot(s, slot)) all.push(slot);
      const parts: ExistingPartition[] = offsets.sort((a, b) => a - b).map((o) => partitionOf('messages', all[o + 30]!));
      if (stray) {
        const p = { name: 'messages_stray', isDefault: false, fromMs: now + stray.start, toMs: now + stray.start + stray.length };
        if (!parts.some((q) => q.fromMs < p.toMs && p.fromMs < q.toMs)) parts.push(p);
      }
      if (withDefault) parts.push(DEFAULT);
      return parts;
    });

  /** The slot before `slot`, found from the instant just before it. */
  function previousOf(s: CalendarSpec, slot: PartitionSlot): PartitionSlot {
    return slotAt(s, slot.fromMs - 1);
  }

  const plans = specs.chain((s) => instants.chain((now) => existingOf(s, now).map((existing) => ({ s, now, existing }))));

  it('planRotation is idempotent: apply it and plan again, and nothing is left to create or retire', () => {
    fc.assert(
      fc.property(plans, ({ s, now, existing }) => {
        const plan = planRotation(s, 'public.messages', existing, now);
        const retired = new Set(plan.retire.map((r) => r.name));
        const after = [...existing.filter((p) => !retired.has(p.name)), ...plan.create.map((slot) => partitionOf('messages', slot))];
        const again = planRotation(s, 'public.messages', after, now);
        expect(again.create).toEqual([]);
        expect(again.retire).toEqual([]);
      }),
      { numRuns: 200 },
    );
  });

  it('with the wanted slots in place, the runway reaches the last of them: premake intervals ahead', () => {
    fc.assert(
      fc.property(specs, instants, (s, now) => {
        const slots = wantedSlots(s, now);
        const runway = runwayOf(s, slots.map((slot) => partitionOf('messages', slot)), now);
        expect(runway).toEqual({ untilMs: slots[slots.length - 1]!.toMs, intervals: s.premake });
      }),
      { numRuns: 200 },
    );
  });

  it('never creates an overlapping slot or one at or before the cut-off; never retires the default or the last partition', () => {
    fc.assert(
      fc.property(plans, ({ s, now, existing }) => {
        const plan = planRotation(s, 'public.messages', existing, now);
        const cutoff = retentionCutoffMs(s, now);
        const ranges = existing.filter((p) => !p.isDefault);
        for (const slot of plan.create) {
          if (cutoff !== null) expect(slot.toMs).toBeGreaterThan(cutoff);
          expect(ranges.some((p) => p.fromMs < slot.toMs && slot.fromMs < p.toMs)).toBe(false);
        }
        expect(plan.retire.map((r) => r.name)).not.toContain(DEFAULT.name);
        if (ranges.length > 0) expect(ranges.length - plan.retire.length + plan.create.length).toBeGreaterThan(0);
        for (const r of plan.retire) expect(cutoff !== null && r.toMs <= cutoff).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});
