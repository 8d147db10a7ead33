import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CopyOut } from '../../src/postgres/copy-out.js';

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

/** A socket as pg leaves it: one 'data' listener (pg's parser), read() in paused mode, 'readable'. */
class FakeSocket {
  readonly toPg: Buffer[] = [];
  readonly #queue: Buffer[] = [];
  #dataListeners: Array<(chunk: Buffer) => void>;
  constructor(pg?: (chunk: Buffer) => void) {
    this.#dataListeners = [pg ?? ((chunk) => this.toPg.push(Buffer.from(chunk)))];
  }
  #readable: Array<() => void> = [];
  sent: string[] = [];

  listeners(): Array<(chunk: Buffer) => void> {
    return [...this.#dataListeners];
  }
  removeListener(event: string, fn: unknown): void {
    if (event === 'data') this.#dataListeners = this.#dataListeners.filter((f) => f !== fn);
    if (event === 'readable') this.#readable = this.#readable.filter((f) => f !== fn);
  }
  addListener(_event: 'data', fn: (chunk: Buffer) => void): void {
    this.#dataListeners.push(fn);
  }
  on(_event: 'readable', fn: () => void): void {
    this.#readable.push(fn);
  }
  pause(): void {}
  resume(): void {
    // Flowing again: pg's listener gets whatever is still queued.
    for (const chunk of this.#queue.splice(0)) for (const fn of this.#dataListeners) fn(chunk);
  }
  read(): Buffer | null {
    return this.#queue.shift() ?? null;
  }
  /** A socket read arrives. */
  arrive(chunk: Buffer): void {
    if (this.#readable.length) {
      this.#queue.push(chunk);
      for (const fn of [...this.#readable]) fn();
    } else for (const fn of this.#dataListeners) fn(chunk);
  }
}

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

/** Runs a CopyOut (a fresh one, or `given` already submitted) over `pieces`, feeding the next one whenever the reader waits. */
async function readAll(pieces: Buffer[], given?: { copy: CopyOut; socket: FakeSocket }): Promise<{ rows: string[]; counts: number[]; socket: FakeSocket; error: Error | null }> {
  const socket = given?.socket ?? new FakeSocket();
  const copy = given?.copy ?? new CopyOut('COPY (SELECT 1) TO STDOUT');
  if (!given) copy.submit({ stream: socket as never, query: (text: string) => socket.sent.push(text) });
  const rows: string[] = [];
  const counts: number[] = [];
  let next = 0;
  const feeder = setInterval(() => {
    if (next < pieces.length) socket.arrive(Buffer.from(pieces[next++]!));
  }, 0);
  try {
    for (;;) {
      const got = await copy.read();
      if (!got) break;
      // Copied now: the bytes are valid until the next read only.
      const text = got.text.toString('utf8');
      expect(text.endsWith('\n')).toBe(true);
      const lines = text.slice(0, -1).split('\n');
      expect(lines).toHaveLength(got.rows);
      rows.push(...lines);
      counts.push(got.rows);
    }
    return { rows, counts, socket, error: null };
  } catch (err) {
    return { rows, counts, socket, error: err as Error };
  } finally {
    clearInterval(feeder);
    // What pg would still get after the COPY.
    while (next < pieces.length) socket.arrive(Buffer.from(pieces[next++]!));
  }
}

const rowText = fc.string({ unit: fc.constantFrom('a', 'é', '😀', '\t', '\\n', '\\\\', 'x'), maxLength: 40 }).map((s) => `${s}\n`);
const TAIL = Buffer.concat([message('C', 'COPY 3\0'), message('Z', 'I')]);

describe('CopyOut', () => {
  it('gives every row once and in order, however socket reads cut the messages, and hands pg what follows CopyDone', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(rowText, { maxLength: 60 }), fc.array(fc.nat(5000), { maxLength: 30 }), fc.boolean(), async (rows, cuts, notice) => {
        const body = rows.map((r, i) => Buffer.concat([notice && i === 1 ? message('N', 'SNOTICE\0\0') : Buffer.alloc(0), message('d', r)]));
        const stream = Buffer.concat([message('H', Buffer.from([0, 0, 1, 0, 0])), ...body, message('c'), TAIL]);
        const got = await readAll(cutsOf(stream, cuts));
        expect(got.error).toBeNull();
        expect(got.rows).toEqual(rows.map((r) => r.slice(0, -1)));
        expect(got.counts.reduce((a, b) => a + b, 0)).toBe(rows.length);
        expect(Buffer.concat(got.socket.toPg).equals(TAIL)).toBe(true);
        expect(got.socket.sent).toEqual(['COPY (SELECT 1) TO STDOUT']);
      }),
      { numRuns: 300 },
    );
  });

  it('puts together a row longer than many socket reads', async () => {
    const wide = `${'w'.repeat(300_000)}\n`;
    const stream = Buffer.concat([message('H', Buffer.from([0, 0, 1, 0, 0])), message('d', 'a\n'), message('d', wide), message('d', 'b\n'), message('c'), TAIL]);
    const pieces = cutsOf(stream, Array.from({ length: 40 }, (_, i) => 7 + i * 8191));
    const got = await readAll(pieces);
    expect(got.rows).toEqual(['a', wide.slice(0, -1), 'b']);
    expect(Buffer.concat(got.socket.toPg).equals(TAIL)).toBe(true);
  });

  it('an ErrorResponse in the middle goes to pg from its first byte on (the rows before it still come), and fails the read once pg reports it', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(rowText, { minLength: 1, maxLength: 20 }), fc.array(fc.nat(2000), { maxLength: 10 }), async (rows, cuts) => {
        const error = Buffer.concat([message('E', 'SERROR\0C22012\0Mdivision by zero\0\0'), message('Z', 'E')]);
        const stream = Buffer.concat([message('H', Buffer.from([0, 0, 1, 0, 0])), ...rows.map((r) => message('d', r)), error]);
        // pg's parser, as far as this goes: once the error's message is whole, the client fails the query (handleError).
        let pgBytes = Buffer.alloc(0);
        const copy = new CopyOut('COPY (SELECT 1/0) TO STDOUT');
        const socket = new FakeSocket((chunk) => {
          pgBytes = Buffer.concat([pgBytes, chunk]);
          if (pgBytes.length >= 5 && pgBytes.length >= pgBytes.readUInt32BE(1) + 1) copy.handleError(new Error('division by zero'));
        });
        copy.submit({ stream: socket as never, query: () => {} });
        const got = await readAll(cutsOf(stream, cuts), { copy, socket });
        expect(got.error?.message).toBe('division by zero');
        expect(got.rows).toEqual(rows.map((r) => r.slice(0, -1)));
        // pg got the error from its first byte (and, once flowing again, what followed it).
        expect(error.subarray(0, pgBytes.length).equals(pgBytes.subarray(0, error.length))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('fail() ends a read that waits for data', async () => {
    const socket = new FakeSocket();
    const copy = new CopyOut('COPY (SELECT 1) TO STDOUT');
    copy.submit({ stream: socket as never, query: () => {} });
    const reading = copy.read();
    copy.fail(new Error('deadline'));
    await expect(reading).rejects.toThrow('deadline');
  });
});
