import { parseDuration } from '../../config/duration.js';
import { formatBytes, formatSeconds } from '../../core/thresholds.js';
import { streamIdAgeMs } from '../../core/stream-id.js';
import {
  endpointLike,
  endpointOfUrl,
  HealthConnection,
  NoAnswerError,
  type RedisEndpoint,
  type StreamHealth,
  type StreamHealthError,
} from '../../redis/health.js';
import { scanStreams } from '../../redis/streams/scan.js';
import { policyOf, type StreamPolicyConfig } from '../streams/policies.js';
import type { HealthContext, Measurement } from './types.js';

/**
 * The `streams` group of `health`: per stream a policy matches, its length
 * and the age of its first entry against the policy; per consumer group its
 * lag and the idle time of its oldest pending entry; per Redis node (every
 * master and replica of a Cluster) PING and memory against maxmemory; and a
 * Cluster's state and slots served. Every node is checked on its own
 * connection in parallel, so a node that hangs is CRITICAL at the deadline
 * while the others' results still arrive.
 */

const STREAM_CHECKS = ['stream_length', 'stream_age', 'group_lag', 'pending_idle'] as const;
/** Keys per pipelined round trip: large enough that 1,000 streams are a couple of round trips, small enough to keep replies modest. */
const BATCH_KEYS = 250;
/** Batches in flight per node while the SCAN goes on. */
const BATCHES_IN_FLIGHT = 4;

interface NodeTarget {
  endpoint: RedisEndpoint;
  role: 'standalone' | 'master' | 'replica';
  /** A connection opened (or opening) while finding the Cluster's nodes. */
  connection?: Promise<HealthConnection>;
}

/** What one node has got to: what the deadline reports when it has not finished. */
interface NodeProgress {
  target: NodeTarget;
  stage: 'connecting' | 'ping' | 'memory' | 'streams' | 'done';
  streamsChecked: number;
}

export async function collectStreams(ctx: HealthContext): Promise<Measurement[]> {
  const redis = ctx.config.redis;
  if (!redis || (!redis.url && !redis.nodes)) return [];
  const run = new StreamsHealthRun(ctx);
  const work = run.checkAll(redis.nodes ?? [redis.url!], Boolean(redis.nodes));
  const deadline = new Promise<void>((resolve) => {
    if (ctx.signal.aborted) resolve();
    ctx.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  await Promise.race([work, deadline]);
  return run.finish();
}

class StreamsHealthRun {
  readonly #ctx: HealthContext;
  readonly #out: Measurement[] = [];
  readonly #progress: NodeProgress[] = [];
  /** A Cluster's seeds while none has answered CLUSTER NODES yet: reported down if the deadline comes first. */
  #discovering: RedisEndpoint[] | null = null;
  readonly #connections: HealthConnection[] = [];
  /** Keys already reported: SCAN may return a key twice, and two patterns may match one key. */
  readonly #seen = new Set<string>();
  readonly #nowMs: number;
  readonly #wantStreams: boolean;
  /** The check a node's failure is reported under: redis_reachable, or under --check the one asked for; null: no node check wanted. */
  readonly #failureCheck: string | null;
  #finished = false;

  constructor(ctx: HealthContext) {
    this.#ctx = ctx;
    this.#nowMs = ctx.now.getTime();
    this.#wantStreams = ctx.config.streams.length > 0 && STREAM_CHECKS.some((c) => ctx.wants(c));
    this.#failureCheck = ['redis_reachable', 'redis_memory', ...STREAM_CHECKS].find((c) => ctx.wants(c)) ?? null;
  }

  async checkAll(urls: readonly string[], cluster: boolean): Promise<void> {
    const seeds = urls.map(endpointOfUrl);
    const targets = cluster ? await this.#clusterTargets(seeds) : [{ endpoint: seeds[0]!, role: 'standalone' as const }];
    // --check cluster_state needs no node of its own.
    if (!this.#failureCheck) return;
    await Promise.all(targets.map((t) => this.#checkNode(t)));
  }

  /** The results so far; a node still at work when the deadline passed is CRITICAL, naming where it stopped. */
  finish(): Measurement[] {
    if (!this.#finished) {
      if (this.#discovering) this.#noSeedAnswered(this.#discovering, []);
      for (const p of this.#progress) {
        if (p.stage === 'done') continue;
        this.#nodeDown(p.target, this.#whyDown(p, new NoAnswerError(Date.now() - (this.#ctx.deadline - this.#ctx.timeoutMs))));
        p.stage = 'done';
      }
      this.#finished = true;
      for (const c of this.#connections) c.close();
    }
    return [...this.#out];
  }

  #push(...m: Measurement[]): void {
    if (!this.#finished) this.#out.push(...m);
  }

  async #open(target: NodeTarget): Promise<HealthConnection> {
    const conn = await (target.connection ?? HealthConnection.open(target.endpoint, this.#ctx.deadline, this.#ctx.signal));
    if (!this.#connections.includes(conn)) this.#connections.push(conn);
    if (this.#finished) conn.close();
    return conn;
  }

  /**
   * Every node of the Cluster, from CLUSTER NODES of the first seed to
   * answer (all seeds are tried at once), and the cluster_state check from
   * its CLUSTER INFO. No seed answering: each seed is reported down.
   */
  async #clusterTargets(seeds: RedisEndpoint[]): Promise<NodeTarget[]> {
    const opened = seeds.map((endpoint) => this.#open({ endpoint, role: 'master' }));
    const asked = seeds.map(async (endpoint, i) => {
      const conn = await opened[i]!;
      try {
        return { endpoint, cluster: await conn.cluster() };
      } catch (err) {
        throw conn.explain(err);
      }
    });
    this.#discovering = seeds;
    let first: Awaited<(typeof asked)[number]>;
    try {
      first = await Promise.any(asked);
    } catch (err) {
      if (this.#discovering) this.#noSeedAnswered(seeds, (err as AggregateError).errors as Error[]);
      return [];
    }
    this.#discovering = null;
    const { cluster } = first;
    if (this.#ctx.wants('cluster_state')) {
      this.#push({
        check: 'cluster_state',
        target: 'redis cluster',
        labels: {},
        value: cluster.slotsOk / 16_384,
        ...(cluster.state === 'ok' ? {} : { status: 'critical' as const }),
        message: `cluster_state:${cluster.state}, ${cluster.slotsOk} of 16384 slots served (${cluster.slotsAssigned} assigned), ${cluster.nodes.length} nodes, as ${first.endpoint.name} sees it`,
      });
    }
    // A seed's connection is reused for its node, opened or still opening: a hanging seed must not hold the others back.
    const seedIndex = new Map(seeds.map((s, i) => [s.name, i]));
    return cluster.nodes.map((n) => {
      const i = seedIndex.get(`${n.host}:${n.port}`);
      return i === undefined
        ? { endpoint: endpointLike(seeds[0]!, n.host, n.port), role: n.role }
        : { endpoint: seeds[i]!, role: n.role, connection: opened[i]! };
    });
  }

  #noSeedAnswered(seeds: RedisEndpoint[], reasons: Error[]): void {
    this.#discovering = null;
    const waited = () => new NoAnswerError(Date.now() - (this.#ctx.deadline - this.#ctx.timeoutMs));
    seeds.forEach((s, i) => {
      const reason = reasons[i] ?? waited();
      const why = isConnectionLoss(reason) || /NOAUTH|WRONGPASS/.test(reason.message) ? reason.message : `answered, but not as a Cluster node (CLUSTER NODES: ${reason.message})`;
      this.#nodeDown({ endpoint: s, role: 'master' }, why);
    });
    if (this.#ctx.wants('cluster_state')) {
      this.#push({ check: 'cluster_state', target: 'redis cluster', labels: {}, value: null, status: 'critical', message: `no seed node of redis.nodes answered CLUSTER NODES (${seeds.map((s) => s.name).join(', ')})` });
    }
  }

  async #checkNode(target: NodeTarget): Promise<void> {
    const progress: NodeProgress = { target, stage: 'connecting', streamsChecked: 0 };
    this.#progress.push(progress);
    const ctx = this.#ctx;
    let conn: HealthConnection | undefined;
    try {
      conn = await this.#open(target);
      progress.stage = 'ping';
      const seconds = await conn.ping();
      progress.stage = 'memory';
      const memory = ctx.wants('redis_memory') ? await conn.memory() : null;
      progress.stage = 'streams';
      if (this.#wantStreams && target.role !== 'replica') {
        try {
          await this.#checkStreams(conn, progress);
        } catch (err) {
          const why = conn.explain(err);
          if (isConnectionLoss(why)) throw why;
          // The node answers but refuses the reads (CLUSTERDOWN, NOPERM): its streams are unknown, the node is up.
          this.#streamsUnknown(target, `${target.role} ${target.endpoint.name} answered PING but refused the stream checks after ${progress.streamsChecked} streams: ${why.message}`);
        }
      }
      progress.stage = 'done';
      if (ctx.wants('redis_reachable')) {
        this.#push({ ...this.#nodeIds(target, 'redis_reachable'), value: 1, message: `${target.role} ${target.endpoint.name} answered PING in ${formatSeconds(seconds)}` });
      }
      if (memory) this.#push(this.#memoryMeasurement(target, memory));
    } catch (err) {
      if (progress.stage === 'done' || this.#finished) return;
      const why = conn ? conn.explain(err) : (err as Error);
      this.#nodeDown(target, this.#whyDown(progress, why));
      progress.stage = 'done';
    }
  }

  /** The reason, and how far the node got when it is not the connection that failed. */
  #whyDown(p: NodeProgress, err: Error): string {
    if (p.stage === 'connecting' || p.stage === 'ping') return err.message;
    const during = p.stage === 'memory' ? 'INFO memory' : `the stream checks (${p.streamsChecked} streams checked)`;
    return `answered PING, then failed during ${during}: ${err.message}`;
  }

  #streamsUnknown(target: NodeTarget, message: string): void {
    const check = STREAM_CHECKS.find((c) => this.#ctx.wants(c));
    if (check) this.#push({ check, target: `streams on redis ${target.endpoint.name}`, labels: { stream: '', group: '' }, value: null, status: 'unknown', message });
  }

  #nodeIds(target: NodeTarget, check: string): Pick<Measurement, 'check' | 'target' | 'labels'> {
    return { check, target: `redis ${target.endpoint.name}`, labels: { node: target.endpoint.name } };
  }

  #nodeDown(target: NodeTarget, why: string): void {
    if (!this.#failureCheck) return;
    const check = this.#failureCheck;
    const nodeCheck = check === 'redis_reachable' || check === 'redis_memory';
    this.#push({
      check,
      target: nodeCheck ? `redis ${target.endpoint.name}` : `streams on redis ${target.endpoint.name}`,
      labels: nodeCheck ? { node: target.endpoint.name } : { stream: '', group: '' },
      value: check === 'redis_reachable' ? 0 : null,
      status: 'critical',
      message: `${target.role} ${target.endpoint.name}: ${why}`,
    });
  }

  #memoryMeasurement(target: NodeTarget, m: { used: number; max: number; policy: string }): Measurement {
    const ids = this.#nodeIds(target, 'redis_memory');
    if (m.max === 0) return { ...ids, value: null, message: `no maxmemory set (used ${formatBytes(m.used)})` };
    return { ...ids, value: m.used / m.max, message: `used ${formatBytes(m.used)} of maxmemory ${formatBytes(m.max)} (${m.policy})` };
  }

  /**
   * Each policy's pattern scanned on this node (SCAN … MATCH … TYPE stream,
   * through the streams adapter), the keys it governs (first match wins)
   * checked in pipelined batches, a few batches in flight while the scan
   * goes on.
   */
  async #checkStreams(conn: HealthConnection, progress: NodeProgress): Promise<void> {
    const inFlight = new Set<Promise<void>>();
    let pending: Array<{ key: string; policy: StreamPolicyConfig }> = [];
    const flush = async () => {
      const batch = pending;
      pending = [];
      if (batch.length === 0) return;
      const job = conn.streams(batch.map((b) => b.key)).then((states) => {
        const policies = new Map(batch.map((b) => [b.key, b.policy]));
        for (const s of states) this.#streamMeasurements(s, policies.get(s.key)!);
        progress.streamsChecked += batch.length;
      });
      const tracked = job.finally(() => inFlight.delete(tracked));
      // Awaited below, unless the deadline or another batch's failure ends the scan first: a batch failing after that is no crash.
      tracked.catch(() => {});
      inFlight.add(tracked);
      if (inFlight.size >= BATCHES_IN_FLIGHT) await Promise.race(inFlight);
    };
    for (const [i, policy] of this.#ctx.config.streams.entries()) {
      for await (const { keys } of scanStreams(conn.redis, policy.match)) {
        if (this.#finished) return;
        for (const key of keys) {
          // A key the first policy's SCAN MATCH returned is that policy's (first match wins): no need to ask which.
          if (this.#seen.has(key) || (i > 0 && policyOf(this.#ctx.config, key) !== policy)) continue;
          this.#seen.add(key);
          pending.push({ key, policy });
          if (pending.length >= BATCH_KEYS) await flush();
        }
      }
    }
    await flush();
    await Promise.all(inFlight);
  }

  #streamMeasurements(s: StreamHealth | StreamHealthError, policy: StreamPolicyConfig): void {
    const ctx = this.#ctx;
    const stream = { stream: s.key };
    if ('error' in s) {
      const check = STREAM_CHECKS.find((c) => ctx.wants(c));
      if (check) this.#push({ check, target: s.key, labels: { ...stream, group: '' }, value: null, status: 'unknown', message: `could not read the stream: ${s.error}` });
      return;
    }
    const policyName = `policy "${policy.match}"`;
    if (ctx.wants('stream_length')) {
      const maxLen = policy.maxLen;
      this.#push({
        check: 'stream_length',
        target: s.key,
        labels: stream,
        value: s.length,
        message: `${s.length} entries; ${maxLen === undefined ? `${policyName} sets no maxLen` : `${policyName} maxLen ${maxLen}`}`,
        ...(maxLen === undefined ? {} : { defaults: { warning: Math.max(1, 1.5 * maxLen), critical: Math.max(1, 3 * maxLen) } }),
      });
    }
    if (ctx.wants('stream_age')) {
      const maxAgeS = policy.maxAge === undefined ? undefined : parseDuration(policy.maxAge) / 1000;
      const ageS = s.firstId === null ? null : Math.max(0, streamIdAgeMs(s.firstId, this.#nowMs) / 1000);
      this.#push({
        check: 'stream_age',
        target: s.key,
        labels: stream,
        value: ageS,
        message: `${ageS === null ? 'empty stream' : `first entry ${s.firstId} is ${formatSeconds(ageS)} old`}; ${maxAgeS === undefined ? `${policyName} sets no maxAge` : `${policyName} maxAge ${formatSeconds(maxAgeS)}`}`,
        ...(maxAgeS === undefined ? {} : { defaults: { warning: 1.5 * maxAgeS, critical: 3 * maxAgeS } }),
      });
    }
    for (const g of s.groups) {
      const labels = { stream: s.key, group: g.name };
      const target = `${s.key} group ${g.name}`;
      if (ctx.wants('group_lag')) {
        const why = g.lagReported
          ? 'Redis cannot tell this group\'s lag (entries deleted after its last-delivered-id, or its position set by id without ENTRIESREAD)'
          : 'this Redis does not report lag (XINFO GROUPS before 7.0)';
        this.#push({
          check: 'group_lag',
          target,
          labels,
          value: g.lag,
          message: `${g.lag === null ? why : `${g.lag} entries not yet delivered`}; ${g.pending} pending, last-delivered-id ${g.lastDeliveredId}, ${g.consumers} consumers`,
        });
      }
      if (ctx.wants('pending_idle')) {
        const oldest = g.oldestPending;
        if (g.pendingError) {
          this.#push({ check: 'pending_idle', target, labels, value: null, status: 'unknown', message: `XPENDING failed: ${g.pendingError} (${g.pending} pending)` });
          continue;
        }
        this.#push({
          check: 'pending_idle',
          target,
          labels,
          value: oldest ? oldest.idleMs / 1000 : 0,
          message: oldest
            ? `oldest pending entry ${oldest.id} held by consumer "${oldest.consumer}", idle ${formatSeconds(oldest.idleMs / 1000)} (${g.pending} pending)`
            : 'nothing pending',
        });
      }
    }
  }
}

/** The node stopped answering (as opposed to answering with a refusal). */
function isConnectionLoss(err: Error): boolean {
  return err instanceof NoAnswerError || /cannot reach it|Connection is closed|ECONNRESET|EPIPE|ETIMEDOUT|ECONNREFUSED|connection lost/i.test(err.message);
}
