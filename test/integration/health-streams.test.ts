import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { ShardctlConfig } from '../../src/config/schema.js';
import { runHealth } from '../../src/engine/health/run.js';
import type { CheckResult, HealthReport } from '../../src/engine/health/types.js';
import { freePort } from '../../src/sandbox/ports.js';
import { runCommand } from '../../src/sandbox/process.js';
import { findRedisServer, readPid, startRedis, stopRedis, type RedisServer } from '../../src/sandbox/redis.js';
import { METADATA } from '../support/config-problems.js';
import { redisUrl, uniqueRedisPrefix, unlinkPrefix } from '../support/databases.js';
import { startRedisCluster, type TestRedisCluster } from '../support/redis-cluster.js';

/*
 * The streams group of `health` on real Redis: each check fires at its
 * thresholds with the condition made for real (a stream past its policy, a
 * group behind, an entry left pending, maxmemory nearly used), a stopped,
 * password-refusing or SIGSTOPped server is CRITICAL within the timeout while
 * the other nodes report, and a Cluster's every node and master is checked.
 */

function configOf(raw: { redis: Record<string, unknown>; streams?: unknown[]; thresholds?: Record<string, unknown>; timeout?: string }): ShardctlConfig {
  return parseConfig(
    { metadata: METADATA, redis: raw.redis, streams: raw.streams ?? [], health: { timeout: raw.timeout ?? '5s', thresholds: raw.thresholds ?? {} } },
    'test.yaml',
    {},
  );
}

const streamsHealth = (config: ShardctlConfig, options: { timeoutMs?: number; check?: string } = {}) =>
  runHealth(config, { only: ['streams'], ...options });

function results(report: HealthReport, check: string): CheckResult[] {
  return report.results.filter((r) => r.check === check);
}

function one(report: HealthReport, check: string, target: string): CheckResult {
  const found = report.results.filter((r) => r.check === check && r.target === target);
  expect(found, `${check} ${target} in ${JSON.stringify(report.results.map((r) => `${r.check} ${r.target}`))}`).toHaveLength(1);
  return found[0]!;
}

async function addEntries(redis: Redis, key: string, count: number, firstMs = 1_000): Promise<void> {
  const p = redis.pipeline();
  for (let i = 0; i < count; i++) p.xadd(key, `${firstMs + i}-0`, 'n', String(i));
  await p.exec();
}

/** A redis-server of this test's own on a free port (CONFIG SET, SIGSTOP and SIGTERM never touch the shared one). */
async function ownRedis(): Promise<RedisServer & { cleanup(): Promise<void> }> {
  const binary = await findRedisServer();
  if (!binary) throw new Error('redis-server is not installed');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'shardctl-test-health-redis-'));
  const server = await startRedis({ binary, dir, port: await freePort() });
  return {
    ...server,
    async cleanup() {
      try {
        process.kill(server.pid, 'SIGCONT');
      } catch {
        /* already gone */
      }
      await stopRedis(server).catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}

describe('health streams on a standalone Redis', () => {
  let redis: Redis;
  const prefix = uniqueRedisPrefix();

  beforeAll(() => {
    redis = new Redis(redisUrl());
  });
  afterAll(async () => {
    await unlinkPrefix(redis, prefix);
    redis.disconnect();
  });

  it('no redis in the config: no measurements', async () => {
    const config = parseConfig({ metadata: METADATA, streams: [{ match: 'x:*', maxLen: 1 }] }, 'test.yaml', {});
    const report = await streamsHealth(config);
    expect(report.results).toEqual([]);
    expect(report.status).toBe('ok');
  });

  it('stream_length: over 3 x maxLen is critical, over 1.5 x a warning, within the policy OK; stream_age against maxAge', async () => {
    const p = `${prefix}len:`;
    await addEntries(redis, `${p}big`, 31);
    await addEntries(redis, `${p}mid`, 16);
    await addEntries(redis, `${p}small`, 10);
    const nowMs = Date.now();
    const hour = 3_600_000;
    await addEntries(redis, `${p}age:old`, 3, nowMs - 4 * hour);
    await addEntries(redis, `${p}age:fresh`, 3, nowMs - 10_000);
    const config = configOf({
      redis: { url: redisUrl() },
      // first match wins: the age streams fall under their own policy, not the maxLen one
      streams: [{ match: `${p}age:*`, maxAge: '1h' }, { match: `${p}*`, maxLen: 10 }],
    });
    const report = await streamsHealth(config);
    expect(one(report, 'stream_length', `${p}big`)).toMatchObject({ status: 'critical', value: 31, thresholds: { warning: 15, critical: 30 }, labels: { stream: `${p}big` } });
    expect(one(report, 'stream_length', `${p}mid`)).toMatchObject({ status: 'warning', value: 16 });
    expect(one(report, 'stream_length', `${p}small`)).toMatchObject({ status: 'ok', value: 10 });
    expect(one(report, 'stream_length', `${p}big`).message).toContain(`policy "${p}*" maxLen 10`);
    // no maxLen in the age policy: the length is reported, with no levels
    expect(one(report, 'stream_length', `${p}age:old`)).toMatchObject({ status: 'ok', value: 3, thresholds: { warning: null, critical: null } });
    const old = one(report, 'stream_age', `${p}age:old`);
    expect(old).toMatchObject({ status: 'critical', thresholds: { warning: 5_400, critical: 10_800 } });
    expect(old.value).toBeGreaterThanOrEqual(4 * 3600);
    expect(one(report, 'stream_age', `${p}age:fresh`)).toMatchObject({ status: 'ok' });
    expect(results(report, 'stream_length')).toHaveLength(5);
    expect(results(report, 'stream_age')).toHaveLength(5);
  });

  it('group_lag: a group behind by more than the threshold fires; a lag Redis cannot tell is null and says so', async () => {
    const key = `${prefix}lag`;
    await addEntries(redis, key, 1_500);
    await redis.xgroup('CREATE', key, 'behind', '0');
    await redis.xgroup('CREATE', key, 'caught-up', '$');
    const unknown = `${prefix}lag-unknown`;
    await addEntries(redis, unknown, 5);
    await redis.xdel(unknown, '1003-0');
    await redis.xgroup('CREATE', unknown, 'by-id', '1001-0');
    const config = configOf({ redis: { url: redisUrl() }, streams: [{ match: `${prefix}lag*`, maxLen: 100_000 }] });
    const report = await streamsHealth(config);
    expect(one(report, 'group_lag', `${key} group behind`)).toMatchObject({ status: 'warning', value: 1_500, labels: { stream: key, group: 'behind' } });
    expect(one(report, 'group_lag', `${key} group caught-up`)).toMatchObject({ status: 'ok', value: 0 });
    const cannotTell = one(report, 'group_lag', `${unknown} group by-id`);
    expect(cannotTell).toMatchObject({ status: 'ok', value: null });
    expect(cannotTell.message).toMatch(/cannot tell/);
    const critical = await streamsHealth(configOf({ redis: { url: redisUrl() }, streams: [{ match: key, maxLen: 100_000 }], thresholds: { group_lag: { critical: 1_000 } } }));
    expect(one(critical, 'group_lag', `${key} group behind`).status).toBe('critical');
  });

  it('pending_idle: an entry pending longer than the threshold fires and the message names its consumer', async () => {
    const key = `${prefix}pending`;
    await addEntries(redis, key, 10);
    await redis.xgroup('CREATE', key, 'workers', '0');
    await redis.xreadgroup('GROUP', 'workers', 'stuck-worker', 'COUNT', 3, 'STREAMS', key, '>');
    // XCLAIM … IDLE sets the entry's idle time: ten minutes without waiting ten minutes.
    await redis.xclaim(key, 'workers', 'stuck-worker', 0, '1000-0', 'IDLE', 600_000);
    await redis.xgroup('CREATE', key, 'idle-free', '$');
    const config = configOf({ redis: { url: redisUrl() }, streams: [{ match: key, maxLen: 1_000 }] });
    const report = await streamsHealth(config);
    const stuck = one(report, 'pending_idle', `${key} group workers`);
    expect(stuck.status).toBe('warning'); // 600 s: past the 300 s warning, short of the 3600 s critical
    expect(stuck.value).toBeGreaterThanOrEqual(600);
    expect(stuck.message).toContain('"stuck-worker"');
    expect(stuck.message).toContain('1000-0');
    expect(stuck.message).toContain('3 pending');
    expect(one(report, 'pending_idle', `${key} group idle-free`)).toMatchObject({ status: 'ok', value: 0, message: 'nothing pending' });
  });

  it('pending_idle at a low configured threshold fires once the entry has sat that long (waits for the idle time, no fixed sleep)', async () => {
    const key = `${prefix}pending-low`;
    await addEntries(redis, key, 2);
    await redis.xgroup('CREATE', key, 'g', '0');
    await redis.xreadgroup('GROUP', 'g', 'slow-consumer', 'COUNT', 1, 'STREAMS', key, '>');
    // Wait for the event itself: Redis reporting the entry idle for 50 ms or more.
    while (Number(((await redis.xpending(key, 'g', '-', '+', 1)) as [string, string, number][])[0]![2]) < 50);
    const config = configOf({ redis: { url: redisUrl() }, streams: [{ match: key, maxLen: 1_000 }], thresholds: { pending_idle: { warning: 0.05 } } });
    const report = await streamsHealth(config);
    const r = one(report, 'pending_idle', `${key} group g`);
    expect(r).toMatchObject({ status: 'warning', thresholds: { warning: 0.05, critical: 3600 } });
    expect(r.message).toContain('"slow-consumer"');
  });

  it('one XINFO STREAM … FULL per stream reads what XINFO STREAM + XINFO GROUPS + XPENDING read (the way of servers before Redis 6)', async () => {
    const key = `${prefix}full`;
    await addEntries(redis, key, 20);
    await redis.xgroup('CREATE', key, 'behind', '0');
    await redis.xgroup('CREATE', key, 'by-id', '1005-0');
    await redis.xgroup('CREATE', key, 'caught-up', '$');
    await redis.xreadgroup('GROUP', 'behind', 'w1', 'COUNT', 3, 'STREAMS', key, '>');
    await redis.xreadgroup('GROUP', 'behind', 'w2', 'COUNT', 2, 'STREAMS', key, '>');
    await redis.xclaim(key, 'behind', 'w2', 0, '1000-0', 'IDLE', 600_000);
    await redis.xadd(`${prefix}full-empty`, '1-0', 'n', '1');
    await redis.xdel(`${prefix}full-empty`, '1-0');
    const { HealthConnection, endpointOfUrl } = await import('../../src/redis/health.js');
    const conn = await HealthConnection.open(endpointOfUrl(redisUrl()), Date.now() + 5_000, new AbortController().signal);
    try {
      const keys = [key, `${prefix}full-empty`, `${prefix}full-missing`];
      const [full, parts] = [await conn.streams(keys), await conn.streamsByParts(keys)];
      const idle = (r: Awaited<ReturnType<typeof conn.streams>>) => r.flatMap((s) => ('groups' in s ? s.groups.map((g) => g.oldestPending?.idleMs ?? null) : []));
      const withoutIdle = (r: Awaited<ReturnType<typeof conn.streams>>) =>
        r.map((s) => ('groups' in s ? { ...s, groups: s.groups.map((g) => ({ ...g, oldestPending: g.oldestPending && { ...g.oldestPending, idleMs: 0 } })) } : s));
      expect(full.map((s) => s.key)).toEqual([key, `${prefix}full-empty`]);
      expect(withoutIdle(full)).toEqual(withoutIdle(parts));
      const [a, b] = [idle(full), idle(parts)];
      expect(a.map((v) => v === null)).toEqual(b.map((v) => v === null));
      a.forEach((v, i) => v !== null && expect(Math.abs(v - b[i]!)).toBeLessThan(1_000));
      expect(a[0]).toBeGreaterThanOrEqual(600_000);
    } finally {
      conn.close();
    }
  });

  it('all OK: streams within policy, groups caught up, the node reachable, no maxmemory: one result per check per stream and group', async () => {
    const p = `${prefix}ok:`;
    for (let i = 0; i < 3; i++) {
      await addEntries(redis, `${p}${i}`, 5, Date.now() - 1_000);
      await redis.xgroup('CREATE', `${p}${i}`, 'a', '$');
      await redis.xgroup('CREATE', `${p}${i}`, 'b', '$');
    }
    const config = configOf({ redis: { url: redisUrl() }, streams: [{ match: `${p}*`, maxLen: 100, maxAge: '1h' }] });
    const report = await streamsHealth(config);
    expect(report.results.filter((r) => r.status !== 'ok'), JSON.stringify(report.results)).toEqual([]);
    expect(report.status).toBe('ok');
    const node = new URL(redisUrl()).host;
    expect(one(report, 'redis_reachable', `redis ${node}`)).toMatchObject({ value: 1, labels: { node } });
    // maxmemory is 0 on the shared test server: nothing to measure
    expect(one(report, 'redis_memory', `redis ${node}`)).toMatchObject({ value: null, message: expect.stringMatching(/^no maxmemory set/) });
    expect(results(report, 'stream_length')).toHaveLength(3);
    expect(results(report, 'stream_age')).toHaveLength(3);
    expect(results(report, 'group_lag')).toHaveLength(6);
    expect(results(report, 'pending_idle')).toHaveLength(6);
    expect(results(report, 'cluster_state')).toEqual([]);
  });

  it('1,000 streams with a group each: every one measured once, well within the timeout', async () => {
    const p = `${prefix}many:`;
    const pipeline = redis.pipeline();
    for (let i = 0; i < 1_000; i++) {
      pipeline.xadd(`${p}${i}`, '*', 'n', '1');
      pipeline.xgroup('CREATE', `${p}${i}`, 'g', '0');
    }
    await pipeline.exec();
    const config = configOf({ redis: { url: redisUrl() }, streams: [{ match: `${p}*`, maxLen: 10 }] });
    const report = await streamsHealth(config);
    expect(results(report, 'stream_length')).toHaveLength(1_000);
    expect(new Set(results(report, 'stream_length').map((r) => r.target)).size).toBe(1_000);
    expect(results(report, 'group_lag')).toHaveLength(1_000);
    expect(results(report, 'pending_idle')).toHaveLength(1_000);
    expect(report.durationMs).toBeLessThan(3_000);
  });

  it('--check narrows the run to that one check', async () => {
    const key = `${prefix}only`;
    await addEntries(redis, key, 1);
    const report = await streamsHealth(configOf({ redis: { url: redisUrl() }, streams: [{ match: key, maxLen: 10 }] }), { check: 'stream_length' });
    expect(report.results.map((r) => `${r.check} ${r.target}`)).toEqual([`stream_length ${key}`]);
  });
});

describe('health streams against Redis servers of its own', () => {
  const servers: Array<{ cleanup(): Promise<void> }> = [];
  afterAll(async () => {
    for (const s of servers) await s.cleanup();
  });

  it('redis_memory: used memory near maxmemory is critical; the message gives both', async () => {
    const server = await ownRedis();
    servers.push(server);
    const admin = new Redis(server.port, '127.0.0.1');
    try {
      const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))![1]);
      await admin.config('SET', 'maxmemory', String(Math.ceil(used * 1.02)));
      const node = `127.0.0.1:${server.port}`;
      const report = await streamsHealth(configOf({ redis: { url: `redis://${node}` } }));
      const memory = one(report, 'redis_memory', `redis ${node}`);
      expect(memory.status).toBe('critical');
      expect(memory.value).toBeGreaterThan(0.95);
      expect(memory.message).toMatch(/^used .* of maxmemory .* \(noeviction\)$/);
      await admin.config('SET', 'maxmemory', String(used * 100));
      const relaxed = await streamsHealth(configOf({ redis: { url: `redis://${node}` } }));
      expect(one(relaxed, 'redis_memory', `redis ${node}`).status).toBe('ok');
    } finally {
      admin.disconnect();
    }
  });

  it('a stopped Redis: redis_reachable critical, naming the node and why, the password never shown', async () => {
    const server = await ownRedis();
    servers.push(server);
    await stopRedis(server);
    const node = `127.0.0.1:${server.port}`;
    const report = await streamsHealth(configOf({ redis: { url: `redis://:hunter2-secret@${node}` }, streams: [{ match: 'x:*', maxLen: 1 }] }));
    const r = one(report, 'redis_reachable', `redis ${node}`);
    expect(r).toMatchObject({ status: 'critical', value: 0, labels: { node } });
    expect(r.message).toContain(node);
    expect(r.message).toMatch(/cannot reach it.*ECONNREFUSED/);
    expect(report.status).toBe('critical');
    expect(JSON.stringify(report)).not.toContain('hunter2-secret');
  });

  it('a refused password: redis_reachable critical with WRONGPASS, the password never shown', async () => {
    const server = await ownRedis();
    servers.push(server);
    const admin = new Redis(server.port, '127.0.0.1');
    await admin.config('SET', 'requirepass', 'the-right-one');
    admin.disconnect();
    const node = `127.0.0.1:${server.port}`;
    const wrong = await streamsHealth(configOf({ redis: { url: `redis://:wrong-secret-42@${node}` } }));
    const r = one(wrong, 'redis_reachable', `redis ${node}`);
    expect(r).toMatchObject({ status: 'critical', value: 0 });
    expect(r.message).toMatch(/WRONGPASS/);
    expect(JSON.stringify(wrong)).not.toContain('wrong-secret-42');
    const none = await streamsHealth(configOf({ redis: { url: `redis://${node}` } }));
    expect(one(none, 'redis_reachable', `redis ${node}`).message).toMatch(/NOAUTH/);
    const right = await streamsHealth(configOf({ redis: { url: `redis://:the-right-one@${node}` } }));
    expect(one(right, 'redis_reachable', `redis ${node}`)).toMatchObject({ status: 'ok', value: 1 });
    expect(JSON.stringify(right)).not.toContain('the-right-one');
  });

  it('a SIGSTOPped redis-server: critical within the timeout + 1 s', async () => {
    const server = await ownRedis();
    servers.push(server);
    process.kill(server.pid, 'SIGSTOP');
    const node = `127.0.0.1:${server.port}`;
    const started = Date.now();
    const report = await streamsHealth(configOf({ redis: { url: `redis://${node}` }, streams: [{ match: 'x:*', maxLen: 1 }] }), { timeoutMs: 1_000 });
    expect(Date.now() - started).toBeLessThan(2_000);
    const r = one(report, 'redis_reachable', `redis ${node}`);
    expect(r).toMatchObject({ status: 'critical', value: 0 });
    expect(r.message).toMatch(new RegExp(`${node}: no answer within 1\\.\\ds`));
    process.kill(server.pid, 'SIGCONT');
  });
});

/** A cluster-enabled redis-server of its own, joined to the cluster as a replica of `master`. */
async function addReplica(master: { port: number }): Promise<{ address: string; cleanup(): Promise<void> }> {
  const binary = (await findRedisServer())!;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'shardctl-test-health-replica-'));
  const port = await freePort();
  const pidFile = path.join(dir, 'redis.pid');
  const started = await runCommand(binary, [
    '--daemonize', 'yes', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '1000',
    '--pidfile', pidFile, '--logfile', path.join(dir, 'redis.log'), '--dir', dir,
  ], { cwd: dir, timeoutMs: 30_000, detached: true });
  if (started.code !== 0) throw new Error(`replica redis-server did not start: ${started.stderr}`);
  const cleanup = async () => {
    await stopRedis({ pid: null, pidFile }).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  };
  const replica = new Redis(port, '127.0.0.1');
  const primary = new Redis(master.port, '127.0.0.1');
  try {
    const masterId = String(await primary.call('CLUSTER', 'MYID'));
    await replica.call('CLUSTER', 'MEET', '127.0.0.1', String(master.port));
    // Wait for the handshake to finish (the replica knows the master), then for the master to list it as its replica.
    while (!String(await replica.call('CLUSTER', 'NODES')).includes(masterId)) await new Promise((r) => setTimeout(r, 50));
    await replica.call('CLUSTER', 'REPLICATE', masterId);
    while (!/\bslave\b/.test(String(await primary.call('CLUSTER', 'NODES')).split('\n').find((l) => l.includes(`:${port}@`)) ?? '')) {
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (err) {
    await cleanup();
    throw err;
  } finally {
    replica.disconnect();
    primary.disconnect();
  }
  return { address: `127.0.0.1:${port}`, cleanup };
}

describe('health streams: a Cluster config whose seed cannot be used', () => {
  const servers: Array<{ cleanup(): Promise<void> }> = [];
  afterAll(async () => {
    for (const s of servers) await s.cleanup();
  });

  it('the only seed SIGSTOPped: the seed and cluster_state critical within the timeout + 1 s', async () => {
    const server = await ownRedis();
    servers.push(server);
    process.kill(server.pid, 'SIGSTOP');
    const node = `127.0.0.1:${server.port}`;
    const started = Date.now();
    const report = await streamsHealth(configOf({ redis: { nodes: [`redis://${node}`] }, streams: [{ match: 'x:*', maxLen: 1 }] }), { timeoutMs: 1_000 });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(one(report, 'redis_reachable', `redis ${node}`)).toMatchObject({ status: 'critical', value: 0, message: expect.stringMatching(/no answer within/) });
    expect(one(report, 'cluster_state', 'redis cluster')).toMatchObject({ status: 'critical', value: null, message: expect.stringContaining(node) });
  });

  it('a seed that is not in cluster mode: critical, saying so', async () => {
    const server = await ownRedis();
    servers.push(server);
    const node = `127.0.0.1:${server.port}`;
    const report = await streamsHealth(configOf({ redis: { nodes: [`redis://${node}`] } }));
    expect(one(report, 'redis_reachable', `redis ${node}`).message).toMatch(/not as a Cluster node .*cluster support disabled/);
    expect(one(report, 'cluster_state', 'redis cluster').status).toBe('critical');
  });
});

describe('health streams on a 3-master Redis Cluster with a replica', () => {
  let cluster: TestRedisCluster;
  let replica: { address: string; cleanup(): Promise<void> } | undefined;
  const prefix = uniqueRedisPrefix();
  const keys = Array.from({ length: 60 }, (_, i) => `${prefix}room:${i}`);

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    for (const node of cluster.nodes) {
      // Each key is written on the master that owns its slot (CLUSTER KEYSLOT via the node itself).
      const redis = new Redis(node.port, '127.0.0.1');
      for (const key of keys) {
        const slot = Number(await redis.call('CLUSTER', 'KEYSLOT', key));
        const owner = ((await redis.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number]]>).find(([from, to]) => slot >= from && slot <= to)!;
        if (owner[2][1] === node.port) await addEntries(redis, key, 20);
      }
      redis.disconnect();
    }
    replica = await addReplica(cluster.nodes[0]!);
  });
  afterAll(async () => {
    await replica?.cleanup();
    for (const node of cluster?.nodes ?? []) {
      const pid = await readPid(node.pidFile);
      if (pid) process.kill(pid, 'SIGCONT');
    }
    await cluster?.cleanup();
  });

  const configFor = (timeout = '5s') => configOf({ redis: { nodes: cluster.urls.slice(0, 1) }, streams: [{ match: `${prefix}room:*`, maxLen: 10 }], timeout });

  it('cluster_state OK, every master and replica reachable, and the streams of every master found', async () => {
    const report = await streamsHealth(configFor());
    expect(one(report, 'cluster_state', 'redis cluster')).toMatchObject({ status: 'ok', value: 1, labels: {} });
    const everyNode = [...cluster.nodes.map((n) => n.address), replica!.address];
    expect(results(report, 'redis_reachable').map((r) => [r.labels.node, r.status]).sort()).toEqual(everyNode.map((n) => [n, 'ok']).sort());
    expect(one(report, 'redis_reachable', `redis ${replica!.address}`).message).toMatch(/^replica /);
    expect(results(report, 'redis_memory').map((r) => r.labels.node).sort()).toEqual([...everyNode].sort());
    const found = results(report, 'stream_length');
    expect(found.map((r) => r.target).sort()).toEqual([...keys].sort());
    // 20 entries against maxLen 10: a warning (1.5 x) on every master
    expect(new Set(found.map((r) => r.status))).toEqual(new Set(['warning']));
  });

  it('a SIGSTOPped master: CRITICAL within the timeout + 1 s while the other masters report, streams included', async () => {
    const stopped = cluster.nodes[1]!;
    const pid = (await readPid(stopped.pidFile))!;
    process.kill(pid, 'SIGSTOP');
    try {
      const started = Date.now();
      const report = await streamsHealth(configFor(), { timeoutMs: 1_500 });
      expect(Date.now() - started).toBeLessThan(2_500);
      const reachable = new Map(results(report, 'redis_reachable').map((r) => [r.labels.node, r]));
      expect(reachable.get(stopped.address)).toMatchObject({ status: 'critical', value: 0 });
      expect(reachable.get(stopped.address)!.message).toMatch(/no answer within 1\.\ds/);
      for (const other of [cluster.nodes[0]!.address, cluster.nodes[2]!.address, replica!.address]) expect(reachable.get(other)).toMatchObject({ status: 'ok', value: 1 });
      // the streams of the two live masters are all there
      expect(results(report, 'stream_length').length).toBeGreaterThan(10);
      expect(results(report, 'stream_length').length).toBeLessThan(keys.length);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  });

  it('a stopped master: cluster_state:fail is critical, the node critical, the others reachable with their streams unknown (CLUSTERDOWN)', async () => {
    await cluster.stopNode(2, { waitForFail: true });
    const report = await streamsHealth(configFor());
    const state = one(report, 'cluster_state', 'redis cluster');
    expect(state.status).toBe('critical');
    expect(state.value).toBeLessThan(1);
    expect(state.message).toMatch(/cluster_state:fail/);
    const reachable = new Map(results(report, 'redis_reachable').map((r) => [r.labels.node, r.status]));
    expect(reachable.get(cluster.nodes[2]!.address)).toBe('critical');
    expect(reachable.get(cluster.nodes[0]!.address)).toBe('ok');
    expect(reachable.get(cluster.nodes[1]!.address)).toBe('ok');
    // Live masters refuse key reads while a slot range has no master (cluster-require-full-coverage): said, not hidden.
    const refused = results(report, 'stream_length').filter((r) => r.status === 'unknown');
    expect(refused.map((r) => r.target).sort()).toEqual([cluster.nodes[0]!, cluster.nodes[1]!].map((n) => `streams on redis ${n.address}`).sort());
    for (const r of refused) expect(r.message).toMatch(/CLUSTERDOWN/);
  });
});
