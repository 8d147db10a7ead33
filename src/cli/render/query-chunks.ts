import { drained } from '../drained.js';

/**
 * Output of a query writer in chunks, with back-pressure: rows are appended
 * to a string and handed to the stream once it holds CHUNK_CHARS (2M rows
 * are ~1,000 writes, not 2M), and when the stream says it is full, the
 * caller gets a promise that settles on 'drain' (the engine stops reading
 * its cursors meanwhile).
 */

/** About 64 KiB of text per write: a pipe's buffer on Linux. */
export const CHUNK_CHARS = 64 * 1024;

type Destination = NodeJS.WritableStream & { destroyed?: boolean; writableEnded?: boolean; writableLength?: number };

export class ChunkedOutput {
  readonly #out: Destination;
  #chunk = '';
  #failed = false;

  constructor(out: NodeJS.WritableStream) {
    this.#out = out;
    // process.stdout is never destroyed: a write's EPIPE (or EIO) only comes as 'error' (src/cli/exit.ts reports it).
    out.on('error', () => {
      this.#failed = true;
    });
  }

  /**
   * The reader is gone (`| head`: EPIPE) or writing failed: nothing more is
   * written, and an engine may stop reading.
   */
  get closed(): boolean {
    return !!(this.#failed || this.#out.destroyed || this.#out.writableEnded);
  }

  /**
   * Everything written so far has left the stream (given to the OS, or to a
   * file synchronously): a stream such as process.stdout then holds no
   * reference to the bytes. (Not so for a stream that passes chunks on, like a
   * PassThrough: it is empty once it has queued them for its reader.)
   */
  get settled(): boolean {
    return this.#chunk === '' && this.#out.writableLength === 0;
  }

  /** Appends text; writes a full chunk, returning a promise while the stream is full. */
  append(text: string): void | Promise<void> {
    this.#chunk += text;
    if (this.#chunk.length >= CHUNK_CHARS) return this.flush();
  }

  /** Appends text and writes everything pending now. */
  write(text: string): void | Promise<void> {
    this.#chunk += text;
    return this.flush();
  }

  /** Writes what is pending and then `bytes` (already a chunk's worth); a promise while the stream is full. */
  writeBytes(bytes: Buffer): void | Promise<void> {
    const pending = this.#chunk;
    this.#chunk = '';
    if (this.closed) return;
    if (pending) this.#out.write(pending);
    return this.#wait(this.#out.write(bytes));
  }

  /** Writes what is pending; a promise when the stream asks to wait. */
  flush(): void | Promise<void> {
    const chunk = this.#chunk;
    this.#chunk = '';
    if (!chunk || this.closed) return;
    return this.#wait(this.#out.write(chunk));
  }

  /**
   * A promise only when the stream holds bytes it has not handed on: a write
   * larger than its highWaterMark returns false even when it went to the OS
   * at once (process.stdout into a pipe or a file writes synchronously), and
   * a promise per write would be garbage for nothing (2M rows: ~6,000).
   */
  #wait(written: boolean): void | Promise<void> {
    if (written || this.#out.writableLength === 0) return;
    return drained(this.#out);
  }
}
