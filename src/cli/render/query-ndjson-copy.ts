import { unescapeCopyText } from '../../core/copy-text.js';
import { pgJsonEncoder, pgJsonKind } from '../../core/pg-values.js';
import type { QueryColumn } from '../../engine/query/types.js';
import { fieldNames } from './query-keys.js';

/**
 * Rows of COPY text straight to NDJSON bytes, the same bytes RowJsonEncoder
 * writes for the same values: no string per value, no string per row. Text
 * values are escaped byte by byte (COPY's escapes become JSON's, `"` and
 * control characters are escaped as JSON.stringify does, UTF-8 passes
 * through); int2/int4/oid and short int8 are copied; bool is mapped; every
 * other type goes through its column's pgJsonEncoder on the decoded text.
 */
export class CopyNdjsonEncoder {
  readonly #keys: Buffer[];
  readonly #kinds: Kind[];
  readonly #encoders: Array<(text: string) => string>;
  readonly #fixedBytes: number;
  #scratch = Buffer.allocUnsafe(256 * 1024);
  #shard = '';
  #shardHead = Buffer.alloc(0);

  constructor(columns: readonly QueryColumn[]) {
    const names = fieldNames(columns).slice(1);
    this.#keys = names.map((name) => Buffer.from(`,${JSON.stringify(name)}:`));
    this.#kinds = columns.map((c) => kindOf(c.typeOid));
    this.#encoders = columns.map((c) => pgJsonEncoder(c.typeOid));
    this.#fixedBytes = this.#keys.reduce((n, k) => n + k.length + 6, 4);
  }

  /** `rows` whole rows of COPY text (each ending in "\n") from `shard`, as NDJSON lines. */
  encode(shard: string, data: Buffer, rows: number): Buffer {
    if (shard !== this.#shard) {
      this.#shard = shard;
      this.#shardHead = Buffer.from(`{"shard":${JSON.stringify(shard)}`);
    }
    const head = this.#shardHead;
    // A byte of COPY text becomes at most 6 ("\u000b"); a row adds its keys, quotes and braces.
    const bound = data.length * 6 + rows * (head.length + this.#fixedBytes);
    if (this.#scratch.length < bound) this.#scratch = Buffer.allocUnsafe(bound);
    const out = this.#scratch;
    const keys = this.#keys;
    const kinds = this.#kinds;
    const end = data.length;
    let p = 0;
    let i = 0;
    while (i < end) {
      p += head.copy(out, p);
      for (let col = 0; col < keys.length; col++) {
        p += keys[col]!.copy(out, p);
        // The field runs to the next tab or newline (COPY escapes both inside a value).
        let stop = i;
        while (stop < end && data[stop] !== TAB && data[stop] !== NEWLINE) stop++;
        if (stop - i === 2 && data[i] === BACKSLASH && data[i + 1] === 0x4e) {
          p += out.write('null', p, 'latin1');
        } else {
          p = this.#field(kinds[col]!, col, data, i, stop, out, p);
        }
        i = stop + 1;
      }
      out[p++] = 0x7d; // }
      out[p++] = NEWLINE;
    }
    return Buffer.from(out.subarray(0, p));
  }

  #field(kind: Kind, col: number, data: Buffer, start: number, stop: number, out: Buffer, p: number): number {
    switch (kind) {
      case 'text':
        return escapeText(data, start, stop, out, p);
      case 'integer':
        return p + data.copy(out, p, start, stop);
      case 'bigint':
        if (stop - start <= 15) return p + data.copy(out, p, start, stop);
        break;
      case 'bool':
        if (stop - start === 1 && data[start] === 0x74) return p + out.write('true', p, 'latin1');
        if (stop - start === 1 && data[start] === 0x66) return p + out.write('false', p, 'latin1');
        break;
    }
    let text = data.toString('utf8', start, stop);
    if (text.includes('\\')) text = unescapeCopyText(text);
    return p + out.write(this.#encoders[col]!(text), p, 'utf8');
  }
}

type Kind = 'text' | 'integer' | 'bigint' | 'bool' | 'other';

function kindOf(typeOid: number): Kind {
  const kind = pgJsonKind(typeOid);
  return kind === 'text' || kind === 'integer' || kind === 'bigint' || kind === 'bool' ? kind : 'other';
}

const TAB = 0x09;
const NEWLINE = 0x0a;
const BACKSLASH = 0x5c;
const QUOTE = 0x22;
const HEX = '0123456789abcdef';
/** JSON.stringify's two-character escapes, by code; every other control character is \u00xx. */
const SHORT_ESCAPES: Record<number, number> = { 0x08: 0x62, 0x09: 0x74, 0x0a: 0x6e, 0x0c: 0x66, 0x0d: 0x72 };
/** COPY's letter escapes, by letter, as the byte they stand for. */
const COPY_LETTERS: Record<number, number> = { 0x62: 0x08, 0x66: 0x0c, 0x6e: 0x0a, 0x72: 0x0d, 0x74: 0x09, 0x76: 0x0b };

/** A COPY text value as a JSON string, as JSON.stringify writes the value. */
function escapeText(data: Buffer, start: number, stop: number, out: Buffer, p: number): number {
  out[p++] = QUOTE;
  let i = start;
  while (i < stop) {
    let c = data[i++]!;
    if (c === BACKSLASH && i < stop) {
      const n = data[i++]!;
      const letter = COPY_LETTERS[n];
      if (letter !== undefined) c = letter;
      else if (n >= 0x30 && n <= 0x37) {
        // \NNN: up to three octal digits (COPY FROM syntax; COPY TO does not write it for UTF-8).
        c = n - 0x30;
        for (let k = 0; k < 2 && i < stop && data[i]! >= 0x30 && data[i]! <= 0x37; k++) c = ((c << 3) | (data[i++]! - 0x30)) & 0xff;
      } else if (n === 0x78 && i < stop && isHex(data[i]!)) {
        c = hexValue(data[i++]!);
        if (i < stop && isHex(data[i]!)) c = (c << 4) | hexValue(data[i++]!);
      } else c = n;
    }
    if (c === QUOTE || c === BACKSLASH) {
      out[p++] = BACKSLASH;
      out[p++] = c;
    } else if (c < 0x20) {
      out[p++] = BACKSLASH;
      const short = SHORT_ESCAPES[c];
      if (short !== undefined) out[p++] = short;
      else {
        out[p++] = 0x75; // u
        out[p++] = 0x30;
        out[p++] = 0x30;
        out[p++] = HEX.charCodeAt(c >> 4);
        out[p++] = HEX.charCodeAt(c & 15);
      }
    } else out[p++] = c;
  }
  out[p++] = QUOTE;
  return p;
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}

function hexValue(c: number): number {
  return c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57;
}
