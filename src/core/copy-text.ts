/**
 * PostgreSQL COPY text format, the little of it the mover needs: rows end
 * with "\n" (a newline inside a value is escaped as \n), fields are separated
 * by tabs. Pure functions over Buffers.
 */

const NEWLINE = 0x0a;
const TAB = 0x09;

/**
 * Splits a stream of COPY text chunks into rows. Feed chunks in order; each
 * call returns the complete rows it can (as views into the chunk, no copy),
 * keeping a partial last row for the next call.
 */
export class CopyRowSplitter {
  #carry: Buffer | null = null;

  push(chunk: Buffer): Buffer[] {
    let data = chunk;
    if (this.#carry) {
      data = Buffer.concat([this.#carry, chunk]);
      this.#carry = null;
    }
    const rows: Buffer[] = [];
    let start = 0;
    for (;;) {
      const nl = data.indexOf(NEWLINE, start);
      if (nl < 0) break;
      rows.push(data.subarray(start, nl + 1));
      start = nl + 1;
    }
    if (start < data.length) this.#carry = Buffer.from(data.subarray(start));
    return rows;
  }

  /** Bytes of an unfinished row at the end of the stream (a truncated stream if non-zero). */
  get pendingBytes(): number {
    return this.#carry?.length ?? 0;
  }
}

/** The leading integer field of a row (the routing hash the mover selects first) and the rest of the row. */
export function splitLeadingHash(row: Buffer): { hash: number; rest: Buffer } {
  const tab = row.indexOf(TAB);
  if (tab < 0) throw new Error('COPY row has no tab after its leading hash field');
  let hash = 0;
  for (let i = 0; i < tab; i++) hash = hash * 10 + (row[i]! - 48);
  return { hash, rest: row.subarray(tab + 1) };
}

/**
 * One row of COPY text (without its "\n") as its values: `\N` is NULL, and
 * the escapes COPY TO writes (\b \f \n \r \t \v \\, and the octal or hex
 * byte escapes COPY FROM also reads, for ASCII) are undone, so a value is the
 * text PostgreSQL's output function printed.
 */
export function copyTextValues(line: string): Array<string | null> {
  const fields = line.split('\t');
  const values: Array<string | null> = new Array(fields.length);
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    values[i] = f === '\\N' ? null : f.includes('\\') ? unescapeCopyText(f) : f;
  }
  return values;
}

const COPY_ESCAPE = /\\(?:([0-7]{1,3})|x([0-9a-fA-F]{1,2})|([^]))/g;
const COPY_LETTERS: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

/** A field's text with COPY's backslash escapes undone. */
export function unescapeCopyText(field: string): string {
  return field.replace(COPY_ESCAPE, (_, octal: string | undefined, hex: string | undefined, char: string | undefined) => {
    if (octal) return String.fromCharCode(parseInt(octal, 8) & 0xff);
    if (hex) return String.fromCharCode(parseInt(hex, 16));
    return COPY_LETTERS[char!] ?? char!;
  });
}
