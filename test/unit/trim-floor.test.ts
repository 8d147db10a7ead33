import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compareStreamIds,
  firstIdAtMs,
  formatStreamId,
  isStreamId,
  MAX_ID_PART,
  MAX_STREAM_ID,
  maxStreamId,
  minStreamId,
  nextStreamId,
  parseStreamId,
  streamIdMs,
} from '../../src/core/stream-id.js';
import { effectiveTrimId, type GroupState, keyMatches, policyCutoff, policyFor, safeTrimFloor } from '../../src/core/trim-floor.js';

const DAY = 86_400_000;
const NOW = Date.parse('2026-12-01T12:00:00Z');
const group = (over: Partial<GroupState> & { name: string }): GroupState => ({
  lastDeliveredId: '0-0',
  pendingCount: 0,
  oldestPendingId: null,
  firstUndeliveredId: null,
  ...over,
});

/** Ids over a small range (so streams, pending lists and last-delivered ids collide), with sequence numbers past 2^53. */
const anId = fc
  .record({
    ms: fc.bigInt({ min: 0n, max: 12n }),
    seq: fc.oneof(fc.bigInt({ min: 0n, max: 3n }), fc.constantFrom(2n ** 53n, 2n ** 53n + 1n, MAX_ID_PART - 1n, MAX_ID_PART)),
  })
  .map(formatStreamId);
const sorted = (ids: string[]) => [...ids].sort(compareStreamIds);

describe('stream ids', () => {
  it('compare by ms then seq, exactly past 2^53 where numbers would call them equal', () => {
    expect(compareStreamIds('1-9007199254740992', '1-9007199254740993')).toBe(-1);
    expect(compareStreamIds('2-0', '10-0')).toBe(-1);
    expect(compareStreamIds('10-0', '9-99')).toBe(1);
    expect(compareStreamIds('007-1', '7-1')).toBe(0);
    expect(sorted(['3-0', '1-10', '1-2', '0-0'])).toEqual(['0-0', '1-2', '1-10', '3-0']);
  });

  it('parse only complete ids within 64 bits, and print them canonically', () => {
    expect(parseStreamId('1700000000000-18446744073709551615')).toEqual({ ms: 1_700_000_000_000n, seq: MAX_ID_PART });
    expect(formatStreamId(parseStreamId('0007-01'))).toBe('7-1');
    for (const bad of ['', '1', '1-', '-1', '1-*', '*', '$', '>', '1-2-3', ' 1-2', '18446744073709551616-0', '1.5-0', '-1-0']) {
      expect(isStreamId(bad), bad).toBe(false);
      expect(() => parseStreamId(bad)).toThrow(RangeError);
    }
    expect(isStreamId(MAX_STREAM_ID)).toBe(true);
  });

  it('the next id carries seq into ms, and there is none after the largest', () => {
    expect(nextStreamId('0-0')).toBe('0-1');
    expect(nextStreamId('5-9007199254740992')).toBe('5-9007199254740993');
    expect(nextStreamId(`5-${MAX_ID_PART}`)).toBe('6-0');
    expect(() => nextStreamId(MAX_STREAM_ID)).toThrow(RangeError);
  });

  it('the first id of a millisecond, its timestamp, min and max', () => {
    expect(firstIdAtMs(NOW)).toBe(`${NOW}-0`);
    expect(firstIdAtMs(-5)).toBe('0-0');
    expect(firstIdAtMs(10.2)).toBe('11-0'); // an entry at ms 10 is older than 10.2
    expect(streamIdMs(`${NOW}-7`)).toBe(NOW);
    expect(minStreamId('3-1', '3-0', '10-0')).toBe('3-0');
    expect(maxStreamId('3-1', '3-0', '10-0')).toBe('10-0');
  });

  it('order is the order of the 128-bit number ms·2^64 + seq; format and parse are inverse', () => {
    fc.assert(
      fc.property(anId, anId, (a, b) => {
        const wide = (id: string) => (parseStreamId(id).ms << 64n) | parseStreamId(id).seq;
        expect(compareStreamIds(a, b)).toBe(Math.sign(Number(wide(a) - wide(b))));
        expect(formatStreamId(parseStreamId(a))).toBe(a);
      }),
    );
  });

  it('no id lies strictly between an id and the next', () => {
    fc.assert(
      fc.property(anId.filter((id) => id !== MAX_STREAM_ID), anId, (a, b) => {
        const next = nextStreamId(a);
        expect(compareStreamIds(next, a)).toBe(1);
        if (compareStreamIds(b, a) > 0) expect(compareStreamIds(b, next)).toBeGreaterThanOrEqual(0);
      }),
    );
  });
});

describe('key patterns, as SCAN MATCH reads them', () => {
  // Every expectation here was checked against redis-server 7.0.15 (x86-64) with SCAN … MATCH.
  it.each([
    ['messages:{*}', 'messages:{room1}', true, 'braces are literal, not a hash tag or alternation'],
    ['messages:{*}', 'messages:room1', false, 'the braces must be there'],
    ['messages:*', 'messages:{room1}', true, ''],
    ['messages:[^a]*', 'messages:archival', false, 'a negated class'],
    ['messages:[^a]*', 'messages:moderation', true, ''],
    ['h?llo', 'hello', true, ''],
    ['h[ae]llo', 'hallo', true, ''],
    ['h[a-b]llo', 'hbllo', true, ''],
    ['[z-a]', 'm', true, 'a range may be written backwards'],
    ['a[a-]x', 'a]', true, '`[a-]` is the range from `]` to `a`, and the class then runs on'],
    ['a[a-]x', 'a_', true, ''],
    ['a[a-]x', 'ax', true, ''],
    ['a[a-]x', 'a-', false, ''],
    ['[]a]', 'a', false, '`[]` is an empty class, matching nothing'],
    ['[^]', 'q', true, '`[^]` matches any byte'],
    ['a[bc', 'ac', true, 'an unclosed class runs to the end of the pattern'],
    ['a[bc', 'a[', false, ''],
    ['a[^', 'ab', true, ''],
    ['a[!b]', 'ac', false, '`!` is not negation (only `^` is)'],
    ['a[!b]', 'a!', true, ''],
    ['a\\*', 'a*', true, 'an escaped star is literal'],
    ['a\\*', 'ab', false, ''],
    ['a\\', 'a\\', true, 'a trailing backslash is itself'],
    ['[\\]]', ']', true, 'an escape inside a class'],
    ['[\\', '\\', true, ''],
    ['*:*:*', 'a:b', false, ''],
    ['*:*:*', 'a:b:c', true, ''],
    ['a*', 'a', true, 'a star matches nothing too'],
    ['a**', 'a', true, ''],
    ['*', '', true, 'SCAN does not match at all for a lone star'],
    ['**', '', false, 'but stringmatchlen sees no key in the empty one'],
    ['?', 'é', false, 'bytes, not characters: é is two'],
    ['??', 'é', true, ''],
    ['[^a]', 'é', false, ''],
  ])('%j on %j is %s (%s)', (pattern, key, expected) => {
    expect(keyMatches(pattern, key)).toBe(expected);
  });

  const specials = /[*?[\]\\]/g;
  const keyText = fc.string({ unit: fc.constantFrom('a', 'b', ':', '{', '}', '[', ']', '*', '?', '\\', '^', '-', 'é'), maxLength: 12 });

  it('a key with its special characters escaped matches itself and nothing else', () => {
    fc.assert(
      fc.property(keyText, keyText, (key, other) => {
        const literal = key.replace(specials, '\\$&');
        if (key !== '') expect(keyMatches(literal, key)).toBe(true);
        if (other !== key) expect(keyMatches(literal, other)).toBe(false);
      }),
    );
  });

  it('a key with any of its slices replaced by a star still matches', () => {
    fc.assert(
      fc.property(keyText.filter((k) => k !== ''), fc.nat(), fc.nat(), (key, a, b) => {
        const [from, to] = [a % (key.length + 1), b % (key.length + 1)].sort((x, y) => x - y) as [number, number];
        const escape = (s: string) => s.replace(specials, '\\$&');
        const pattern = `${escape(key.slice(0, from))}*${escape(key.slice(to))}`;
        expect(keyMatches(pattern, key)).toBe(true);
      }),
    );
  });

  it('the first matching policy wins, and a key no pattern matches has none', () => {
    const policies = [
      { match: 'messages:archival', maxAge: '90d', approximate: true },
      { match: 'messages:{*}', maxLen: 1000, approximate: true },
      { match: 'messages:*', maxAge: '7d', approximate: false },
    ];
    expect(policyFor(policies, 'messages:archival')).toBe(policies[0]);
    expect(policyFor(policies, 'messages:{room-42}')).toBe(policies[1]);
    expect(policyFor(policies, 'messages:moderation')).toBe(policies[2]);
    expect(policyFor(policies, 'events:1')).toBeNull();
    expect(policyFor([], 'messages:1')).toBeNull();
  });
});

describe('the policy cut-off', () => {
  it('maxAge trims to the first id of the millisecond maxAge ago, by the clock given', () => {
    expect(policyCutoff({ match: '*', maxAge: '7d' }, { nowMs: NOW, length: 10 })).toBe(`${NOW - 7 * DAY}-0`);
    expect(policyCutoff({ match: '*', maxAge: 1500 }, { nowMs: NOW, length: 10 })).toBe(`${NOW - 1500}-0`);
    expect(policyCutoff({ match: '*', maxAge: '7d' }, { nowMs: 1000, length: 10 })).toBe('0-0');
  });

  it('maxLen trims to the first entry to keep, which the caller reads; within the limit it trims nothing', () => {
    expect(policyCutoff({ match: '*', maxLen: 3 }, { nowMs: NOW, length: 10, idAtLengthMinusMaxLen: '7-0' })).toBe('7-0');
    expect(policyCutoff({ match: '*', maxLen: 10 }, { nowMs: NOW, length: 10 })).toBe('0-0');
    expect(() => policyCutoff({ match: '*', maxLen: 3 }, { nowMs: NOW, length: 10 })).toThrow(/idAtLengthMinusMaxLen/);
  });

  it('with both, the stricter (larger id) wins; with neither there is no cut-off', () => {
    const both = { match: '*', maxLen: 3, maxAge: '1d' };
    expect(policyCutoff(both, { nowMs: NOW, length: 10, idAtLengthMinusMaxLen: `${NOW - 2 * DAY}-5` })).toBe(`${NOW - DAY}-0`);
    expect(policyCutoff(both, { nowMs: NOW, length: 10, idAtLengthMinusMaxLen: `${NOW - 1000}-5` })).toBe(`${NOW - 1000}-5`);
    expect(policyCutoff({ match: '*' }, { nowMs: NOW, length: 10 })).toBeNull();
  });
});

describe('the safe floor', () => {
  it('is the oldest pending entry or first undelivered entry over every group, naming the group that holds it', () => {
    const floor = safeTrimFloor([
      group({ name: 'broadcast', lastDeliveredId: '100-0', firstUndeliveredId: null }),
      group({ name: 'archival', lastDeliveredId: '40-0', pendingCount: 2, oldestPendingId: '35-0', firstUndeliveredId: '41-0' }),
      group({ name: 'moderation', lastDeliveredId: '60-0', pendingCount: 1, oldestPendingId: '50-0', firstUndeliveredId: '61-0' }),
    ]);
    expect(floor).toEqual({ floorId: '35-0', heldBy: { group: 'archival', reason: 'pending' } });
  });

  it('an undelivered entry holds it as firmly as a pending one', () => {
    const floor = safeTrimFloor([
      group({ name: 'broadcast', lastDeliveredId: '100-0', pendingCount: 1, oldestPendingId: '90-0' }),
      group({ name: 'archival', lastDeliveredId: '20-0', firstUndeliveredId: '21-3' }),
    ]);
    expect(floor).toEqual({ floorId: '21-3', heldBy: { group: 'archival', reason: 'undelivered' } });
  });

  it('is absent when every group has read and acknowledged everything, or there are no groups', () => {
    expect(safeTrimFloor([group({ name: 'g', lastDeliveredId: '100-0' })])).toEqual({ floorId: null, heldBy: null });
    expect(safeTrimFloor([])).toEqual({ floorId: null, heldBy: null });
  });

  it('a group rewound with XGROUP SETID below its pending entries is held by what it will re-read', () => {
    const floor = safeTrimFloor([group({ name: 'g', lastDeliveredId: '0-0', pendingCount: 1, oldestPendingId: '50-0', firstUndeliveredId: '10-0' })]);
    expect(floor).toEqual({ floorId: '10-0', heldBy: { group: 'g', reason: 'undelivered' } });
  });

  it('refuses a group state that cannot come from Redis rather than guess', () => {
    expect(() => safeTrimFloor([group({ name: 'g', pendingCount: 3 })])).toThrow(/pending/);
    expect(() => safeTrimFloor([group({ name: 'g', lastDeliveredId: '5-0', firstUndeliveredId: '5-0' })])).toThrow(/not after/);
  });
});

describe('the trim id', () => {
  const held = { floorId: '35-0', heldBy: { group: 'archival', reason: 'pending' as const } };

  it('is the cut-off when no group needs anything older, the floor (with a warning) when one does', () => {
    expect(effectiveTrimId('30-0', held, { force: false })).toEqual({ trimId: '30-0', policyHeldBack: false, forcedPastFloor: false });
    expect(effectiveTrimId('35-0', held, { force: false })).toEqual({ trimId: '35-0', policyHeldBack: false, forcedPastFloor: false });
    expect(effectiveTrimId('80-0', held, { force: false })).toEqual({ trimId: '35-0', policyHeldBack: true, forcedPastFloor: false });
    expect(effectiveTrimId('80-0', { floorId: null, heldBy: null }, { force: false })).toEqual({ trimId: '80-0', policyHeldBack: false, forcedPastFloor: false });
  });

  it('is the cut-off under --force, saying when that removed what a group needed', () => {
    expect(effectiveTrimId('80-0', held, { force: true })).toEqual({ trimId: '80-0', policyHeldBack: false, forcedPastFloor: true });
    expect(effectiveTrimId('30-0', held, { force: true })).toEqual({ trimId: '30-0', policyHeldBack: false, forcedPastFloor: false });
  });

  it('is absent without a cut-off', () => {
    expect(effectiveTrimId(null, held, { force: false }).trimId).toBeNull();
    expect(effectiveTrimId(null, held, { force: true }).trimId).toBeNull();
  });

  /** A stream, its groups as Redis holds them (last-delivered id, pending ids, possibly of deleted entries), and a cut-off. */
  const scenario = fc
    .record({
      entries: fc.uniqueArray(anId, { maxLength: 40 }).map(sorted),
      groups: fc.array(
        fc.record({
          lastDeliveredId: fc.oneof(anId, fc.constant('0-0')),
          pendingIds: fc.uniqueArray(anId, { maxLength: 4 }),
          pendingPicks: fc.array(fc.nat(), { maxLength: 6 }),
        }),
        { maxLength: 4 },
      ),
      cutoffId: anId,
    })
    .map(({ entries, groups, cutoffId }) => ({
      entries,
      cutoffId,
      groups: groups.map((g, i) => ({
        name: `g${i}`,
        lastDeliveredId: g.lastDeliveredId,
        pending: new Set([...g.pendingIds, ...(entries.length ? g.pendingPicks.map((n) => entries[n % entries.length]!) : [])]),
      })),
    }));

  const stateOf = (entries: string[], g: { name: string; lastDeliveredId: string; pending: Set<string> }): GroupState => ({
    name: g.name,
    lastDeliveredId: g.lastDeliveredId,
    pendingCount: g.pending.size,
    oldestPendingId: g.pending.size ? minStreamId(...([...g.pending] as [string])) : null,
    firstUndeliveredId: entries.find((e) => compareStreamIds(e, g.lastDeliveredId) > 0) ?? null,
  });
  const below = (id: string, bound: string | null) => bound !== null && compareStreamIds(id, bound) < 0;

  it('trimming below it never removes an entry pending for a group or not yet delivered to one', () => {
    fc.assert(
      fc.property(scenario, ({ entries, groups, cutoffId }) => {
        const { trimId } = effectiveTrimId(cutoffId, safeTrimFloor(groups.map((g) => stateOf(entries, g))), { force: false });
        for (const removed of entries.filter((e) => below(e, trimId))) {
          for (const g of groups) {
            expect(g.pending.has(removed), `${removed} pending in ${g.name}`).toBe(false);
            expect(compareStreamIds(removed, g.lastDeliveredId), `${removed} undelivered to ${g.name}`).toBeLessThanOrEqual(0);
          }
        }
      }),
    );
  });

  it('is tight: every entry below the cut-off with nothing needed at or before it is removed', () => {
    fc.assert(
      fc.property(scenario, ({ entries, groups, cutoffId }) => {
        const floor = safeTrimFloor(groups.map((g) => stateOf(entries, g)));
        const { trimId, policyHeldBack } = effectiveTrimId(cutoffId, floor, { force: false });
        // Needed, straight from the model: every pending id, and every entry after a group's last-delivered id.
        const needed = groups.flatMap((g) => [...g.pending, ...entries.filter((e) => compareStreamIds(e, g.lastDeliveredId) > 0)]);
        const oldestNeeded = needed.length ? minStreamId(...(needed as [string])) : null;
        expect(floor.floorId).toBe(oldestNeeded);
        for (const e of entries) {
          if (below(e, cutoffId) && !needed.some((n) => compareStreamIds(n, e) <= 0)) expect(below(e, trimId), `${e} kept`).toBe(true);
        }
        expect(policyHeldBack).toBe(oldestNeeded !== null && below(oldestNeeded, cutoffId));
      }),
    );
  });

  it('with force is the cut-off, whatever the groups need', () => {
    fc.assert(
      fc.property(scenario, ({ entries, groups, cutoffId }) => {
        const floor = safeTrimFloor(groups.map((g) => stateOf(entries, g)));
        const decision = effectiveTrimId(cutoffId, floor, { force: true });
        expect(decision.trimId).toBe(cutoffId);
        expect(decision.forcedPastFloor).toBe(below(floor.floorId ?? MAX_STREAM_ID, cutoffId) && floor.floorId !== null);
      }),
    );
  });
});
