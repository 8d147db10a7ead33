/**
 * Fenced writes: how an application recognises, and rides out, the writes an
 * online move refuses.
 *
 * While shardctl moves a key range, a trigger on the source shard refuses
 * writes to the keys being moved with one of two SQLSTATEs of the private
 * class `SH` (the error's `detail` is `plan=<planId> move=<n>`, for logs):
 *
 * - `SH001` "moving": the key's rows are being switched to another shard right
 *   now. Retry shortly (within a few seconds); the ring may or may not change.
 * - `SH002` "moved": the key now belongs to another shard. Reload the ring and
 *   retry on the new owner.
 *
 * This file is pure (no I/O of its own): it knows node-postgres errors only by
 * their `.code`, so errors of other drivers with the same field work too.
 */

/** The SQLSTATEs of a fenced write, by kind. */
export const FENCE_SQLSTATE = { moving: 'SH001', moved: 'SH002' } as const;

/** What {@link fencedWrite} found: the kind of fence, its SQLSTATE, and the error's detail when it had one. */
export interface FencedWrite {
  /** `moving`: retry shortly; `moved`: reload the ring, then retry. */
  kind: 'moving' | 'moved';
  code: (typeof FENCE_SQLSTATE)[keyof typeof FENCE_SQLSTATE];
  /** The error's detail, `plan=<planId> move=<n>` (informational). */
  detail?: string;
}

/** How deep {@link fencedWrite} follows `cause`, for errors that an ORM or a helper wrapped. */
const MAX_CAUSE_DEPTH = 8;

/**
 * Tells whether an error is a write refused by an online move.
 *
 * Recognises an error whose `code` is `SH001` or `SH002` (node-postgres puts
 * the SQLSTATE there), or one whose `cause` chain leads to such an error, as
 * ORMs and query builders often wrap the driver's error.
 *
 * @returns the fence, or `null` for every other error (and for non-errors).
 */
export function fencedWrite(err: unknown): FencedWrite | null {
  let e: unknown = err;
  for (let depth = 0; depth < MAX_CAUSE_DEPTH && typeof e === 'object' && e !== null; depth++) {
    const { code, detail } = e as { code?: unknown; detail?: unknown };
    const kind = code === FENCE_SQLSTATE.moving ? 'moving' : code === FENCE_SQLSTATE.moved ? 'moved' : null;
    if (kind !== null) {
      const found: FencedWrite = { kind, code: FENCE_SQLSTATE[kind] };
      if (typeof detail === 'string' && detail !== '') found.detail = detail;
      return found;
    }
    e = (e as { cause?: unknown }).cause;
  }
  return null;
}

/** Options of {@link withFencedRetry}. */
export interface FencedRetryOptions {
  /** Calls of `fn` at most, the first included (default 20); after the last the last error is rethrown. */
  attempts?: number;
  /** The first wait after a `moving` refusal, in ms (default 50); each further wait doubles, jittered. */
  baseDelayMs?: number;
  /** The longest wait, in ms (default 1000). */
  maxDelayMs?: number;
}

/** What {@link withFencedRetry} needs of a router: its epoch and a way to re-read the ring. */
export interface ReloadableRouter {
  readonly epoch: number;
  reload(): Promise<number>;
}

/**
 * Runs `fn`, retrying it only when it fails with a fenced write.
 *
 * - `SH002` (moved): reloads the ring at once and retries. Should the reload
 *   bring no newer ring (the new one is still on its way), it also waits a
 *   backoff before the retry, so the attempts are not spent in a burst.
 * - `SH001` (moving): waits a jittered backoff (base 50 ms, doubling, at most
 *   1 s), reloads the ring, and retries.
 * - Any other error is rethrown at once; after `attempts` calls the last
 *   fenced error is rethrown. A reload that fails (both ring sources down)
 *   does not end the retries: the router keeps the ring it has and the next
 *   attempt says what the shard thinks.
 *
 * `fn` must route afresh on every call, i.e. call `router.shardFor(key)`
 * itself, or a retry goes to the shard that refused it:
 *
 * ```ts
 * await withFencedRetry(router, async () => {
 *   const pool = pools.get(router.shardFor(roomId))!;   // re-read on each attempt
 *   await pool.query('INSERT INTO messages (room_id, body) VALUES ($1, $2)', [roomId, body]);
 * });
 * ```
 */
export async function withFencedRetry<T>(
  router: ReloadableRouter,
  fn: () => Promise<T>,
  options: FencedRetryOptions = {},
): Promise<T> {
  const attempts = options.attempts ?? 20;
  const base = options.baseDelayMs ?? 50;
  const max = options.maxDelayMs ?? 1_000;
  if (!Number.isInteger(attempts) || attempts < 1) throw new RangeError(`withFencedRetry: attempts must be an integer >= 1, got ${attempts}`);
  if (!(base >= 0) || !(max >= 0)) throw new RangeError('withFencedRetry: baseDelayMs and maxDelayMs must be numbers >= 0');

  let waits = 0;
  const backoff = () => sleep(jittered(base, max, waits++));
  for (let attempt = 1; ; attempt++) {
    const epochBefore = router.epoch;
    try {
      return await fn();
    } catch (err) {
      const fence = fencedWrite(err);
      if (fence === null || attempt >= attempts) throw err;
      if (fence.kind === 'moving') {
        await backoff();
        await reloadQuietly(router);
      } else {
        const epoch = await reloadQuietly(router);
        if (epoch === undefined || epoch <= epochBefore) await backoff();
      }
    }
  }
}

/** The n-th wait (n = 0, 1, …): min(max, base × 2^n), of which a random half is taken off ("equal jitter"). */
function jittered(base: number, max: number, n: number): number {
  const ceiling = Math.min(max, base * 2 ** Math.min(n, 30));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function reloadQuietly(router: ReloadableRouter): Promise<number | undefined> {
  try {
    return await router.reload();
  } catch {
    return undefined;
  }
}
