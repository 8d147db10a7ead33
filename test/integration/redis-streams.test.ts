import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis, type RedisClient } from '../../src/redis/connect.js';
import {
  compareStreamIds,
  keySlot,
  minIdForMaxAge,
  RedisNodeError,
  safeTrimStream,
  scanStreamKeys,
  scanStreams,
  streamInfo,
  trimStreams,
  type StreamTrimResult,
} from '../../src/redis/streams.js';
import { freePort } from '../../src/sandbox/ports.js';
import { findRedisServer, startRedis, stopRedis, type RedisServer } from '../../src/sandbox/redis.js';
import { redisUrl, uniqueRedisPrefix, unlinkPrefix } from '../support/databases.js';
import { startRedisCluster, type TestRedisCluster } from '../support/redis-cluster.js';
import { prng } from '../support/prng.js';

/*
 * The Redis side of `stream info` / `stream trim` on a real Redis 7: the safe
 * trim never removes an entry a consumer group still needs (pending, or not
 * yet delivered) unless forced, removes everything older than the policy
 * that no group holds, meets the policy within one radix-tree node with `~`
 * however far behind the stream is, and every failure names its node.
 */

const pick = (rand: () => number, n: number) => Math.floor(rand() * n);

/** Scripts the server has run (EVALSHA and EVAL, from INFO commandstats): how many scripts a trim took. */
async function scriptCalls(redis: Redis): Promise<number> {
  const stats = await redis.info('commandstats');
  return ['evalsha', 'eval'].reduce((n, c) => n + Number(new RegExp(`cmdstat_${c}:calls=(\\d+)`).exec(stats)?.[1] ?? 0), 0);
}

async function addEntries(redis: Redis, key: string, ids: string[]): Promise<void> {
  for (let i = 0; i < ids.length; i += 5_000) {
    const p = redis.pipeline();
    for (const id of ids.slice(i, i + 5_000)) p.xadd(key, id, 'n', id);
    await p.exec();
  }
}

async function allIds(redis: Redis, key: string): Promise<string[]> {
  return ((await redis.xrange(key, '-', '+')) as [string, string[]][]).map(([id]) => id);
}

/** What the groups still need, read from Redis itself: every pending id and every entry after last-delivered-id. */
async function neededIds(redis: Redis, key: string, ids: string[]): Promise<Set<string>> {
  const needed = new Set<string>();
  for (const g of (await redis.xinfo('GROUPS', key)) as unknown[][]) {
    const f = Object.fromEntries(Array.from({ length: g.length / 2 }, (_, i) => [g[2 * i], g[2 * i + 1]]));
    const name = String(f.name);
    for (const [id] of (await redis.xpending(key, name, '-', '+', 1_000_000)) as [string][]) needed.add(id);
    for (const id of ids) if (compareStreamIds(id, String(f['last-delivered-id'])) > 0) needed.add(id);
  }
  return needed;
}

const minId = (ids: Iterable<string>) => [...ids].reduce<string | null>((m, id) => (m === null || compareStreamIds(id, m) < 0 ? id : m), null);

describe('safe stream trim on a standalone Redis', () => {
  let redis: Redis;
  let client: RedisClient;
  const prefix = uniqueRedisPrefix();

  beforeAll(async () => {
    redis = new Redis(redisUrl());
    client = await connectRedis({ url: redisUrl(), prefix: 'unused:' });
  });
  afterAll(async () => {
    await unlinkPrefix(redis, prefix);
    redis.disconnect();
    client.disconnect();
  });

  it('keeps every entry pending or undelivered for some group and removes every older one (seeded random streams, exact and approximate)', async () => {
    const trials = 150;
    const seen = { heldBackByPending: 0, heldBackByUndelivered: 0, forced: 0, approximate: 0, policyMet: 0, alignedPastFloor: 0 };
    for (let seed = 1; seed <= trials; seed++) {
      const rand = prng(seed);
      const key = `${prefix}rand:${seed}`;
      const n = 20 + pick(rand, 400);
      const ids = Array.from({ length: n }, (_, i) => `${1_000 + Math.floor(i / 3)}-${i % 3}`);
      await addEntries(redis, key, ids);
      for (let g = 0, groups = pick(rand, 4); g < groups; g++) {
        const group = `g${g}`;
        const start = pick(rand, n + 1);
        await redis.xgroup('CREATE', key, group, start === 0 ? '0' : ids[start - 1]!);
        let delivered = start;
        const deliver = pick(rand, n - start + 1);
        while (delivered < start + deliver) {
          const count = 1 + pick(rand, 20);
          await redis.xreadgroup('GROUP', group, `c${pick(rand, 3)}`, 'COUNT', count, 'STREAMS', key, '>');
          delivered = Math.min(start + deliver, delivered + count);
        }
        const pending = ((await redis.xpending(key, group, '-', '+', 1_000_000)) as [string][]).map(([id]) => id);
        const acked = pending.filter(() => rand() < 0.7);
        if (acked.length) await redis.xack(key, group, ...acked);
        if (rand() < 0.2 && delivered > 0) await redis.xgroup('SETID', key, group, ids[pick(rand, delivered)]!);
      }
      const useMaxLen = rand() < 0.5;
      // Nodes hold 100 entries from the first: a maxLen of n - 100k leaves exactly maxLen after whole nodes go.
      const aligned = useMaxLen && n >= 100 && rand() < 0.3;
      const cutoff = useMaxLen ? { maxLen: aligned ? n - 100 * (1 + pick(rand, Math.floor(n / 100))) : pick(rand, n + 20) } : { minId: ids[pick(rand, n)]! };
      const approximate = rand() < 0.3;
      const force = rand() < 0.15;

      const before = await allIds(redis, key);
      const needed = await neededIds(redis, key, before);
      // The same stream, groups and all, for the counts-only run below.
      const copy = `${key}:counts`;
      await redis.copy(key, copy);
      const policyCut = 'maxLen' in cutoff ? (cutoff.maxLen! < n ? before[n - cutoff.maxLen!] ?? null : null) : cutoff.minId!;
      const floor = minId(needed);
      const target = policyCut === null ? null : !force && floor && compareStreamIds(floor, policyCut) < 0 ? floor : policyCut;

      const result = await safeTrimStream(client, key, { ...cutoff, approximate }, { force });
      const after = await allIds(redis, key);
      const context = JSON.stringify({ seed, n, cutoff, approximate, force, floor, policyCut, result });

      expect(result.floor?.id ?? null, context).toBe(floor);
      expect(result.cutoffId, context).toBe(policyCut);
      expect(result.trimmedToId, context).toBe(target);
      expect(result.lengthAfter, context).toBe(after.length);
      expect(result.removed, context).toBe(before.length - after.length);
      const kept = target === null ? before : before.filter((id) => compareStreamIds(id, target) >= 0);
      if (approximate) {
        // Whole radix-tree nodes only: everything from the target on stays, and at most one node below it.
        expect(after.slice(after.length - kept.length), context).toEqual(kept);
        expect(after.length - kept.length, context).toBeLessThan(100);
      } else {
        expect(after, context).toEqual(kept);
      }
      if (!force) for (const id of needed) expect(after, `${context} lost ${id}`).toContain(id);
      // Counts only (what stream trim asks for): the same entries go; a stream trimmed plainly
      // answers with its counts alone, one held back or forced past the floor in full.
      const counted = await safeTrimStream(client, copy, { ...cutoff, approximate }, { force, countsOnly: true });
      expect(await allIds(redis, copy), context).toEqual(after);
      expect([counted.lengthBefore, counted.lengthAfter, counted.removed], context).toEqual([result.lengthBefore, result.lengthAfter, result.removed]);
      const full = result.heldBack || (force && floor !== null && target !== null && compareStreamIds(floor, target) < 0);
      expect(counted.cutoffId, context).toBe(full ? result.cutoffId : null);
      expect(counted.floor?.id ?? null, context).toBe(full ? floor : null);
      await redis.unlink(copy);
      if (result.heldBack) seen[result.floor!.reason === 'pending' ? 'heldBackByPending' : 'heldBackByUndelivered']++;
      else if (policyCut !== null) seen.policyMet++;
      if (force) seen.forced++;
      if (approximate) seen.approximate++;
      if (aligned && floor !== null && !force && !result.heldBack) seen.alignedPastFloor++;
      await redis.unlink(key);
    }
    // The seeds cover every way a trim can go.
    for (const [what, count] of Object.entries(seen)) expect(count, what).toBeGreaterThan(0);
  });

  it('--force trims to the policy even where a group has not read or acknowledged the entries', async () => {
    const key = `${prefix}force`;
    const ids = Array.from({ length: 200 }, (_, i) => `${5_000 + i}-0`);
    await addEntries(redis, key, ids);
    await redis.xgroup('CREATE', key, 'stuck', '0');
    await redis.xreadgroup('GROUP', 'stuck', 'c1', 'COUNT', 5, 'STREAMS', key, '>');
    const safe = await safeTrimStream(client, key, { maxLen: 50 });
    expect(safe).toMatchObject({ lengthAfter: 200, removed: 0, heldBack: true, status: 'unchanged' });
    expect(safe.floor).toMatchObject({ id: '5000-0', group: 'stuck', reason: 'pending', consumer: 'c1' });
    expect(safe.floor!.idleMs).toBeGreaterThanOrEqual(0);
    const forced = await safeTrimStream(client, key, { maxLen: 50 }, { force: true });
    expect(forced).toMatchObject({ lengthBefore: 200, lengthAfter: 50, removed: 150, cutoffId: '5150-0', trimmedToId: '5150-0', heldBack: false, status: 'trimmed' });
    expect(await allIds(redis, key)).toEqual(ids.slice(150));
  });

  it('ids compare as numbers inside the script, not as text: 9-9 < 9-10 < 9-(past 2^53) < 10-0', async () => {
    const key = `${prefix}idorder`;
    const ids = ['9-1', '9-9', '9-10', '9-9007199254740993', '10-0', '10-5'];
    await addEntries(redis, key, ids);
    // g1: 9-10 pending (9-1 and 9-9 acknowledged); g2: 9-9 pending. As text, "9-10" < "9-9".
    await redis.xgroup('CREATE', key, 'g1', '0');
    await redis.xreadgroup('GROUP', 'g1', 'c1', 'COUNT', 3, 'STREAMS', key, '>');
    await redis.xack(key, 'g1', '9-1', '9-9');
    await redis.xgroup('CREATE', key, 'g2', '9-1');
    await redis.xreadgroup('GROUP', 'g2', 'c2', 'COUNT', 1, 'STREAMS', key, '>');
    for (const countsOnly of [false, true]) {
      const copy = `${key}:${countsOnly}`;
      await redis.copy(key, copy);
      const result = await safeTrimStream(client, copy, { maxLen: 0 }, { countsOnly });
      expect(result.floor).toMatchObject({ id: '9-9', group: 'g2', reason: 'pending', consumer: 'c2' });
      expect(result).toMatchObject({ heldBack: true, trimmedToId: '9-9', removed: 1 });
      expect(await allIds(redis, copy)).toEqual(ids.slice(1));
    }
  });

  it('maxAge: entries older than the cut-off by their id timestamp go, newer ones stay (exact)', async () => {
    const key = `${prefix}age`;
    const nowMs = Date.now();
    const ids = Array.from({ length: 100 }, (_, i) => `${nowMs - (100 - i) * 60_000}-0`); // one a minute, 100 min back
    await addEntries(redis, key, ids);
    const minId = minIdForMaxAge(30 * 60_000, nowMs);
    const result = await safeTrimStream(client, key, { minId });
    const after = await allIds(redis, key);
    expect(after).toEqual(ids.filter((id) => compareStreamIds(id, minId) >= 0));
    expect(after).toHaveLength(30);
    expect(result).toMatchObject({ cutoffId: minId, removed: 70, floor: null });
    const info = await streamInfo(client, key, nowMs);
    expect(info!.firstAgeMs).toBe(30 * 60_000);
    expect(info!.lastAgeMs).toBe(60_000);
  });

  describe('approximate trims on a stream far behind its policy (50,000 entries, nodes of 100)', () => {
    const N = 50_000;
    const ids = Array.from({ length: N }, (_, i) => `${1_000_000 + i}-0`);
    let nodeMax: number;
    beforeAll(async () => {
      nodeMax = Number(((await redis.config('GET', 'stream-node-max-entries')) as string[])[1]);
    });

    it('plain XTRIM ~ stops at its default LIMIT (100 × stream-node-max-entries), which is why the script passes LIMIT 0', async () => {
      expect(nodeMax).toBe(100);
      const key = `${prefix}limit-demo`;
      await addEntries(redis, key, ids);
      const removed = await redis.xtrim(key, 'MINID', '~', ids[N - 1_000]!);
      expect(removed).toBeLessThanOrEqual(100 * nodeMax);
      expect(await redis.xlen(key)).toBeGreaterThan(1_000 + nodeMax);
    });

    it('maxLen ~ leaves at most one node more than the policy', async () => {
      const key = `${prefix}approx-len`;
      await addEntries(redis, key, ids);
      const result = await safeTrimStream(client, key, { maxLen: 1_000, approximate: true });
      const length = await redis.xlen(key);
      expect(length).toBeGreaterThanOrEqual(1_000);
      expect(length).toBeLessThanOrEqual(1_000 + nodeMax);
      expect(result).toMatchObject({ lengthBefore: N, lengthAfter: length, cutoffId: ids[N - 1_000] });
      expect((await allIds(redis, key)).slice(-1_000)).toEqual(ids.slice(-1_000));
    });

    it('maxAge ~ leaves at most one node older than the cut-off; exact maxLen meets it exactly', async () => {
      const key = `${prefix}approx-age`;
      await addEntries(redis, key, ids);
      const minId = ids[N - 2_500]!;
      await safeTrimStream(client, key, { minId, approximate: true });
      const older = (await allIds(redis, key)).filter((id) => compareStreamIds(id, minId) < 0);
      expect(older.length).toBeLessThan(nodeMax);
      expect(await redis.xlen(key)).toBe(2_500 + older.length);
      const fromHead = await safeTrimStream(client, key, { maxLen: 2_000 }); // nearer the head: read from it
      expect(fromHead).toMatchObject({ cutoffId: ids[N - 2_000], lengthAfter: 2_000 });
      const exact = await safeTrimStream(client, key, { maxLen: 777 });
      expect(exact.lengthAfter).toBe(777);
      expect(await redis.xlen(key)).toBe(777);
    });
  });

  it('a group rewound with XGROUP SETID, or created, between two runs is respected by the next one', async () => {
    const key = `${prefix}rewind`;
    const ids = Array.from({ length: 100 }, (_, i) => `${9_000 + i}-0`);
    await addEntries(redis, key, ids);
    await redis.xgroup('CREATE', key, 'broadcast', '0');
    const read = (await redis.xreadgroup('GROUP', 'broadcast', 'c', 'COUNT', 100, 'STREAMS', key, '>')) as [string, [string][]][];
    await redis.xack(key, 'broadcast', ...read[0]![1].map(([id]) => id));
    const first = await safeTrimStream(client, key, { maxLen: 80 });
    expect(first).toMatchObject({ lengthAfter: 80, floor: null, heldBack: false });

    await redis.xgroup('SETID', key, 'broadcast', '9049-0');
    const second = await safeTrimStream(client, key, { maxLen: 10 });
    expect(second).toMatchObject({ lengthAfter: 50, heldBack: true, trimmedToId: '9050-0', firstIdAfter: '9050-0' });
    expect(second.floor).toEqual({ id: '9050-0', group: 'broadcast', reason: 'undelivered', consumer: null, idleMs: null });

    await redis.xgroup('CREATE', key, 'archival', '0');
    const third = await safeTrimStream(client, key, { maxLen: 10 });
    expect(third).toMatchObject({ lengthAfter: 50, removed: 0, status: 'unchanged', floor: { group: 'archival', id: '9050-0' } });
  });

  it('a group moved back by SETID before its oldest pending entry is held by its first undelivered entry', async () => {
    const key = `${prefix}setid-before-pending`;
    const ids = Array.from({ length: 40 }, (_, i) => `${11_000 + i}-0`);
    await addEntries(redis, key, ids);
    await redis.xgroup('CREATE', key, 'g', '0');
    await redis.xreadgroup('GROUP', 'g', 'c', 'COUNT', 10, 'STREAMS', key, '>');
    await redis.xack(key, 'g', ...ids.slice(0, 5));
    await redis.xgroup('SETID', key, 'g', ids[1]!); // pending 11005..11009, last delivered 11001
    const r = await safeTrimStream(client, key, { maxLen: 5 }, { dryRun: true });
    expect(r.floor).toEqual({ id: ids[2], group: 'g', reason: 'undelivered', consumer: null, idleMs: null });
  });


  it('maxLen above a page (500): the floor is compared with the cut-off from whichever side of it is shorter, and held or met either way', async () => {
    const ids = Array.from({ length: 3_000 }, (_, i) => `${13_000 + i}-0`);
    // [index of the floor, which side settles it, trimmed to]: a floor at the head (a stuck
    // consumer after an earlier run: settled by the one page before it, which is empty), near the
    // tail, in the middle, and just too old for the newest 2,000 to keep it.
    for (const [at, heldBack] of [[0, true], [2_400, false], [1_500, false], [1_000, false], [999, true], [900, true]] as const) {
      const key = `${prefix}wide:${at}`;
      await addEntries(redis, key, ids);
      await redis.xgroup('CREATE', key, 'g', at === 0 ? '0' : ids[at - 1]!);
      await redis.xreadgroup('GROUP', 'g', 'c', 'COUNT', 1, 'STREAMS', key, '>'); // pending: ids[at]
      const r = await safeTrimStream(client, key, { maxLen: 2_000 });
      const target = heldBack ? ids[at]! : ids[1_000]!;
      expect(r, `floor at ${at}`).toMatchObject({ heldBack, trimmedToId: target, firstIdAfter: target, lengthAfter: 3_000 - ids.indexOf(target), floor: { id: ids[at], reason: 'pending' } });
      expect((await redis.xrange(key, '-', '+', 'COUNT', 1))[0]![0]).toBe(target);
      await redis.unlink(key);
    }
  });
  it('a floor that is no entry (its pending entry was deleted) right at the cut-off: met when the newest maxLen keep everything after it, held back when not', async () => {
    const ids = Array.from({ length: 300 }, (_, i) => `${15_000 + i}-0`);
    for (const approximate of [false, true]) {
      for (const [maxLen, heldBack, cutoffId, trimmedToId] of [[99, false, ids[201], ids[201]], [98, true, ids[202], ids[200]]] as const) {
        const key = `${prefix}deleted-floor:${approximate}:${maxLen}`;
        await addEntries(redis, key, ids);
        await redis.xgroup('CREATE', key, 'g', ids[199]!);
        await redis.xreadgroup('GROUP', 'g', 'c', 'COUNT', 1, 'STREAMS', key, '>'); // pending: ids[200]
        await redis.xdel(key, ids[200]!);
        const r = await safeTrimStream(client, key, { maxLen, approximate });
        const context = JSON.stringify({ approximate, maxLen, r });
        expect(r, context).toMatchObject({ heldBack, cutoffId, trimmedToId, lengthBefore: 299, lengthAfter: 99, firstIdAfter: ids[201], floor: { id: ids[200], reason: 'pending' } });
        expect(await allIds(redis, key), context).toEqual(ids.slice(201));
        await redis.unlink(key);
      }
    }
  });

  it('a dry run computes cut-off, floor and the count it would remove, and trims nothing', async () => {
    const key = `${prefix}dry`;
    const ids = Array.from({ length: 300 }, (_, i) => `${7_000 + i}-0`);
    await addEntries(redis, key, ids);
    await redis.xgroup('CREATE', key, 'moderation', ids[249]!);
    const dry = await safeTrimStream(client, key, { maxLen: 100 }, { dryRun: true });
    expect(dry).toMatchObject({ status: 'dry-run', lengthBefore: 300, lengthAfter: 300, removed: 200, cutoffId: '7200-0', heldBack: false });
    const held = await safeTrimStream(client, key, { maxLen: 10 }, { dryRun: true });
    expect(held).toMatchObject({ status: 'dry-run', removed: null, trimmedToId: '7250-0', heldBack: true, floor: { group: 'moderation', reason: 'undelivered' } });
    expect(await redis.xlen(key)).toBe(300);
  });

  it('streamInfo reports length, ends and their age, memory, groups with lag, oldest pending and consumers', async () => {
    const key = `${prefix}info`;
    const nowMs = 2_000_000;
    await addEntries(redis, key, Array.from({ length: 10 }, (_, i) => `${1_000_000 + i * 1_000}-0`));
    await redis.xgroup('CREATE', key, 'broadcast', '0');
    await redis.xgroup('CREATE', key, 'archival', '$');
    await redis.xreadgroup('GROUP', 'broadcast', 'alice', 'COUNT', 3, 'STREAMS', key, '>');
    await redis.xreadgroup('GROUP', 'broadcast', 'bob', 'COUNT', 2, 'STREAMS', key, '>');
    await redis.xack(key, 'broadcast', '1000000-0');
    const info = await streamInfo(client, key, nowMs);
    expect(info).toMatchObject({ key, length: 10, firstId: '1000000-0', lastId: '1009000-0', firstAgeMs: 1_000_000, lastAgeMs: 991_000 });
    expect(info!.memoryBytes).toBeGreaterThan(0);
    const broadcast = info!.groups.find((g) => g.name === 'broadcast')!;
    expect(broadcast).toMatchObject({ consumers: 2, pending: 4, lastDeliveredId: '1004000-0', entriesRead: 5, lag: 5 });
    expect(broadcast.oldestPending).toMatchObject({ id: '1001000-0', consumer: 'alice', deliveries: 1, ageMs: 999_000 });
    expect(broadcast.consumerList.map((c) => [c.name, c.pending]).sort()).toEqual([['alice', 2], ['bob', 2]]);
    expect(info!.groups.find((g) => g.name === 'archival')).toMatchObject({ pending: 0, lag: 0, oldestPending: null, consumerList: [] });
    expect(await streamInfo(client, `${prefix}no-such-stream`, nowMs)).toBeNull();
  });

  it('scanStreams finds every stream matching the pattern with SCAN TYPE stream, and no other key', async () => {
    const base = `${prefix}scan:`;
    const p = redis.pipeline();
    for (let i = 0; i < 2_500; i++) p.xadd(`${base}${i}`, '1-1', 'f', 'v');
    for (let i = 0; i < 100; i++) p.set(`${base}string:${i}`, 'x');
    await p.exec();
    const found = new Set<string>();
    let batches = 0;
    for await (const batch of scanStreams(client, `${base}*`, { count: 200 })) {
      batches++;
      expect(batch.node).toMatch(/^[\w.-]+:\d+$/);
      for (const key of batch.keys) found.add(key);
    }
    expect(found.size).toBe(2_500);
    expect([...found].some((k) => k.includes('string'))).toBe(false);
    expect(batches).toBeGreaterThan(1);
  });

  it('trims streams in scripts of up to batchSize that share a cut-off: each stream its own result, a missing or wrong-typed key failing alone', async () => {
    const base = `${prefix}batch:`;
    const p = redis.pipeline();
    for (let i = 0; i < 250; i++) {
      for (let e = 1; e <= 10; e++) p.xadd(`${base}${i}`, `${e}-0`, 'f', 'v');
    }
    p.xgroup('CREATE', `${base}7`, 'g', '4-0'); // entries 5.. undelivered: held back at 5-0
    await p.exec();
    await redis.set(`${base}string`, 'x');
    const short = { maxLen: 2 };
    const long = { maxLen: 8 };
    const keys = [
      ...Array.from({ length: 150 }, (_, i) => `${base}${i}`),
      `${base}string`,
      `${base}gone`,
      ...Array.from({ length: 100 }, (_, i) => `${base}${150 + i}`),
    ];
    const calls = () => scriptCalls(redis);
    const before = await calls();
    const results = new Map<string, StreamTrimResult>();
    // Keys 200.. under another cut-off: a batch never mixes two.
    for await (const r of trimStreams(client, keys, (k) => (Number(k.slice(base.length)) >= 200 ? long : short), { batchSize: 100, concurrency: 250 })) {
      expect(results.has(r.key)).toBe(false);
      results.set(r.key, r);
    }
    // 0..99 | 100..149, string, gone | 150..199 | 200..249: four scripts for 252 keys.
    expect((await calls()) - before).toBe(4);
    expect(results.size).toBe(252);
    expect(results.get(`${base}string`)).toMatchObject({ status: 'error', error: { message: expect.stringMatching(/WRONGTYPE/) } });
    expect(results.get(`${base}gone`)).toMatchObject({ status: 'missing' });
    expect(results.get(`${base}7`)).toMatchObject({ status: 'trimmed', heldBack: true, lengthAfter: 6, floor: { id: '5-0', reason: 'undelivered' } });
    for (let i = 0; i < 250; i++) {
      if (i === 7) continue;
      expect(results.get(`${base}${i}`)).toMatchObject({ status: 'trimmed', lengthBefore: 10, lengthAfter: i >= 200 ? 8 : 2 });
      expect(await redis.xlen(`${base}${i}`)).toBe(i >= 200 ? 8 : 2);
    }
  });

  it('a script stops at a stream boundary once it has removed entriesPerScript entries, and the rest of its batch goes again', async () => {
    const base = `${prefix}budget:`;
    const p = redis.pipeline();
    for (let i = 0; i < 10; i++) for (let e = 1; e <= 100; e++) p.xadd(`${base}${i}`, `${e}-0`, 'f', 'v');
    await p.exec();
    const keys = Array.from({ length: 10 }, (_, i) => `${base}${i}`);
    const calls = () => scriptCalls(redis);
    const before = await calls();
    const results: StreamTrimResult[] = [];
    // 90 removed per stream: the budget of 150 is reached at the second stream of each script.
    for await (const r of trimStreams(client, keys, () => ({ maxLen: 10 }), { batchSize: 100, entriesPerScript: 150 })) results.push(r);
    expect((await calls()) - before).toBe(5);
    expect(results.map((r) => r.key)).toEqual(keys);
    for (const r of results) expect(r).toMatchObject({ status: 'trimmed', lengthBefore: 100, lengthAfter: 10, removed: 90 });
    for (const key of keys) expect(await redis.xlen(key)).toBe(10);
  });

  it('trims 10,000 streams found by the scan, with groups, in a few seconds; a key of another type is an error for that key only', async () => {
    const base = `${prefix}many:`;
    for (let s = 0; s < 10_000; s += 500) {
      const p = redis.pipeline();
      for (let i = s; i < s + 500; i++) {
        for (let e = 1; e <= 30; e++) p.xadd(`${base}${i}`, `${e}-0`, 'f', 'v');
        p.xgroup('CREATE', `${base}${i}`, 'g', i % 10 === 0 ? '10-0' : '$');
      }
      await p.exec();
    }
    await redis.set(`${base}not-a-stream`, 'x');
    const started = performance.now();
    const counts: Record<string, number> = {};
    let removed = 0;
    const keys = async function* () {
      yield `${base}not-a-stream`;
      yield* scanStreamKeys(client, `${base}*`);
    };
    const errors: StreamTrimResult[] = [];
    for await (const r of trimStreams(client, keys(), () => ({ maxLen: 5 }), { concurrency: 64 })) {
      counts[r.status] = (counts[r.status] ?? 0) + 1;
      removed += r.removed ?? 0;
      if (r.status === 'error') errors.push(r);
    }
    const seconds = (performance.now() - started) / 1_000;
    console.error(`[redis-streams] trimmed 10,000 streams in ${seconds.toFixed(2)} s`);
    expect(counts).toEqual({ trimmed: 10_000, error: 1 });
    expect(errors[0]).toMatchObject({ key: `${base}not-a-stream`, error: { message: expect.stringMatching(/WRONGTYPE/) } });
    // 9,000 streams keep 5 of 30; 1,000 have a group that has read nothing after 10-0 and keep 20.
    expect(removed).toBe(9_000 * 25 + 1_000 * 10);
    expect(seconds).toBeLessThan(20);
  });
});

describe('failures name the node', () => {
  let dir: string;
  let server: RedisServer;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'shardctl-test-redis-streams-'));
    server = await startRedis({ binary: (await findRedisServer())!, dir, port: await freePort() });
  });
  afterAll(async () => {
    await stopRedis(server).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  });

  it('a Redis that asks for a password (NOAUTH) is named by scan, info and trim; one that refuses it is named by connectRedis', async () => {
    const node = `127.0.0.1:${server.port}`;
    const admin = new Redis(server.port, '127.0.0.1');
    await admin.config('SET', 'requirepass', 's3cret');
    admin.disconnect();
    try {
      // No ready check: the connection opens and the first command meets NOAUTH, as after a password is set on a live server.
      // A client each: a trim script's command has more than 10 arguments, which Redis 7 answers from an
      // unauthenticated client with a protocol error (named as NOAUTH too) and a closed connection.
      for (const attempt of [
        (c: Redis) => scanStreams(c, '*').next(),
        (c: Redis) => streamInfo(c, 'k', 0),
        (c: Redis) => safeTrimStream(c, 'k', { maxLen: 0 }),
        async (c: Redis) => {
          for await (const _ of trimStreams(c, ['k', 'l', 'm'], () => ({ maxLen: 0 }))) void _;
        },
      ]) {
        const anonymous = new Redis({ host: '127.0.0.1', port: server.port, enableReadyCheck: false, maxRetriesPerRequest: 1, retryStrategy: () => null });
        anonymous.on('error', () => {});
        const err = await attempt(anonymous).then(() => null, (e: unknown) => e);
        anonymous.disconnect();
        expect(err).toBeInstanceOf(RedisNodeError);
        expect((err as Error).message).toMatch(new RegExp(`^Redis at ${node.replace(/\./g, '\\.')}: it requires a password \\(NOAUTH\\)`));
      }
      // connectRedis (src/redis/connect.ts) names the node but not why: ioredis' ready check closes the
      // connection and reports only "Connection is closed." The password never appears.
      const wrong = await connectRedis({ url: `redis://:nope@${node}`, prefix: 'x:' }).then(() => null, (e: Error) => e);
      expect(wrong?.message).toContain(`redis://:***@${node}`);
      expect(wrong?.message).not.toContain('nope');
    } finally {
      const authed = new Redis(`redis://:s3cret@${node}`);
      await authed.config('SET', 'requirepass', '');
      authed.disconnect();
    }
  });

  it('a Redis that goes down: scan, info and trim throw a RedisNodeError naming host:port; connecting to it fails naming it', async () => {
    const client = await connectRedis({ url: `redis://127.0.0.1:${server.port}`, prefix: 'x:' });
    await (client as Redis).xadd('s', '1-0', 'f', 'v');
    await stopRedis(server);
    const node = `127.0.0.1:${server.port}`;
    for (const attempt of [
      () => scanStreams(client, '*').next(),
      () => streamInfo(client, 's', 0),
      () => safeTrimStream(client, 's', { maxLen: 0 }),
      async () => {
        for await (const _ of trimStreams(client, ['s', 't'], () => ({ maxLen: 0 }))) void _;
      },
    ]) {
      const err = await attempt().then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(RedisNodeError);
      expect((err as RedisNodeError).node).toBe(node);
      expect((err as Error).message).toContain(`Redis at ${node}: cannot reach it`);
    }
    client.disconnect();
    await expect(connectRedis({ url: `redis://${node}`, prefix: 'x:' })).rejects.toThrow(new RegExp(`cannot connect to Redis at redis://${node.replace(/\./g, '\\.')}`));
  });
});

describe('on a 3-master Redis Cluster', () => {
  let cluster: TestRedisCluster;
  let client: Cluster;

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    client = (await connectRedis({ nodes: cluster.urls, prefix: 'x:' })) as Cluster;
  });
  afterAll(async () => {
    client?.disconnect();
    await cluster?.cleanup();
  });

  it('streams spread over every master are all found by scanStreams and trimmed, each script on its own node', async () => {
    const keys = Array.from({ length: 600 }, (_, i) => `room:${i}`);
    const perNode = new Map<string, number>();
    for (const key of keys) {
      const node = client.slots[keySlot(key)]![0]!;
      perNode.set(node, (perNode.get(node) ?? 0) + 1);
      await client.xadd(key, '1-0', 'f', 'v');
      await client.xadd(key, '2-0', 'f', 'v');
      await client.xadd(key, '3-0', 'f', 'v');
    }
    expect([...perNode.keys()].sort()).toEqual(cluster.nodes.map((n) => n.address).sort());
    await client.xgroup('CREATE', 'room:0', 'g', '0');

    const found = new Map<string, string>();
    for await (const batch of scanStreams(client, 'room:*', { count: 50 })) {
      for (const key of batch.keys) found.set(key, batch.node);
    }
    expect([...found.keys()].sort()).toEqual([...keys].sort());
    for (const [key, node] of found) expect(node).toBe(client.slots[keySlot(key)]![0]);

    const results: StreamTrimResult[] = [];
    for await (const r of trimStreams(client, scanStreamKeys(client, 'room:*'), () => ({ maxLen: 1 }), { concurrency: 32 })) {
      results.push(r);
    }
    expect(results).toHaveLength(600);
    expect(results.filter((r) => r.status === 'trimmed')).toHaveLength(599);
    expect(results.find((r) => r.key === 'room:0')).toMatchObject({ status: 'unchanged', heldBack: true, floor: { group: 'g', reason: 'undelivered' } });
    for (const r of results) expect(r.node).toBe(client.slots[keySlot(r.key)]![0]);
    expect(await client.xlen('room:1')).toBe(1);
  });

  it('streams of one slot (a hash tag) share a script; streams of other slots never do (no CROSSSLOT)', async () => {
    const tagged = Array.from({ length: 40 }, (_, i) => `{hot}:s${i}`);
    const spread = Array.from({ length: 40 }, (_, i) => `cold:s${i}`);
    for (const key of [...tagged, ...spread]) {
      await client.xadd(key, '1-0', 'f', 'v');
      await client.xadd(key, '2-0', 'f', 'v');
    }
    const owner = cluster.nodes.find((n) => n.address === client.slots[keySlot('{hot}:s0')]![0])!;
    const direct = new Redis(`redis://${owner.address}`);
    const calls = () => scriptCalls(direct);
    try {
      const before = await calls();
      const taggedResults: StreamTrimResult[] = [];
      for await (const r of trimStreams(client, tagged, () => ({ maxLen: 1 }), { batchSize: 100 })) taggedResults.push(r);
      expect(taggedResults.map((r) => r.status)).toEqual(tagged.map(() => 'trimmed'));
      expect((await calls()) - before).toBe(1);
      const spreadResults: StreamTrimResult[] = [];
      for await (const r of trimStreams(client, spread, () => ({ maxLen: 1 }), { batchSize: 100 })) spreadResults.push(r);
      expect(spreadResults.map((r) => r.status)).toEqual(spread.map(() => 'trimmed'));
      for (const key of [...tagged, ...spread]) expect(await client.xlen(key)).toBe(1);
    } finally {
      direct.disconnect();
    }
  });

  it('a master that is down: the scan fails naming it, never a partial list', async () => {
    const victim = cluster.nodes[1]!;
    await cluster.stopNode(1, { waitForFail: true });
    const err = await (async () => {
      for await (const _ of scanStreams(client, 'room:*')) void _;
    })().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(RedisNodeError);
    expect((err as Error).message).toContain(victim.address);
    const key = Array.from({ length: 600 }, (_, i) => `room:${i}`).find((k) => client.slots[keySlot(k)]![0] === victim.address)!;
    const trimErr = await safeTrimStream(client, key, { maxLen: 0 }).catch((e: unknown) => e);
    expect(trimErr).toBeInstanceOf(RedisNodeError);
    expect((trimErr as Error).message).toMatch(/^Redis at /);
  });
});
