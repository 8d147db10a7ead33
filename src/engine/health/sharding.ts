import type { Interval } from '../../core/move-plan.js';
import { Ring } from '../../core/ring.js';
import { formatBytes, formatSeconds } from '../../core/thresholds.js';
import { Journal, type PlanRecord } from '../../metadata/journal.js';
import type { MetadataStore, RingEpoch, ShardRecord } from '../../metadata/store.js';
import { countMisplaced, readTableSizes, sampleShardKeys, type SampledKey, type TableSize } from '../../postgres/health/sharding-stats.js';
import { connectRedis, type RedisClient } from '../../redis/connect.js';
import { ringKey, type PublishedRing } from '../../redis/ring-publisher.js';
import type { ShardTarget } from '../shards/targets.js';
import type { HealthContext, Measurement } from './types.js';

/**
 * The `sharding` checks, of the deployment as one thing: how evenly the
 * sharded tables are spread over the shards (per unit of weight), rows a
 * bounded sample finds on a shard the ring does not give them to, moves in
 * flight and failed, the ring published in Redis against the metadata
 * database's, and the registry against the config. The metadata database is
 * read once; each shard on the run's bounded read-only session to it
 * (ctx.session, shared with the other groups).
 */
export async function collectSharding(ctx: HealthContext): Promise<Measurement[]> {
  const store = await ctx.metadata();
  const meta = store ? await readMetadata(ctx, store).catch((err: Error) => ({ error: `cannot read the metadata database: ${err.message}` })) : { error: 'the metadata database did not answer' };
  const [tables, ring] = await Promise.all([measureTables(ctx, meta), ctx.wants('ring_published') ? measureRingPublished(ctx, meta) : Promise.resolve([])]);
  return [...tables, ...measureMetadataChecks(ctx, meta), ...ring];
}

interface MetadataView {
  ring: RingEpoch;
  records: ShardRecord[];
  /** The plan not yet done or aborted (running, switched or failed), if any. */
  plan: PlanRecord | null;
}

async function readMetadata(ctx: HealthContext, store: MetadataStore): Promise<MetadataView | { error: string }> {
  if (!(await store.isInitialised())) return { error: 'the metadata database is not initialised (run `shardctl init`)' };
  const ring = await store.currentRing();
  if (!ring) return { error: 'the metadata database holds no ring yet (run `shardctl init`)' };
  const [records, plan] = await Promise.all([ctx.registry(), new Journal(store.client).activePlan()]);
  if (!records) return { error: 'cannot read the shard registry' };
  return { ring, records, plan };
}

function isError(m: MetadataView | { error: string }): m is { error: string } {
  return 'error' in m;
}

const TABLE_CHECKS = ['row_balance', 'byte_balance', 'misplaced_rows'] as const;

// ---- balance and misplaced rows: one session per shard ----

interface ShardReading {
  shard: ShardTarget;
  sizes?: TableSize[];
  /** Per table: rows sampled, the misplaced ones (and the first of them, with its owner), and keys in ranges of a move in flight. */
  samples?: Map<string, { sampled: number; misplaced: number; example: { key: string; owner: string } | null; inFlight: number }>;
  error?: string;
}

async function measureTables(ctx: HealthContext, meta: MetadataView | { error: string }): Promise<Measurement[]> {
  const tables = ctx.config.tables;
  if (!tables.length || !TABLE_CHECKS.some((c) => ctx.wants(c))) return [];
  if (isError(meta)) {
    const out: Measurement[] = [];
    for (const t of tables) {
      for (const check of ['row_balance', 'byte_balance'] as const) {
        if (ctx.wants(check)) out.push({ check, target: t.name, labels: { table: t.name }, value: null, status: 'unknown', message: meta.error });
      }
      if (ctx.wants('misplaced_rows')) {
        for (const s of ctx.configShards) out.push({ check: 'misplaced_rows', target: `${t.name} on ${s.id}`, labels: { shard: s.id, table: t.name }, value: null, status: 'unknown', message: meta.error });
      }
    }
    return out;
  }
  const ring = Ring.build(meta.ring);
  // The ranges the ring gives each shard, for a shard read on its own (countMisplaced): worked out only then.
  let owned: Map<string, Interval[]> | undefined;
  const ownedBy = (id: string) => {
    if (!owned) {
      owned = new Map();
      for (const r of ring.ranges()) {
        const list = owned.get(r.shardId) ?? [];
        if (!list.length) owned.set(r.shardId, list);
        list.push({ start: r.start, end: r.end });
      }
    }
    return owned.get(id) ?? [];
  };
  const inRing = new Set(meta.ring.members.map((m) => m.id));
  const shards = await ctx.shards();
  const readings = await Promise.all(shards.map((s) => readShard(ctx, s, ring, () => ownedBy(s.id), meta.plan)));
  const out: Measurement[] = [];
  for (const t of tables) {
    // Balance is over the shards the ring gives rows to; a pending or unregistered shard holds none by design.
    const members = readings.filter((r) => inRing.has(r.shard.id) && r.shard.weight > 0);
    if (ctx.wants('row_balance')) out.push(balance('row_balance', t.name, members, (s) => s.rows, 1000, (n) => `${Math.round(n)} rows`));
    if (ctx.wants('byte_balance')) out.push(balance('byte_balance', t.name, members, (s) => s.bytes, 1024 ** 2, formatBytes));
    if (ctx.wants('misplaced_rows')) for (const r of readings) out.push(misplaced(t.name, t.key, r));
  }
  return out;
}

/**
 * One shard's table sizes and every existing table's bounded key sample,
 * each key placed on the ring here: read with the shard's other figures in
 * one statement (ctx.snapshot). When that failed, on its own: the sizes,
 * then the samples counted by the shard against the ranges the ring gives it
 * (countMisplaced: two round trips whatever the number of tables), or on
 * PostgreSQL 13 (no int8multirange) the sampled keys, placed here.
 */
async function readShard(ctx: HealthContext, shard: ShardTarget, ring: Ring, owned: () => Interval[], plan: PlanRecord | null): Promise<ShardReading> {
  const tables = ctx.config.tables;
  // Rows of an unfinished move's ranges are expected on both its ends until cleanup: copies on the target, originals on the source.
  const moving = (plan?.moves ?? []).filter((m) => m.state !== 'cleaned' && m.state !== 'aborted' && (m.source === shard.id || m.target === shard.id)).flatMap((m) => m.ranges);
  const place = (keys: SampledKey[]) => {
    const entry = { sampled: keys.length, misplaced: 0, example: null as { key: string; owner: string } | null, inFlight: 0 };
    for (const k of keys) {
      const owner = ring.locateHash(k.hash);
      if (owner === shard.id) continue;
      if (inRanges(k.hash, moving)) entry.inFlight++;
      else if (entry.misplaced++ === 0) entry.example = { key: k.key, owner };
    }
    return entry;
  };
  try {
    const snapshot = await ctx.snapshot(shard.url, `shard ${shard.id}`, true);
    const wantSamples = ctx.wants('misplaced_rows');
    if (snapshot?.sizes && (snapshot.samples || !wantSamples)) {
      const sizes = snapshot.sizes;
      if (!wantSamples) return { shard, sizes };
      const samples: NonNullable<ShardReading['samples']> = new Map();
      tables.forEach((t, i) => {
        if (sizes[i]!.exists) samples.set(t.name, place(snapshot.samples![i]!));
      });
      return { shard, sizes, samples };
    }
    return await ctx.session(shard.url, `shard ${shard.id}`).use(async (client) => {
      const sizes = await readTableSizes(client, tables.map((t) => t.name));
      const samples: NonNullable<ShardReading['samples']> = new Map();
      if (!wantSamples) return { shard, sizes };
      const sampled = tables.map((t, i) => ({ table: t.name, key: t.key, estimatedRows: sizes[i]!.rows })).filter((_, i) => sizes[i]!.exists);
      const counted = await countMisplaced(client, sampled, { owned: owned(), moving });
      for (const [i, t] of sampled.entries()) {
        if (counted) {
          const c = counted[i]!;
          samples.set(t.table, { sampled: c.sampled, misplaced: c.misplaced, inFlight: c.inFlight, example: c.example && { key: c.example.key, owner: ring.locateHash(Number(c.example.hash)) } });
          continue;
        }
        samples.set(t.table, place(await sampleShardKeys(client, t.table, t.key, t.estimatedRows)));
      }
      return { shard, sizes, samples };
    });
  } catch (err) {
    return { shard, error: (err as Error).message };
  }
}

function inRanges(hash: number, ranges: Interval[]): boolean {
  return ranges.some((r) => hash >= r.start && hash <= r.end);
}

/**
 * max / mean of the per-weight figure: each shard's rows (or bytes) divided
 * by its weight, so a shard of weight 2 holding twice the rows is balanced.
 * None below `floor` in total: a near-empty table is balanced whatever its spread.
 */
function balance(check: 'row_balance' | 'byte_balance', table: string, readings: ShardReading[], pick: (s: TableSize) => number, floor: number, show: (n: number) => string): Measurement {
  const base = { check, target: table, labels: { table } };
  const failed = readings.filter((r) => r.error);
  if (failed.length) return { ...base, value: null, status: 'unknown', message: `${failed.map((r) => r.shard.id).join(', ')} did not answer (${failed[0]!.error}): balance needs every shard` };
  const per = readings.map((r) => {
    const size = r.sizes!.find((s) => s.table === table)!;
    return { id: r.shard.id, exists: size.exists, amount: pick(size), perWeight: pick(size) / r.shard.weight };
  });
  const missing = per.filter((p) => !p.exists);
  if (missing.length) return { ...base, value: null, status: 'unknown', message: `${table} does not exist on ${missing.map((p) => p.id).join(', ')}` };
  if (!per.length) return { ...base, value: null, message: 'no shard in the ring to compare' };
  const total = per.reduce((s, p) => s + p.amount, 0);
  if (total < floor) return { ...base, value: null, message: `${show(total)} in total: too little to judge the balance` };
  const mean = per.reduce((s, p) => s + p.perWeight, 0) / per.length;
  const sorted = [...per].sort((a, b) => b.perWeight - a.perWeight);
  const heaviest = sorted[0]!;
  const lightest = sorted[sorted.length - 1]!;
  const value = heaviest.perWeight / mean;
  return { ...base, value, message: `heaviest ${heaviest.id} ${show(heaviest.amount)}, lightest ${lightest.id} ${show(lightest.amount)}, ${show(total)} over ${per.length} shard(s); max/mean per unit of weight ${value.toFixed(2)}` };
}

function misplaced(table: string, key: string, r: ShardReading): Measurement {
  const base = { check: 'misplaced_rows', target: `${table} on ${r.shard.id}`, labels: { shard: r.shard.id, table } };
  if (r.error) return { ...base, value: null, status: 'unknown', message: `shard ${r.shard.id} did not answer: ${r.error}` };
  const size = r.sizes!.find((s) => s.table === table)!;
  if (!size.exists) return { ...base, value: null, status: 'unknown', message: `${table} does not exist on ${r.shard.id}` };
  const s = r.samples!.get(table);
  if (!s) return { ...base, value: null, message: 'not sampled' };
  const moving = s.inFlight ? `; ${s.inFlight} more in ranges of a move in flight (expected)` : '';
  if (!s.misplaced) return { ...base, value: 0, message: `none of ${s.sampled} sampled rows belongs elsewhere${moving}` };
  const example = s.example!;
  return { ...base, value: s.misplaced, message: `${s.misplaced} of ${s.sampled} sampled rows belong elsewhere, e.g. ${key} ${example.key} → ${example.owner} (\`shard rebalance\` moves them)${moving}` };
}

// ---- from the metadata database alone ----

function measureMetadataChecks(ctx: HealthContext, meta: MetadataView | { error: string }): Measurement[] {
  const out: Measurement[] = [];
  const unknown = (check: string, message: string): Measurement => ({ check, target: 'deployment', labels: {}, value: null, status: 'unknown', message });
  for (const check of ['moves_in_flight', 'moves_failed', 'shard_registry']) {
    if (!ctx.wants(check)) continue;
    if (isError(meta)) {
      out.push(unknown(check, meta.error));
      continue;
    }
    if (check === 'moves_in_flight') out.push(movesInFlight(ctx, meta.plan));
    if (check === 'moves_failed') out.push(movesFailed(meta.plan));
    if (check === 'shard_registry') out.push(shardRegistry(ctx, meta.records));
  }
  return out;
}

function movesInFlight(ctx: HealthContext, plan: PlanRecord | null): Measurement {
  const base = { check: 'moves_in_flight', target: 'deployment', labels: {} };
  const open = (plan?.moves ?? []).filter((m) => m.state !== 'cleaned' && m.state !== 'aborted');
  if (!plan || !open.length) return { ...base, value: 0, message: 'no moves in flight' };
  const since = (m: (typeof open)[number]) => (m.startedAt ?? plan.createdAt).getTime();
  const oldest = open.reduce((a, m) => (since(m) < since(a) ? m : a));
  const age = Math.max(0, (ctx.now.getTime() - since(oldest)) / 1000);
  return { ...base, value: age, message: `${open.length} move(s) of plan ${plan.id} (${plan.kind}, ${plan.state}) not finished; oldest: move ${oldest.moveNo} ${oldest.source} → ${oldest.target} (${oldest.state}) for ${formatSeconds(age)}` };
}

function movesFailed(plan: PlanRecord | null): Measurement {
  const base = { check: 'moves_failed', target: 'deployment', labels: {} };
  const failed = (plan?.moves ?? []).filter((m) => m.state === 'failed');
  if (!plan) return { ...base, value: 0, message: 'no unfinished plan' };
  if (!failed.length && plan.state !== 'failed') return { ...base, value: 0, message: `no failed move in plan ${plan.id}` };
  if (!failed.length) return { ...base, value: 1, message: `plan ${plan.id} failed${plan.error ? `: ${oneLine(plan.error)}` : ''} (\`shard resume\` or \`shard abort ${plan.id}\`)` };
  const first = failed[0]!;
  return {
    ...base,
    value: failed.length,
    message: `${failed.length} failed move(s) in plan ${plan.id}; move ${first.moveNo} ${first.source} → ${first.target}${first.error ? `: ${oneLine(first.error)}` : ''} (\`shard resume\` or \`shard abort ${plan.id}\`)`,
  };
}

function shardRegistry(ctx: HealthContext, records: ShardRecord[]): Measurement {
  const base = { check: 'shard_registry', target: 'deployment', labels: {} };
  const configured = new Set(ctx.config.shards.map((s) => s.id));
  const registered = records.filter((r) => r.state !== 'retired');
  const known = new Set(records.map((r) => r.id));
  const notInConfig = registered.filter((r) => !configured.has(r.id)).map((r) => `${r.id} (${r.state})`);
  const notRegistered = ctx.config.shards.filter((s) => !known.has(s.id)).map((s) => s.id);
  const retiredInConfig = ctx.config.shards.filter((s) => records.some((r) => r.id === s.id && r.state === 'retired')).map((s) => s.id);
  const value = notInConfig.length + notRegistered.length;
  const parts: string[] = [];
  if (notInConfig.length) parts.push(`registered but not in the config: ${notInConfig.join(', ')}`);
  if (notRegistered.length) parts.push(`in the config but not registered: ${notRegistered.join(', ')}`);
  if (retiredInConfig.length) parts.push(`retired, still in the config (harmless): ${retiredInConfig.join(', ')}`);
  return { ...base, value, message: parts.length ? parts.join('; ') : `the registry and the config agree on ${registered.length} shard(s)` };
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').slice(0, 200);
}

// ---- the ring in Redis ----

async function measureRingPublished(ctx: HealthContext, meta: MetadataView | { error: string }): Promise<Measurement[]> {
  const redis = ctx.config.redis;
  const base = { check: 'ring_published', target: 'deployment', labels: {} };
  if (!redis) return [{ ...base, value: null, message: 'no Redis configured' }];
  if (isError(meta)) return [{ ...base, value: null, status: 'unknown', message: meta.error }];
  const key = ringKey(redis.prefix);
  let body: string | null;
  try {
    body = await boundedRedisGet(ctx, key);
  } catch (err) {
    return [{ ...base, value: null, status: 'unknown', message: `cannot read the ring key ${key} from Redis: ${(err as Error).message}` }];
  }
  if (body === null) return [{ ...base, value: null, status: 'critical', message: `the ring key ${key} is missing in Redis: applications cannot route (\`shard ring\` shows the ring; \`init\` republishes it)` }];
  let published: PublishedRing;
  try {
    published = JSON.parse(body) as PublishedRing;
    if (!Number.isInteger(published.epoch)) throw new Error('no epoch');
  } catch {
    return [{ ...base, value: null, status: 'critical', message: `the ring key ${key} in Redis does not hold a published ring` }];
  }
  const lag = meta.ring.epoch - published.epoch;
  return [{
    ...base,
    value: lag,
    message: lag === 0
      ? `Redis ${key} holds epoch ${published.epoch}, the current one`
      : `Redis ${key} holds epoch ${published.epoch}, the metadata database epoch ${meta.ring.epoch}${lag < 0 ? ' (Redis is ahead: another deployment shares this prefix?)' : ''}`,
  }];
}

/** GET within the run's deadline: ioredis's own connect timeout is longer than a health run. */
async function boundedRedisGet(ctx: HealthContext, key: string): Promise<string | null> {
  let client: RedisClient | undefined;
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => {
      client?.disconnect();
      reject(new Error(`no answer within ${formatSeconds(ctx.timeoutMs / 1000)}`));
    };
    ctx.signal.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => {});
  if (ctx.signal.aborted) onAbort();
  try {
    const work = (async () => {
      client = await connectRedis(ctx.config.redis!);
      if (ctx.signal.aborted) client.disconnect();
      return client.get(key);
    })();
    work.catch(() => {});
    return await Promise.race([work, aborted]);
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    client?.disconnect();
  }
}
