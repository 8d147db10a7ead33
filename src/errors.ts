/**
 * The error taxonomy of shardctl. The engine throws these; the CLI's single
 * top-level handler maps them to the exit codes of SPEC.md. Anything else that
 * escapes is a bug (InternalError) and is reported as such.
 */

export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  unknown: 3,
  lockHeld: 75,
  interrupted: 130,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export abstract class ShardctlError extends Error {
  abstract readonly exitCode: ExitCodeValue;
  /** Machine-readable kind, part of the documented `--json` error shape. */
  abstract readonly kind: string;
  /** Extra lines shown under the message (problems, hints). */
  details: string[] = [];
  /** A partial result worth rendering even though the command failed (per-shard outcomes). */
  data: unknown;

  constructor(message: string, options?: { cause?: unknown; details?: string[]; data?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    if (options?.details) this.details = options.details;
    this.data = options?.data;
  }
}

/** Bad flags, bad arguments, a refusal to act without --yes: nothing was touched. */
export class UsageError extends ShardctlError {
  readonly exitCode = ExitCode.usage;
  readonly kind = 'usage';
}

/** The configuration is missing or invalid; `problems` lists every one by its path. */
export class ConfigError extends ShardctlError {
  readonly exitCode = ExitCode.usage;
  readonly kind = 'config';
  constructor(
    message: string,
    readonly problems: string[] = [],
  ) {
    super(message, { details: problems });
  }
}

/** The operation ran and failed (a server refused, a check did not pass). */
export class OperationError extends ShardctlError {
  readonly exitCode = ExitCode.failed;
  readonly kind = 'operation';
}

/**
 * The command already printed its result (a report that says what is wrong:
 * `shard verify`, `migrate status --check`); only the exit code is left to set.
 * Under --json no second document is printed.
 */
export class CheckFailed extends ShardctlError {
  readonly exitCode = ExitCode.failed;
  readonly kind = 'check-failed';
}

/**
 * `health` has printed its report; what is left is the exit code of the
 * worst status (SPEC.md: 1 WARNING, 2 CRITICAL, 3 UNKNOWN). Under --json no
 * second document is printed.
 */
export class HealthNotOk extends ShardctlError {
  readonly kind = 'health-status';
  constructor(
    readonly exitCode: 1 | 2 | 3,
    message: string,
  ) {
    super(message);
  }
}

/** `health` could not run at all (a config error, an unknown check): UNKNOWN, exit 3, as a Nagios plugin reports it. */
export class HealthUnknown extends ShardctlError {
  readonly exitCode = ExitCode.unknown;
  readonly kind: string;
  constructor(cause: ShardctlError | Error) {
    super(cause.message, { cause, details: (cause as ShardctlError).details ?? [] });
    this.kind = (cause as ShardctlError).kind ?? 'unknown';
  }
}

/** Another run holds the metadata lock; nothing was done, so cron may simply retry. */
export class LockHeldError extends ShardctlError {
  readonly exitCode = ExitCode.lockHeld;
  readonly kind = 'lock-held';
  constructor(
    readonly lockName: string,
    readonly holder: string | undefined,
  ) {
    super(
      `another shardctl run holds the ${lockName} lock${holder ? ` (${holder})` : ''}; nothing was done`,
    );
  }
}

/**
 * The run lost the metadata lock while it worked (its lock session was
 * terminated, the server restarted, the network dropped, or another run broke
 * a stale lock): it stopped at a consistent point without writing further.
 */
export class LockLostError extends ShardctlError {
  readonly exitCode = ExitCode.failed;
  readonly kind = 'lock-lost';
}

/** The SQLSTATE of the lease fence in the metadata database (migrations/0004_leases.sql): a private class. */
export const LEASE_FENCED_SQLSTATE = 'SHL01';

/** A lost lock, whether the run noticed it (LockLostError) or the database fenced a write (SHL01). */
export function isLockLost(err: unknown): boolean {
  return err instanceof LockLostError || (err as { code?: unknown } | null)?.code === LEASE_FENCED_SQLSTATE;
}

/** SIGINT or SIGTERM stopped the run at a consistent point; `resume` continues. */
export class InterruptedError extends ShardctlError {
  readonly exitCode = ExitCode.interrupted;
  readonly kind = 'interrupted';
}

export function isShardctlError(err: unknown): err is ShardctlError {
  return err instanceof ShardctlError;
}
