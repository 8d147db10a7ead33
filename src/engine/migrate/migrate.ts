import { planMigrations, type MigrationEntry, type MigrationPlan } from '../../core/migration-plan.js';
import { InterruptedError, LockHeldError, OperationError } from '../../errors.js';
import { parseDuration } from '../../config/duration.js';
import type { ShardctlConfig } from '../../config/schema.js';
import { runMutation } from '../../metadata/mutation.js';
import type { RunInfo } from '../../metadata/run-info.js';
import { MetadataStore, storeOptionsOf } from '../../metadata/store.js';
import { acquireAdvisoryLock, LockSessionLost, type HeldLock } from '../../postgres/advisory-lock.js';
import { connect, withClient } from '../../postgres/connect.js';
import {
  applyMigrationFile,
  ensureTrackingTable,
  MigrationFileError,
  readApplied,
  readFailures,
  readMigrationFiles,
  type MigrationFailure,
  type MigrationFile,
} from '../../postgres/migrator.js';
import { mapWithConcurrency } from '../concurrency.js';
import { resolveMigrateTargets, type MigrateTarget, type TargetSelection } from './targets.js';

/** Where each shard records the user's migrations (shardctl's own schema uses shardctl.tool_migrations). */
export const MIGRATIONS_TABLE = { schema: 'shardctl', name: 'schema_migrations' };

export type TargetStatus = 'migrated' | 'up-to-date' | 'pending' | 'failed' | 'locked' | 'skipped' | 'unreachable';

export interface TargetOutcome {
  target: string;
  kind: MigrateTarget['kind'];
  url: string;
  status: TargetStatus;
  /** Files applied by this run, in order. */
  applied: Array<{ file: string; durationMs: number }>;
  /** Files still to apply (all of them in a dry run). */
  pending: string[];
  /** Highest applied version after the run. */
  version: string | null;
  durationMs: number;
  error?: { message: string; failure?: MigrationFailure };
}

export interface MigrateUpResult {
  dir: string;
  files: number;
  dryRun: boolean;
  targets: TargetOutcome[];
  summary: Record<TargetStatus, number>;
}

export type MigrateEvent =
  | { type: 'target-start'; target: string }
  | { type: 'file-applied'; target: string; file: string; durationMs: number }
  | { type: 'target-done'; target: string; status: TargetStatus };

export interface MigrateSelection {
  dir: string;
  targets?: TargetSelection;
  shards?: string[];
}

export interface MigrateUpOptions extends MigrateSelection {
  parallel?: number;
  continueOnError?: boolean;
  dryRun?: boolean;
  allowChanged?: boolean;
  lockTimeoutMs?: number;
  onEvent?: (event: MigrateEvent) => void;
}

/** One target's view before anything runs: its plan, or why it could not be read. */
interface Inspection {
  target: MigrateTarget;
  plan?: MigrationPlan;
  version: string | null;
  error?: string;
}

/**
 * `migrate up`: applies the pending files to every target, in parallel, each
 * target under its own advisory lock, the whole run under the metadata lock
 * (so a schema change never lands in the middle of a data move) and audited.
 * Changed or vanished applied files refuse the run before anything is touched.
 */
export async function migrateUp(config: ShardctlConfig, run: RunInfo, options: MigrateUpOptions): Promise<MigrateUpResult> {
  const files = await readMigrationFiles(options.dir);
  const store = await openInitialisedStore(config, run);
  try {
    // `active` is the run as the mutation hands it over: its signal also stops on a lost lease.
    const body = async (active: RunInfo): Promise<MigrateUpResult> => {
      const targets = await resolveMigrateTargets(config, store, { targets: options.targets ?? config.migrate.targets, ...(options.shards ? { shards: options.shards } : {}) });
      const inspections = await inspectTargets(targets, files, config.migrate.parallel);
      if (!options.allowChanged) refuseDrift(inspections, options.dir);
      const outcomes = options.dryRun
        ? inspections.map(dryRunOutcome)
        : await applyEverywhere(inspections, files, config, active, options);
      const result: MigrateUpResult = { dir: options.dir, files: files.length, dryRun: !!options.dryRun, targets: outcomes, summary: summarize(outcomes) };
      failIfIncomplete(result, active.signal);
      return result;
    };
    if (options.dryRun) return await body(run);
    return await runMutation({ store, run, command: 'migrate up', summarize: (r) => ({ summary: r.summary, files: r.files }) }, body);
  } finally {
    await store.close();
  }
}

async function applyEverywhere(
  inspections: Inspection[],
  files: MigrationFile[],
  config: ShardctlConfig,
  run: RunInfo,
  options: MigrateUpOptions,
): Promise<TargetOutcome[]> {
  let stop = false;
  const shouldStop = () => stop || !!run.signal?.aborted;
  return mapWithConcurrency(inspections, options.parallel ?? config.migrate.parallel, async (inspection) => {
    if (inspection.error) {
      if (!options.continueOnError) stop = true;
      return outcomeOf(inspection.target, 'unreachable', { version: inspection.version, error: { message: inspection.error } });
    }
    if (shouldStop()) return outcomeOf(inspection.target, 'skipped', { version: inspection.version, pending: inspection.plan?.pending.map(fileName) ?? [] });
    options.onEvent?.({ type: 'target-start', target: inspection.target.id });
    const outcome = await migrateTarget(inspection.target, files, {
      appliedBy: run.actor,
      lockTimeoutMs: options.lockTimeoutMs ?? parseDuration(config.migrate.lockTimeout),
      lockWaitMs: run.lockWaitMs,
      shouldStop,
      ...(options.onEvent ? { onEvent: options.onEvent } : {}),
    });
    if ((outcome.status === 'failed' || outcome.status === 'unreachable') && !options.continueOnError) stop = true;
    options.onEvent?.({ type: 'target-done', target: inspection.target.id, status: outcome.status });
    return outcome;
  });
}

export interface MigrateTargetOptions {
  appliedBy: string;
  lockTimeoutMs: number;
  /** How long to poll for the target's migrate lock. */
  lockWaitMs: number;
  /** Checked between files: a stop request ends the target after the current file. */
  shouldStop?: () => boolean;
  onEvent?: (event: MigrateEvent) => void;
}

/**
 * Brings one database to the current migration set under its own advisory
 * lock (a dedicated idle connection, never a transaction-scoped lock). Used by
 * `migrate up` for every target and by `shard add` before a shard gets rows.
 * Never throws for a database-side failure: the outcome says what happened.
 */
export async function migrateTarget(target: MigrateTarget, files: MigrationFile[], options: MigrateTargetOptions): Promise<TargetOutcome> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  let lock: HeldLock;
  try {
    lock = await acquireAdvisoryLock(target.url, 'migrate', {
      waitMs: options.lockWaitMs,
      applicationName: `shardctl migrate up by ${options.appliedBy} pid ${process.pid}`,
      label: labelOf(target),
    });
  } catch (err) {
    const status = err instanceof LockHeldError ? 'locked' : 'unreachable';
    return outcomeOf(target, status, { durationMs: elapsed(), error: { message: (err as Error).message } });
  }
  const heldLock = lock;
  const applied: TargetOutcome['applied'] = [];
  let remaining: string[] = [];
  let client;
  try {
    client = await connect(target.url, { label: labelOf(target), applicationName: `shardctl migrate up by ${options.appliedBy}` });
    await ensureTrackingTable(client, MIGRATIONS_TABLE);
    // Planned again under the lock: another run may have applied files since the inspection.
    const plan = planMigrations(files, await readApplied(client, MIGRATIONS_TABLE));
    const pending = plan.pending.map((p) => files.find((f) => f.version === p.version)!);
    for (const [i, file] of pending.entries()) {
      remaining = pending.slice(i).map((f) => f.filename);
      if (options.shouldStop?.()) {
        return outcomeOf(target, 'skipped', { applied, pending: remaining, version: await currentVersion(client), durationMs: elapsed() });
      }
      await heldLock.assertHeldFrom(client);
      // The target's lock must still be ours where the file commits (in its transaction, just
      // before COMMIT; before each statement of a no-transaction file): once its session is
      // gone another run may hold it, and a file must never be applied twice or concurrently.
      const { durationMs } = await applyMigrationFile(client, MIGRATIONS_TABLE, file, {
        appliedBy: options.appliedBy,
        lockTimeoutMs: options.lockTimeoutMs,
        beforeCommit: (c) => heldLock.assertHeldFrom(c),
      });
      applied.push({ file: file.filename, durationMs });
      options.onEvent?.({ type: 'file-applied', target: target.id, file: file.filename, durationMs });
    }
    return outcomeOf(target, applied.length ? 'migrated' : 'up-to-date', { applied, version: await currentVersion(client), durationMs: elapsed() });
  } catch (err) {
    const failure = err instanceof MigrationFileError ? err.failure : undefined;
    const version = client ? await currentVersion(client).catch(() => null) : null;
    const message =
      err instanceof LockSessionLost
        ? `${err.message}; stopped on this target: ${remaining[0] ?? 'the file in progress'} was not recorded (rolled back, or for a no-transaction file stopped before its next statement): run \`migrate up\` again`
        : (err as Error).message;
    return outcomeOf(target, client ? 'failed' : 'unreachable', {
      applied,
      pending: remaining,
      version,
      durationMs: elapsed(),
      error: { message, ...(failure ? { failure } : {}) },
    });
  } finally {
    await client?.end().catch(() => {});
    await lock.release();
  }
}

export interface StatusMatrix {
  dir: string;
  /** Where the shard list came from: the registry, or the config alone when the metadata database is not reachable or set up. */
  shardsFrom: 'registry' | 'config';
  files: Array<{ version: string; name: string; file: string }>;
  targets: Array<{ target: string; kind: MigrateTarget['kind']; url: string; version: string | null; states: MigrationEntry[]; error?: string }>;
  /** Nothing pending, failed, changed or missing, and every target answered. */
  clean: boolean;
}

/** `migrate status`: every target × every version; reads only, takes no lock. */
export async function migrateStatus(config: ShardctlConfig, options: MigrateSelection): Promise<StatusMatrix> {
  const files = await readMigrationFiles(options.dir);
  let shardsFrom: StatusMatrix['shardsFrom'] = 'config';
  const targets = await withOptionalStore(config, async (store) => {
    if (store && (await store.isInitialised())) shardsFrom = 'registry';
    return resolveMigrateTargets(config, store, { targets: options.targets ?? config.migrate.targets, ...(options.shards ? { shards: options.shards } : {}) });
  });
  const inspections = await inspectTargets(targets, files, config.migrate.parallel);
  const rows = inspections.map((i) => ({
    target: i.target.id,
    kind: i.target.kind,
    url: i.target.displayUrl,
    version: i.version,
    states: i.plan?.entries ?? [],
    ...(i.error ? { error: i.error } : {}),
  }));
  const clean = rows.every((r) => !r.error && r.states.every((s) => s.state === 'applied'));
  return { dir: options.dir, shardsFrom, files: files.map((f) => ({ version: f.version, name: f.name, file: f.filename })), targets: rows, clean };
}

/** `migrate validate`: refuses (exit 1) when an applied file changed or vanished, or a target does not answer. */
export async function migrateValidate(config: ShardctlConfig, options: MigrateSelection): Promise<StatusMatrix> {
  const status = await migrateStatus(config, options);
  const problems = status.targets.flatMap((t) => [
    ...(t.error ? [`${t.target}: ${t.error}`] : []),
    ...t.states.filter((s) => s.state === 'changed').map((s) => `${t.target}: ${s.version}_${s.name}.sql changed since it was applied (checksum differs)`),
    ...t.states.filter((s) => s.state === 'missing').map((s) => `${t.target}: ${s.version}_${s.name}.sql was applied but is no longer in ${options.dir}`),
  ]);
  if (problems.length) throw new OperationError(`migrations do not match what was applied (${problems.length} problem${problems.length === 1 ? '' : 's'})`, { details: problems, data: status });
  return status;
}

async function inspectTargets(targets: MigrateTarget[], files: MigrationFile[], parallel: number): Promise<Inspection[]> {
  return mapWithConcurrency(targets, Math.max(parallel, 4), async (target) => {
    try {
      return await withClient(target.url, { label: labelOf(target), applicationName: 'shardctl migrate' }, async (client) => {
        const applied = await readApplied(client, MIGRATIONS_TABLE);
        const failed = new Set((await readFailures(client, MIGRATIONS_TABLE)).map((f) => f.version));
        return { target, plan: planMigrations(files, applied, failed), version: applied.at(-1)?.version ?? null };
      });
    } catch (err) {
      return { target, version: null, error: (err as Error).message };
    }
  });
}

function refuseDrift(inspections: Inspection[], dir: string): void {
  const problems = inspections.flatMap((i) => [
    ...(i.plan?.changed ?? []).map((e) => `${i.target.id}: ${e.version}_${e.name}.sql changed since it was applied (checksum differs)`),
    ...(i.plan?.missing ?? []).map((e) => `${i.target.id}: ${e.version}_${e.name}.sql was applied but is no longer in ${dir}`),
  ]);
  if (problems.length) {
    throw new OperationError('refusing to migrate: applied files changed or disappeared (nothing was applied; --allow-changed overrides)', { details: problems });
  }
}

function failIfIncomplete(result: MigrateUpResult, signal?: AbortSignal): void {
  const bad = result.targets.filter((t) => !['migrated', 'up-to-date', 'pending'].includes(t.status));
  if (signal?.aborted) throw new InterruptedError('interrupted: the files in progress finished; run `migrate up` again to continue', { data: result });
  if (!bad.length) return;
  const details = bad.map((t) => `${t.target}: ${t.status}${t.error ? ` (${t.error.failure?.lines[0] ?? t.error.message})` : ''}`);
  const onlyLocked = bad.every((t) => t.status === 'locked') && result.summary.migrated === 0;
  if (onlyLocked) {
    throw Object.assign(new LockHeldError('migrate', bad.map((t) => t.target).join(', ')), { data: result });
  }
  throw new OperationError(`migrate up did not complete on ${bad.length} of ${result.targets.length} target(s)`, { details, data: result });
}

function dryRunOutcome(i: Inspection): TargetOutcome {
  if (i.error) return outcomeOf(i.target, 'unreachable', { error: { message: i.error } });
  const pending = i.plan!.pending.map(fileName);
  return outcomeOf(i.target, pending.length ? 'pending' : 'up-to-date', { pending, version: i.version });
}

function outcomeOf(target: MigrateTarget, status: TargetStatus, rest: Partial<TargetOutcome>): TargetOutcome {
  return { target: target.id, kind: target.kind, url: target.displayUrl, status, applied: [], pending: [], version: null, durationMs: 0, ...rest };
}

function summarize(outcomes: TargetOutcome[]): Record<TargetStatus, number> {
  const summary: Record<TargetStatus, number> = { migrated: 0, 'up-to-date': 0, pending: 0, failed: 0, locked: 0, skipped: 0, unreachable: 0 };
  for (const o of outcomes) summary[o.status]++;
  return summary;
}

function fileName(p: { version: string; name: string }): string {
  return `${p.version}_${p.name}.sql`;
}

function labelOf(target: MigrateTarget): string {
  return target.kind === 'metadata' ? 'the metadata database' : `shard ${target.id}`;
}

async function currentVersion(client: import('../../postgres/connect.js').PgClient): Promise<string | null> {
  return (await readApplied(client, MIGRATIONS_TABLE)).at(-1)?.version ?? null;
}

async function openInitialisedStore(config: ShardctlConfig, run: RunInfo): Promise<MetadataStore> {
  const store = await MetadataStore.open(config.metadata.url, { applicationName: `shardctl migrate by ${run.actor}`, ...storeOptionsOf(config) });
  if (!(await store.isInitialised())) {
    await store.close();
    throw new OperationError('the metadata database has no shardctl schema: run `shardctl init` first');
  }
  return store;
}

/** Status and validate work from the config alone when the metadata database is not set up yet. */
async function withOptionalStore<T>(config: ShardctlConfig, fn: (store: MetadataStore | null) => Promise<T>): Promise<T> {
  let store: MetadataStore | null = null;
  try {
    store = await MetadataStore.open(config.metadata.url, { applicationName: 'shardctl migrate status' });
  } catch {
    store = null;
  }
  try {
    return await fn(store);
  } finally {
    await store?.close();
  }
}
