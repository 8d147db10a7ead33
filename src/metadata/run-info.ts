/** Who runs a mutating command and how long it may wait for the lock: what the audit log records. */
export interface RunInfo {
  /** OS user@host, or --actor. */
  actor: string;
  /** The command line with secrets redacted. */
  commandLine: string;
  /** How long to poll for the metadata lock before giving up with exit 75. */
  lockWaitMs: number;
  signal?: AbortSignal;
}
