/**
 * How a value PostgreSQL sent in text format becomes JSON, by its column's
 * type oid. The rule is chosen so that no value changes on its way to a
 * script: a value becomes a JSON number only when every JSON reader gets
 * back exactly the number PostgreSQL meant; otherwise it stays the text
 * PostgreSQL printed, as a JSON string. NULL is JSON null, never "".
 *
 * | type                       | JSON                                                          |
 * | -------------------------- | ------------------------------------------------------------- |
 * | int2, int4, oid            | number                                                        |
 * | int8                       | number within ±(2^53−1), else the digits as a string          |
 * | numeric                    | number when it survives a double (below), else string         |
 * | float4, float8             | number; NaN, Infinity, -Infinity as strings                   |
 * | bool                       | true / false                                                  |
 * | json, jsonb                | the JSON value itself                                         |
 * | everything else            | the text exactly as PostgreSQL printed it (timestamps, dates, |
 * |                            | uuid, bytea as \x…, arrays as {…}, intervals, money, enums …)  |
 *
 * numeric "survives a double" when it has at most 15 significant digits
 * (IEEE 754 DBL_DIG: every such decimal converts to a double and back to the
 * same digits) and lies within 1e-307..1e308, or is an integer within
 * ±(2^53−1) like int8. Trailing zeros of the scale are not significant:
 * "1.10" is the number 1.1 (in the JSON text it is written 1.10, PostgreSQL's
 * own digits, so a reader that keeps number literals, such as jq 1.7 or
 * Python with parse_float=Decimal, still sees the scale). This keeps a
 * numeric(12,2) column all numbers; the stricter "its JSON number prints back
 * as the same text" would make 1.25 a number and 1.20 a string in the same
 * column. "12345678901234567890.123456789", "0.1234567890123456789", "NaN",
 * "Infinity" stay strings.
 */

/** pg_type oids of the built-in types that are not printed as JSON strings (pg_type.dat). */
export const PgTypeOid = {
  bool: 16,
  int8: 20,
  int2: 21,
  int4: 23,
  oid: 26,
  json: 114,
  float4: 700,
  float8: 701,
  numeric: 1700,
  jsonb: 3802,
} as const;

/** How a column's values become JSON; chosen once per column, from its type oid. */
export type PgJsonKind = 'integer' | 'bigint' | 'numeric' | 'float' | 'bool' | 'json' | 'jsonb' | 'text';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export function pgJsonKind(typeOid: number): PgJsonKind {
  switch (typeOid) {
    case PgTypeOid.int2:
    case PgTypeOid.int4:
    case PgTypeOid.oid:
      return 'integer';
    case PgTypeOid.int8:
      return 'bigint';
    case PgTypeOid.numeric:
      return 'numeric';
    case PgTypeOid.float4:
    case PgTypeOid.float8:
      return 'float';
    case PgTypeOid.bool:
      return 'bool';
    case PgTypeOid.json:
      return 'json';
    case PgTypeOid.jsonb:
      return 'jsonb';
    default:
      return 'text';
  }
}

/** The typed value of one text value (for callers that want JS values; the writers use pgJsonEncoder). */
export function pgValueToJson(text: string | null, typeOid: number): JsonValue {
  if (text === null) return null;
  switch (pgJsonKind(typeOid)) {
    case 'integer':
      return Number(text);
    case 'bigint':
      return isSafeIntegerText(text) ? Number(text) : text;
    case 'numeric':
      return numericFitsDouble(text) ? Number(text) : text;
    case 'float':
      return JSON_NUMBER.test(text) ? Number(text) : text;
    case 'bool':
      return text === 't' ? true : text === 'f' ? false : text;
    case 'json':
    case 'jsonb':
      return JSON.parse(text) as JsonValue;
    case 'text':
      return text;
  }
}

/**
 * A function from a non-null text value to its JSON text, for one column:
 * what a writer appends per value without building a JS value first. A
 * number is written with PostgreSQL's own digits (valid JSON number syntax),
 * so nothing is reformatted on the way.
 */
export function pgJsonEncoder(typeOid: number): (text: string) => string {
  switch (pgJsonKind(typeOid)) {
    case 'integer':
      // int2/int4/oid print as -?digits: already a JSON number.
      return passThrough;
    case 'bigint':
      // int8 prints as -?digits; up to 15 characters it is always safe, so the hot path is one length test.
      return (t) => (t.length <= 15 || isSafeIntegerText(t) ? t : JSON.stringify(t));
    case 'numeric':
      return (t) => (numericFitsDouble(t) ? t : JSON.stringify(t));
    case 'float':
      // float4 "3.4028235e+38" stays as printed: JSON.parse reads it as the nearest double, as Number() would.
      return (t) => (JSON_NUMBER.test(t) ? t : JSON.stringify(t));
    case 'bool':
      return (t) => (t === 't' ? 'true' : t === 'f' ? 'false' : JSON.stringify(t));
    case 'jsonb':
      // jsonb output is normalised, single-line JSON (newlines inside strings are escaped).
      return passThrough;
    case 'json':
      // json keeps its input text; a raw line break in valid JSON can only be whitespace between
      // tokens (JSON strings may not hold one), so replacing it keeps the value and one row per line.
      return (t) => (t.includes('\n') || t.includes('\r') ? t.replace(LINE_BREAKS, ' ') : t);
    case 'text':
      return JSON.stringify;
  }
}

/** The type's name for the result's column list; null for an oid that is not built in (an enum, a domain, …). */
export function pgTypeName(typeOid: number): string | null {
  return TYPE_NAMES.get(typeOid) ?? null;
}

const passThrough = (t: string): string => t;
const LINE_BREAKS = /[\r\n]/g;
/** RFC 8259's number grammar. */
const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;
const INTEGER = /^-?\d+$/;
const DECIMAL = /^-?(\d+)(?:\.(\d+))?$/;
/** DBL_DIG: decimals of at most this many significant digits round-trip through a double. */
const DOUBLE_DIGITS = 15;

/** An integer's text within ±(2^53−1). Up to 15 digits always is; a longer one is checked through Number (exact up to 2^53). */
export function isSafeIntegerText(text: string): boolean {
  if (!INTEGER.test(text)) return false;
  const digits = text.length - (text.charCodeAt(0) === 45 ? 1 : 0);
  return digits <= 15 || Number.isSafeInteger(Number(text));
}

/** numeric's text, read as a double, gives back the same decimal value (see the module comment). */
export function numericFitsDouble(text: string): boolean {
  const m = DECIMAL.exec(text);
  if (!m) return false; // NaN, Infinity, -Infinity
  const intPart = m[1]!;
  const fracPart = m[2] ?? '';
  if (!fracPart.replace(/0+$/, '') && isSafeIntegerText(text.replace(/\.0*$/, ''))) return true;
  const significant = (intPart + fracPart).replace(/^0+/, '').replace(/0+$/, '');
  if (significant.length > DOUBLE_DIGITS) return false;
  if (!significant) return true; // zero
  const magnitude = Math.abs(Number(text));
  return magnitude >= 1e-307 && magnitude < 1e308;
}

const TYPE_NAMES = new Map<number, string>([
  [16, 'bool'], [17, 'bytea'], [18, 'char'], [19, 'name'], [20, 'int8'], [21, 'int2'], [23, 'int4'],
  [24, 'regproc'], [25, 'text'], [26, 'oid'], [27, 'tid'], [28, 'xid'], [29, 'cid'], [114, 'json'],
  [142, 'xml'], [650, 'cidr'], [700, 'float4'], [701, 'float8'], [705, 'unknown'], [774, 'macaddr8'],
  [790, 'money'], [829, 'macaddr'], [869, 'inet'], [1042, 'bpchar'], [1043, 'varchar'], [1082, 'date'],
  [1083, 'time'], [1114, 'timestamp'], [1184, 'timestamptz'], [1186, 'interval'], [1266, 'timetz'],
  [1560, 'bit'], [1562, 'varbit'], [1700, 'numeric'], [2205, 'regclass'], [2206, 'regtype'],
  [2950, 'uuid'], [3220, 'pg_lsn'], [3614, 'tsvector'], [3802, 'jsonb'], [4072, 'jsonpath'], [5069, 'xid8'],
  [1000, '_bool'], [1001, '_bytea'], [1005, '_int2'], [1007, '_int4'], [1009, '_text'], [1015, '_varchar'],
  [1016, '_int8'], [1021, '_float4'], [1022, '_float8'], [1028, '_oid'], [1115, '_timestamp'],
  [1182, '_date'], [1185, '_timestamptz'], [1187, '_interval'], [1231, '_numeric'], [199, '_json'],
  [2951, '_uuid'], [3807, '_jsonb'],
]);
