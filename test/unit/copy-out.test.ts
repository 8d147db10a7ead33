import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CopyOut, type CopyRows } from '../../src/postgres/copy-out.js';
import type { ReadFeed } from '../../src/postgres/socket-reads.js';

/*
 * CopyOut's protocol handling without a server: the bytes a COPY TO STDOUT
 * answer is made of, cut at arbitrary points as socket reads cut them, give
 * back every row once, in order, with the right counts; whatever follows the
 * COPY (or an error in its middle) goes back to pg's own handler, byte for
 * byte.
 */

const message = (code: string, body: Buffer | string = Buffer.alloc(0)) => {
  const payload = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const head = Buffer.alloc(5);
  head[0] = code.charCodeAt(0);
  head.writeUInt32BE(payload.length + 4, 1);
  return Buffer.concat([head, payload]);
};

/** What a test socket feeds the CopyOut and hands pg; `arrive` is one socket read (false: not now, reading is paused). */
interface TestSocket {
  readonly pg: PgModel;
  readonly sent: string[];
  arrive(chunk: Buffer): boolean;
}

type PgListener = (chunk: Buffer) => void;

/**
 * pg's side, as far as a COPY goes: it collects what it is given and, once
 * a message is whole, ends the query as pg would, at once and from inside
 * the read that brought it (an ErrorResponse fails it, ReadyForQuery ends it).
 */
class PgModel {
  readonly bytes: Buffer[] = [];
  copy: CopyOut | null = null;
  #pending = Buffer.alloc(0);
  readonly listener: PgListener = (chunk) => {
    this.bytes.push(Buffer.from(chunk));
    this.#pending = Buffer.concat([this.#pending, chunk]);
    while (this.#pending.length >= 5 && this.#pending.length >= this.#pending.readUInt32BE(1) + 1) {
      const code = String.fromCharCode(this.#pending[0]!);
      this.#pending = this.#pending.subarray(this.#pending.readUInt32BE(1) + 1);
      if (code === 'E') this.copy?.handleError(new Error('division by zero'));
      if (code === 'Z') this.copy?.handleReadyForQuery();
    }
  };
}

/**
 * A socket that reads into one buffer of its own, as OwnedReadSocket does
 * (it is its own ReadFeed): every read lands in the same memory, and the
 * memory is scribbled over as soon as the next read may go there, so any
 * byte the CopyOut keeps or hands out without a copy past that point shows up
 * as corruption.
 */
class ReusingSocket implements TestSocket, ReadFeed {
  readonly sent: string[] = [];
  readonly #memory = Buffer.alloc(64 * 1024);
  readonly #pg: PgListener;
  #take: ((bytes: Buffer) => boolean) | null = null;
  #paused = false;

  constructor(readonly pg: PgModel) {
    this.#pg = pg.listener;
  }
  divertReads(take: (bytes: Buffer) => boolean): void {
    this.#take = take;
  }
  resumeReads(): void {
    this.#paused = false;
    this.#memory.fill(0xee);
  }
  restoreReads(rest: Buffer): void {
    this.#take = null;
    if (rest.length) this.#pg(Buffer.from(rest));
  }
  arrive(chunk: Buffer): boolean {
    if (this.#paused) return false;
    // pg is given its own copy, as OwnedReadSocket gives it.
    if (!this.#take) return this.#pg(Buffer.from(chunk)), true;
    // Longer than the memory: as several reads.
    for (let at = 0; at < chunk.length; at += this.#memory.length) {
      if (this.#paused) throw new Error('a read arrived while reading was paused');
      const n = chunk.copy(this.#memory, 0, at);
      const take = this.#take;
      if (!take) this.#pg(Buffer.from(this.#memory.subarray(0, n)));
      else if (!take(this.#memory.subarray(0, n))) this.#paused = true;
      if (!this.#paused) this.#memory.fill(0xee);
    }
    return true;
  }
}

/** A socket Node reads itself (a TLSSocket): pg's parser as its one 'data' listener, pause() and resume() of a flowing stream. */
class DataEventSocket implements TestSocket {
  readonly sent: string[] = [];
  #listeners: PgListener[];
  #flowing = true;
  readonly #queue: Buffer[] = [];

  constructor(readonly pg: PgModel) {
    this.#listeners = [pg.listener];
  }
  listeners(): PgListener[] {
    return [...this.#listeners];
  }
  removeListener(_event: 'data', fn: PgListener): void {
    this.#listeners = this.#listeners.filter((f) => f !== fn);
  }
  on(_event: 'data', fn: PgListener): void {
    this.#listeners.push(fn);
  }
  pause(): void {
    this.#flowing = false;
  }
  resume(): void {
    this.#flowing = true;
    while (this.#flowing && this.#queue.length) this.#emit(this.#queue.shift()!);
  }
  arrive(chunk: Buffer): boolean {
    if (this.#flowing) this.#emit(chunk);
    else this.#queue.push(chunk);
    return true;
  }
  #emit(chunk: Buffer): void {
    for (const fn of [...this.#listeners]) fn(chunk);
  }
}

const SOCKETS = [
  ['a socket that reads into one reused buffer', () => new ReusingSocket(new PgModel())],
  ["a socket's 'data' events", () => new DataEventSocket(new PgModel())],
] as const;

function cutsOf(stream: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let previous = 0;
  for (const p of [...points, stream.length]) {
    if (p > previous) pieces.push(stream.subarray(previous, p));
    previous = p;
  }
  return pieces;
}

function submitted(socket: TestSocket, text = 'COPY (SELECT 1) TO STDOUT'): CopyOut {
  const copy = new CopyOut(text);
  socket.pg.copy = copy;
  copy.submit({ stream: socket as never, query: (sent: string) => socket.sent.push(sent) });
  return copy;
}

type Mode = 'streamed' | 'pulled';

/**
 * Reads `copy` to its end, streamed (a consumer) or pulled (read() until
 * null), feeding the next piece whenever the socket takes it. A `lingering`
 * reader gives the event loop a turn before it looks at the rows it got (a
 * streamed one returns a promise meanwhile), so the feeder would overwrite
 * them then if reading were not stopped; otherwise it takes them at once.
 */
async function readAll(pieces: Buffer[], socket: TestSocket, copy: CopyOut, lingering: boolean, mode: Mode): Promise<{ rows: string[]; counts: number[]; error: Error | null }> {
  const rows: string[] = [];
  const counts: number[] = [];
  const take = (got: CopyRows) => {
    const text = got.text.toString('utf8');
    expect(text.endsWith('\n')).toBe(true);
    const lines = text.slice(0, -1).split('\n');
    expect(lines).toHaveLength(got.rows);
    rows.push(...lines);
    counts.push(got.rows);
  };
  const linger = () => new Promise((resolve) => setTimeout(resolve, 1));
  let next = 0;
  const feeder = setInterval(() => {
    if (next < pieces.length && socket.arrive(Buffer.from(pieces[next]!))) next++;
  }, 0);
  try {
    if (mode === 'streamed') await copy.stream((got) => (lingering ? linger().then(() => take(got)) : take(got)));
    else {
      for (let got = await copy.read(); got; got = await copy.read()) {
        if (lingering) await linger();
        take(got);
      }
    }
    return { rows, counts, error: null };
  } catch (err) {
    return { rows, counts, error: err as Error };
  } finally {
    clearInterval(feeder);
    // What pg would still get after the COPY: reading goes on for it.
    for (; next < pieces.length; next++) if (!socket.arrive(Buffer.from(pieces[next]!))) throw new Error('reading stayed paused after the COPY');
  }
}

const rowText = fc.string({ unit: fc.constantFrom('a', 'é', '😀', '\t', '\\n', '\\\\', 'x'), maxLength: 40 }).map((s) => `${s}\n`);
const TAIL = Buffer.concat([message('C', 'COPY 3\0'), message('Z', 'I')]);

const CASES = SOCKETS.flatMap(([name, socketOf]) => (['streamed', 'pulled'] as const).map((mode) => [mode, name, socketOf] as const));

describe.each(CASES)('CopyOut %s over %s', (mode, _name, socketOf) => {
  it('gives every row once and in order, however socket reads cut the messages, and hands pg what follows CopyDone', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(rowText, { maxLength: 60 }), fc.array(fc.nat(5000), { maxLength: 30 }), fc.boolean(), fc.boolean(), async (rows, cuts, notice, lingering) => {
        const body = rows.map((r, i) => Buffer.concat([notice && i === 1 ? message('N', 'SNOTICE\0\0') : Buffer.alloc(0), message('d', r)]));
        const stream = Buffer.concat([message('H', Buffer.from([0, 0, 1, 0, 0])), ...body, message('c'), TAIL]);
        const socket = socketOf();
        const got = await readAll(cutsOf(stream, cuts), socket, submitted(socket), lingering, mode);
        expect(got.error).toBeNull();
        expect(got.rows).toEqual(rows.map((r) => r.slice(0, -1)));
        expect(got.counts.reduce((a, b) => a + b, 0)).toBe(rows.length);
        expect(Buffer.concat(socket.pg.bytes).equals(TAIL)).toBe(true);
        expect(socket.sent).toEqual(['COPY (SELECT 1) TO STDOUT']);
      }),
      { numRuns: 150 },
    );
  });

  it('puts together a row longer than many socket reads', async () => {
    const wide = `${'w'.repeat(300_000)}\n`;
    const stream = Buffer.concat([message('H', Buffer.from([0, 0, 1, 0, 0])), message('d', 'a\n'), message('d', wide), message('d', 'b\n'), message('c'), TAIL]);
    const pieces = cutsOf(stream, Array.from({ length: 40 }, (_, i) => 7 + i * 8191));
    const socket = socketOf();
    const got = await readAll(pieces, socket, submitted(socket), true, mode);
    expect(got.rows).toEqual(['a', wide.slice(0, -1), 'b']);
    expect(Buffer.concat(socket.pg.bytes).equals(TAIL)).toBe(true);
  });

  it('an ErrorResponse in the middle goes to pg from its first byte on (the rows before it still come), and fails the read once pg reports it', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(rowText, { minLength: 1, maxLength: 20 }), fc.array(fc.nat(2000), { maxLength: 10 }), fc.boolean(), async (rows, cuts, lingering) => {
        const error = Buffer.concat([message('E', 'SERROR\0C22012\0Mdivision by zero\0\0'), message('Z', 'E')]);
        const stream = Buffer.concat([message('H', Buffer.from([0, 0, 1, 0, 0])), ...rows.map((r) => message('d', r)), error]);
        const socket = socketOf();
        const got = await readAll(cutsOf(stream, cuts), socket, submitted(socket, 'COPY (SELECT 1/0) TO STDOUT'), lingering, mode);
        expect(got.error?.message).toBe('division by zero');
        expect(got.rows).toEqual(rows.map((r) => r.slice(0, -1)));
        // pg got the error from its first byte on.
        expect(Buffer.concat(socket.pg.bytes).equals(error)).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it('fail() ends a read that waits for data', async () => {
    const copy = submitted(socketOf());
    const reading = mode === 'streamed' ? copy.stream(() => {}) : copy.read();
    copy.fail(new Error('deadline'));
    await expect(reading).rejects.toThrow('deadline');
  });
});

describe('CopyOut over a socket that reads into one reused buffer', () => {
  it('streamed: reading goes on while the consumer takes each read at once, and stops while it holds one (a promise) until that settles', async () => {
    const socket = new ReusingSocket(new PgModel());
    const copy = submitted(socket);
    const got: string[] = [];
    let hold: Promise<void> | null = null;
    let release!: () => void;
    const streaming = copy.stream((rows) => {
      got.push(rows.text.toString());
      if (hold) return hold.then(() => void got.push(`after ${rows.text.toString()}`));
    });
    expect(socket.arrive(Buffer.concat([message('H', Buffer.from([0, 0, 1, 0, 0])), message('d', 'a\n')]))).toBe(true);
    expect(socket.arrive(message('d', 'b\n'))).toBe(true);
    hold = new Promise<void>((resolve) => (release = resolve));
    expect(socket.arrive(message('d', 'c\n'))).toBe(true);
    // The consumer holds 'c': no read may come, and its bytes stay as they were.
    expect(socket.arrive(message('d', 'd\n'))).toBe(false);
    hold = null;
    release();
    await new Promise((resolve) => setImmediate(resolve));
    expect(got).toEqual(['a\n', 'b\n', 'c\n', 'after c\n']);
    expect(socket.arrive(Buffer.concat([message('d', 'd\n'), message('c'), TAIL]))).toBe(true);
    await streaming;
    expect(got).toEqual(['a\n', 'b\n', 'c\n', 'after c\n', 'd\n']);
  });


  it('pulled: stops reading at each read that brought rows until the reader comes back, and goes on then', async () => {
    const socket = new ReusingSocket(new PgModel());
    const copy = submitted(socket);
    expect(socket.arrive(Buffer.concat([message('H', Buffer.from([0, 0, 1, 0, 0])), message('d', 'a\n')]))).toBe(true);
    // The rows of that read wait for the reader: the next read may not come yet.
    expect(socket.arrive(message('d', 'b\n'))).toBe(false);
    const first = await copy.read();
    expect(first?.text.toString()).toBe('a\n');
    expect(socket.arrive(message('d', 'b\n'))).toBe(false);
    // Back for more: the reader is done with 'a', reading goes on.
    const second = copy.read();
    expect(socket.arrive(message('d', 'b\n'))).toBe(true);
    expect((await second)?.text.toString()).toBe('b\n');
  });
});
