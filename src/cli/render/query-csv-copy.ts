import { copyEscape, unescapeInto } from './query-ndjson-copy.js';

/**
 * COPY text rows (tab-separated fields, `\N` for NULL, COPY's backslash
 * escapes) as `--format csv` records, byte for byte what CsvWriter writes
 * for the same values through csv-stringify (query-csv.ts): `shard` first,
 * fields separated by commas, records ending in CRLF; NULL an empty
 * unquoted field; a value quoted when it is empty or holds a comma, a
 * quote, CR or LF, with its quotes doubled. No string per value: 2M rows
 * as CSV are one pass over the bytes instead of ~8 s of strings.
 */
export class CopyCsvEncoder {
  readonly #field: (value: string) => string;
  #slab: Buffer = Buffer.allocUnsafe(0);
  #slabAt = 0;
  /** Each shard's first field and its comma, made once: chunks of the shards come interleaved. */
  readonly #heads = new Map<string, Buffer>();

  /** `field`: one value as a CSV field, quoted as CsvWriter quotes (for the shard id). */
  constructor(field: (value: string) => string) {
    this.#field = field;
  }

  /**
   * `rows` whole rows of COPY text (each ending in "\n") from `shard`, as CSV
   * records. The bytes returned are a view into a large buffer that later
   * calls do not write again, until `recycle()`.
   */
  encode(shard: string, data: Buffer, rows: number): Buffer {
    if (data.length === 0) return Buffer.alloc(0);
    if (data[data.length - 1] !== NEWLINE) throw new Error('COPY text does not end with a whole row');
    let head = this.#heads.get(shard);
    if (!head) this.#heads.set(shard, (head = Buffer.from(`${this.#field(shard)},`)));
    // A byte becomes at most 2 (a quote doubled; an escape is 2 bytes for 1); a field adds 2
    // quotes, and a row its head and CRLF. Fields per row are at most the row's bytes.
    const bound = data.length * 4 + rows * (head.length + 2);
    if (this.#slab.length - this.#slabAt < bound) {
      this.#slab = Buffer.allocUnsafe(Math.max(SLAB_BYTES, 2 * bound));
      this.#slabAt = 0;
    }
    const out = this.#slab;
    const start = this.#slabAt;
    const end = data.length;
    let p = start;
    let i = 0;
    while (i < end) {
      p += head.copy(out, p);
      for (let first = true; ; first = false) {
        if (!first) out[p++] = COMMA;
        // NULL: `\N` and the field's end (a value that starts with a backslash has it escaped, `\\`).
        if (data[i] === BACKSLASH && data[i + 1] === 0x4e && (data[i + 2] === TAB || data[i + 2] === NEWLINE)) {
          i += 3;
          if (data[i - 1] === NEWLINE) break;
          continue;
        }
        // First the field's end and whether it must be quoted, then its bytes.
        let stop = i;
        let quote = false;
        for (let c = data[stop]!; c !== TAB && c !== NEWLINE; c = data[stop]!) {
          stop++;
          if (c === COMMA || c === QUOTE) quote = true;
          else if (c === BACKSLASH && stop < end && data[stop] !== TAB && data[stop] !== NEWLINE) {
            const b = copyEscape(data, stop, end);
            if (b.value === CR || b.value === NEWLINE || b.value === COMMA || b.value === QUOTE) quote = true;
            stop = b.next;
          }
        }
        if (stop === i) quote = true; // the empty string, told from NULL
        if (quote) out[p++] = QUOTE;
        // Doubling `"` is right unquoted too: a field with a `"` is quoted.
        p = unescapeInto(data, i, stop, out, p, 'csv-quoted');
        if (quote) out[p++] = QUOTE;
        i = stop + 1;
        if (data[stop] === NEWLINE) break;
      }
      out[p++] = CR;
      out[p++] = NEWLINE;
    }
    this.#slabAt = p;
    return out.subarray(start, p);
  }

  /** Every result handed out so far is written and referenced nowhere: the next `encode` writes over them. */
  recycle(): void {
    this.#slabAt = 0;
  }
}

const TAB = 0x09;
const NEWLINE = 0x0a;
const CR = 0x0d;
const COMMA = 0x2c;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** Output buffers are this large (or twice one chunk's bound). */
const SLAB_BYTES = 1 << 20;
