import { isLockLost } from '../../errors.js';
import type { ShardctlConfig } from '../../config/schema.js';
import { mapWithConcurrency } from '../concurrency.js';
import { requireRing, withMetadata } from '../metadata-session.js';
import { withConnections } from '../moves/env.js';
import { moveEnv } from '../moves/run-plan.js';
import { hashExpression } from '../../mover/table-shape.js';
import { parseQualifiedName, quoteIdent } from '../../postgres/ident.js';
import type { RunInfo } from '../../metadata/run-info.js';
import { runMutation } from '../../metadata/mutation.js';
import type { MetadataStore } from '../../metadata/store.js';

export interface IndexReport {
  shards: Array<{ shard: string; tables: Array<{ table: string; index: string; status: 'created' | 'exists' | 'dropped' | 'absent' | 'error'; error?: string }> }>;
}

const LOCK_NOT_AVAILABLE = '55P03';

/** The routing-hash index of a table: its name, and whether a valid one exists. */
export function routeHashIndexName(table: string): string {
  return `${parseQualifiedName(table).name}_shardctl_route_hash`.slice(0, 63);
}

/**
 * `shard index`: creates (or drops) an expression index on
 * shardctl.route_hash(key::text) for every sharded table on every shard, with
 * CREATE INDEX CONCURRENTLY (no write lock on the table), lock_timeout and a
 * bounded number of retries, then ANALYZE (statistics on the indexed
 * expression). The mover then reads a move's ranges by this index (bitmap
 * scans, see core/range-access.ts) instead of hashing every row of the table:
 * copy, verification, cleanup of small moves, and the misplaced-row checks of
 * `shard rebalance` and `shard verify`.
 */
export async function shardIndex(config: ShardctlConfig, run: RunInfo, options: { drop?: boolean; lockTimeoutMs?: number; retries?: number }): Promise<IndexReport> {
  return withMetadata(config, async (store) => {
    await requireRing(store);
    return runMutation({ store, run, command: 'shard index', summarize: (r: IndexReport) => r }, (run) => buildIndexes(store, config, run, options));
  });
}

async function buildIndexes(store: MetadataStore, config: ShardctlConfig, run: RunInfo, options: { drop?: boolean; lockTimeoutMs?: number; retries?: number }): Promise<IndexReport> {
  const env = await moveEnv(config, store, run);
  const shards = (await store.listShards()).filter((s) => s.state !== 'retired');
  const reports = await mapWithConcurrency(shards, 2, (s) =>
    withConnections([env.connect(s.id, 'shard index')], async (client) => {
      await client!.query(`SET lock_timeout = '${Math.round(options.lockTimeoutMs ?? 5000)}ms'`);
      const tables: IndexReport['shards'][number]['tables'] = [];
      for (const table of env.tables) {
        // A run that lost the metadata lock starts no further build (LockLostError ends the run).
        await run.lease?.check();
        const q = parseQualifiedName(table.name);
        const index = routeHashIndexName(table.name);
        const qualifiedIndex = `${quoteIdent(q.schema)}.${quoteIdent(index)}`;
        try {
          const { rows } = await client!.query<{ valid: boolean }>(
            `SELECT i.indisvalid AS valid FROM pg_index i WHERE i.indexrelid = to_regclass($1)`,
            [qualifiedIndex],
          );
          const existing = rows[0];
          if (options.drop) {
            if (existing) await retrying(options.retries ?? 3, () => client!.query(`DROP INDEX CONCURRENTLY IF EXISTS ${qualifiedIndex}`));
            tables.push({ table: table.name, index, status: existing ? 'dropped' : 'absent' });
            continue;
          }
          if (existing?.valid) {
            tables.push({ table: table.name, index, status: 'exists' });
            continue;
          }
          // An INVALID index is what a failed CONCURRENTLY build leaves behind: drop it and build again.
          if (existing) await retrying(options.retries ?? 3, () => client!.query(`DROP INDEX CONCURRENTLY IF EXISTS ${qualifiedIndex}`));
          const shape = await env.shapeOn(client!, s.id, table);
          await retrying(options.retries ?? 3, () =>
            client!.query(`CREATE INDEX CONCURRENTLY IF NOT EXISTS ${quoteIdent(index)} ON ${shape.sqlName} (${hashExpression(shape)})`),
          );
          // Statistics on the indexed expression let the mover size its index reads (rangeAccessFor).
          await client!.query(`ANALYZE ${shape.sqlName}`);
          tables.push({ table: table.name, index, status: 'created' });
        } catch (err) {
          if (isLockLost(err)) throw err;
          tables.push({ table: table.name, index, status: 'error', error: (err as Error).message });
        }
      }
      return { shard: s.id, tables };
    }).catch((err: Error) => {
      if (isLockLost(err)) throw err;
      return { shard: s.id, tables: [{ table: '*', index: '-', status: 'error' as const, error: err.message }] };
    }),
  );
  return { shards: reports };
}

async function retrying<T>(retries: number, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if ((err as { code?: string }).code !== LOCK_NOT_AVAILABLE || attempt >= retries) throw err;
      await new Promise((r) => setTimeout(r, 500 * (attempt + 1)));
    }
  }
}
