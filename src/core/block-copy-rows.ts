/**
 * The rows of a block-ordered copy as the source sends them, COPY text
 * `<ctid>\t<the table's columns…>\t<row digest>\n` (a ctid prints as
 * `(block,offset)`), taken apart in the copy's hot loop without a Buffer,
 * string or BigInt per row: the columns are copied straight into the buffer
 * that goes to the target, the block is read for the batch cut, the ctid is
 * added to the batch's list (what cleanup deletes by) and the digest to the
 * batch's sum. Pure.
 *
 * COPY text escapes a tab or newline inside a value, so a raw tab always
 * separates fields and a raw newline always ends a row.
 */

const NEWLINE = 0x0a;
const TAB = 0x09;
const OPEN = 0x28;
const COMMA = 0x2c;
const QUOTE = 0x22;
const EMPTY = Buffer.alloc(0);

export class BlockRowReader {
  #data: Buffer = EMPTY;
  #pos = 0;
  /** The rest of the chunk after a row that began in the one before (read once that row is). */
  #next: Buffer | null = null;
  /** The next row's newline and first tab, found by peekBlock (-1: not looked at yet). */
  #newline = -1;
  #tab = -1;

  /**
   * Takes the next chunk of the stream. A row cut by the chunk's start is
   * joined from the two pieces alone; the rest of the chunk is read in place
   * (no copy of the whole chunk for the sake of one row).
   */
  feed(chunk: Buffer): void {
    this.#newline = -1;
    if (this.#pos >= this.#data.length) {
      this.#data = chunk;
      this.#pos = 0;
      return;
    }
    const carry = this.#data.subarray(this.#pos);
    const end = chunk.indexOf(NEWLINE);
    this.#pos = 0;
    if (end < 0) {
      // A row longer than the chunk: it keeps growing until its newline comes.
      this.#data = Buffer.concat([carry, chunk]);
      return;
    }
    this.#data = Buffer.concat([carry, chunk.subarray(0, end + 1)]);
    this.#next = chunk.subarray(end + 1);
  }

  /** The heap block of the next whole row, or -1 when the data fed holds no whole row more. */
  peekBlock(): number {
    if (this.#newline < 0 && this.#pos >= this.#data.length && this.#next) {
      this.#data = this.#next;
      this.#next = null;
      this.#pos = 0;
    }
    const data = this.#data;
    if (this.#newline < 0) {
      const newline = data.indexOf(NEWLINE, this.#pos);
      if (newline < 0) return -1;
      const tab = data.indexOf(TAB, this.#pos);
      if (tab < 0 || tab > newline) throw new Error('a COPY row of the block copy has no tab after its block number');
      this.#newline = newline;
      this.#tab = tab;
    }
    if (data[this.#pos] !== OPEN) throw new Error('a COPY row of the block copy does not start with a ctid');
    let block = 0;
    for (let i = this.#pos + 1; i < this.#tab && data[i] !== COMMA; i++) block = block * 10 + (data[i]! - 48);
    return block;
  }

  /**
   * Consumes the row peekBlock just read: its columns and a newline are
   * written to `out` at `at` (the row's length is room enough), its ctid is
   * added to `tids` and its digest to `digests`. Returns where the next row
   * goes in `out`.
   */
  take(out: Buffer, at: number, digests: DigestSum, tids: TidList): number {
    const data = this.#data;
    const newline = this.#newline;
    if (newline < 0) throw new Error('BlockRowReader.take without a row peeked');
    const lastTab = data.lastIndexOf(TAB, newline);
    if (lastTab <= this.#tab) throw new Error('a COPY row of the block copy has no digest after its columns');
    digests.add(data, lastTab + 1, newline);
    tids.add(data, this.#pos, this.#tab);
    const end = at + data.copy(out, at, this.#tab + 1, lastTab);
    out[end] = NEWLINE;
    this.#pos = newline + 1;
    this.#newline = -1;
    return end + 1;
  }

  /** Bytes fed and not consumed: what an output buffer for the rest of the data needs at most. */
  get unreadBytes(): number {
    return this.#data.length - this.#pos + (this.#next?.length ?? 0);
  }

  /** An unfinished row is left (a truncated stream, at its end). */
  get pendingRow(): boolean {
    return this.#pos < this.#data.length || (this.#next?.length ?? 0) > 0;
  }
}

/**
 * The ctids of a batch's rows as a PostgreSQL `tid[]` literal
 * (`{"(0,1)","(0,2)"}`), built from the bytes the source sent.
 */
export class TidList {
  #buf = Buffer.allocUnsafe(64 * 1024);
  #length = 0;
  #count = 0;

  add(data: Buffer, start: number, end: number): void {
    const need = this.#length + (end - start) + 3;
    if (need > this.#buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, this.#buf.length * 2));
      this.#buf.copy(grown, 0, 0, this.#length);
      this.#buf = grown;
    }
    const buf = this.#buf;
    let at = this.#length;
    if (this.#count++ > 0) buf[at++] = COMMA;
    buf[at++] = QUOTE;
    // A ctid is a dozen bytes or so: a loop beats a native copy call per row.
    for (let i = start; i < end; i++) buf[at++] = data[i]!;
    buf[at++] = QUOTE;
    this.#length = at;
  }

  /** The literal of the ctids added since the last take, and a fresh start. */
  take(): string {
    const literal = `{${this.#buf.toString('latin1', 0, this.#length)}}`;
    this.#length = 0;
    this.#count = 0;
    return literal;
  }
}

/**
 * Sums signed 64-bit decimal digests read from COPY text without a string or
 * BigInt per row (the read's hot loop): each digest is split into its last 9
 * digits and the rest, summed as plain numbers, and folded into a BigInt
 * before either could lose precision.
 */
export class DigestSum {
  #high = 0;
  #low = 0;
  #count = 0;
  #total = 0n;

  add(buf: Buffer, start: number, end: number): void {
    let i = start;
    const negative = buf[i] === 0x2d;
    if (negative) i++;
    let high = 0;
    const split = Math.max(i, end - 9);
    for (; i < split; i++) high = high * 10 + (buf[i]! - 48);
    let low = 0;
    for (; i < end; i++) low = low * 10 + (buf[i]! - 48);
    if (negative) {
      this.#high -= high;
      this.#low -= low;
    } else {
      this.#high += high;
      this.#low += low;
    }
    // |high| < 1e10 and |low| < 1e9 per digest: 2^19 of them stay well inside 2^53.
    if (++this.#count === 1 << 19) this.#fold();
  }

  /** The sum so far, and a fresh start. */
  take(): bigint {
    this.#fold();
    const total = this.#total;
    this.#total = 0n;
    return total;
  }

  #fold(): void {
    this.#total += BigInt(this.#high) * 1_000_000_000n + BigInt(this.#low);
    this.#high = 0;
    this.#low = 0;
    this.#count = 0;
  }
}
