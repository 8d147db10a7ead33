import { readdir } from 'node:fs/promises';
import { OperationError } from '../errors.js';
import { describeTable, shapeProblems } from '../mover/table-shape.js';
import { installRoutingFunction } from '../postgres/routing-function.js';
import { readMigrationFiles } from '../postgres/migrator.js';
import { migrateTarget, type TargetOutcome } from './migrate.js';
import { withConnections, type MoveEnv } from './moves/env.js';

export interface ShardPreparation {
  shard: string;
  migrations: TargetOutcome | { status: 'no migration directory'; dir: string | null };
  tables: string[];
}

/**
 * A new shard is ready before it receives rows: it answers, it is at the
 * current migration set (migrate's engine), it has shardctl.route_hash(), and
 * every sharded table exists there with the same columns as on the ring's
 * shards. Anything else refuses the add with every problem listed.
 */
export async function prepareNewShard(env: MoveEnv, shard: { id: string; url: string; migrationsDir?: string | undefined }): Promise<ShardPreparation> {
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
  const current = await env.currentRing();
  const reference = current.members[0]!.id;
  const problems = await withConnections([env.connect(shard.id, 'shard add'), env.connect(reference, 'shard add')], async (fresh, existing) => {
    await installRoutingFunction(fresh!);
    const out: string[] = [];
    for (const table of env.tables) {
      const [want, have] = await Promise.all([describeTable(existing!, table), describeTable(fresh!, table)]);
      out.push(...shapeProblems(table.name, want, have, { source: reference, target: shard.id }));
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

async function exists(dir: string): Promise<boolean> {
  try {
    await readdir(dir);
    return true;
  } catch {
    return false;
  }
}
