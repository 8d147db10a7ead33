import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { init } from '../../src/engine/init.js';
import { shardAdd, shardRebalance, shardRemove, shardStatus } from '../../src/engine/shards/change.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';
import { createSchema, loadRooms, placement } from '../support/dataset.js';
import { createDeployment, currentRing, testRun, type TestDeployment } from '../support/deployment.js';

describe('rebalancing: add, remove, weight change over co-located tables', () => {
  let d: TestDeployment;
  let extra: TestDatabase;
  const urls: Record<string, string> = {};

  beforeAll(async () => {
    d = await createDeployment({ shards: 3, redis: false, vnodes: 64 });
    extra = await createTestDatabase('sct_s3');
    d.shardUrls.forEach((u, i) => (urls[`shard-${i}`] = u));
    await d.rewrite((raw) => {
      raw.migration = { batchSize: 500, parallel: 2 };
    });
    await init(d.config, testRun());
    await createSchema([...d.shardUrls, extra.url]);
    await loadRooms(await currentRing(d.metaUrl), urls, { rooms: 300, perRoom: 20 });
  });
  afterAll(async () => {
    await extra?.drop();
    await d?.cleanup();
  });

  it('shard add moves the new shard its ranges: every row where the ring says, none lost or duplicated', async () => {
    const before = await placement(await currentRing(d.metaUrl), urls);
    expect(before.misplaced).toBe(0);
    const result = await shardAdd(d.config, testRun(), { id: 'shard-3', url: extra.url });
    urls['shard-3'] = extra.url;
    expect(result.execution).toMatchObject({ status: 'done', planState: 'done', fromEpoch: 1, epoch: 2 });
    const ring = await currentRing(d.metaUrl);
    expect(ring.members.map((m) => m.id)).toEqual(['shard-0', 'shard-1', 'shard-2', 'shard-3']);
    const after = await placement(ring, urls);
    expect(after.misplaced).toBe(0);
    expect(after.totals).toEqual(before.totals);
    expect(after.perShard['shard-3']!.messages).toBeGreaterThan(0);
    const moved = result.execution!.moves.reduce((s, m) => s + m.rowsCopied, 0);
    expect(moved).toBe(after.perShard['shard-3']!.messages! + after.perShard['shard-3']!.reactions!);
    expect(result.execution!.moves.every((m) => m.state === 'cleaned' && m.rowsLeft === 0)).toBe(true);
    // Where the time went: every phase of an online add, bytes where they were measured.
    const phases = result.execution!.phases;
    expect(Object.keys(phases)).toEqual(['plan', 'prepare', 'capture', 'copy', 'catch-up', 'verify', 'fence', 'switch', 'cleanup']);
    const bytes = result.execution!.moves.reduce((s, m) => s + m.bytesCopied, 0);
    expect(phases.copy).toMatchObject({ bytesRead: bytes, bytesWritten: bytes });
    expect(phases.verify!.bytesRead).toBeGreaterThan(0);
    expect(phases.cleanup!.bytesWritten).toBeGreaterThan(0);
    for (const m of result.execution!.moves) {
      expect(Object.keys(m.tablePhases).sort()).toEqual(['public.messages', 'public.reactions']);
      expect(m.tablePhases['public.messages']!.copy!.bytesRead).toBe(m.tables.find((t) => t.table === 'public.messages')!.bytesCopied);
    }
    const summed = Object.values(phases).reduce((s, c) => s + c!.seconds, 0);
    expect(summed).toBeGreaterThan(0);
  });

  it('a weight change moves rows to match it, and rebalance with nothing to do says so', async () => {
    const before = await placement(await currentRing(d.metaUrl), urls);
    const result = await shardRebalance(d.config, testRun(), { weights: [{ id: 'shard-1', weight: 2 }] });
    expect(result.execution?.status).toBe('done');
    const ring = await currentRing(d.metaUrl);
    expect(ring.members.find((m) => m.id === 'shard-1')!.weight).toBe(2);
    const after = await placement(ring, urls);
    expect(after.misplaced).toBe(0);
    expect(after.totals).toEqual(before.totals);
    const idle = await shardRebalance(d.config, testRun(), { weights: [{ id: 'shard-1', weight: 2 }] });
    expect(idle).toMatchObject({ nothingToDo: true });
    expect(idle.execution).toBeUndefined();
  });

  it('shard remove drains a shard and retires it', async () => {
    const before = await placement(await currentRing(d.metaUrl), urls);
    const result = await shardRemove(d.config, testRun(), { id: 'shard-0' });
    expect(result.execution?.status).toBe('done');
    const ring = await currentRing(d.metaUrl);
    expect(ring.members.map((m) => m.id)).toEqual(['shard-1', 'shard-2', 'shard-3']);
    const after = await placement(ring, urls);
    expect(after.misplaced).toBe(0);
    expect(after.perShard['shard-0']).toEqual({ messages: 0, reactions: 0 });
    expect(after.totals).toEqual(before.totals);
    const status = await shardStatus(d.config, { limit: 5 });
    expect(status.plans.map((p) => [p.kind, p.state])).toEqual([
      ['remove', 'done'],
      ['rebalance', 'done'],
      ['add', 'done'],
    ]);
  });
});
