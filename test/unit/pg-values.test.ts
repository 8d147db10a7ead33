import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PgTypeOid, numericFitsDouble, pgJsonEncoder, pgTypeName, pgValueToJson } from '../../src/core/pg-values.js';

const TEXT = 25;
const TIMESTAMPTZ = 1184;
const UUID = 2950;
const INT4_ARRAY = 1007;
const BYTEA = 17;
const INTERVAL = 1186;

/** What a script gets: the encoder's JSON text, parsed. */
const viaJson = (text: string, oid: number): unknown => JSON.parse(pgJsonEncoder(oid)(text));

/** A decimal's value as [sign, significant digits, exponent of the last digit], so "1.10", "1.1" and "1.1e0" compare equal. */
function decimalValue(text: string): string {
  const m = /^(-?)(\d*)(?:\.(\d*))?(?:e([+-]?\d+))?$/i.exec(text);
  if (!m) throw new Error(`not a decimal: ${text}`);
  let digits = (m[2] ?? '') + (m[3] ?? '');
  let exponent = Number(m[4] ?? 0) - (m[3] ?? '').length;
  digits = digits.replace(/^0+/, '');
  while (digits.endsWith('0')) {
    digits = digits.slice(0, -1);
    exponent++;
  }
  return digits ? `${m[1]}${digits}e${exponent}` : '0';
}

describe('integers', () => {
  it('int2, int4 and oid are numbers', () => {
    expect(viaJson('-32768', PgTypeOid.int2)).toBe(-32768);
    expect(viaJson('2147483647', PgTypeOid.int4)).toBe(2147483647);
    expect(viaJson('4294967295', PgTypeOid.oid)).toBe(4294967295);
    expect(pgValueToJson('-5', PgTypeOid.int4)).toBe(-5);
  });

  it('int8 is a number within ±(2^53−1) and its exact digits as a string beyond', () => {
    expect(viaJson('9007199254740991', PgTypeOid.int8)).toBe(9007199254740991);
    expect(viaJson('-9007199254740991', PgTypeOid.int8)).toBe(-9007199254740991);
    expect(viaJson('9007199254740992', PgTypeOid.int8)).toBe('9007199254740992');
    expect(viaJson('9007199254740993', PgTypeOid.int8)).toBe('9007199254740993');
    expect(viaJson('-9007199254740993', PgTypeOid.int8)).toBe('-9007199254740993');
    expect(viaJson('9223372036854775807', PgTypeOid.int8)).toBe('9223372036854775807');
    expect(pgValueToJson('-9223372036854775808', PgTypeOid.int8)).toBe('-9223372036854775808');
  });

  it('every int8 reads back exactly: a safe one as that number, any other as its digits', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), (n) => {
        const got = viaJson(n.toString(), PgTypeOid.int8);
        const safe = n >= -(2n ** 53n - 1n) && n <= 2n ** 53n - 1n;
        expect(got).toBe(safe ? Number(n) : n.toString());
        expect(pgValueToJson(n.toString(), PgTypeOid.int8)).toBe(got);
      }),
    );
  });
});

describe('numeric', () => {
  it('is a number when a double holds its value, written with PostgreSQL digits', () => {
    expect(viaJson('1.5', PgTypeOid.numeric)).toBe(1.5);
    expect(pgJsonEncoder(PgTypeOid.numeric)('1.10')).toBe('1.10');
    expect(viaJson('1.10', PgTypeOid.numeric)).toBe(1.1);
    expect(viaJson('-0.25', PgTypeOid.numeric)).toBe(-0.25);
    expect(viaJson('0.00', PgTypeOid.numeric)).toBe(0);
    expect(viaJson('123456789012.345', PgTypeOid.numeric)).toBe(123456789012.345);
    expect(viaJson('9007199254740991', PgTypeOid.numeric)).toBe(9007199254740991);
    expect(viaJson('0.000000000000000000001', PgTypeOid.numeric)).toBe(1e-21);
  });

  it('keeps its text as a string past a double: many digits, past 2^53, NaN and infinities', () => {
    for (const text of [
      '12345678901234567890.123456789',
      '9007199254740993',
      '0.1234567890123456',
      '3.14159265358979323846',
      `1${'0'.repeat(400)}`,
      `0.${'0'.repeat(400)}1`,
      'NaN',
      'Infinity',
      '-Infinity',
    ]) {
      expect(viaJson(text, PgTypeOid.numeric), text).toBe(text);
      expect(pgValueToJson(text, PgTypeOid.numeric), text).toBe(text);
    }
  });

  it('a numeric that becomes a number reads back as the same decimal value; any other is its exact text', () => {
    const decimal = fc
      // Up to 20 digits: around a double's 15–17 is where a wrong rule would show.
      .tuple(fc.boolean(), fc.stringMatching(/^(0|[1-9]\d{0,9})$/), fc.option(fc.stringMatching(/^\d{1,10}$/), { nil: undefined }))
      .map(([negative, int, frac]) => `${negative && (int !== '0' || /[1-9]/.test(frac ?? '')) ? '-' : ''}${int}${frac === undefined ? '' : `.${frac}`}`);
    fc.assert(
      fc.property(decimal, (text) => {
        const got = viaJson(text, PgTypeOid.numeric);
        if (typeof got === 'number') expect(decimalValue(String(got))).toBe(decimalValue(text));
        else expect(got).toBe(text);
      }),
      { numRuns: 2000 },
    );
  });

  it('a numeric within 15 significant digits is always a number', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[1-9]\d{0,14}$/), fc.nat(14), (digits, scale) => {
        const text = scale && scale < digits.length ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits;
        expect(numericFitsDouble(text)).toBe(true);
        expect(typeof viaJson(text, PgTypeOid.numeric)).toBe('number');
      }),
    );
  });
});

describe('floats, booleans, JSON', () => {
  it('float4/float8 are numbers, NaN and the infinities strings', () => {
    expect(viaJson('1.5', PgTypeOid.float8)).toBe(1.5);
    expect(viaJson('1e+100', PgTypeOid.float8)).toBe(1e100);
    expect(viaJson('-1.2345e-05', PgTypeOid.float8)).toBe(-1.2345e-5);
    expect(Object.is(viaJson('-0', PgTypeOid.float8), -0)).toBe(true);
    expect(pgJsonEncoder(PgTypeOid.float4)('3.4028235e+38')).toBe('3.4028235e+38');
    for (const t of ['NaN', 'Infinity', '-Infinity']) {
      expect(viaJson(t, PgTypeOid.float8)).toBe(t);
      expect(viaJson(t, PgTypeOid.float4)).toBe(t);
      expect(pgValueToJson(t, PgTypeOid.float8)).toBe(t);
    }
  });

  it("bool 't'/'f' are true/false", () => {
    expect(viaJson('t', PgTypeOid.bool)).toBe(true);
    expect(viaJson('f', PgTypeOid.bool)).toBe(false);
    expect(pgValueToJson('t', PgTypeOid.bool)).toBe(true);
  });

  it('json and jsonb are the JSON value itself; json on several lines stays one line', () => {
    expect(viaJson('{"a": [1, 2.5, null], "b": "x\\ny"}', PgTypeOid.jsonb)).toEqual({ a: [1, 2.5, null], b: 'x\ny' });
    const multiLine = '{\n  "a": 1,\r\n  "b": "t\\tu"\n}';
    const encoded = pgJsonEncoder(PgTypeOid.json)(multiLine);
    expect(encoded).not.toMatch(/[\r\n]/);
    expect(JSON.parse(encoded)).toEqual({ a: 1, b: 't\tu' });
    expect(pgValueToJson('[1,"2"]', PgTypeOid.json)).toEqual([1, '2']);
    expect(viaJson('"just a string"', PgTypeOid.jsonb)).toBe('just a string');
  });
});

describe('everything else', () => {
  it('is the text exactly as PostgreSQL printed it', () => {
    const cases: Array<[string, number]> = [
      ['2024-02-29 23:59:59.123456+00', TIMESTAMPTZ],
      ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', UUID],
      ['{1,2,NULL}', INT4_ARRAY],
      ['\\x00ff', BYTEA],
      ['1 year 2 mons 00:00:00.000001', INTERVAL],
      ['x,"y"\n\tz — ü 😀', TEXT],
      ['', TEXT],
      ['42', TEXT],
      ['t', 99999],
    ];
    for (const [text, oid] of cases) {
      expect(viaJson(text, oid)).toBe(text);
      expect(pgValueToJson(text, oid)).toBe(text);
    }
  });

  it('NULL is null, never the empty string', () => {
    for (const oid of [TEXT, PgTypeOid.int8, PgTypeOid.numeric, PgTypeOid.bool, PgTypeOid.jsonb]) expect(pgValueToJson(null, oid)).toBeNull();
    expect(pgValueToJson('', TEXT)).toBe('');
  });

  it('names built-in types and returns null for others', () => {
    expect(pgTypeName(PgTypeOid.int8)).toBe('int8');
    expect(pgTypeName(TIMESTAMPTZ)).toBe('timestamptz');
    expect(pgTypeName(16385)).toBeNull();
  });
});
