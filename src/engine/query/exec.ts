import { parseDuration } from '../../config/duration.js';
import { redactText } from '../../config/redact.js';
import type { ShardctlConfig } from '../../config/schema.js';
import { InterruptedError, isLockLost, OperationError, UsageError } from '../../errors.js';
import { runMutation } from '../../metadata/mutation.js';
import type { RunInfo } from '../../metadata/run-info.js';
import { connect, withClient, type PgClient } from '../../postgres/connect.js';
import { cancelBackend, runInTransaction, runOutsideTransaction, sessionSettings, type StatementOutcome } from '../../postgres/query/exec-statement.js';
import { mapWithConcurrency } from '../concurrency.js';
import { withMetadata } from '../metadata-session.js';
import type { ShardTarget } from '../shards/targets.js';
import { checkStatement, redactStatement, rowsOfTags, withStatement } from './exec-text.js';
import { selectTargets } from './targets.js';

export interface ExecOptions {
  sql: string;
  /** Bound to $1…, never pasted into the text. */
  params?: string[];
  /** --shard ID…: only these. */
  shards?: string[];
  /** --key KEY…: only the shards that own these keys by the current ring. */
  keys?: string[];
  /** Take no lock, run nothing: report where it would run. */
  dryRun?: boolean;
  /** Shards at once (default migrate.parallel). */
  parallel?: number;
  /** lock_timeout per shard (default migrate.lockTimeout). */
  lockTimeoutMs?: number;
  /** statement_timeout per shard; default none (the session's own applies): a backfill or an index may rightly take long, and lock_timeout already bounds the waiting that blocks the application. */
  timeoutMs?: number;
  /** false (--no-transaction): autocommit, one statement, for what PostgreSQL refuses in a transaction block. */
  transaction?: boolean;
  /** Extra attempts of a shard whose transaction gave up on a lock (55P03); default 2. Only with a transaction: its failed attempt left nothing behind. */
  lockRetries?: number;
  /** Before the first attempt's back-off doubles (tests set it low). */
  retryDelayMs?: number;
  signal?: AbortSignal;
  /** Called with the plan once the shards are known, before the lock is taken: the CLI's confirmation (throw to stop, nothing done). */
  confirm?: (plan: ExecPlan) => Promise<void>;
}

export type ExecStatus = 'ok' | 'failed' | 'skipped';

export interface ExecShardResult {
  shard: string;
  url: string;
  status: ExecStatus;
  /** Rows the statement(s) reported (the sum of the tags' counts); null when no tag carries one (DDL) or it did not run. */
  rows: number | null;
  /** The command tags as PostgreSQL sent them: "UPDATE 42". */
  tags: string[];
  durationMs: number;
  attempts: number;
  /** One line, redacted: PostgreSQL's message. */
  error?: string;
  /** SQLSTATE. */
  code?: string;
  /** What to do about it, when shardctl knows (25001: --no-transaction). */
  hint?: string;
  /** Why a shard was skipped: dry run, interrupted, the lock was lost. */
  reason?: string;
}

export interface ExecPlan {
  /** Redacted. */
  statement: string;
  params: number;
  transaction: boolean;
  shards: Array<{ shard: string; url: string }>;
  /** With --key: each key's owner by the ring of `epoch`. */
  keys: Array<{ key: string; shard: string }>;
  epoch: number | null;
}

export interface ExecResult extends ExecPlan {
  dryRun: boolean;
  results: ExecShardResult[];
  summary: { shards: number; ok: number; failed: number; skipped: number; rows: number; durationMs: number };
}

const LOCK_NOT_AVAILABLE = '55P03';
const ACTIVE_SQL_TRANSACTION = '25001';
const QUERY_CANCELED = '57014';

/**
 * `exec`: one statement that may write (DML, DDL) on every shard, or on those
 * named or owning the keys. Each shard runs it in a transaction of its own
 * (lock_timeout always, statement_timeout when asked), in parallel with
 * bounded concurrency; the lease is checked before each COMMIT, so a run that
 * lost its lock commits nothing more. A shard that fails rolls back alone;
 * the others commit. exec does not route rows: what a statement writes stays
 * on the shard it ran on (`shard verify` finds rows it misplaced). Mutating:
 * the metadata lock and an audit row with the statement (redacted) and the
 * count of its parameters, not their values. --dry-run takes no lock and runs nothing.
 */
export async function execOnShards(config: ShardctlConfig, run: RunInfo, options: ExecOptions): Promise<ExecResult> {
  const params = options.params ?? [];
  const transaction = options.transaction ?? true;
  checkStatement(options.sql, { params: params.length, transaction });
  return withMetadata(config, async (store) => {
    const selection = await selectTargets(config, store, { ...(options.shards ? { shards: options.shards } : {}), ...(options.keys ? { keys: options.keys } : {}) });
    if (!selection.targets.length) {
      throw new UsageError(`no shard to run on: the keys' owners (${selection.keys.map((k) => `${k.key} → ${k.shard}`).join(', ')}) are not among --shard ${options.shards?.join(', ')}`);
    }
    const plan: ExecPlan = {
      statement: redactStatement(options.sql),
      params: params.length,
      transaction,
      shards: selection.targets.map((t) => ({ shard: t.id, url: t.displayUrl })),
      keys: selection.keys,
      epoch: selection.epoch,
    };
    if (options.dryRun) {
      return resultOf(plan, true, selection.targets.map((t) => skipped(t, 'dry run')));
    }
    await options.confirm?.(plan);
    const body = async (active: RunInfo): Promise<ExecResult> => {
      const signal = options.signal ? AbortSignal.any([options.signal, ...(active.signal ? [active.signal] : [])]) : active.signal;
      const settings = { ...options, params, transaction, signal, lockTimeoutMs: options.lockTimeoutMs ?? parseDuration(config.migrate.lockTimeout) };
      const results = await mapWithConcurrency(selection.targets, options.parallel ?? config.migrate.parallel, (target) => execOnShard(active, target, settings));
      const result = resultOf(plan, false, results);
      if (active.lease?.lostReason) throw new OperationError(`the metadata lock was lost: ${active.lease.lostReason}`, { data: result });
      if (signal?.aborted) {
        throw new InterruptedError(`exec interrupted: ${result.summary.ok} shard(s) committed, ${result.summary.skipped} rolled back or not started`, { data: result });
      }
      const failed = results.filter((r) => r.status === 'failed');
      if (failed.length) {
        throw new OperationError(`exec failed on ${failed.length} of ${results.length} shard(s), rolled back there; the other ${results.length - failed.length} committed`, {
          details: failed.map((r) => `${r.shard}: ${r.error}${r.code ? ` (SQLSTATE ${r.code})` : ''}${r.hint ? `; ${r.hint}` : ''}`),
          data: result,
        });
      }
      return result;
    };
    return runMutation({ store, run: { ...run, commandLine: withStatement(run.commandLine, plan.statement) }, command: 'exec', summarize: auditSummary }, body);
  });
}

type ShardSettings = Required<Pick<ExecOptions, 'sql' | 'params' | 'transaction' | 'lockTimeoutMs'>> & Pick<ExecOptions, 'timeoutMs' | 'lockRetries' | 'retryDelayMs' | 'signal'>;

async function execOnShard(run: RunInfo, target: ShardTarget, settings: ShardSettings): Promise<ExecShardResult> {
  if (settings.signal?.aborted) return skipped(target, notStarted(run));
  const started = performance.now();
  const retries = settings.transaction ? (settings.lockRetries ?? 2) : 0;
  let attempts = 0;
  let client: PgClient | undefined;
  const onAbort = () => void cancelInFlight(target, client);
  try {
    client = await connect(target.url, {
      applicationName: `shardctl exec by ${run.actor} pid ${process.pid}`,
      label: `shard ${target.id}`,
      ...(settings.transaction ? {} : { settings: sessionSettings(settings.lockTimeoutMs, settings.timeoutMs) }),
    });
    settings.signal?.addEventListener('abort', onAbort, { once: true });
    for (;;) {
      attempts++;
      if (settings.signal?.aborted) return { ...skipped(target, notStarted(run)), attempts: attempts - 1, durationMs: elapsed(started) };
      try {
        const outcome = await attempt(client, run, settings);
        return { shard: target.id, url: target.displayUrl, status: 'ok', rows: rowsOfTags(outcome.tags), tags: outcome.tags, durationMs: elapsed(started), attempts };
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === LOCK_NOT_AVAILABLE && attempts <= retries && !settings.signal?.aborted) {
          await backOff((settings.retryDelayMs ?? 500) * attempts, settings.signal);
          continue;
        }
        throw err;
      }
    }
  } catch (err) {
    if (isLockLost(err) || (settings.signal?.aborted && (err as { code?: string }).code === QUERY_CANCELED)) {
      return { ...skipped(target, `${notStarted(run).replace('not started', 'rolled back')}`), attempts, durationMs: elapsed(started) };
    }
    return { ...failure(target, err), attempts, durationMs: elapsed(started) };
  } finally {
    settings.signal?.removeEventListener('abort', onAbort);
    await client?.end().catch(() => {});
  }
}

function attempt(client: PgClient, run: RunInfo, settings: ShardSettings): Promise<StatementOutcome> {
  const check = async () => {
    await run.lease?.check();
    if (settings.signal?.aborted) throw Object.assign(new Error('interrupted before commit'), { code: QUERY_CANCELED });
  };
  const statement = { sql: settings.sql, params: settings.params, lockTimeoutMs: settings.lockTimeoutMs, ...(settings.timeoutMs !== undefined ? { timeoutMs: settings.timeoutMs } : {}) };
  return settings.transaction ? runInTransaction(client, { ...statement, beforeCommit: check }) : runOutsideTransaction(client, { ...statement, beforeStart: check });
}

/** Interrupt or lost lock: the shard's statement is cancelled, so its transaction rolls back now rather than at the end of a long UPDATE. */
async function cancelInFlight(target: ShardTarget, client: PgClient | undefined): Promise<void> {
  const pid = (client as unknown as { processID?: number } | undefined)?.processID;
  if (!pid) return;
  await withClient(target.url, { applicationName: 'shardctl exec cancel', label: `shard ${target.id}` }, (c) => cancelBackend(c, pid)).catch(() => {});
}

function backOff(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

function notStarted(run: RunInfo): string {
  return run.lease?.lostReason ? 'not started: the metadata lock was lost' : 'not started: interrupted';
}

function skipped(target: ShardTarget, reason: string): ExecShardResult {
  return { shard: target.id, url: target.displayUrl, status: 'skipped', rows: null, tags: [], durationMs: 0, attempts: 0, reason };
}

function failure(target: ShardTarget, err: unknown): ExecShardResult {
  const e = err as { message?: string; code?: string };
  const code = typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : undefined;
  const error = redactText((e.message ?? String(err)).split('\n')[0]!.replace(/^shardctl: /, ''));
  return {
    shard: target.id,
    url: target.displayUrl,
    status: 'failed',
    rows: null,
    tags: [],
    durationMs: 0,
    attempts: 0,
    error,
    ...(code ? { code } : {}),
    ...(code === ACTIVE_SQL_TRANSACTION ? { hint: 'this statement cannot run in a transaction: run it with --no-transaction' } : {}),
  };
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}

function resultOf(plan: ExecPlan, dryRun: boolean, results: ExecShardResult[]): ExecResult {
  const count = (status: ExecStatus) => results.filter((r) => r.status === status).length;
  return {
    ...plan,
    dryRun,
    results,
    summary: {
      shards: results.length,
      ok: count('ok'),
      failed: count('failed'),
      skipped: count('skipped'),
      rows: results.reduce((n, r) => n + (r.status === 'ok' ? (r.rows ?? 0) : 0), 0),
      durationMs: results.reduce((n, r) => Math.max(n, r.durationMs), 0),
    },
  };
}

/** What the audit row keeps: the redacted statement, how many parameters (not their values), and each shard's outcome. */
function auditSummary(r: ExecResult): unknown {
  return {
    statement: r.statement,
    params: r.params,
    transaction: r.transaction,
    ...(r.keys.length ? { keys: r.keys.length } : {}),
    shards: r.results.map((s) => ({ shard: s.shard, status: s.status, rows: s.rows, ...(s.code ? { code: s.code } : {}) })),
    summary: r.summary,
  };
}
