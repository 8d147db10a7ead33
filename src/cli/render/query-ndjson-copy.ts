import { unescapeCopyText } from '../../core/copy-text.js';
import { pgJsonEncoder, pgJsonKind } from '../../core/pg-values.js';
import type { QueryColumn } from '../../engine/query/types.js';
import { fieldNames } from './query-keys.js';

/**
 * Rows of COPY text straight to NDJSON bytes, the same bytes RowJsonEncoder
 * writes for the same values: no string per value, no string per row, no
 * object per row. This is the hot loop of a large export (2M rows: every
 * byte of the result passes through it once), so it is one pass over the
 * input writing into a large output buffer, a byte at a time, with the work
 * that does not depend on the row (each field's `,"key":`, each column's
 * way of writing its values) chosen once from the columns.
 *
 * Per column, by its type (see pg-values.ts for the JSON each type gets):
 * - text and every type printed as a JSON string: COPY's escapes become
 *   JSON's, `"` `\` and control characters are escaped as JSON.stringify
 *   escapes them, everything else (UTF-8 included) is copied;
 * - int2/int4/oid: copied; int8 of at most 15 characters: copied;
 * - numeric of at most 15 digits, `-?D+(.D+)?`: copied (it survives a double);
 * - bool `t`/`f`: true/false;
 * - jsonb: COPY's escapes undone, copied; json: the same, with line breaks
 *   made spaces (one row per line);
 * - anything else (float, a long int8 or numeric, NaN, …): the value's text,
 *   decoded, through its column's pgJsonEncoder.
 * NULL (`\N`) is null for every type, never "".
 */
export class CopyNdjsonEncoder {
  /** Each field's `,"key":`; for text-like columns `,"key":"` (the opening quote is part of it). */
  readonly #keys: Words[];
  /** Each field's `,"key":` without the quote, for NULL. */
  readonly #nullKeys: Words[];
  readonly #kinds: Uint8Array;
  readonly #encoders: Array<(text: string) => string>;
  /** Bytes a row adds beyond its COPY text at most, besides its shard head (with the up to 3 bytes a word written past a constant's end). */
  readonly #rowOverhead: number;
  #slab: Buffer = Buffer.allocUnsafe(0);
  #slabView: DataView = new DataView(new ArrayBuffer(0));
  #slabAt = 0;
  #dataBuffer: ArrayBufferLike | null = null;
  #dataView: DataView = new DataView(new ArrayBuffer(0));
  /** Each shard's `{"shard":"…"`, made once: chunks of the shards come interleaved. */
  readonly #heads = new Map<string, Words>();

  /** `items`: each row as `,\n{…}` (an item of a JSON array that is already open) instead of `{…}\n`. */
  readonly #items: boolean;

  constructor(columns: readonly QueryColumn[], layout: 'lines' | 'items' = 'lines') {
    this.#items = layout === 'items';
    const names = fieldNames(columns).slice(1);
    this.#kinds = Uint8Array.from(columns, (c) => kindOf(c.typeOid));
    this.#nullKeys = names.map((name) => words(`,${JSON.stringify(name)}:`));
    this.#keys = names.map((name, i) => words(`,${JSON.stringify(name)}:${this.#kinds[i] === TEXT ? '"' : ''}`));
    this.#encoders = columns.map((c) => pgJsonEncoder(c.typeOid));
    // A key (and 3 bytes past it), `null` or two quotes, and `}\n` (or `,\n` and `}`).
    this.#rowOverhead = this.#nullKeys.reduce((n, k) => n + k.length + 8, 3 + 3);
  }

  /**
   * `rows` whole rows of COPY text (each ending in "\n") from `shard`, as
   * NDJSON lines (or JSON array items, see the constructor). The bytes returned are a view into a large buffer that
   * later calls do not write again, until `recycle()`.
   */
  encode(shard: string, data: Buffer, rows: number): Buffer {
    if (data.length === 0) return Buffer.alloc(0);
    if (data[data.length - 1] !== NEWLINE) throw new Error('COPY text does not end with a whole row');
    let head = this.#heads.get(shard);
    if (!head) this.#heads.set(shard, (head = words(`{"shard":${JSON.stringify(shard)}`)));
    // A byte of COPY text becomes at most 6 ("\u0001"); a row adds its head, keys, quotes and braces.
    const bound = data.length * 6 + rows * (head.length + 3 + this.#rowOverhead);
    if (this.#slab.length - this.#slabAt < bound) {
      // Twice the bound: the next chunk's is often a little larger (a 256 KiB read's is ~1.6 MB), and a
      // slab of just this one's made a new one at most chunks (29 slabs in a 2M-row export; 2 now).
      this.#slab = Buffer.allocUnsafe(Math.max(SLAB_BYTES, 2 * bound));
      this.#slabView = new DataView(this.#slab.buffer, this.#slab.byteOffset, this.#slab.length);
      this.#slabAt = 0;
    }
    const out = this.#slab;
    const outWords = this.#slabView;
    // One view of the input's memory for as long as chunks come in it (a session's read buffer): not one per chunk.
    if (data.buffer !== this.#dataBuffer) {
      this.#dataBuffer = data.buffer;
      this.#dataView = new DataView(data.buffer);
    }
    const dataWords = this.#dataView;
    const base = data.byteOffset;
    const start = this.#slabAt;
    const keys = this.#keys;
    const kinds = this.#kinds;
    const columns = kinds.length;
    const end = data.length;
    const items = this.#items;
    let p = start;
    let i = 0;
    while (i < end) {
      if (items) {
        out[p++] = 0x2c; // ,
        out[p++] = NEWLINE;
      }
      p = head.write(outWords, p);
      for (let col = 0; col < columns; col++) {
        // NULL: `\N` and the field's end (a value that starts with a backslash has it escaped, `\\`).
        if (data[i] === BACKSLASH && data[i + 1] === 0x4e && (data[i + 2] === TAB || data[i + 2] === NEWLINE)) {
          p = this.#nullKeys[col]!.write(outWords, p);
          out[p++] = 0x6e; // null
          out[p++] = 0x75;
          out[p++] = 0x6c;
          out[p++] = 0x6c;
          i += 3;
          continue;
        }
        p = keys[col]!.write(outWords, p);
        const kind = kinds[col]!;
        if (kind === TEXT) {
          // The value as a JSON string's content, then its closing quote; i ends past the field's tab or newline.
          for (;;) {
            // Four bytes at once while none of them is a control character (a tab or newline: the end), `"` or `\`.
            if (i + 4 <= end) {
              const w = dataWords.getInt32(base + i, true);
              if (plainWord(w)) {
                outWords.setInt32(p, w, true);
                i += 4;
                p += 4;
                continue;
              }
            }
            let c = data[i++]!;
            if (PLAIN[c] === 1) {
              out[p++] = c;
              continue;
            }
            if (c === TAB || c === NEWLINE) break;
            if (c === BACKSLASH) {
              c = data[i++]!;
              const letter = COPY_LETTERS[c]!;
              if (letter !== 0xff) c = letter;
              else if (c >= 0x30 && c <= 0x37) {
                // \NNN: up to three octal digits (COPY FROM syntax; COPY TO does not write it for UTF-8).
                c -= 0x30;
                for (let k = 0; k < 2 && data[i]! >= 0x30 && data[i]! <= 0x37; k++) c = ((c << 3) | (data[i++]! - 0x30)) & 0xff;
              } else if (c === 0x78 && isHex(data[i]!)) {
                c = hexValue(data[i++]!);
                if (isHex(data[i]!)) c = (c << 4) | hexValue(data[i++]!);
              } else if (c === TAB || c === NEWLINE) {
                // A backslash at the field's end (not COPY TO output): kept, as unescapeCopyText keeps it.
                i--;
                c = BACKSLASH;
              }
            }
            if (c === QUOTE || c === BACKSLASH) {
              out[p++] = BACKSLASH;
              out[p++] = c;
            } else if (c < 0x20) {
              out[p++] = BACKSLASH;
              const short = SHORT_ESCAPES[c]!;
              if (short !== 0) out[p++] = short;
              else {
                out[p++] = 0x75; // u
                out[p++] = 0x30;
                out[p++] = 0x30;
                out[p++] = HEX[c >> 4]!;
                out[p++] = HEX[c & 15]!;
              }
            } else out[p++] = c;
          }
          out[p++] = QUOTE;
          continue;
        }
        let stop = i;
        while (data[stop] !== TAB && data[stop] !== NEWLINE) stop++;
        if (kind === INTEGER || (kind === BIGINT && stop - i <= 15) || (kind === NUMERIC && shortDecimal(data, i, stop))) {
          while (i < stop) out[p++] = data[i++]!;
        } else if (kind === BOOL && stop - i === 1 && (data[i] === 0x74 || data[i] === 0x66)) {
          if (data[i] === 0x74) {
            out[p++] = 0x74; // true
            out[p++] = 0x72;
            out[p++] = 0x75;
            out[p++] = 0x65;
          } else {
            out[p++] = 0x66; // false
            out[p++] = 0x61;
            out[p++] = 0x6c;
            out[p++] = 0x73;
            out[p++] = 0x65;
          }
        } else if (kind === JSONB || kind === JSON_TEXT) {
          p = unescapeInto(data, i, stop, out, p, kind === JSON_TEXT ? 'line-breaks-as-spaces' : 'bytes');
        } else {
          let text = data.toString('utf8', i, stop);
          if (text.includes('\\')) text = unescapeCopyText(text);
          p += out.write(this.#encoders[col]!(text), p, 'utf8');
        }
        i = stop + 1;
      }
      out[p++] = 0x7d; // }
      if (!items) out[p++] = NEWLINE;
    }
    this.#slabAt = p;
    return out.subarray(start, p);
  }

  /**
   * Every result handed out so far is written and referenced nowhere (the
   * stream has given them to the OS): the next `encode` writes over them
   * instead of going on into fresh memory. Without it each 4 MiB buffer is
   * garbage once filled, and a 2M-row export leaves V8 ~75 of them to collect
   * (GC and peak RSS that grow with the rows).
   */
  recycle(): void {
    this.#slabAt = 0;
  }
}

/**
 * A constant's bytes (a key, the shard head) as little-endian 32-bit words,
 * written a word at a time: up to 3 bytes past its end are written too, and
 * overwritten by what follows (the output's bound leaves room for them).
 */
class Words {
  readonly #words: Int32Array;
  constructor(readonly length: number, bytes: Uint8Array) {
    const padded = new Uint8Array(Math.ceil(length / 4) * 4);
    padded.set(bytes);
    this.#words = new Int32Array(padded.length / 4);
    const view = new DataView(padded.buffer);
    for (let k = 0; k < this.#words.length; k++) this.#words[k] = view.getInt32(k * 4, true);
  }
  /** Writes the bytes at `p`; returns the position after them. */
  write(out: DataView, p: number): number {
    const w = this.#words;
    for (let k = 0; k < w.length; k++) out.setInt32(p + k * 4, w[k]!, true);
    return p + this.length;
  }
}

function words(text: string): Words {
  const bytes = Buffer.from(text);
  return new Words(bytes.length, bytes);
}

/**
 * None of the word's four bytes is below 0x20, `"` or `\` (SWAR: a byte's
 * high bit after adding 0x60 to its low 7 bits says it is >= 0x20; the
 * has-zero-byte test on the word XOR a repeated `"` or `\`).
 */
function plainWord(w: number): boolean {
  const x = w ^ 0x22222222;
  const y = w ^ 0x5c5c5c5c;
  return ((((w & 0x7f7f7f7f) + 0x60606060) | w) & HIGH_BITS) === HIGH_BITS && ((((x - 0x01010101) & ~x) | ((y - 0x01010101) & ~y)) & HIGH_BITS) === 0;
}

const HIGH_BITS = 0x80808080 | 0;

/** Output buffers are this large (or twice one chunk's bound); each is written front to back, and again after recycle(). */
const SLAB_BYTES = 1 << 20;

const TEXT = 0;
const INTEGER = 1;
const BIGINT = 2;
const NUMERIC = 3;
const BOOL = 4;
const JSONB = 5;
const JSON_TEXT = 6;
const OTHER = 7;

function kindOf(typeOid: number): number {
  switch (pgJsonKind(typeOid)) {
    case 'text':
      return TEXT;
    case 'integer':
      return INTEGER;
    case 'bigint':
      return BIGINT;
    case 'numeric':
      return NUMERIC;
    case 'bool':
      return BOOL;
    case 'jsonb':
      return JSONB;
    case 'json':
      return JSON_TEXT;
    default:
      return OTHER;
  }
}

const TAB = 0x09;
const NEWLINE = 0x0a;
const BACKSLASH = 0x5c;
const QUOTE = 0x22;
const HEX = Buffer.from('0123456789abcdef');
/** 1 for a byte a JSON string holds as it is: not a control character, `"` or `\` (nor a tab or newline, which end a COPY field). */
const PLAIN = new Uint8Array(256).fill(1);
for (let c = 0; c < 0x20; c++) PLAIN[c] = 0;
PLAIN[QUOTE] = 0;
PLAIN[BACKSLASH] = 0;
/** JSON.stringify's two-character escapes, by code (0: none, it is \u00xx). */
const SHORT_ESCAPES = new Uint8Array(0x20);
SHORT_ESCAPES[0x08] = 0x62;
SHORT_ESCAPES[0x09] = 0x74;
SHORT_ESCAPES[0x0a] = 0x6e;
SHORT_ESCAPES[0x0c] = 0x66;
SHORT_ESCAPES[0x0d] = 0x72;
/** COPY's letter escapes, by letter, as the byte they stand for (0xff: not one). */
const COPY_LETTERS = new Uint8Array(256).fill(0xff);
COPY_LETTERS[0x62] = 0x08;
COPY_LETTERS[0x66] = 0x0c;
COPY_LETTERS[0x6e] = 0x0a;
COPY_LETTERS[0x72] = 0x0d;
COPY_LETTERS[0x74] = 0x09;
COPY_LETTERS[0x76] = 0x0b;

/**
 * numeric text `-?D+(.D+)?` of at most 15 digits: numericFitsDouble holds for
 * it (at most 15 significant digits, and a non-zero one is within 1e-15 ..
 * 1e15), so its JSON is its own text.
 */
function shortDecimal(data: Buffer, start: number, stop: number): boolean {
  let i = start;
  if (data[i] === 0x2d) i++;
  let digits = 0;
  let intDigits = 0;
  let dot = false;
  for (; i < stop; i++) {
    const c = data[i]!;
    if (c >= 0x30 && c <= 0x39) {
      digits++;
      if (!dot) intDigits++;
    } else if (c === 0x2e && !dot && intDigits > 0) dot = true;
    else return false;
  }
  return digits <= 15 && intDigits > 0 && (!dot || digits > intDigits);
}

/**
 * A COPY text field's bytes from `start` to `stop` written into `out` at `p` with COPY's escapes
 * undone; returns where the next byte goes. `as`: 'bytes' as they are (jsonb: its text is already
 * JSON), 'line-breaks-as-spaces' (json text: CR and LF become spaces), 'csv-quoted' (inside a
 * quoted CSV field: `"` doubled).
 */
export function unescapeInto(data: Buffer, start: number, stop: number, out: Buffer, p: number, as: 'bytes' | 'line-breaks-as-spaces' | 'csv-quoted'): number {
  const spaces = as === 'line-breaks-as-spaces';
  const quotes = as === 'csv-quoted';
  let i = start;
  while (i < stop) {
    let c = data[i++]!;
    if (c === BACKSLASH && i < stop) {
      const e = copyEscape(data, i, stop);
      c = e.value;
      i = e.next;
    }
    if (spaces && (c === NEWLINE || c === 0x0d)) c = 0x20;
    out[p++] = c;
    if (quotes && c === 0x22) out[p++] = 0x22;
  }
  return p;
}

const escaped = { value: 0, next: 0 };

/**
 * The byte the escape after a backslash stands for (`at`: the byte after
 * it, `stop`: the field's end) and where the escape ends: COPY's letters,
 * and the octal and hex forms COPY FROM also reads (COPY TO does not write
 * them for UTF-8); any other byte stands for itself. One object, reused: read
 * it before the next call.
 */
export function copyEscape(data: Buffer, at: number, stop: number): { value: number; next: number } {
  let i = at;
  let c = data[i++]!;
  const letter = COPY_LETTERS[c]!;
  if (letter !== 0xff) c = letter;
  else if (c >= 0x30 && c <= 0x37) {
    c -= 0x30;
    for (let k = 0; k < 2 && i < stop && data[i]! >= 0x30 && data[i]! <= 0x37; k++) c = ((c << 3) | (data[i++]! - 0x30)) & 0xff;
  } else if (c === 0x78 && i < stop && isHex(data[i]!)) {
    c = hexValue(data[i++]!);
    if (i < stop && isHex(data[i]!)) c = (c << 4) | hexValue(data[i++]!);
  }
  escaped.value = c;
  escaped.next = i;
  return escaped;
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}

function hexValue(c: number): number {
  return c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57;
}
