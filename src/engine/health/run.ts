import { setMaxListeners } from 'node:events';
import type { ShardctlConfig } from '../../config/schema.js';
import { checkSpec, HEALTH_CHECKS, isCheckName, type CheckSpec, type HealthGroup } from '../../core/health-checks.js';
import { compareStatus, evaluateThresholds, parseThresholdValue, worstStatus, type HealthStatus, type Thresholds } from '../../core/thresholds.js';
import { ConfigError } from '../../errors.js';
import { MetadataStore, storeOptionsOf, type ShardRecord } from '../../metadata/store.js';
import { destroySocket } from '../../postgres/deadline.js';
import { DeadlineExceeded, SharedHealthSession } from '../../postgres/health-session.js';
import { resolveShardTargets, type ShardTarget } from '../shards/targets.js';
import { parseDuration } from '../../config/duration.js';
import { redactUrl } from '../../config/redact.js';
import { readShardSnapshot, hasParts, type ShardSnapshot, type SnapshotParts } from '../../postgres/health/shard-snapshot.js';
import { QUERY_CHARS, type CheckResult, type CollectGroup, type HealthContext, type HealthReport, type Measurement } from './types.js';

export interface HealthOptions {
  /** --timeout (ms); default health.timeout. */
  timeoutMs?: number;
  /** --only: the groups to check (default all). */
  only?: HealthGroup[];
  /** --shard: only these shards (and the metadata database). */
  shards?: string[];
  /** --check NAME: one check. */
  check?: string;
  signal?: AbortSignal;
  now?: Date;
  /**
   * Hands over the closing of the run's sessions (Terminate, and the server's
   * goodbye) instead of waiting for it before the report is returned: the
   * CLI renders and writes the report meanwhile, and waits for it after.
   */
  deferClose?: (closing: Promise<void>) => void;
}

const COLLECTORS: Record<HealthGroup, () => Promise<CollectGroup>> = {
  shards: async () => (await import('./shards.js')).collectShards,
  sharding: async () => (await import('./sharding.js')).collectSharding,
  partitions: async () => (await import('./partitions.js')).collectPartitions,
  streams: async () => (await import('./streams.js')).collectStreams,
};

/** A collector gets this long past the deadline to hand its results over before the runner reports it silent. */
const GRACE_MS = 250;

/**
 * `health`: every group's checks in parallel, under one deadline (start +
 * timeout), each target on its own connection (one per database, shared by
 * the groups), so a dead or hanging server is CRITICAL by the deadline and
 * never holds the others' results back. Reads only; takes no lock an
 * application could wait behind.
 */
export async function runHealth(config: ShardctlConfig, options: HealthOptions = {}): Promise<HealthReport> {
  const levels = configuredThresholds(config);
  const started = Date.now();
  const timeoutMs = options.timeoutMs ?? parseDuration(config.health.timeout);
  const deadline = started + timeoutMs;
  const controller = new AbortController();
  // Every target's session listens for the deadline on this one signal: hundreds of listeners are expected, not a leak.
  setMaxListeners(0, controller.signal);
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const onOuterAbort = () => controller.abort();
  options.signal?.addEventListener('abort', onOuterAbort, { once: true });
  if (options.check && !isCheckName(options.check)) throw new ConfigError(`unknown check "${options.check}"`, [`known checks: ${HEALTH_CHECKS.map((c) => c.name).join(', ')}`]);
  const groups = options.check ? [checkSpec(options.check).group] : (options.only ?? (['shards', 'sharding', 'partitions', 'streams'] as HealthGroup[]));
  const { ctx, close } = healthContext(config, { timeoutMs, deadline, signal: controller.signal, now: options.now ?? new Date(started), shards: options.shards, check: options.check, groups });
  try {
    const measured = await Promise.all(groups.map((group) => collectBounded(group, ctx)));
    const judge = judgeWith(levels);
    const results = measured
      .flat()
      .filter((m) => !options.check || m.check === options.check)
      .map(judge)
      .sort((a, b) => compareStatus(a.status, b.status) || a.check.localeCompare(b.check) || a.target.localeCompare(b.target));
    const summary: Record<HealthStatus, number> = { ok: 0, warning: 0, critical: 0, unknown: 0 };
    for (const r of results) summary[r.status]++;
    return { at: new Date(started).toISOString(), status: worstStatus(results.map((r) => r.status)), durationMs: Date.now() - started, timeoutMs, results, summary };
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onOuterAbort);
    const closing = close();
    if (options.deferClose) {
      closing.catch(() => {});
      options.deferClose(closing);
    } else await closing;
  }
}

async function collectBounded(group: HealthGroup, ctx: HealthContext): Promise<Measurement[]> {
  const silent = (why: string): Measurement[] => [{ check: firstCheckOf(group), target: group, labels: labelsFor(firstCheckOf(group), group), value: null, status: 'unknown', message: why }];
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<Measurement[]>((resolve) => {
    timer = setTimeout(() => resolve(silent(`the ${group} checks did not finish within the timeout`)), Math.max(0, ctx.deadline - Date.now()) + GRACE_MS);
  });
  try {
    const collect = await COLLECTORS[group]();
    return await Promise.race([collect(ctx), late]);
  } catch (err) {
    return silent(`the ${group} checks failed: ${(err as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}

function firstCheckOf(group: HealthGroup): string {
  return HEALTH_CHECKS.find((c) => c.group === group)!.name;
}

function labelsFor(check: string, value: string): Record<string, string> {
  return Object.fromEntries(checkSpec(check).labels.map((l) => [l, value]));
}

/**
 * Measurements judged against the thresholds: health.thresholds, else the
 * measurement's own defaults, else the check's. What does not depend on the
 * measurement (the spec, the levels) is worked out once per check, and
 * results without defaults of their own share their check's thresholds
 * object: thousands of stream results are judged per run.
 */
function judgeWith(levels: Map<string, Partial<Thresholds>>): (m: Measurement) => CheckResult {
  const perCheck = new Map<string, { spec: CheckSpec; configured: Partial<Thresholds>; thresholds: Thresholds }>();
  const of = (check: string) => {
    let entry = perCheck.get(check);
    if (!entry) {
      const spec = checkSpec(check);
      const configured = levels.get(check) ?? {};
      const thresholds: Thresholds = {
        warning: configured.warning !== undefined ? configured.warning : spec.defaults.warning,
        critical: configured.critical !== undefined ? configured.critical : spec.defaults.critical,
      };
      perCheck.set(check, (entry = { spec, configured, thresholds }));
    }
    return entry;
  };
  return (m) => {
    const { spec, configured, thresholds: shared } = of(m.check);
    const d = m.defaults;
    const thresholds: Thresholds =
      d === undefined
        ? shared
        : {
            warning: configured.warning !== undefined ? configured.warning : d.warning !== undefined ? d.warning : spec.defaults.warning,
            critical: configured.critical !== undefined ? configured.critical : d.critical !== undefined ? d.critical : spec.defaults.critical,
          };
    const status = m.status ?? evaluateThresholds(m.value, thresholds, spec.direction);
    const labels: Record<string, string> = {};
    for (const l of spec.labels) labels[l] = m.labels[l] ?? '';
    return { check: m.check, group: spec.group, target: m.target, labels, status, value: m.value, unit: spec.unit, thresholds, message: m.message };
  };
}

/** health.thresholds, read in each check's unit; every problem reported at once, by its path. */
export function configuredThresholds(config: ShardctlConfig): Map<string, Partial<Thresholds>> {
  const problems: string[] = [];
  const levels = new Map<string, Partial<Thresholds>>();
  for (const [name, raw] of Object.entries(config.health.thresholds)) {
    if (!isCheckName(name)) {
      problems.push(`health.thresholds.${name}: unknown check (known: ${HEALTH_CHECKS.map((c) => c.name).join(', ')})`);
      continue;
    }
    const spec = checkSpec(name);
    const entry: Partial<Thresholds> = {};
    for (const level of ['warning', 'critical'] as const) {
      const value = raw[level];
      if (value === undefined) continue;
      if (value === null || value === 'none') {
        entry[level] = null;
        continue;
      }
      try {
        entry[level] = parseThresholdValue(value, spec.unit);
      } catch (err) {
        problems.push(`health.thresholds.${name}.${level}: ${(err as Error).message}`);
      }
    }
    levels.set(name, entry);
  }
  if (problems.length) throw new ConfigError('invalid health thresholds', problems);
  return levels;
}

function healthContext(
  config: ShardctlConfig,
  o: { timeoutMs: number; deadline: number; signal: AbortSignal; now: Date; shards?: string[]; check?: string; groups: HealthGroup[] },
): { ctx: HealthContext; close: () => Promise<void> } {
  const wants = (check: string) => !o.check || o.check === check;
  const snapshots = new Map<string, Promise<ShardSnapshot | null>>();
  const parts = snapshotParts(config, o.groups, wants);
  let store: Promise<MetadataStore | null> | undefined;
  let opened: MetadataStore | null = null;
  const wanted = (id: string) => !o.shards?.length || o.shards.includes(id);
  const openStore = (): Promise<MetadataStore | null> => {
    const left = o.deadline - Date.now();
    if (left <= 0) return Promise.resolve(null);
    const opening = MetadataStore.open(config.metadata.url, {
      applicationName: 'shardctl health',
      ...storeOptionsOf(config),
      connect: { connectTimeoutMs: left, settings: { statement_timeout: `${left}ms`, lock_timeout: `${Math.min(left, 1000)}ms` } },
    }).then((s) => {
      if (o.signal.aborted) {
        destroySocket(s.client);
        return null;
      }
      opened = s;
      o.signal.addEventListener('abort', () => destroySocket(s.client), { once: true });
      return s;
    });
    const timedOut = new Promise<null>((resolve) => o.signal.addEventListener('abort', () => resolve(null), { once: true }));
    return Promise.race([opening.catch(() => null), timedOut]);
  };
  const sessions = new Map<string, SharedHealthSession>();
  let registry: Promise<ShardRecord[] | null> | undefined;
  let shardList: Promise<ShardTarget[]> | undefined;
  const fromConfig: ShardTarget[] = config.shards.map((s) => ({ id: s.id, url: s.url, displayUrl: redactUrl(s.url), state: 'unregistered', weight: s.weight }));
  const ctx: HealthContext = {
    configShards: fromConfig.filter((s) => wanted(s.id)),
    config,
    timeoutMs: o.timeoutMs,
    deadline: o.deadline,
    signal: o.signal,
    now: o.now,
    wants,
    session: (url, label) => {
      let session = sessions.get(url);
      if (!session) sessions.set(url, (session = new SharedHealthSession(url, { deadline: o.deadline, signal: o.signal, label })));
      return session;
    },
    metadata: () => (store ??= openStore()),
    registry: () => (registry ??= ctx.metadata().then((meta) => (meta ? meta.listShards().catch(() => null) : null))),
    shards: () =>
      (shardList ??= (async () => {
        const records = await ctx.registry();
        if (!records) return fromConfig.filter((s) => wanted(s.id));
        const registered = resolveShardTargets(config, records);
        const known = new Set(registered.map((s) => s.id));
        const retired = new Set(records.filter((r) => r.state === 'retired').map((r) => r.id));
        return [...registered, ...fromConfig.filter((s) => !known.has(s.id) && !retired.has(s.id))].filter((s) => wanted(s.id));
      })()),
    snapshot: (url, label, shard) => {
      let snapshot = snapshots.get(url);
      if (!snapshot) {
        const asked = shard ? parts.shard : parts.metadata;
        snapshot = !hasParts(asked)
          ? Promise.resolve({})
          : ctx.session(url, label).use(async (client) => {
              try {
                return await readShardSnapshot(client, asked);
              } catch (err) {
                // A statement's own failure (it carries a severity): the groups read their parts on their own. Anything else is the session's.
                if (o.signal.aborted || !(err && typeof err === 'object' && 'severity' in err)) throw err;
                await client.query('ROLLBACK').catch(() => {});
                return null;
              }
            });
        snapshot.catch(() => {});
        snapshots.set(url, snapshot);
      }
      return snapshot;
    },
  };
  return {
    ctx,
    close: async () => {
      await Promise.all([...sessions.values()].map((s) => s.close()));
      if (opened) await Promise.race([opened.close(), new Promise((r) => setTimeout(r, 200))]).then(() => destroySocket(opened!.client));
    },
  };
}

/**
 * What the one-statement snapshot of a database holds in this run: the parts
 * the run's groups would read from it, and only the checks they want.
 */
function snapshotParts(config: ShardctlConfig, groups: HealthGroup[], wants: (check: string) => boolean): { shard: SnapshotParts; metadata: SnapshotParts } {
  const inRun = (group: HealthGroup, checks: string[]) => groups.includes(group) && checks.some(wants);
  const statsChecks = HEALTH_CHECKS.filter((c) => c.group === 'shards' && c.name !== 'reachable' && c.name !== 'latency').map((c) => c.name);
  const stats = inRun('shards', statsChecks) ? { stats: { queryChars: QUERY_CHARS + 1 } } : {};
  const shard: SnapshotParts = { ...stats };
  if (config.tables.length && inRun('sharding', ['row_balance', 'byte_balance', 'misplaced_rows'])) {
    shard.tables = config.tables.map((t) => ({ table: t.name, key: t.key }));
    shard.sample = wants('misplaced_rows');
  }
  if (config.partitions.length && inRun('partitions', ['partition_runway', 'default_partition_rows', 'partition_rows', 'partition_bytes'])) {
    shard.partitions = config.partitions.map((p) => p.table);
  }
  return { shard, metadata: stats };
}

export { DeadlineExceeded };
