import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ShardctlConfig } from '../../src/config/schema.js';
import { Ring } from '../../src/core/ring.js';
import { routingHash } from '../../src/core/routing-hash.js';
import { runHealth } from '../../src/engine/health/run.js';
import type { CheckResult } from '../../src/engine/health/types.js';
import { init } from '../../src/engine/init.js';
import { publishCurrentRing } from '../../src/engine/publish.js';
import { Journal } from '../../src/metadata/journal.js';
import { runMutation } from '../../src/metadata/mutation.js';
import { MetadataStore } from '../../src/metadata/store.js';
import { databaseOf, withDatabase } from '../../src/postgres/connect.js';
import { ringKey } from '../../src/redis/ring-publisher.js';
import { createSchema, loadRooms } from '../support/dataset.js';
import { createDeployment, currentRing, testRun, type TestDeployment } from '../support/deployment.js';
import { pgUrl, redisUrl } from '../support/databases.js';
import { sql } from '../support/migrations.js';

/*
 * The sharding checks of `health` on a real deployment of three shards and
 * Redis: each condition is made for real (rows where the ring does not put
 * them, a failed move in the journal, a deleted ring key, a registry that
 * disagrees with the config) and the runner's judged results are checked.
 */

const analyze = (urls: string[]) => Promise.all(urls.map((u) => sql(u, 'ANALYZE public.messages; ANALYZE public.reactions')));

function only(results: CheckResult[], check: string, target?: string): CheckResult {
  const found = results.filter((r) => r.check === check && (target === undefined || r.target === target));
  expect(found, `${check} ${target ?? ''}: ${JSON.stringify(results.map((r) => `${r.check} ${r.target}`))}`).toHaveLength(1);
  return found[0]!;
}

describe('health: the sharding checks', () => {
  let d: TestDeployment;
  let ring: Ring;
  const urls: Record<string, string> = {};

  beforeAll(async () => {
    d = await createDeployment({ shards: 3, vnodes: 64 });
    d.shardUrls.forEach((u, i) => (urls[`shard-${i}`] = u));
    await init(d.config, testRun());
    await createSchema(d.shardUrls);
    // 2,100 messages, under 1,000 per shard: the misplaced-row sample reads each shard's table whole.
    await loadRooms(await currentRing(d.metaUrl), urls, { rooms: 105, perRoom: 20 });
    await analyze(d.shardUrls);
    ring = Ring.build(await currentRing(d.metaUrl));
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('a deployment where every row is where the ring says, the ring published and the registry matching is OK throughout', async () => {
    const report = await runHealth(d.config, { only: ['sharding'] });
    const byCheck = (c: string) => report.results.filter((r) => r.check === c);
    expect(report.results.filter((r) => r.status !== 'ok'), JSON.stringify(report.results.filter((r) => r.status !== 'ok'))).toEqual([]);
    const balance = only(report.results, 'row_balance', 'public.messages');
    expect(balance.value).toBeGreaterThanOrEqual(1);
    expect(balance.value).toBeLessThan(1.5);
    expect(balance.labels).toEqual({ table: 'public.messages' });
    expect(byCheck('misplaced_rows')).toHaveLength(6);
    for (const m of byCheck('misplaced_rows')) expect(m.value).toBe(0);
    expect(only(report.results, 'ring_published').value).toBe(0);
    expect(only(report.results, 'shard_registry').value).toBe(0);
    expect(only(report.results, 'moves_in_flight').value).toBe(0);
    expect(only(report.results, 'moves_failed').value).toBe(0);
  });

  it('the shards and sharding groups share one session per shard: a run opens one backend on each shard database', async () => {
    // pg_stat_database.sessions (PostgreSQL 14+) counts the sessions established, flushed when each ends.
    const sessions = async () =>
      new Map((await sql<{ datname: string; sessions: number }>(pgUrl(), 'SELECT datname, sessions::int AS sessions FROM pg_stat_database WHERE datname = ANY($1)', [d.shardUrls.map(databaseOf)])).map((r) => [r.datname, r.sessions]));
    const before = await sessions();
    const report = await runHealth(d.config, { only: ['shards', 'sharding'] });
    expect(report.results.filter((r) => r.check === 'misplaced_rows').map((r) => r.value)).toEqual([0, 0, 0, 0, 0, 0]);
    const after = await sessions();
    for (const url of d.shardUrls) expect(after.get(databaseOf(url))! - before.get(databaseOf(url))!, databaseOf(url)).toBe(1);
  });

  it('a row inserted on a shard the ring does not give it to is found by the sample and named with its owner', async () => {
    const room = Array.from({ length: 1000 }, (_, i) => 50_000 + i).find((r) => ring.locate(String(r)) === 'shard-1')!;
    await sql(urls['shard-0']!, `INSERT INTO public.messages (room_id, id, body) VALUES ($1, 1, 'misplaced')`, [room]);
    try {
      const report = await runHealth(d.config, { check: 'misplaced_rows' });
      const here = only(report.results, 'misplaced_rows', 'public.messages on shard-0');
      expect(here).toMatchObject({ status: 'warning', value: 1, labels: { shard: 'shard-0', table: 'public.messages' } });
      expect(here.message).toMatch(new RegExp(`^1 of \\d+ sampled rows belong elsewhere, e\\.g\\. room_id ${room} → shard-1`));
      for (const other of report.results.filter((r) => r !== here)) expect(other.value, other.target).toBe(0);
    } finally {
      await sql(urls['shard-0']!, `DELETE FROM public.messages WHERE room_id = $1`, [room]);
    }
  });

  it('a failed move of an unfinished plan is moves_failed, and the plan\'s age is moves_in_flight against `now`', async () => {
    const store = await MetadataStore.open(d.metaUrl);
    const planId = `health-${randomBytes(3).toString('hex')}`;
    // A copy the move made on its target: shard-0's key, on shard-1, inside the move's range.
    const room = Array.from({ length: 1000 }, (_, i) => 60_000 + i).find((r) => ring.locate(String(r)) === 'shard-0')!;
    const hash = routingHash(String(room));
    await sql(urls['shard-1']!, `INSERT INTO public.messages (room_id, id, body) VALUES ($1, 1, 'copied')`, [room]);
    try {
      const journal = new Journal(store.client);
      const epoch = (await store.currentRing())!;
      // Journal writes are fenced by the metadata lock's lease, as in a real run.
      const underLock = (fn: () => Promise<void>) => runMutation({ store, run: testRun(), command: 'test journal' }, fn);
      await underLock(async () => {
        await journal.createPlan({
          id: planId, kind: 'rebalance', fromEpoch: epoch.epoch, targetRing: { vnodes: epoch.vnodes, members: epoch.members }, options: {}, createdBy: 'vitest',
          tables: ['public.messages', 'public.reactions'],
          moves: [{ source: 'shard-0', target: 'shard-1', mode: 'merge', ranges: [{ start: hash, end: hash }], estRows: 0, estBytes: 0 }],
        });
        await journal.setMoveState(planId, 1, 'failed', { error: 'copy failed: connection reset', resumeState: 'planned' });
        await journal.setPlanState(planId, 'failed', 'move 1 failed');
      });
      const createdAt = (await journal.getPlan(planId))!.createdAt;
      const now = new Date(createdAt.getTime() + 2 * 3600_000);
      const report = await runHealth(d.config, { only: ['sharding'], now });
      const failed = only(report.results, 'moves_failed');
      expect(failed).toMatchObject({ status: 'warning', value: 1 });
      expect(failed.message).toContain(`plan ${planId}`);
      expect(failed.message).toContain('shard-0 → shard-1: copy failed: connection reset');
      const inFlight = only(report.results, 'moves_in_flight');
      expect(inFlight.status).toBe('warning');
      expect(inFlight.value).toBeCloseTo(7200, 0);
      expect(inFlight.message).toMatch(/^1 move\(s\) of plan .* oldest: move 1 shard-0 → shard-1 \(failed\) for 2h/);
      const copy = only(report.results, 'misplaced_rows', 'public.messages on shard-1');
      expect(copy).toMatchObject({ status: 'ok', value: 0 });
      expect(copy.message).toMatch(/; 1 more in ranges of a move in flight \(expected\)$/);
      expect((await runHealth(d.config, { check: 'moves_in_flight', now: new Date(createdAt.getTime() + 7 * 3600_000) })).results[0]!.status).toBe('critical');

      await underLock(async () => {
        await journal.setMoveState(planId, 1, 'aborted');
        await journal.setPlanState(planId, 'aborted');
      });
      const after = await runHealth(d.config, { only: ['sharding'], now });
      expect(only(after.results, 'moves_failed')).toMatchObject({ status: 'ok', value: 0 });
      expect(only(after.results, 'moves_in_flight')).toMatchObject({ status: 'ok', value: 0 });
      // Once the move is over, the same row is misplaced.
      expect(only(after.results, 'misplaced_rows', 'public.messages on shard-1')).toMatchObject({ status: 'warning', value: 1 });
    } finally {
      await sql(urls['shard-1']!, `DELETE FROM public.messages WHERE room_id = $1`, [room]);
      await store.close();
    }
  });

  it('the ring key deleted from Redis is critical; a stale epoch is critical with the lag; republished it is OK', async () => {
    const redis = new Redis(redisUrl());
    const key = ringKey(d.redisPrefix);
    try {
      const published = await redis.get(key);
      expect(published).not.toBeNull();
      await redis.del(key);
      const missing = only((await runHealth(d.config, { check: 'ring_published' })).results, 'ring_published');
      expect(missing).toMatchObject({ status: 'critical', value: null });
      expect(missing.message).toContain(`the ring key ${key} is missing`);

      const doc = JSON.parse(published!) as { epoch: number };
      await redis.set(key, JSON.stringify({ ...doc, epoch: doc.epoch - 1 }));
      const stale = only((await runHealth(d.config, { check: 'ring_published' })).results, 'ring_published');
      expect(stale).toMatchObject({ status: 'critical', value: 1 });

      const store = await MetadataStore.open(d.metaUrl);
      await publishCurrentRing(d.config, store).finally(() => store.close());
      expect(only((await runHealth(d.config, { check: 'ring_published' })).results, 'ring_published')).toMatchObject({ status: 'ok', value: 0 });
    } finally {
      await redis.del(key, `${key}:changed`);
      redis.disconnect();
    }
  });

  it('without Redis in the config ring_published has nothing to measure', async () => {
    const config: ShardctlConfig = { ...d.config, redis: undefined };
    expect(only((await runHealth(config, { check: 'ring_published' })).results, 'ring_published')).toMatchObject({ status: 'ok', value: null, message: 'no Redis configured' });
  });

  it('a registered shard missing from the config, and a config shard never registered, are both named by shard_registry', async () => {
    const config: ShardctlConfig = {
      ...d.config,
      shards: [...d.config.shards.filter((s) => s.id !== 'shard-2'), { id: 'shard-9', url: d.shardUrls[2]!, weight: 1 }],
    };
    const r = only((await runHealth(config, { check: 'shard_registry' })).results, 'shard_registry');
    expect(r).toMatchObject({ status: 'warning', value: 2 });
    expect(r.message).toBe('registered but not in the config: shard-2 (active); in the config but not registered: shard-9');
  });

  it('when the metadata database does not answer, the checks that need it are unknown with that reason', async () => {
    const config: ShardctlConfig = { ...d.config, metadata: { ...d.config.metadata, url: withDatabase(d.metaUrl, `sct_absent_${randomBytes(4).toString('hex')}`) } };
    const report = await runHealth(config, { only: ['sharding'] });
    expect(report.results.length).toBeGreaterThan(0);
    for (const r of report.results) {
      expect(r.status, `${r.check} ${r.target}`).toBe('unknown');
      expect(r.message).toBe('the metadata database did not answer');
    }
    expect(report.results.map((r) => r.check)).toEqual(expect.arrayContaining(['row_balance', 'misplaced_rows', 'moves_failed', 'ring_published', 'shard_registry']));
  });

  it('a sharded table missing on a shard: its checks there are unknown, and everything else of that shard is still measured (the one-statement read falls back to reading part by part)', async () => {
    await sql(urls['shard-0']!, 'CREATE TABLE public.ghosts (id bigint PRIMARY KEY, room_id bigint NOT NULL)');
    try {
      const config: ShardctlConfig = { ...d.config, tables: [...d.config.tables, { name: 'public.ghosts', key: 'room_id' }] };
      const report = await runHealth(config, { only: ['shards', 'sharding'] });
      expect(only(report.results, 'misplaced_rows', 'public.ghosts on shard-1')).toMatchObject({ status: 'unknown', value: null, message: 'public.ghosts does not exist on shard-1' });
      expect(only(report.results, 'misplaced_rows', 'public.ghosts on shard-0')).toMatchObject({ status: 'ok', value: 0 });
      expect(only(report.results, 'row_balance', 'public.ghosts')).toMatchObject({ status: 'unknown', message: 'public.ghosts does not exist on shard-1, shard-2' });
      for (const id of ['shard-0', 'shard-1', 'shard-2']) {
        expect(only(report.results, 'misplaced_rows', `public.messages on ${id}`)).toMatchObject({ status: 'ok', value: 0 });
        expect(only(report.results, 'longest_transaction', id).status).toBe('ok');
        expect(only(report.results, 'server_version', id).value).toBeGreaterThan(100000);
      }
    } finally {
      await sql(urls['shard-0']!, 'DROP TABLE public.ghosts');
    }
  });

  it('a table with many rows on one shard fires row_balance and byte_balance, naming the heaviest and lightest shard', async () => {
    const rooms = Array.from({ length: 5000 }, (_, i) => 100_000 + i).filter((r) => ring.locate(String(r)) === 'shard-0').slice(0, 300);
    await sql(
      urls['shard-0']!,
      `INSERT INTO public.messages (room_id, id, body) SELECT r, m, repeat(md5(r::text || m::text), 8) FROM unnest($1::bigint[]) r, generate_series(1, 100) m`,
      [rooms],
    );
    await analyze(d.shardUrls);
    try {
      const counts = await Promise.all(d.shardUrls.map(async (u) => Number((await sql<{ n: string }>(u, 'SELECT count(*) AS n FROM public.messages'))[0]!.n)));
      const expected = Math.max(...counts) / (counts.reduce((a, b) => a + b, 0) / counts.length);
      const report = await runHealth(d.config, { only: ['sharding'] });
      const rows = only(report.results, 'row_balance', 'public.messages');
      expect(rows.value).toBeCloseTo(expected, 1);
      expect(rows.status).toBe(expected >= 3 ? 'critical' : 'warning');
      expect(rows.message).toMatch(/^heaviest shard-0 \d+ rows, lightest shard-[12] \d+ rows/);
      const bytes = only(report.results, 'byte_balance', 'public.messages');
      expect(bytes.value).toBeGreaterThan(1.5);
      expect(['warning', 'critical']).toContain(bytes.status);
      expect(bytes.message).toMatch(/^heaviest shard-0 /);
      // The other table stayed balanced.
      expect(only(report.results, 'row_balance', 'public.reactions').status).toBe('ok');

      // Per unit of weight: registered with weight 4, shard-0 is expected to hold four times the others' share.
      const setWeight = async (w: number) => {
        const store = await MetadataStore.open(d.metaUrl);
        await runMutation({ store, run: testRun(), command: 'test weight' }, async () => {
          await store.client.query(`UPDATE shardctl.shards SET weight = $1 WHERE id = 'shard-0'`, [w]);
        }).finally(() => store.close());
      };
      await setWeight(4);
      try {
        const perWeight = counts.map((n, i) => n / (i === 0 ? 4 : 1));
        const weighted = Math.max(...perWeight) / (perWeight.reduce((a, b) => a + b, 0) / perWeight.length);
        const again = only((await runHealth(d.config, { check: 'row_balance' })).results, 'row_balance', 'public.messages');
        expect(again.value).toBeCloseTo(weighted, 1);
        expect(again.value!).toBeLessThan(rows.value!);
      } finally {
        await setWeight(1);
      }
    } finally {
      await sql(urls['shard-0']!, `DELETE FROM public.messages WHERE room_id = ANY($1::bigint[])`, [rooms]);
    }
  });
});
