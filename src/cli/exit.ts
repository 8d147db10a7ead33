import { ExitCode } from '../errors.js';
import { drained } from './drained.js';

/**
 * The process's end, as a shell pipeline expects it.
 *
 * - The whole result reaches the reader: on Linux a pipe is written
 *   asynchronously, so exiting while stdout still holds data cuts the output
 *   at the pipe's 64 KiB buffer (and a CSV or SQL script downstream is
 *   silently incomplete). Before exiting, we wait until stdout and stderr
 *   have handed everything to the OS, however slow the reader.
 * - A reader that closed early (`| head -1`) has what it wanted: EPIPE ends
 *   the run quietly, with the command's own exit code (0 once it is done),
 *   as git and kubectl do.
 * - Any other write error on stdout (a full disk, EIO) means the result was
 *   lost: exit 1 with a message on stderr.
 */
export class ProcessExit {
  #stdoutClosed = false;
  #writeError: Error | null = null;

  constructor() {
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') this.#stdoutClosed = true;
      else this.#writeError ??= err;
    });
    // stderr is for people; an error there must never crash the run or change its outcome.
    process.stderr.on('error', () => {});
  }

  /** Flushes, then exits with `code`, or 1 when the result could not be written. */
  async exit(code: number): Promise<never> {
    await Promise.all([drained(process.stdout), drained(process.stderr)]);
    // A write's error is reported on a later tick, even for a file written synchronously.
    await new Promise((resolve) => setImmediate(resolve));
    if (this.#writeError && !this.#stdoutClosed) {
      process.stderr.write(`shardctl: cannot write the result to stdout: ${this.#writeError.message}\n`);
      await drained(process.stderr);
      process.exit(code === ExitCode.ok ? ExitCode.failed : code);
    }
    process.exit(code);
  }
}
