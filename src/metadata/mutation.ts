import { ConfigError, InterruptedError, isLockLost, isShardctlError, LockHeldError, LockLostError, UsageError } from '../errors.js';
import { redactText } from '../config/redact.js';
import { Lease } from './lease.js';
import type { RunInfo } from './run-info.js';
import { MetadataStore } from './store.js';

export interface MutationOptions<T> {
  store: MetadataStore;
  run: RunInfo;
  /** "init", "shard add", …: what the audit log and the lock holder show. */
  command: string;
  /** Runs under the lock before the lease is taken and the audit row written (init creates their tables here). */
  prepare?: () => Promise<void>;
  /** What the audit row keeps of the result (small, no secrets). */
  summarize?: (result: T) => unknown;
  /** What to tell the operator after a lost lock (default: run the command again). */
  afterLockLost?: string;
}

/**
 * Every mutating command runs through here: the metadata lock with its lease
 * (SPEC invariant 3; exit 75 when another run holds it) and an audit row that
 * records who ran what, when, and how it ended. `body` gets the run with the
 * lease (run.lease, checked before shard commits) and a signal that also
 * aborts when the lease is lost, so long work stops at its next step.
 */
export async function runMutation<T>(options: MutationOptions<T>, body: (run: RunInfo) => Promise<T>): Promise<T> {
  const { store, run, command } = options;
  let lease: Lease;
  try {
    lease = await Lease.acquire(store, {
      holder: `shardctl ${command} by ${run.actor} pid ${process.pid}`,
      waitMs: run.lockWaitMs,
      staleAfterMs: store.lockStaleAfterMs,
      ...(run.breakStaleLock ? { breakStale: true } : {}),
      ...(run.signal ? { signal: run.signal } : {}),
      ...(run.warn ? { warn: run.warn } : {}),
    });
  } catch (err) {
    if (err instanceof LockHeldError) await recordRefusal(store, run, command, err);
    throw err;
  }
  let auditId: number | undefined;
  try {
    await options.prepare?.();
    await lease.take();
    auditId = await store.auditStart({ actor: run.actor, command, commandLine: run.commandLine });
    const signal = run.signal ? AbortSignal.any([run.signal, lease.signal]) : lease.signal;
    const result = await body({ ...run, lease, signal });
    const summary = options.summarize ? options.summarize(result) : null;
    await store.auditFinish(auditId, 'success', 0, lease.brokeStale ? { ...(summary as object), brokeStaleLock: lease.brokeStale } : summary);
    return result;
  } catch (caught) {
    // However the loss surfaced (the fence refused a write, a step's check, a stop at a batch
    // boundary, or an error it caused), the run reports it as a lost lock.
    const err = lease.lostReason !== null || isLockLost(caught) ? asLockLost(caught, lease, options.afterLockLost) : caught;
    if (auditId !== undefined) {
      const exitCode = isShardctlError(err) ? err.exitCode : 1;
      const message = redactText(err instanceof Error ? err.message : String(err));
      await finishAudit(store, auditId, outcomeOf(err), exitCode, { error: message });
    }
    throw err;
  } finally {
    await lease.release();
  }
}

function asLockLost(err: unknown, lease: Lease, afterLockLost = 'nothing was left half-done: run the command again'): LockLostError {
  const reason = lease.lostReason ?? (err instanceof Error ? err.message.replace(/^shardctl: /, '') : String(err));
  const message = `the metadata lock was lost (${reason.replace(/^the metadata lock was lost: /, '')}); this run stopped without writing further: ${afterLockLost}`;
  const data = (err as { data?: unknown } | null)?.data;
  return new LockLostError(message, { cause: err, ...(data !== undefined ? { data } : {}) });
}

/**
 * The audit row's end, even when the store's session is gone (a restarted
 * server, or a stale run whose sessions were ended): then on a fresh one. The
 * audit log is not fenced: a run that lost its lock still says how it ended.
 */
async function finishAudit(store: MetadataStore, id: number, outcome: string, exitCode: number, summary: unknown): Promise<void> {
  try {
    await store.auditFinish(id, outcome, exitCode, summary);
  } catch {
    const fresh = await MetadataStore.open(store.url, { applicationName: 'shardctl audit' }).catch(() => null);
    await fresh?.auditFinish(id, outcome, exitCode, summary).catch(() => {});
    await fresh?.close();
  }
}

function outcomeOf(err: unknown): string {
  if (err instanceof LockLostError) return 'lock-lost';
  if (err instanceof InterruptedError) return 'interrupted';
  if (err instanceof UsageError || err instanceof ConfigError) return 'usage';
  return 'failed';
}

/** A run that backed off is worth a line in the audit log too (if the schema exists yet). */
async function recordRefusal(store: MetadataStore, run: RunInfo, command: string, err: LockHeldError): Promise<void> {
  try {
    if (!(await store.isInitialised())) return;
    const id = await store.auditStart({ actor: run.actor, command, commandLine: run.commandLine });
    await store.auditFinish(id, 'lock-held', err.exitCode, { holder: err.holder ?? null });
  } catch {
    // The refusal is reported to the user either way.
  }
}
