import net from 'node:net';

/**
 * A connection's reads, taken from pg while CopyOut reads a COPY's output and
 * given back at its end.
 */
export interface ReadFeed {
  /**
   * Every read goes to `take` from now on, not to pg. `take` returns false to
   * stop reading until `resumeReads()`: the bytes it was given may be those of
   * the next read once reading goes on, so what it handed out must be done
   * with by then, and what it keeps must be a copy.
   */
  divertReads(take: (bytes: Buffer) => boolean): void;
  resumeReads(): void;
  /** Reads go to pg again, `rest` (the last read's bytes past the COPY's end) first. */
  restoreReads(rest: Buffer): void;
}

/**
 * Bytes one socket read takes at most. Each read costs the reader some
 * JavaScript garbage (a promise, views), which fills V8's young generation
 * and so RSS, the more the longer the run: more per read means fewer reads
 * (2M rows out of 4 shards: 5,997 reads at 64 KiB, Node's own size, 3,300
 * at 256 KiB; the kernel seldom holds more).
 */
const READ_BYTES = 256 * 1024;
/**
 * Bytes of a session's first reads: most sessions (a count, a describe, a
 * short result) never fill them, and 32 shards' 256 KiB buffers cost node
 * ~14 ms to allocate. A read that fills it moves the session to READ_BYTES.
 */
const FIRST_READ_BYTES = 16 * 1024;

/**
 * A TCP socket for pg whose reads all land in one buffer of its own.
 *
 * Node's socket takes a fresh 64 KiB buffer for every read, which V8 frees
 * only at a GC that external memory pressure sets off, and a COPY makes
 * little other garbage to set off one sooner: `query --format ndjson` of 2M
 * rows out of 4 shards read 172 MiB in 2,840 such buffers, and the
 * process's peak of ArrayBuffer memory went from 17 MiB (200k rows) to 34 MiB
 * (2M rows), peak RSS from 87 to 107 MiB. Read with `onread` (Node's API for
 * exactly this: no 'data' events, a buffer the caller owns, pausing by
 * returning false), a read allocates no buffer: the peak of ArrayBuffer
 * memory stays at 2.7 MiB at either size.
 *
 * While no CopyOut has diverted the reads, each read is given to pg as a
 * 'data' event, copied: pg's parser keeps the buffer it is given (a message
 * cut by the read's end, CopyData payloads as views of it), so it must own it.
 * Under TLS pg reads a TLSSocket it puts over this one, which Node reads
 * itself: connect() gives pg a plain net.Socket then (see `socketForPg`).
 */
export class OwnedReadSocket extends net.Socket implements ReadFeed {
  #take: ((bytes: Buffer) => boolean) | null = null;
  #corked = false;

  constructor() {
    let buffer = Buffer.allocUnsafe(FIRST_READ_BYTES);
    // Set right after super(): the callback runs only for reads, which come later.
    let self: OwnedReadSocket | undefined;
    // `onread` is an option of the constructor too (Node 20's lib/net.js), though @types/node lists it only for connect().
    // Its `buffer` may be a function, asked for the buffer of each read.
    const options: net.SocketConstructorOpts & net.ConnectOpts = {
      onread: {
        buffer: () => buffer,
        callback: (length: number, read: Uint8Array) => {
          const bytes = Buffer.from(read.buffer, read.byteOffset, length);
          // The next read goes to the larger buffer; these bytes stay valid until the consumer is done.
          if (length === read.length && read.length < READ_BYTES) buffer = Buffer.allocUnsafe(READ_BYTES);
          return self!.#arrived(bytes);
        },
      },
    };
    super(options);
    self = this;
  }

  /**
   * pg writes each protocol message by itself (Parse, Bind, Describe,
   * Execute, Flush: five writes for one query): the messages written in one
   * tick go out as one (cork until the next tick), half the system calls
   * of a query session.
   */
  override write(buffer: Uint8Array | string, cb?: (err?: Error | null) => void): boolean;
  override write(str: Uint8Array | string, encoding?: BufferEncoding, cb?: (err?: Error | null) => void): boolean;
  override write(...args: unknown[]): boolean {
    if (!this.#corked) {
      this.#corked = true;
      this.cork();
      process.nextTick(() => {
        this.#corked = false;
        this.uncork();
      });
    }
    return (super.write as (...a: unknown[]) => boolean)(...args);
  }

  /** A read came in `bytes` (the buffer's start); false pauses the socket (Node's onread contract). */
  #arrived(bytes: Buffer): boolean {
    const take = this.#take;
    if (take) return take(bytes);
    this.emit('data', Buffer.from(bytes));
    return true;
  }

  divertReads(take: (bytes: Buffer) => boolean): void {
    this.#take = take;
  }

  resumeReads(): void {
    this.resume();
  }

  restoreReads(rest: Buffer): void {
    this.#take = null;
    if (rest.length) this.emit('data', Buffer.from(rest));
  }
}

/** The socket pg is to read through: ours, except under TLS (pg wraps what it is given; see OwnedReadSocket). */
export function socketForPg(config: { ssl?: unknown } = {}): net.Socket {
  return config.ssl ? new net.Socket() : new OwnedReadSocket();
}

interface EventSocket {
  listeners(event: 'data'): Array<(chunk: Buffer) => void>;
  removeListener(event: 'data', fn: (chunk: Buffer) => void): void;
  on(event: 'data', fn: (chunk: Buffer) => void): void;
  pause(): void;
  resume(): void;
}

/**
 * The feed of a socket Node reads itself (a TLSSocket): its 'data' events,
 * taken from pg's parser and given back to it. Each read is then a fresh
 * buffer, as with pg alone.
 */
class DataEvents implements ReadFeed {
  readonly #socket: EventSocket;
  readonly #pg: (chunk: Buffer) => void;
  #ours: ((chunk: Buffer) => void) | null = null;

  constructor(socket: EventSocket) {
    const listeners = socket.listeners('data');
    if (listeners.length !== 1) throw new Error(`COPY: expected one data listener on the connection, found ${listeners.length}`);
    this.#socket = socket;
    this.#pg = listeners[0]!;
  }

  divertReads(take: (bytes: Buffer) => boolean): void {
    const socket = this.#socket;
    socket.removeListener('data', this.#pg);
    this.#ours = (chunk) => {
      if (!take(chunk)) socket.pause();
    };
    socket.on('data', this.#ours);
  }

  resumeReads(): void {
    this.#socket.resume();
  }

  restoreReads(rest: Buffer): void {
    if (this.#ours) this.#socket.removeListener('data', this.#ours);
    this.#ours = null;
    this.#socket.on('data', this.#pg);
    if (rest.length) this.#pg(Buffer.from(rest));
  }
}

/** The feed of pg's connection socket: the socket itself when it is ours, its 'data' events otherwise. */
export function readFeedOf(socket: object): ReadFeed {
  return typeof (socket as Partial<ReadFeed>).divertReads === 'function' ? (socket as ReadFeed) : new DataEvents(socket as EventSocket);
}
