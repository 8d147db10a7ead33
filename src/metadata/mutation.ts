import { ConfigError, InterruptedError, LockHeldError, UsageError, isShardctlError } from '../errors.js';
import { redactText } from '../config/redact.js';
import { acquireAdvisoryLock } from '../postgres/advisory-lock.js';
import type { RunInfo } from './run-info.js';
import type { MetadataStore } from './store.js';

export interface MutationOptions<T> {
  store: MetadataStore;
  run: RunInfo;
  /** "init", "shard add", …: what the audit log and the lock holder show. */
  command: string;
  /** Runs under the lock before the audit row is written (init creates the audit table here). */
  prepare?: () => Promise<void>;
  /** What the audit row keeps of the result (small, no secrets). */
  summarize?: (result: T) => unknown;
}

/**
 * Every mutating command runs through here: the metadata lock (SPEC invariant
 * 3; exit 75 when another run holds it) and an audit row that records who ran
 * what, when, and how it ended.
 */
export async function runMutation<T>(options: MutationOptions<T>, body: () => Promise<T>): Promise<T> {
  const { store, run, command } = options;
  let lock;
  try {
    lock = await acquireAdvisoryLock(store.url, 'metadata', {
      waitMs: run.lockWaitMs,
      applicationName: `shardctl ${command} by ${run.actor} pid ${process.pid}`,
      label: 'the metadata database',
      ...(run.signal ? { signal: run.signal } : {}),
    });
  } catch (err) {
    if (err instanceof LockHeldError) await recordRefusal(store, run, command, err);
    throw err;
  }
  let auditId: number | undefined;
  try {
    await options.prepare?.();
    auditId = await store.auditStart({ actor: run.actor, command, commandLine: run.commandLine });
    const result = await body();
    await store.auditFinish(auditId, 'success', 0, options.summarize ? options.summarize(result) : null);
    return result;
  } catch (err) {
    if (auditId !== undefined) {
      const exitCode = isShardctlError(err) ? err.exitCode : 1;
      const message = redactText(err instanceof Error ? err.message : String(err));
      await store.auditFinish(auditId, outcomeOf(err), exitCode, { error: message }).catch(() => {});
    }
    throw err;
  } finally {
    await lock.release();
  }
}

function outcomeOf(err: unknown): string {
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
