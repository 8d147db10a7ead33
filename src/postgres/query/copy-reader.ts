import type { Readable } from 'node:stream';

/**
 * The chunks of one `COPY … TO STDOUT` (text format), pulled one at a time:
 * the stream (pg-copy-streams) pauses the socket while nobody reads, so the
 * server waits and memory stays at the stream's buffer.
 *
 * pg-copy-streams reports a dead connection or PostgreSQL's error by
 * emitting 'error', possibly while nobody reads: the first one is kept and
 * fails the next read.
 */
export class CopyReader {
  readonly #stream: Readable;
  #failure: Error | null = null;
  #ended = false;
  /** The read waiting for data, woken by 'readable', 'end' or 'error'. */
  #wake: (() => void) | null = null;

  constructor(stream: Readable) {
    this.#stream = stream;
    const wake = () => {
      const w = this.#wake;
      this.#wake = null;
      w?.();
    };
    stream.on('readable', wake);
    stream.on('end', () => {
      this.#ended = true;
      wake();
    });
    stream.on('error', (err: Error) => {
      this.#failure ??= err;
      wake();
    });
  }

  /** The next chunk of COPY text (whole rows or not), null after the last; PostgreSQL's error otherwise. */
  async read(): Promise<Buffer | null> {
    for (;;) {
      if (this.#failure) throw this.#failure;
      const chunk = this.#stream.read() as Buffer | null;
      if (chunk !== null) return chunk;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  /** Fails the read in flight (the deadline, a close). */
  fail(err: Error): void {
    this.#failure ??= err;
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }
}
