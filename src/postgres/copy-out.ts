import { readFeedOf, type ReadFeed } from './socket-reads.js';

/**
 * One `COPY … TO STDOUT` (text format) read straight off the connection's
 * socket and handed to a consumer a read at a time (`stream()`): the whole
 * rows that came in one socket read, as COPY text (the CopyData framing
 * stripped in place: no copy of a row, no object per row) and how many rows
 * that is, from inside the socket's read callback.
 *
 * pg-copy-streams does the same job as a Readable; this is its
 * protocol handling (take the socket from pg while the COPY runs, hand it
 * back at CopyDone or at an ErrorResponse so pg reads the rest) without its
 * per-message buffer list, which cost more CPU than turning the rows into
 * NDJSON (2M rows: one take() and one subarray per row, a Buffer.concat per
 * chunk).
 *
 * A consumer that takes the rows at once (returns nothing) lets reading go
 * on, with no promise per read (a long export makes thousands, and their
 * garbage fills V8's young generation, so RSS, with the run's length). One
 * that returns a promise stops reading until it settles: the server waits
 * meanwhile, and on a socket that reads into one buffer (socket-reads.ts) the
 * next read may write where the rows were. What must outlive a read (a
 * message the read's end cut) is copied. A dead connection or PostgreSQL's
 * error ends the stream with it once the consumer is done (pg reports both
 * through handleError).
 */

export interface CopyRows {
  /** Whole rows of COPY text, each ending in "\n". */
  text: Buffer;
  rows: number;
}

interface Connection {
  /** The socket pg reads (see readFeedOf). */
  stream: object;
  query(text: string): void;
}

/** The least memory kept for putting a cut message together with the read that completes it. */
const ASSEMBLY_BYTES = 256 * 1024;
/** The least memory kept for a cut message's bytes until the read that completes it. */
const CUT_BYTES = 64 * 1024;

const COPY_DATA = 0x64; // d
const COPY_DONE = 0x63; // c
const ERROR_RESPONSE = 0x45; // E
const COPY_OUT_RESPONSE = 0x48; // H
const NOTICE_RESPONSE = 0x4e; // N
const PARAMETER_STATUS = 0x53; // S
const NOTIFICATION_RESPONSE = 0x41; // A

/** A pg Submittable: `client.query(new CopyOut(sql))`, then `stream(consumer)` (or `read()` until null). */
export class CopyOut {
  readonly text: string;
  #feed: ReadFeed | null = null;
  /** A message cut by the end of a read: its bytes so far (a copy, in memory kept for it), and the total it needs. */
  #cut: Buffer = Buffer.alloc(0);
  #cutBytes = 0;
  #cutNeeds = 0;
  /** Where a cut message and the read that completes it are put together (reused: see stream()). */
  #assembly: Buffer = Buffer.alloc(0);
  /** The rows of the last read, until the consumer takes them. */
  #ready: CopyRows | null = null;
  /** Reading stopped at the rows of a read: it goes on once the consumer is done with them. */
  #paused = false;
  /** CopyDone seen (or the reads given back to pg at an ErrorResponse or an unexpected message). */
  #detached = false;
  /** What of the read being parsed goes to pg. */
  #rest: Buffer | null = null;
  #done = false;
  #failure: Error | null = null;
  #consumer: ((rows: CopyRows) => void | Promise<void>) | null = null;
  /** The consumer's promise for the rows it holds has not settled. */
  #consuming = false;
  /** Inside the socket's read callback (whose return value says whether reading goes on). */
  #inRead = false;
  /** The stream's end, once the rows are all taken and the COPY is over. */
  #streamed: { resolve(): void; reject(err: Error): void } | null = null;
  /** The read() that waits (reading pulled instead of streamed). */
  #waiting: { resolve(rows: CopyRows | null): void; reject(err: Error): void } | null = null;

  constructor(text: string) {
    this.text = text;
  }

  // ---- pg's side (Submittable) ----

  submit(connection: Connection): void {
    const feed = readFeedOf(connection.stream);
    this.#feed = feed;
    feed.divertReads((bytes) => this.#take(bytes));
    connection.query(this.text);
  }

  handleError(err: Error): void {
    this.#failure ??= err;
    this.#deliver();
  }

  handleCommandComplete(): void {}

  /** The query is over: after CopyDone, or after an error (already reported), or after whatever pg was handed instead. */
  handleReadyForQuery(): void {
    this.#done = true;
    this.#deliver();
  }

  // ---- the consumer's side ----

  /** Every row has been taken and the COPY is over. */
  get ended(): boolean {
    return this.#done && !this.#ready && !this.#consuming && !this.#failure;
  }

  /**
   * Hands every read's rows to `consumer`, in order, one read at a time. The
   * rows' bytes are valid until it returns, or until the promise it returns
   * settles. Resolves once the COPY is over and every row taken; rejects with
   * PostgreSQL's error, the connection's, fail()'s or the consumer's.
   */
  stream(consumer: (rows: CopyRows) => void | Promise<void>): Promise<void> {
    if (this.#consumer) throw new Error('COPY: streamed twice');
    this.#consumer = consumer;
    return new Promise((resolve, reject) => {
      this.#streamed = { resolve, reject };
      this.#deliver();
    });
  }

  /**
   * Pulled instead of streamed: the next whole rows, or null after the last;
   * PostgreSQL's error (or the connection's) otherwise. The rows' bytes are
   * valid until the next read: reading stops at them until then.
   */
  read(): Promise<CopyRows | null> {
    if (this.#consumer) throw new Error('COPY: read() while streamed');
    // The rows handed out last are done with.
    if (!this.#ready) this.#free();
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
      this.#deliver();
    });
  }

  /** Fails the stream (the deadline, a close), once the consumer is done with what it holds. */
  fail(err: Error): void {
    this.#failure ??= err;
    this.#deliver();
  }

  /** Gives the consumer (or the waiting read) the rows that are ready, or the end when there is nothing more to give. */
  #deliver(): void {
    if (!this.#consumer) return this.#answerRead();
    if (this.#consuming) return;
    const rows = this.#ready;
    if (rows) {
      this.#ready = null;
      let taken: void | Promise<void>;
      try {
        taken = this.#consumer(rows);
      } catch (err) {
        this.#failure ??= err instanceof Error ? err : new Error(String(err));
        taken = undefined;
      }
      if (taken) {
        this.#consuming = true;
        taken.then(
          () => this.#consumed(),
          (err: unknown) => {
            this.#failure ??= err instanceof Error ? err : new Error(String(err));
            this.#consumed();
          },
        );
        return;
      }
      this.#free();
    }
    const streamed = this.#streamed;
    if (!streamed || (!this.#failure && !this.#done)) return;
    this.#streamed = null;
    if (this.#failure) streamed.reject(this.#failure);
    else streamed.resolve();
  }

  #answerRead(): void {
    const waiting = this.#waiting;
    if (!waiting) return;
    const rows = this.#ready;
    if (rows) this.#ready = null;
    else if (!this.#failure && !this.#done) return;
    this.#waiting = null;
    if (rows) waiting.resolve(rows);
    else if (this.#failure) waiting.reject(this.#failure);
    else waiting.resolve(null);
  }

  #consumed(): void {
    this.#consuming = false;
    this.#free();
    this.#deliver();
  }

  /** The consumer is done with the rows: the next read may go where they were. */
  #free(): void {
    if (!this.#paused) return;
    this.#paused = false;
    // Inside the read callback its return value says so; otherwise reading is started again.
    if (!this.#inRead && !this.#failure) this.#feed!.resumeReads();
  }

  /** One read's bytes (valid only during this call); false stops reading until the consumer is done with their rows. */
  #take(bytes: Buffer): boolean {
    this.#inRead = true;
    try {
      const rows = this.#parse(bytes);
      const rest = this.#rest;
      if (rows) {
        // Once the COPY is over pg reads on, into the same memory maybe: its last rows are copied (once per COPY).
        this.#ready = rest ? { text: Buffer.from(rows.text), rows: rows.rows } : rows;
        this.#paused = !rest;
      }
      if (rest) {
        // pg may end the query in there (handleReadyForQuery, handleError): the rows before are ready by then.
        this.#rest = null;
        this.#feed!.restoreReads(rest);
      }
      this.#deliver();
    } finally {
      this.#inRead = false;
    }
    return !this.#paused;
  }

  /** The CopyData payloads of one read, moved together to the buffer's start; the rest waits or goes to pg. */
  #parse(chunk: Buffer): CopyRows | null {
    let data = chunk;
    let end = chunk.length;
    if (this.#cutNeeds) {
      const bytes = this.#cutBytes + chunk.length;
      // A message longer than a read (a wide row) is put together once, not once per read.
      if (bytes < this.#cutNeeds) {
        this.#keepCut(chunk, this.#cutNeeds);
        return null;
      }
      // Nearly every read completes a row the one before cut: they are put together in memory kept for it,
      // not in a new buffer per read (which only a GC frees); twice as large as needed, so a read a little
      // longer than the last one fits too.
      if (this.#assembly.length < bytes) this.#assembly = Buffer.allocUnsafe(Math.max(ASSEMBLY_BYTES, 2 * bytes));
      data = this.#assembly;
      end = bytes;
      this.#cut.copy(data, 0, 0, this.#cutBytes);
      chunk.copy(data, this.#cutBytes);
      this.#cutBytes = 0;
      this.#cutNeeds = 0;
    }
    let at = 0;
    let out = 0;
    let rows = 0;
    while (at < end) {
      const code = data[at]!;
      if (code === ERROR_RESPONSE) {
        // pg parses the error (and the ReadyForQuery after it) and fails the query through handleError.
        this.#detach(data.subarray(at, end));
        break;
      }
      if (at + 5 > end) {
        this.#keepCut(data.subarray(at, end), 5);
        break;
      }
      const next = at + 1 + data.readUInt32BE(at + 1);
      if (next > end) {
        this.#keepCut(data.subarray(at, end), next - at);
        break;
      }
      if (code === COPY_DATA) {
        // One message is one row (PostgreSQL sends a CopyData per row); out <= at, so this never overwrites unread bytes.
        if (out !== at + 5) data.copyWithin(out, at + 5, next);
        out += next - at - 5;
        rows++;
      } else if (code === COPY_DONE) {
        this.#done = true;
        this.#detach(data.subarray(next, end));
        break;
      } else if (code !== COPY_OUT_RESPONSE && code !== NOTICE_RESPONSE && code !== PARAMETER_STATUS && code !== NOTIFICATION_RESPONSE) {
        // Not part of a COPY's output (the statement did not start one): pg makes sense of it.
        this.#done = true;
        this.#detach(data.subarray(at, end));
        break;
      }
      at = next;
    }
    return rows ? { text: data.subarray(0, out), rows } : null;
  }

  /**
   * Appends bytes of a cut message to what is kept of it, `needs` bytes in
   * all making it whole. A copy: they are in a read's memory or the
   * assembly's, which the next read reuses, and the rows before them are
   * handed out in the same memory.
   */
  #keepCut(bytes: Buffer, needs: number): void {
    const size = this.#cutBytes + bytes.length;
    if (this.#cut.length < size) {
      const grown = Buffer.allocUnsafe(Math.max(CUT_BYTES, needs, size));
      this.#cut.copy(grown, 0, 0, this.#cutBytes);
      this.#cut = grown;
    }
    bytes.copy(this.#cut, this.#cutBytes);
    this.#cutBytes = size;
    this.#cutNeeds = needs;
  }

  /** The reads go back to pg, with the bytes read past the COPY's end (once this read's rows are ready: see #take). */
  #detach(rest: Buffer): void {
    if (this.#detached) return;
    this.#detached = true;
    this.#rest = rest;
  }
}
