import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  compareVersions,
  duplicateVersions,
  parseMigrationFilename,
  type MigrationSource,
} from '../core/migration-plan.js';
import { formatSqlError, migrationDirectives, splitStatements } from '../core/sql-text.js';
import { OperationError, UsageError } from '../errors.js';
import type { PgClient } from './connect.js';
import { quoteIdent, quoteQualified, type QualifiedName } from './ident.js';

/**
 * Applying ordered SQL files to one database and recording them: shared by
 * `migrate` (the user's files on every shard) and `init` (shardctl's own
 * metadata schema). Every statement it sends is in this file.
 */

export interface MigrationFile extends MigrationSource {
  filename: string;
  sql: string;
  /** false when the file's first line is `-- shardctl:no-transaction`. */
  transaction: boolean;
}

export interface AppliedRecord extends MigrationSource {
  appliedAt: Date;
  durationMs: number;
  appliedBy: string;
}

export interface FailureRecord {
  version: string;
  failedAt: Date;
  sqlstate: string | null;
  message: string;
}

/** What went wrong in a file, with enough to point at the line. */
export interface MigrationFailure {
  file: string;
  version: string;
  message: string;
  code?: string;
  detail?: string;
  hint?: string;
  line?: number;
  /** Rendered for people: `file:line:col: message`, the line, a caret, code/detail/hint. */
  lines: string[];
}

export class MigrationFileError extends Error {
  constructor(readonly failure: MigrationFailure) {
    super(`${failure.file}: ${failure.message}`);
  }
}

/** Ordered SQL files of a directory, each with the sha256 of its bytes. */
export async function readMigrationFiles(dir: string): Promise<MigrationFile[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    // A folder that is not there is a usage or configuration mistake (exit 2), not a failed run.
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new UsageError(`migration directory not found: ${dir} (set migrate.dir or pass --dir; \`shardctl migrate create NAME\` makes it)`);
    }
    if (code === 'ENOTDIR') throw new UsageError(`not a migration directory: ${dir} is a file (set migrate.dir or pass --dir)`);
    throw err;
  }
  const files: MigrationFile[] = [];
  for (const filename of names) {
    const parsed = parseMigrationFilename(filename);
    if (!parsed) continue;
    const bytes = await readFile(path.join(dir, filename));
    const sql = bytes.toString('utf8');
    files.push({
      ...parsed,
      filename,
      sql,
      checksum: createHash('sha256').update(bytes).digest('hex'),
      transaction: migrationDirectives(sql).transaction,
    });
  }
  const dups = duplicateVersions(files);
  if (dups.length) throw new OperationError(`ambiguous migration files in ${dir}`, { details: dups });
  return files.sort((a, b) => compareVersions(a.version, b.version));
}

function errorsTable(table: QualifiedName): QualifiedName {
  return { schema: table.schema, name: `${table.name}_errors` };
}

/** The tracking table (and its companion that remembers the last failure of each version). */
export async function ensureTrackingTable(client: PgClient, table: QualifiedName): Promise<void> {
  await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(table.schema)}`);
  await client.query(`
    CREATE TABLE IF NOT EXISTS ${quoteQualified(table)} (
      version     text PRIMARY KEY,
      name        text NOT NULL,
      checksum    text NOT NULL,
      applied_at  timestamptz NOT NULL DEFAULT now(),
      duration_ms integer NOT NULL,
      applied_by  text NOT NULL
    )`);
  await client.query(`
    CREATE TABLE IF NOT EXISTS ${quoteQualified(errorsTable(table))} (
      version    text PRIMARY KEY,
      failed_at  timestamptz NOT NULL DEFAULT now(),
      sqlstate   text,
      message    text NOT NULL
    )`);
}

/** Applied rows, or none when the tracking table does not exist yet (read-only: creates nothing). */
export async function readApplied(client: PgClient, table: QualifiedName): Promise<AppliedRecord[]> {
  if (!(await tableExists(client, table))) return [];
  const { rows } = await client.query<{ version: string; name: string; checksum: string; applied_at: Date; duration_ms: number; applied_by: string }>(
    `SELECT version, name, checksum, applied_at, duration_ms, applied_by FROM ${quoteQualified(table)}`,
  );
  return rows
    .map((r) => ({ version: r.version, name: r.name, checksum: r.checksum, appliedAt: r.applied_at, durationMs: r.duration_ms, appliedBy: r.applied_by }))
    .sort((a, b) => compareVersions(a.version, b.version));
}

async function tableExists(client: PgClient, table: QualifiedName): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>('SELECT to_regclass($1) IS NOT NULL AS ok', [quoteQualified(table)]);
  return !!rows[0]?.ok;
}

export async function readFailures(client: PgClient, table: QualifiedName): Promise<FailureRecord[]> {
  const errors = errorsTable(table);
  if (!(await tableExists(client, errors))) return [];
  const { rows } = await client.query<{ version: string; failed_at: Date; sqlstate: string | null; message: string }>(
    `SELECT version, failed_at, sqlstate, message FROM ${quoteQualified(errors)}`,
  );
  return rows.map((r) => ({ version: r.version, failedAt: r.failed_at, sqlstate: r.sqlstate, message: r.message }));
}

export interface ApplyOptions {
  appliedBy: string;
  lockTimeoutMs: number;
  /** Extra attempts of a transactional file that hit lock_timeout (55P03); default 2. */
  lockRetries?: number;
  retryDelayMs?: number;
  /**
   * Runs on the applying session before the file commits (inside its
   * transaction), or before each statement and the record of a no-transaction
   * file: `migrate` confirms there that it still holds the target's lock. An
   * error it throws is passed through as it is, and not recorded as the file's failure.
   */
  beforeCommit?: (client: PgClient) => Promise<void>;
}

const LOCK_NOT_AVAILABLE = '55P03';

/** An error of the beforeCommit hook: not the file's fault. */
class HookFailed extends Error {
  constructor(readonly original: unknown) {
    super('beforeCommit failed');
  }
}

async function runHook(client: PgClient, options: ApplyOptions): Promise<void> {
  if (!options.beforeCommit) return;
  try {
    await options.beforeCommit(client);
  } catch (err) {
    throw new HookFailed(err);
  }
}

/**
 * Applies one file and records it. A transactional file runs with its record
 * in one transaction, so it is either applied and recorded or neither; when it
 * gives up on a lock (lock_timeout) it is retried a bounded number of times.
 * Statements are sent one by one in both cases (see runStatements).
 * A `no-transaction` file runs in autocommit, with no
 * transaction held open around it (CREATE INDEX CONCURRENTLY waits for every
 * open transaction, its runner's included); it is recorded once all its
 * statements succeeded, so its statements should be safe to run again.
 */
export async function applyMigrationFile(
  client: PgClient,
  table: QualifiedName,
  file: MigrationFile,
  options: ApplyOptions,
): Promise<{ durationMs: number; attempts: number }> {
  const started = performance.now();
  const retries = options.lockRetries ?? 2;
  for (let attempt = 1; ; attempt++) {
    try {
      if (file.transaction) await applyInTransaction(client, table, file, options, started);
      else await applyStatementByStatement(client, table, file, options, started);
      return { durationMs: Math.round(performance.now() - started), attempts: attempt };
    } catch (err) {
      if (err instanceof HookFailed) throw err.original;
      const code = (err as { code?: string }).code;
      if (file.transaction && code === LOCK_NOT_AVAILABLE && attempt <= retries) {
        await new Promise((r) => setTimeout(r, (options.retryDelayMs ?? 500) * attempt));
        continue;
      }
      const failure = describeFailure(file, err);
      await recordFailure(client, table, file, failure, code).catch(() => {});
      throw new MigrationFileError(failure);
    }
  }
}

async function applyInTransaction(
  client: PgClient,
  table: QualifiedName,
  file: MigrationFile,
  options: ApplyOptions,
  started: number,
): Promise<void> {
  await client.query('BEGIN');
  try {
    // lock_timeout is local to this transaction: it ends with it, whatever the file does.
    await client.query(`SELECT set_config('lock_timeout', $1, true)`, [`${Math.round(options.lockTimeoutMs)}ms`]);
    await runStatements(client, file);
    await record(client, table, file, options.appliedBy, started);
    await runHook(client, options);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

async function applyStatementByStatement(
  client: PgClient,
  table: QualifiedName,
  file: MigrationFile,
  options: ApplyOptions,
  started: number,
): Promise<void> {
  await client.query(`SELECT set_config('lock_timeout', $1, false)`, [`${Math.round(options.lockTimeoutMs)}ms`]);
  try {
    await runStatements(client, file, () => runHook(client, options));
    await runHook(client, options);
    await record(client, table, file, options.appliedBy, started);
  } finally {
    await client.query('RESET lock_timeout').catch(() => {});
  }
}

/**
 * One statement at a time, so a failure names its statement even when
 * PostgreSQL gives no position (e.g. "relation already exists").
 */
async function runStatements(client: PgClient, file: MigrationFile, beforeEach?: () => Promise<void>): Promise<void> {
  for (const statement of splitStatements(file.sql)) {
    await beforeEach?.();
    try {
      await client.query(statement.text);
    } catch (err) {
      throw Object.assign(err as object, { statementOffset: statement.offset });
    }
  }
}

async function record(client: PgClient, table: QualifiedName, file: MigrationFile, appliedBy: string, started: number): Promise<void> {
  await client.query(
    `INSERT INTO ${quoteQualified(table)} (version, name, checksum, duration_ms, applied_by) VALUES ($1, $2, $3, $4, $5)`,
    [file.version, file.name, file.checksum, Math.round(performance.now() - started), appliedBy],
  );
  await client.query(`DELETE FROM ${quoteQualified(errorsTable(table))} WHERE version = $1`, [file.version]);
}

async function recordFailure(client: PgClient, table: QualifiedName, file: MigrationFile, failure: MigrationFailure, code?: string): Promise<void> {
  await client.query(
    `INSERT INTO ${quoteQualified(errorsTable(table))} (version, sqlstate, message) VALUES ($1, $2, $3)
     ON CONFLICT (version) DO UPDATE SET failed_at = now(), sqlstate = EXCLUDED.sqlstate, message = EXCLUDED.message`,
    [file.version, code ?? null, failure.message],
  );
}

function describeFailure(file: MigrationFile, err: unknown): MigrationFailure {
  const e = err as { message?: string; code?: string; detail?: string; hint?: string; where?: string; position?: string; statementOffset?: number };
  const message = e.message ?? String(err);
  const lines = formatSqlError({
    file: file.filename,
    sql: file.sql,
    message,
    // Without a position, point at the start of the failing statement.
    ...(e.position ? { position: Number(e.position) } : e.statementOffset !== undefined ? { position: 1 } : {}),
    ...(e.statementOffset !== undefined ? { statementOffset: e.statementOffset } : {}),
    ...(e.code ? { code: e.code } : {}),
    ...(e.detail ? { detail: e.detail } : {}),
    ...(e.hint ? { hint: e.hint } : {}),
    ...(e.where ? { where: e.where } : {}),
  });
  const lineMatch = /^[^:]+:(\d+):\d+:/.exec(lines[0] ?? '');
  return {
    file: file.filename,
    version: file.version,
    message,
    ...(e.code ? { code: e.code } : {}),
    ...(e.detail ? { detail: e.detail } : {}),
    ...(e.hint ? { hint: e.hint } : {}),
    ...(lineMatch ? { line: Number(lineMatch[1]) } : {}),
    lines,
  };
}
