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
