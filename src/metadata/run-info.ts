import type { LeaseGuard } from './lease.js';

/** Who runs a mutating command and how long it may wait for the lock: what the audit log records. */
export interface RunInfo {
  /** OS user@host, or --actor. */
  actor: string;
  /** The command line with secrets redacted. */
  commandLine: string;
  /** How long to poll for the metadata lock before giving up with exit 75. */
  lockWaitMs: number;
  /** --break-stale-lock: end a stale holder's sessions (its lease silent for metadata.lockStaleAfter) and take over. */
  breakStaleLock?: boolean;
  /** Aborted on SIGINT/SIGTERM and, inside a mutation, when the lease is lost. */
  signal?: AbortSignal;
  /** Inside a mutation (runMutation): the lease that every step checks before it commits on a shard. */
  lease?: LeaseGuard;
  /** A notice for the operator; the CLI logs it on stderr. */
  warn?: (message: string) => void;
}
