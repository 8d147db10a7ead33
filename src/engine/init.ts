import { redactUrl } from '../config/redact.js';
import type { ShardctlConfig } from '../config/schema.js';
import { DEFAULT_VNODES, Ring } from '../core/ring.js';
import { OperationError } from '../errors.js';
import { runMutation } from '../metadata/mutation.js';
import type { RunInfo } from '../metadata/run-info.js';
import { MetadataStore, storeOptionsOf } from '../metadata/store.js';
import { withClient } from '../postgres/connect.js';
import { installRoutingFunction } from '../postgres/routing-function.js';
import { mapWithConcurrency } from './concurrency.js';
import { publishCurrentRing, type PublishOutcome } from './publish.js';
import { resolveShardTargets } from './shards/targets.js';

export interface InitShardResult {
  shard: string;
  url: string;
  state: string;
  registered: 'new' | 'existing';
  status: 'ok' | 'error';
  encoding?: string;
  durationMs: number;
  error?: string;
}

export interface InitResult {
  schema: { applied: string[]; files: number };
  ring: { epoch: number; created: boolean; vnodes: number; members: number } | null;
  shards: InitShardResult[];
  published: PublishOutcome;
  warnings: string[];
}

/**
 * Creates or upgrades the metadata schema, registers the config's shards,
 * makes the first ring, installs shardctl.route_hash() on the metadata
 * database and every shard, and publishes the ring. Running it again changes
 * nothing: new shards of an existing ring are registered as pending (moving
 * rows to them is `shard add`'s job), differences are reported as warnings.
 */
export async function init(config: ShardctlConfig, run: RunInfo): Promise<InitResult> {
  const store = await MetadataStore.open(config.metadata.url, {
    ...storeOptionsOf(config),
    applicationName: `shardctl init by ${run.actor}`,
    createDatabase: true,
  });
  try {
    let schema: InitResult['schema'] = { applied: [], files: 0 };
    const result = await runMutation<InitResult>(
      {
        store,
        run,
        command: 'init',
        prepare: async () => {
          const migrated = await store.migrateSchema(run.actor);
          schema = { applied: migrated.applied, files: migrated.current };
        },
        summarize: (r) => ({
          schemaApplied: r.schema.applied,
          epoch: r.ring?.epoch ?? null,
          shards: r.shards.map((s) => ({ shard: s.shard, status: s.status })),
        }),
      },
      async () => {
        const warnings: string[] = [];
        const newlyRegistered = new Set<string>();
        const ring = await registerShardsAndRing(store, config, run, warnings, newlyRegistered);
        const shards = await installOnShards(store, config, warnings, newlyRegistered);
        const encoding = (await installRoutingFunction(store.client)).encoding;
        if (encoding !== 'UTF8') warnings.push(`metadata database encoding is ${encoding}: route_hash matches the CLI only for ASCII keys`);
        const published = ring ? await publishCurrentRing(config, store) : { status: 'skipped' as const, reason: 'no ring yet' };
        const outcome = { schema, ring, shards, published, warnings };
        failIfIncomplete(outcome);
        return outcome;
      },
    );
    return result;
  } finally {
    await store.close();
  }
}

/** Shards that could not be reached, or a failed publish, fail the run (exit 1) with every outcome attached. */
function failIfIncomplete(result: InitResult): void {
  const failed = result.shards.filter((s) => s.status === 'error');
  const publishFailed = result.published.status === 'error';
  if (!failed.length && !publishFailed) return;
  throw new OperationError(
    `init finished with errors on ${failed.length} shard(s)${publishFailed ? ' and the Redis publish' : ''}; fix them and run init again`,
    {
      details: [
        ...failed.map((s) => `${s.shard}: ${s.error}`),
        ...(result.published.status === 'error' ? [`redis: ${result.published.reason}`] : []),
      ],
      data: result,
    },
  );
}

async function registerShardsAndRing(
  store: MetadataStore,
  config: ShardctlConfig,
  run: RunInfo,
  warnings: string[],
  newlyRegistered: Set<string>,
): Promise<InitResult['ring']> {
  const current = await store.currentRing();
  const registered = new Map((await store.listShards()).map((s) => [s.id, s]));
  const vnodes = config.ring.vnodes ?? DEFAULT_VNODES;

  if (!current) {
    const members = config.shards.filter((s) => s.weight > 0).map((s) => ({ id: s.id, weight: s.weight }));
    if (members.length === 0) {
      warnings.push('no shards with weight > 0 in the config: no ring was made');
      return null;
    }
    Ring.build({ vnodes, members }); // validates before anything is written
    for (const s of config.shards) {
      if (await store.registerShard({ id: s.id, url: s.url, weight: s.weight, state: s.weight > 0 ? 'active' : 'pending' })) {
        newlyRegistered.add(s.id);
      }
    }
    const epoch = await store.insertRingEpoch({ vnodes, members }, 0, 'init', run.actor);
    return { epoch, created: true, vnodes, members: members.length };
  }

  for (const s of config.shards) {
    const known = registered.get(s.id);
    if (!known) {
      await store.registerShard({ id: s.id, url: s.url, weight: s.weight, state: 'pending' });
      newlyRegistered.add(s.id);
      warnings.push(`${s.id} is new: registered as pending; \`shardctl shard add ${s.id}\` moves its ranges to it`);
    } else if (known.weight !== s.weight && known.state === 'active') {
      warnings.push(`${s.id}: weight is ${s.weight} in the config but ${known.weight} in the ring; \`shardctl shard rebalance --from-config\` applies it`);
    }
  }
  if (config.ring.vnodes !== undefined && config.ring.vnodes !== current.vnodes) {
    warnings.push(`ring.vnodes is ${config.ring.vnodes} in the config but the ring uses ${current.vnodes}; \`shardctl shard rebalance --from-config\` applies it`);
  }
  return { epoch: current.epoch, created: false, vnodes: current.vnodes, members: current.members.length };
}

async function installOnShards(
  store: MetadataStore,
  config: ShardctlConfig,
  warnings: string[],
  newlyRegistered: Set<string>,
): Promise<InitShardResult[]> {
  const targets = resolveShardTargets(config, await store.listShards());
  return mapWithConcurrency(targets, 4, async (target) => {
    const started = performance.now();
    const base = {
      shard: target.id,
      url: redactUrl(target.url),
      state: target.state,
      registered: newlyRegistered.has(target.id) ? ('new' as const) : ('existing' as const),
    };
    try {
      const { encoding } = await withClient(target.url, { label: `shard ${target.id}`, applicationName: 'shardctl init' }, installRoutingFunction);
      if (encoding !== 'UTF8') warnings.push(`${target.id}: database encoding is ${encoding}: route_hash matches the CLI only for ASCII keys`);
      return { ...base, status: 'ok' as const, encoding, durationMs: Math.round(performance.now() - started) };
    } catch (err) {
      return { ...base, status: 'error' as const, error: (err as Error).message, durationMs: Math.round(performance.now() - started) };
    }
  });
}
