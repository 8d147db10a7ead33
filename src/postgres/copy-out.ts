/**
 * One `COPY … TO STDOUT` (text format) read straight off the connection's
 * socket, pulled a chunk at a time: each `read()` gives the whole rows that
 * came in one socket read, as COPY text (the CopyData framing stripped in
 * place: no copy of a row, no object per row) and how many rows that is.
 *
 * pg-copy-streams does the same job as a Readable; this is its
 * protocol handling (take the socket from pg while the COPY runs, hand it
 * back at CopyDone or at an ErrorResponse so pg reads the rest) without its
 * per-message buffer list, which cost more CPU than turning the rows into
 * NDJSON (2M rows: one take() and one subarray per row, a Buffer.concat per
 * chunk).
 *
 * The socket is paused while nobody reads, so the server waits and memory
 * stays at one socket read. A dead connection or PostgreSQL's error fails the
 * next read (pg reports both through handleError, also while nobody reads).
 */

export interface CopyRows {
  /** Whole rows of COPY text, each ending in "\n". */
  text: Buffer;
  rows: number;
}

interface Socket {
  read(): Buffer | null;
  pause(): void;
  resume(): void;
  listeners(event: 'data'): Array<(chunk: Buffer) => void>;
  removeListener(event: string, fn: (...args: never[]) => void): void;
  addListener(event: 'data', fn: (chunk: Buffer) => void): void;
  on(event: 'readable', fn: () => void): void;
}

interface Connection {
  stream: Socket;
  query(text: string): void;
}

/** The least memory kept for putting a cut message together with the read that completes it. */
const ASSEMBLY_BYTES = 256 * 1024;

const COPY_DATA = 0x64; // d
const COPY_DONE = 0x63; // c
const ERROR_RESPONSE = 0x45; // E
const COPY_OUT_RESPONSE = 0x48; // H
const NOTICE_RESPONSE = 0x4e; // N
const PARAMETER_STATUS = 0x53; // S
const NOTIFICATION_RESPONSE = 0x41; // A

/** A pg Submittable: `client.query(new CopyOut(sql))`, then `read()` until null. */
export class CopyOut {
  readonly text: string;
  #connection: Connection | null = null;
  #pgOnData: ((chunk: Buffer) => void) | null = null;
  readonly #onReadable = () => this.#wakeUp();
  /** A message cut by the end of a socket read: its bytes so far, and the total it needs. */
  #partial: Buffer[] = [];
  #partialBytes = 0;
  #partialNeeds = 0;
  /** Where a cut message and the socket read that completes it are put together (reused: see read()). */
  #assembly: Buffer = Buffer.alloc(0);
  /** CopyDone seen (or the socket given back to pg at an ErrorResponse or an unexpected message). */
  #detached = false;
  #done = false;
  #failure: Error | null = null;
  #wake: (() => void) | null = null;

  constructor(text: string) {
    this.text = text;
  }

  // ---- pg's side (Submittable) ----

  submit(connection: Connection): void {
    this.#connection = connection;
    const socket = connection.stream;
    const listeners = socket.listeners('data');
    if (listeners.length !== 1) throw new Error(`COPY: expected one data listener on the connection, found ${listeners.length}`);
    this.#pgOnData = listeners[0]!;
    socket.removeListener('data', this.#pgOnData);
    socket.pause();
    socket.on('readable', this.#onReadable);
    connection.query(this.text);
  }

  handleError(err: Error): void {
    this.#failure ??= err;
    this.#wakeUp();
  }

  handleCommandComplete(): void {}

  /** The query is over: after CopyDone, or after an error (already reported), or after whatever pg was handed instead. */
  handleReadyForQuery(): void {
    this.#done = true;
    this.#wakeUp();
  }

  // ---- the reader's side ----

  /**
   * The next whole rows, or null after the last; PostgreSQL's error (or the
   * connection's) otherwise. The rows' bytes are valid until the next read:
   * it may put the next rows in the same memory.
   */
  async read(): Promise<CopyRows | null> {
    for (;;) {
      if (this.#failure) throw this.#failure;
      if (this.#done) return null;
      const chunk = this.#detached ? null : this.#connection?.stream.read() ?? null;
      if (chunk !== null) {
        const rows = this.#parse(chunk);
        if (rows) return rows;
        continue;
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  /** Fails the read in flight and every later one (the deadline, a close). */
  fail(err: Error): void {
    this.#failure ??= err;
    this.#wakeUp();
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /** The CopyData payloads of one socket read, moved together to the buffer's start; the rest waits or goes to pg. */
  #parse(chunk: Buffer): CopyRows | null {
    let data = chunk;
    if (this.#partialNeeds) {
      this.#partial.push(chunk);
      this.#partialBytes += chunk.length;
      // A message longer than a socket read (a wide row) is put together once, not once per read.
      if (this.#partialBytes < this.#partialNeeds) return null;
      // Nearly every read completes a row the one before cut: put them together in memory kept for it,
      // not in a new buffer per read (64 KiB each, which only a full GC frees).
      if (this.#assembly.length < this.#partialBytes) this.#assembly = Buffer.allocUnsafe(Math.max(ASSEMBLY_BYTES, this.#partialBytes));
      data = this.#assembly.subarray(0, this.#partialBytes);
      let at = 0;
      for (const piece of this.#partial) at += piece.copy(data, at);
      this.#partial = [];
      this.#partialBytes = 0;
      this.#partialNeeds = 0;
    }
    const end = data.length;
    let at = 0;
    let out = 0;
    let rows = 0;
    while (at < end) {
      const code = data[at]!;
      if (code === ERROR_RESPONSE) {
        // pg parses the error (and the ReadyForQuery after it) and fails the query through handleError.
        this.#detach(data.subarray(at));
        break;
      }
      if (at + 5 > end) {
        this.#keepPartial(data.subarray(at), 5);
        break;
      }
      const next = at + 1 + data.readUInt32BE(at + 1);
      if (next > end) {
        this.#keepPartial(data.subarray(at), next - at);
        break;
      }
      if (code === COPY_DATA) {
        // One message is one row (PostgreSQL sends a CopyData per row); out <= at, so this never overwrites unread bytes.
        if (out !== at + 5) data.copyWithin(out, at + 5, next);
        out += next - at - 5;
        rows++;
      } else if (code === COPY_DONE) {
        this.#done = true;
        this.#detach(data.subarray(next));
        break;
      } else if (code !== COPY_OUT_RESPONSE && code !== NOTICE_RESPONSE && code !== PARAMETER_STATUS && code !== NOTIFICATION_RESPONSE) {
        // Not part of a COPY's output (the statement did not start one): pg makes sense of it.
        this.#done = true;
        this.#detach(data.subarray(at));
        break;
      }
      at = next;
    }
    return rows ? { text: data.subarray(0, out), rows } : null;
  }

  #keepPartial(bytes: Buffer, needs: number): void {
    // A copy: the rows before it are handed out in the same buffer, and it must outlive them.
    this.#partial = [Buffer.from(bytes)];
    this.#partialBytes = bytes.length;
    this.#partialNeeds = needs;
  }

  /** Gives the socket back to pg, with the bytes read past the COPY's end. */
  #detach(rest: Buffer): void {
    if (this.#detached) return;
    this.#detached = true;
    const socket = this.#connection!.stream;
    const pgOnData = this.#pgOnData!;
    socket.removeListener('readable', this.#onReadable);
    socket.addListener('data', pgOnData);
    if (rest.length) pgOnData(Buffer.from(rest));
    // As pg-copy-streams does: resume on the next tick, once pg's own handling of `rest` is done.
    process.nextTick(() => socket.resume());
  }
}
