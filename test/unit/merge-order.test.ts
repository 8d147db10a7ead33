import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compareCodePoints,
  compareDateTimeText,
  compareFloatText,
  compareIntegerText,
  compareNumericText,
  compareRows,
  mergeSortedRuns,
  MinHeap,
  orderByClause,
  parseMergeOrder,
  resolveMergeKeys,
  type MergeColumn,
  type Row,
} from '../../src/core/merge-order.js';

const INT8 = 20;
const TEXT = 25;
const NUMERIC = 1700;
const TIMESTAMPTZ = 1184;

const sign = (n: number) => Math.sign(n) || 0;
const bigCompare = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);

describe('--merge-order spec', () => {
  it('reads COL[:asc|:desc],… with asc as the default', () => {
    expect(parseMergeOrder('created_at:desc, id')).toEqual([
      { column: 'created_at', descending: true },
      { column: 'id', descending: false },
    ]);
    expect(parseMergeOrder('a:ASC')).toEqual([{ column: 'a', descending: false }]);
    // A column name may itself hold a colon: only the last one is the direction.
    expect(parseMergeOrder('odd:name:desc')).toEqual([{ column: 'odd:name', descending: true }]);
  });

  it('refuses an empty spec, an empty part, a bad direction and a column named twice', () => {
    expect(() => parseMergeOrder('')).toThrow(/COL\[:asc\|:desc\]/);
    expect(() => parseMergeOrder('a,,b')).toThrow(/COL/);
    expect(() => parseMergeOrder('a:down')).toThrow(/asc or desc, got "down"/);
    expect(() => parseMergeOrder(':desc')).toThrow(/names no column/);
    expect(() => parseMergeOrder('a,a:desc')).toThrow(/"a" twice/);
  });

  it('resolves names against the result, refusing unknown, ambiguous and incomparable columns', () => {
    const columns: MergeColumn[] = [
      { name: 'id', typeOid: INT8 },
      { name: 'x', typeOid: TEXT },
      { name: 'x', typeOid: TEXT },
      { name: 'span', typeOid: 1186 },
    ];
    expect(resolveMergeKeys(parseMergeOrder('id:desc'), columns)[0]).toMatchObject({ index: 0, descending: true, text: false });
    expect(() => resolveMergeKeys(parseMergeOrder('nope'), columns)).toThrow(/no column "nope" \(columns: id, x, x, span\)/);
    expect(() => resolveMergeKeys(parseMergeOrder('x'), columns)).toThrow(/2 columns named "x"/);
    expect(() => resolveMergeKeys(parseMergeOrder('span'), columns)).toThrow(/cannot compare; order by a cast/);
  });

  it('asks for ORDER BY with COLLATE "C" on text keys and DESC where descending', () => {
    const keys = resolveMergeKeys(parseMergeOrder('created_at:desc,name,Odd'), [
      { name: 'created_at', typeOid: TIMESTAMPTZ },
      { name: 'name', typeOid: TEXT },
      { name: 'Odd', typeOid: INT8 },
    ]);
    expect(orderByClause(keys)).toBe('ORDER BY created_at DESC, name COLLATE "C", "Odd"');
  });
});

describe('comparison by type', () => {
  it('integers compare exactly past 2^53, where doubles call them equal', () => {
    expect(compareIntegerText('9007199254740993', '9007199254740992')).toBe(1);
    expect(compareIntegerText('-9223372036854775808', '9223372036854775807')).toBe(-1);
    expect(compareIntegerText('-10', '-9')).toBe(-1);
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), (a, b) => {
        expect(compareIntegerText(String(a), String(b))).toBe(bigCompare(a, b));
      }),
    );
  });

  it('numerics compare exactly at any scale, NaN above Infinity above every number', () => {
    const decimal = fc.record({ units: fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }), scale: fc.integer({ min: 0, max: 30 }), pad: fc.integer({ min: 0, max: 3 }) });
    const text = ({ units, scale, pad }: { units: bigint; scale: number; pad: number }) => {
      const digits = (units < 0n ? -units : units).toString().padStart(scale + 1, '0');
      const body = scale ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits;
      return (units < 0n ? '-' : '') + body + (scale && pad ? '0'.repeat(pad) : '');
    };
    fc.assert(
      fc.property(decimal, decimal, (a, b) => {
        // a × 10^-sa against b × 10^-sb, on integers.
        const x = a.units * 10n ** BigInt(30 - a.scale);
        const y = b.units * 10n ** BigInt(30 - b.scale);
        expect(compareNumericText(text(a), text(b))).toBe(bigCompare(x, y));
      }),
    );
    const order = ['-Infinity', '-12345678901234567890.5', '-1.5', '0', '0.000000000000000000001', '1.10', '1.2', '12345678901234567890.1', 'Infinity', 'NaN'];
    for (let i = 0; i < order.length; i++) for (let j = 0; j < order.length; j++) expect(compareNumericText(order[i]!, order[j]!)).toBe(sign(i - j));
    expect(compareNumericText('1.10', '1.1')).toBe(0);
  });

  it('floats compare as doubles with NaN above Infinity', () => {
    const order = ['-Infinity', '-1e+308', '-0.5', '0', '1.5e-10', '3.14', 'Infinity', 'NaN'];
    for (let i = 0; i < order.length; i++) for (let j = 0; j < order.length; j++) expect(compareFloatText(order[i]!, order[j]!)).toBe(sign(i - j));
    expect(compareFloatText('-0', '0')).toBe(0);
  });

  it('text compares by code point, which is UTF-8 byte order (COLLATE "C"), not UTF-16 unit order', () => {
    // U+FF61 (one UTF-16 unit, above the surrogates) sorts before U+1F600 (a surrogate pair): JavaScript's < says otherwise.
    expect('\u{FF61}' < '\u{1F600}').toBe(false);
    expect(compareCodePoints('\u{FF61}', '\u{1F600}')).toBe(-1);
    expect(compareCodePoints('B', 'a')).toBe(-1);
    expect(compareCodePoints('ab', 'abc')).toBe(-1);
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 6 }), fc.string({ unit: 'binary', maxLength: 6 }), (a, b) => {
        expect(compareCodePoints(a, b)).toBe(Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
      }),
      { numRuns: 2000 },
    );
  });

  it('timestamps compare by instant: offsets applied, microseconds, years past 9999, BC and infinity', () => {
    const instant = fc.integer({ min: Date.UTC(1, 0, 1), max: Date.UTC(9999, 11, 31) });
    const offsetMinutes = fc.integer({ min: -15 * 60, max: 15 * 60 });
    const micros = fc.integer({ min: 0, max: 999 });
    const print = (ms: number, us: number, off: number) => {
      const local = new Date(ms + off * 60_000).toISOString(); // yyyy-mm-ddThh:mm:ss.sssZ
      const sign = off < 0 ? '-' : '+';
      const abs = Math.abs(off);
      const tz = `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}${abs % 60 ? `:${String(abs % 60).padStart(2, '0')}` : ''}`;
      return `${local.slice(0, 10)} ${local.slice(11, 23)}${String(us).padStart(3, '0')}${tz}`;
    };
    fc.assert(
      fc.property(instant, micros, offsetMinutes, instant, micros, offsetMinutes, (ma, ua, oa, mb, ub, ob) => {
        const expected = ma !== mb ? sign(ma - mb) : sign(ua - ub);
        expect(compareDateTimeText(print(ma, ua, oa), print(mb, ub, ob))).toBe(expected);
      }),
    );
    const order = ['-infinity', '0044-03-15 12:00:00 BC', '0001-01-01 00:00:00', '2024-01-01 00:00:00', '2024-01-01 00:00:00.000001', '2024-01-01 00:00:01', '9999-12-31 23:59:59.999999', '10000-01-01 00:00:00', 'infinity'];
    for (let i = 0; i < order.length; i++) for (let j = 0; j < order.length; j++) expect(compareDateTimeText(order[i]!, order[j]!)).toBe(sign(i - j));
    expect(compareDateTimeText('2024-01-01 05:30:00+05:30', '2024-01-01 00:00:00+00')).toBe(0);
    expect(compareDateTimeText('2024-01-02', '2024-01-10')).toBe(-1);
    expect(() => compareDateTimeText('01/02/2024', '2024-01-01')).toThrow(/DateStyle ISO/);
  });
});

/** Rows of (an int8 with many ties and NULLs, a text with ties and NULLs, a unique sequence number to see stability). */
const aRow = fc.tuple(
  fc.option(fc.constantFrom('-9223372036854775808', '-3', '0', '7', '9007199254740993', '9007199254740992'), { nil: null }),
  fc.option(fc.constantFrom('', 'a', 'B', 'é', '\u{1F600}', '\u{FF61}'), { nil: null }),
);
const columns: MergeColumn[] = [
  { name: 'n', typeOid: INT8 },
  { name: 't', typeOid: TEXT },
  { name: 'seq', typeOid: TEXT },
];
const aSpec = fc.subarray(['n', 't'], { minLength: 1 }).chain((cols) =>
  fc.tuple(...cols.map((c) => fc.boolean().map((d) => `${c}${d ? ':desc' : ''}`))).map((parts) => parts.join(',')),
);

describe('the k-way merge', () => {
  it('merging per-shard runs sorted by the keys equals a stable sort of their union (ties, NULLs, desc)', () => {
    fc.assert(
      fc.property(aSpec, fc.array(fc.array(aRow, { maxLength: 30 }), { maxLength: 6 }), (spec, shards) => {
        const keys = resolveMergeKeys(parseMergeOrder(spec), columns);
        const compare = (a: Row, b: Row) => compareRows(a, b, keys);
        let seq = 0;
        const runs = shards.map((rows) => rows.map(([n, t]) => [n, t, String(seq++)] as Row).sort(compare));
        const merged = mergeSortedRuns(runs, compare);
        expect(merged).toEqual(runs.flat().sort(compare));
        for (let i = 1; i < merged.length; i++) expect(compare(merged[i - 1]!, merged[i]!)).toBeLessThanOrEqual(0);
      }),
      { numRuns: 500 },
    );
  });

  it('puts NULLs last ascending and first descending, as PostgreSQL does', () => {
    const asc = resolveMergeKeys(parseMergeOrder('n'), columns);
    const desc = resolveMergeKeys(parseMergeOrder('n:desc'), columns);
    const rows: Row[] = [[null, 'x', '0'], ['1', 'x', '1'], ['-1', 'x', '2']];
    expect([...rows].sort((a, b) => compareRows(a, b, asc)).map((r) => r[0])).toEqual(['-1', '1', null]);
    expect([...rows].sort((a, b) => compareRows(a, b, desc)).map((r) => r[0])).toEqual([null, '1', '-1']);
  });

  it('the heap pops in order whatever the pushes', () => {
    fc.assert(
      fc.property(fc.array(fc.integer()), (values) => {
        const heap = new MinHeap<number>((a, b) => a - b);
        values.forEach((v) => heap.push(v));
        const out: number[] = [];
        for (let v = heap.pop(); v !== undefined; v = heap.pop()) out.push(v);
        expect(out).toEqual([...values].sort((a, b) => a - b));
        expect(heap.size).toBe(0);
      }),
    );
  });
});

// Keep the numeric oid in use: a numeric key resolves to the exact decimal comparison.
it('a numeric key compares as a decimal, not a double', () => {
  const keys = resolveMergeKeys(parseMergeOrder('v'), [{ name: 'v', typeOid: NUMERIC }]);
  expect(compareRows(['0.30000000000000000001'], ['0.3'], keys)).toBe(1);
});
