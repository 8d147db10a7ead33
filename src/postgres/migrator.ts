import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  duplicateVersions,
  parseMigrationFilename,
  planMigrations,
  type MigrationPlan,
  type MigrationSource,
} from '../core/migration-plan.js';
import { OperationError } from '../errors.js';
import type { PgClient } from './connect.js';
import { quoteIdent, quoteQualified, type QualifiedName } from './ident.js';

export interface MigrationFile extends MigrationSource {
  filename: string;
  sql: string;
}

/** Ordered SQL files of a directory, each with the sha256 of its bytes. */
export async function readMigrationFiles(dir: string): Promise<MigrationFile[]> {
  const names = await readdir(dir);
  const files: MigrationFile[] = [];
  for (const filename of names) {
    const parsed = parseMigrationFilename(filename);
    if (!parsed) continue;
    const bytes = await readFile(path.join(dir, filename));
    files.push({
      ...parsed,
      filename,
      sql: bytes.toString('utf8'),
      checksum: createHash('sha256').update(bytes).digest('hex'),
    });
  }
  const dups = duplicateVersions(files);
  if (dups.length) throw new OperationError(`ambiguous migration files in ${dir}`, { details: dups });
  return files.sort((a, b) => (BigInt(a.version) < BigInt(b.version) ? -1 : 1));
}

export async function ensureTrackingTable(client: PgClient, table: QualifiedName): Promise<void> {
  const t = quoteQualified(table);
  await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(table.schema)}`);
  await client.query(`
    CREATE TABLE IF NOT EXISTS ${t} (
      version     text PRIMARY KEY,
      name        text NOT NULL,
      checksum    text NOT NULL,
      applied_at  timestamptz NOT NULL DEFAULT now(),
      duration_ms integer NOT NULL,
      applied_by  text NOT NULL
    )`);
}

export async function readApplied(client: PgClient, table: QualifiedName): Promise<MigrationSource[]> {
  const { rows } = await client.query<MigrationSource>(
    `SELECT version, name, checksum FROM ${quoteQualified(table)} ORDER BY version`,
  );
  return rows;
}

export async function planOn(client: PgClient, table: QualifiedName, files: MigrationFile[]): Promise<MigrationPlan> {
  await ensureTrackingTable(client, table);
  return planMigrations(files, await readApplied(client, table));
}

/**
 * Applies one file in its own transaction and records it in the same
 * transaction, so a file is either applied and recorded or neither.
 * lock_timeout is set inside the transaction: DDL never queues behind a long
 * transaction while blocking the application behind it.
 */
export async function applyMigrationFile(
  client: PgClient,
  table: QualifiedName,
  file: MigrationFile,
  options: { appliedBy: string; lockTimeoutMs: number },
): Promise<{ durationMs: number }> {
  const started = performance.now();
  await client.query('BEGIN');
  try {
    await client.query(`SELECT set_config('lock_timeout', $1, true)`, [`${Math.round(options.lockTimeoutMs)}ms`]);
    await client.query(file.sql);
    const durationMs = Math.round(performance.now() - started);
    await client.query(
      `INSERT INTO ${quoteQualified(table)} (version, name, checksum, duration_ms, applied_by) VALUES ($1, $2, $3, $4, $5)`,
      [file.version, file.name, file.checksum, durationMs, options.appliedBy],
    );
    await client.query('COMMIT');
    return { durationMs };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}
