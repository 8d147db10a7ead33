import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

/** A temp directory of migration files: name → SQL. */
export async function migrationDir(files: Record<string, string>): Promise<{ dir: string; write(name: string, sql: string): Promise<void>; remove(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'shardctl-mig-'));
  const write = (name: string, sql: string) => writeFile(path.join(dir, name), sql);
  for (const [name, sql] of Object.entries(files)) await write(name, sql);
  return { dir, write, remove: () => rm(dir, { recursive: true, force: true }) };
}

export async function sql<T extends pg.QueryResultRow = pg.QueryResultRow>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text, params)).rows;
  } finally {
    await client.end();
  }
}

/** The versions recorded on a database, in order ([] when it has no tracking table). */
export async function appliedVersions(url: string): Promise<string[]> {
  const rows = await sql<{ version: string }>(
    url,
    `SELECT version FROM shardctl.schema_migrations WHERE to_regclass('shardctl.schema_migrations') IS NOT NULL ORDER BY version::numeric`,
  ).catch((err: { code?: string }) => {
    if (err.code === '42P01' || err.code === '3F000') return [];
    throw err;
  });
  return rows.map((r) => r.version);
}
