import type { LeaseGuard } from '../../metadata/lease.js';

/** Paces row throughput to at most `maxPerSecond` across every move of a run (0: no limit). */
export class Throttle {
  #taken = 0;
  readonly #started = Date.now();
  constructor(private readonly maxPerSecond: number) {}

  /** Waits until `rows` more are due; a stop request (SIGINT, a lost lease) ends the wait at once. */
  async take(rows: number, signal?: AbortSignal): Promise<void> {
    if (this.maxPerSecond <= 0) return;
    this.#taken += rows;
    const due = this.#started + (this.#taken / this.maxPerSecond) * 1000;
    const wait = due - Date.now();
    if (wait <= 0 || signal?.aborted) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, wait);
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}

export type StopReason = 'max-duration' | 'max-rows' | 'signal' | 'lock-lost';

/** The run's budget: --max-duration, --max-rows, SIGINT and a lost lease all stop it at the next batch boundary. */
export class Budget {
  #rows = 0;
  readonly #deadline: number;
  constructor(private readonly options: { maxDurationMs?: number; maxRows?: number; signal?: AbortSignal; lease?: LeaseGuard }) {
    this.#deadline = options.maxDurationMs ? Date.now() + options.maxDurationMs : Infinity;
  }

  add(rows: number): void {
    this.#rows += rows;
  }

  get rows(): number {
    return this.#rows;
  }

  stopReason(): StopReason | null {
    if (this.options.lease?.lostReason) return 'lock-lost';
    if (this.options.signal?.aborted) return 'signal';
    if (Date.now() >= this.#deadline) return 'max-duration';
    if (this.options.maxRows !== undefined && this.#rows >= this.options.maxRows) return 'max-rows';
    return null;
  }
}
