import { readdir } from 'node:fs/promises';
import { planMigrations } from '../../core/migration-plan.js';
import { OperationError } from '../../errors.js';
import { describeTable, shapeProblems, type TableShape } from '../../mover/table-shape.js';
import { installRoutingFunction } from '../../postgres/routing-function.js';
import { readApplied, readMigrationFiles } from '../../postgres/migrator.js';
import { MIGRATIONS_TABLE, migrateTarget, type TargetOutcome } from '../migrate/migrate.js';
import { withConnections, type MoveEnv } from '../moves/env.js';

export interface ShardPreparation {
  shard: string;
  migrations: TargetOutcome | { status: 'no migration directory'; dir: string | null };
  tables: string[];
}

interface NewShard {
  id: string;
  url: string;
  migrationsDir?: string | undefined;
}

/**
 * A new shard is ready before it receives rows: it answers, it is at the
 * current migration set (migrate's engine), it has shardctl.route_hash(), and
 * every sharded table exists there with the same columns as on the ring's
 * shards and a primary key. Anything else refuses the add with every problem listed.
 */
export async function prepareNewShard(env: MoveEnv, shard: NewShard): Promise<ShardPreparation> {
  let migrations: ShardPreparation['migrations'] = { status: 'no migration directory', dir: shard.migrationsDir ?? null };
  if (shard.migrationsDir && (await exists(shard.migrationsDir))) {
    const files = await readMigrationFiles(shard.migrationsDir);
    const outcome = await migrateTarget({ id: shard.id, kind: 'shard', url: shard.url, displayUrl: env.displayUrl(shard.id) }, files, {
      appliedBy: env.run.actor,
      lockTimeoutMs: 5_000,
      lockWaitMs: env.run.lockWaitMs,
    });
    if (outcome.status !== 'migrated' && outcome.status !== 'up-to-date') {
      throw new OperationError(`${shard.id} could not be brought to the current migration set (${outcome.status})`, {
        details: outcome.error?.failure?.lines ?? [outcome.error?.message ?? ''],
      });
    }
    migrations = outcome;
  }
  const reference = await referenceShard(env);
  const problems = await withConnections([env.connect(shard.id, 'shard add'), env.connect(reference, 'shard add')], async (fresh, existing) => {
    await installRoutingFunction(fresh!);
    const out: string[] = [];
    for (const table of env.tables) {
      const [want, have] = await Promise.all([describeTable(existing!, table), describeTable(fresh!, table)]);
      out.push(...tableProblems(table.name, want, have, reference, shard.id));
    }
    return out;
  });
  if (problems.length) {
    throw new OperationError(`${shard.id} is not ready to receive rows`, {
      details: [...problems, 'create the tables there (e.g. with `shardctl migrate up --shard ' + shard.id + '`) and run shard add again'],
    });
  }
  return { shard: shard.id, migrations, tables: env.tables.map((t) => t.name) };
}

/** What `shard plan --add` / `shard add --dry-run` found on the new shard, without changing it. */
export interface ShardReadiness {
  shard: string;
  /** The migration folder, or null when there is none (then nothing is applied). */
  migrationsDir: string | null;
  /** Files of the migration set the shard has not applied yet: `shard add` applies them first. */
  pendingMigrations: string[];
  /** Sharded tables missing there now, which the pending migration files are expected to create. */
  createdByMigrations: string[];
  /** What `shard add` / `shard apply` would refuse (empty: it would go ahead). */
  refusals: string[];
}

/**
 * The same checks as prepareNewShard, read-only: nothing is applied or
 * installed. An unreachable shard throws; a shard that `shard add` would
 * refuse throws with every refusal listed (exit 1), so a plan is never shown,
 * or written for `shard apply`, for a change that cannot run.
 *
 * A missing table counts as created by the migration set when files are
 * pending there: which tables a file creates is only known by running it,
 * so `shard add` checks the tables again after migrating, as always.
 */
export async function checkNewShard(env: MoveEnv, shard: NewShard): Promise<ShardReadiness> {
  const reference = await referenceShard(env);
  const files = shard.migrationsDir && (await exists(shard.migrationsDir)) ? await readMigrationFiles(shard.migrationsDir) : null;
  const fresh = await env.connect(shard.id, 'shard plan').catch((err: Error) => {
    throw new OperationError(`${shard.id} does not answer: shard add would refuse it`, { details: [err.message], cause: err });
  });
  return withConnections([Promise.resolve(fresh), env.connect(reference, 'shard plan')], async (fresh, existing) => {
    const pendingMigrations = files ? planMigrations(files, await readApplied(fresh!, MIGRATIONS_TABLE)).pending.map((p) => files.find((f) => f.version === p.version)!.filename) : [];
    const readiness: ShardReadiness = { shard: shard.id, migrationsDir: files ? shard.migrationsDir! : null, pendingMigrations, createdByMigrations: [], refusals: [] };
    for (const table of env.tables) {
      const [want, have] = await Promise.all([describeTable(existing!, table), describeTable(fresh!, table)]);
      if (want && !have && pendingMigrations.length) readiness.createdByMigrations.push(table.name);
      else if (want && !have) readiness.refusals.push(`${table.name} does not exist on ${shard.id}, and the migration set has no file pending there to create it`);
      else readiness.refusals.push(...tableProblems(table.name, want, have, reference, shard.id));
    }
    if (readiness.refusals.length) {
      throw new OperationError(`${shard.id} is not ready to receive rows: shard add would refuse it`, {
        details: [...readiness.refusals, 'create the tables there (e.g. with `shardctl migrate up --shard ' + shard.id + '`) and plan again'],
        data: { readiness },
      });
    }
    return readiness;
  });
}

/** Why a table cannot receive rows on the new shard, compared with a shard of the ring. */
function tableProblems(table: string, want: TableShape | null, have: TableShape | null, reference: string, target: string): string[] {
  const problems = shapeProblems(table, want, have, { source: reference, target });
  if (want && have && !have.primaryKey.length) problems.push(`${table} has no primary key on ${target}: shardctl needs one to confirm rows before deleting them`);
  return problems;
}

/** The shard of the ring whose tables the new one must match. */
async function referenceShard(env: MoveEnv): Promise<string> {
  return (await env.currentRing()).members[0]!.id;
}

async function exists(dir: string): Promise<boolean> {
  try {
    await readdir(dir);
    return true;
  } catch {
    return false;
  }
}
