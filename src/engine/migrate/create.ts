import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { migrationSlug, nextVersion, parseMigrationFilename } from '../../core/migration-plan.js';
import { NO_TRANSACTION_DIRECTIVE } from '../../core/sql-text.js';
import { UsageError } from '../../errors.js';

export interface CreatedMigration {
  file: string;
  path: string;
  version: string;
  transaction: boolean;
}

/** `migrate create NAME`: the next file of the set, with a header saying how it will run. */
export async function migrateCreate(
  dir: string,
  name: string,
  options: { noTransaction?: boolean; timestamp?: boolean; now?: Date } = {},
): Promise<CreatedMigration> {
  const slug = migrationSlug(name);
  if (!slug) throw new UsageError(`"${name}" has no letters or digits to name a file with`);
  await mkdir(dir, { recursive: true });
  const existing = (await readdir(dir)).map(parseMigrationFilename).filter((p) => p !== null).map((p) => p.version);
  const version = nextVersion(existing, { now: options.now ?? new Date(), ...(options.timestamp ? { timestamp: true } : {}) });
  const file = `${version}_${slug}.sql`;
  const header = options.noTransaction
    ? `${NO_TRANSACTION_DIRECTIVE}\n-- ${file}: runs statement by statement, outside a transaction (for CREATE INDEX CONCURRENTLY and the like).\n-- It is recorded only after every statement succeeded, so write statements that are safe to run again (IF NOT EXISTS).\n\n`
    : `-- ${file}: runs in one transaction with lock_timeout (migrate.lockTimeout); applied to every shard.\n-- For CREATE INDEX CONCURRENTLY and the like, make the first line: ${NO_TRANSACTION_DIRECTIVE}\n\n`;
  const target = path.join(dir, file);
  await writeFile(target, header, { flag: 'wx' });
  return { file, path: target, version, transaction: !options.noTransaction };
}
