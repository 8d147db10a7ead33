import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { OperationError } from '../errors.js';
import { migrateTarget, type TargetStatus } from '../engine/migrate/migrate.js';
import { readMigrationFiles } from '../postgres/migrator.js';
import type { SandboxShard } from './config-file.js';
import { MIGRATIONS_DIR } from './state.js';

/**
 * The sandbox's migration set lives in DIR/migrations, next to the config
 * that names it (`migrate.dir: ./migrations`), so that the tables the config
 * lists come from migrate's engine as they would in production: `sandbox up`
 * applies the set to the shards it made, and a shard added later gets it from
 * `shard add` / `shard apply` like any other. It is a rehearsal's set:
 * `sandbox down` deletes it with the rest of DIR.
 */
export const SANDBOX_TABLES_MIGRATION = '0001_sandbox_tables.sql';

// The shapes of SANDBOX_TABLES (config-file.ts), the same as the tests' dataset:
// a room's messages and their reactions, co-located by room_id. IF NOT EXISTS so
// that a database whose tables were made by hand (the demo's) takes the set too.
const SANDBOX_TABLES_SQL = `-- ${SANDBOX_TABLES_MIGRATION}: written by \`shardctl sandbox up\`; the tables its config lists.
-- A sandbox's migration set is throwaway: \`shardctl sandbox down\` deletes this folder.

CREATE TABLE IF NOT EXISTS public.messages (
  room_id    bigint      NOT NULL,
  id         bigint      NOT NULL,
  body       text        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (room_id, id)
);

-- Co-located with its message: same shard key, so a room's reactions live beside its messages.
CREATE TABLE IF NOT EXISTS public.reactions (
  room_id    bigint NOT NULL,
  message_id bigint NOT NULL,
  emoji      text   NOT NULL,
  user_id    bigint NOT NULL,
  PRIMARY KEY (room_id, message_id, emoji, user_id)
);
`;

export interface SandboxMigrationOutcome {
  shard: string;
  status: TargetStatus;
  /** Files applied by this `up`, in order (none when the shard was already at the set). */
  applied: string[];
}

/** DIR/migrations with the tables' file; an existing file is left as it is (up is idempotent). */
export async function writeSandboxMigrations(dir: string): Promise<string> {
  const migrationsDir = path.join(dir, MIGRATIONS_DIR);
  await mkdir(migrationsDir, { recursive: true });
  try {
    await writeFile(path.join(migrationsDir, SANDBOX_TABLES_MIGRATION), SANDBOX_TABLES_SQL, { flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return migrationsDir;
}

/**
 * Applies the sandbox's own file to every sandbox shard that lacks it, with
 * migrate's per-target engine (its advisory lock, tracking table and
 * checksums), so a later `migrate up` or `migrate status` sees it as applied.
 * Only that file: files the user added with `migrate create` are for
 * `migrate up`, which runs them on every shard of the ring, not just the ones
 * `up` made. Not `migrateUp` either: it needs the metadata store, which
 * `init` creates after `up`.
 */
export async function applySandboxMigrations(
  migrationsDir: string,
  shards: SandboxShard[],
  options: { appliedBy: string },
): Promise<SandboxMigrationOutcome[]> {
  const files = (await readMigrationFiles(migrationsDir)).filter((f) => f.filename === SANDBOX_TABLES_MIGRATION);
  const outcomes: SandboxMigrationOutcome[] = [];
  const failures: string[] = [];
  for (const shard of shards) {
    const outcome = await migrateTarget({ id: shard.id, kind: 'shard', url: shard.url, displayUrl: shard.url }, files, {
      appliedBy: options.appliedBy,
      lockTimeoutMs: 5_000,
      lockWaitMs: 10_000,
    });
    outcomes.push({ shard: shard.id, status: outcome.status, applied: outcome.applied.map((a) => a.file) });
    if (outcome.status !== 'migrated' && outcome.status !== 'up-to-date') {
      failures.push(`${shard.id} (${shard.database}): ${outcome.status}`, ...(outcome.error?.failure?.lines ?? [outcome.error?.message ?? '']));
    }
  }
  if (failures.length) {
    throw new OperationError(`the sandbox's migration set ${migrationsDir} could not be applied to every shard`, {
      details: [...failures.filter(Boolean), `fix the file, then run \`shardctl sandbox up\` again (or \`shardctl migrate up\` after init)`],
    });
  }
  return outcomes;
}
