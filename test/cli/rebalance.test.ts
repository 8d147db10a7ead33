import { execa } from 'execa';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, runCli } from '../support/cli.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';
import { createSchema, loadRooms, placement } from '../support/dataset.js';
import { createDeployment, currentRing, type TestDeployment } from '../support/deployment.js';
import { sql } from '../support/migrations.js';

describe('shardctl shard add/remove/rebalance/apply/abort from the command line', () => {
  let d: TestDeployment;
  let extra: TestDatabase;
  const urls: Record<string, string> = {};
  const cli = (...args: string[]) => runCli(['-c', d.configPath, ...args]);
  const json = async (...args: string[]) => {
    const r = await cli(...args, '--json');
    return { ...r, body: r.stdout ? JSON.parse(r.stdout) : null };
  };

  beforeAll(async () => {
    d = await createDeployment({ shards: 2, redis: true, vnodes: 64 });
    extra = await createTestDatabase('sct_new');
    d.shardUrls.forEach((u, i) => (urls[`shard-${i}`] = u));
    await d.rewrite((raw) => {
      raw.migration = { batchSize: 300, parallel: 2 };
    });
    expect((await cli('init')).exitCode).toBe(0);
    await createSchema([...d.shardUrls, extra.url]);
    await loadRooms(await currentRing(d.metaUrl), urls, { rooms: 200, perRoom: 15 });
  });
  afterAll(async () => {
    await extra?.drop();
    await d?.cleanup();
  });

  it('--dry-run and shard plan change nothing (checksums before and after)', async () => {
    const before = await placement(await currentRing(d.metaUrl), urls);
    const dry = await cli('shard', 'add', 'shard-2', '--url', extra.url, '--dry-run');
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout).toMatch(/add plan from ring epoch 1: 2 move\(s\)/);
    expect(dry.stdout).toMatch(/dry run: nothing was changed/);
    const plan = await json('shard', 'plan', '--add', 'shard-2', '--url', extra.url, '--exact');
    expect(plan.body.data.plan.moves.map((m: { target: string }) => m.target)).toEqual(['shard-2', 'shard-2']);
    expect(await placement(await currentRing(d.metaUrl), { ...urls, 'shard-2': extra.url })).toEqual({ ...before, perShard: { ...before.perShard, 'shard-2': { messages: 0, reactions: 0 } } });
    expect((await currentRing(d.metaUrl)).epoch).toBe(1);
    expect((await json('shard', 'status')).body.data.plans).toEqual([]);
  });

  it('two shard add at once: one runs, the other exits 75 without touching anything', async () => {
    const [a, b] = await Promise.all([
      cli('shard', 'add', 'shard-2', '--url', extra.url, '--json'),
      cli('shard', 'add', 'shard-2', '--url', extra.url, '--json'),
    ]);
    const codes = [a.exitCode, b.exitCode].sort();
    expect(codes).toEqual([0, 75]);
    const loser = a.exitCode === 75 ? a : b;
    expect(JSON.parse(loser.stdout).error.kind).toBe('lock-held');
    const status = await json('shard', 'status');
    expect(status.body.data.plans).toHaveLength(1);
    urls['shard-2'] = extra.url;
    const after = await placement(await currentRing(d.metaUrl), urls);
    expect(after.misplaced).toBe(0);
  });

  it('apply of a plan made before the ring changed is refused', async () => {
    // Made now (epoch 2), made stale by a weight change (epoch 3).
    const file = path.join(d.dir, 'plan.json');
    const out = await cli('shard', 'plan', '--remove', 'shard-0', '--plan-out', file);
    expect(out.exitCode).toBe(0);
    expect((await cli('shard', 'rebalance', '--weight', 'shard-1=2')).exitCode).toBe(0);
    const r = await cli('shard', 'apply', file);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/stale plan: it was made from ring epoch 2, but the ring is at epoch 3/);
    expect((await currentRing(d.metaUrl)).epoch).toBe(3);
  });

  it('shard verify finds misplaced rows (exit 1); rebalance sends them home and keeps a conflicting one', async () => {
    const ring = await currentRing(d.metaUrl);
    const { Ring } = await import('../../src/core/ring.js');
    const r = Ring.build(ring);
    // Room 100000 belongs somewhere; write two of its messages on another shard, one of them conflicting with the owner's copy.
    const owner = r.locate('100000');
    const wrong = ['shard-0', 'shard-1', 'shard-2'].find((s) => s !== owner)!;
    await sql(urls[owner]!, `INSERT INTO public.messages (room_id, id, body) VALUES (100000, 1, 'owner version')`);
    await sql(urls[wrong]!, `INSERT INTO public.messages (room_id, id, body) VALUES (100000, 1, 'stale version'), (100000, 2, 'only here')`);
    const v = await json('shard', 'verify');
    expect(v.exitCode).toBe(1);
    expect(v.body.data.misplacedRows).toBe(2);
    const rb = await json('shard', 'rebalance');
    expect(rb.exitCode).toBe(0);
    expect(rb.body.data.execution.moves, JSON.stringify(rb.body.data.execution.moves.map((m: Record<string, unknown>) => [m.source, m.target, m.rowsCopied, m.rowsLeft, m.error]))).toEqual([expect.objectContaining({ source: wrong, target: owner, mode: 'merge', rowsLeft: 1 })]);
    expect(await sql(urls[owner]!, `SELECT id, body FROM public.messages WHERE room_id = 100000 ORDER BY id`)).toEqual([
      { id: 1, body: 'owner version' },
      { id: 2, body: 'only here' },
    ]);
    expect(await sql(urls[wrong]!, `SELECT id, body FROM public.messages WHERE room_id = 100000`)).toEqual([{ id: 1, body: 'stale version' }]);
    await sql(urls[wrong]!, `DELETE FROM public.messages WHERE room_id = 100000`);
    expect((await cli('shard', 'verify')).exitCode).toBe(0);
    const idle = await cli('shard', 'rebalance');
    expect(idle.exitCode).toBe(0);
    expect(idle.stdout).toMatch(/nothing to do/);
  });

  it('--max-rows stops at a batch boundary with status partial (exit 0); abort then removes the copies', async () => {
    const before = await placement(await currentRing(d.metaUrl), urls);
    const partial = await json('shard', 'rebalance', '--weight', 'shard-0=3', '--max-rows', '300', '--parallel', '1');
    expect(partial.exitCode).toBe(0);
    expect(partial.body.data.execution).toMatchObject({ status: 'partial', stoppedBy: 'max-rows', planState: 'running' });
    const planId = partial.body.data.execution.planId as string;
    expect((await cli('shard', 'add', 'shard-9', '--url', extra.url)).stderr).toMatch(new RegExp(`plan ${planId} .* is running`));
    const noYes = await cli('shard', 'abort', planId);
    expect(noYes.exitCode).toBe(2);
    expect(noYes.stderr).toMatch(/--yes/);
    const aborted = await json('shard', 'abort', planId, '--yes');
    expect(aborted.exitCode).toBe(0);
    expect(aborted.body.data.moves.reduce((s: number, m: { rowsRemoved: number }) => s + m.rowsRemoved, 0)).toBeGreaterThan(0);
    expect(await placement(await currentRing(d.metaUrl), urls)).toEqual(before);
    expect((await currentRing(d.metaUrl)).members.find((m) => m.id === 'shard-0')!.weight).toBe(1);
  });

  it('a budget-stopped run is continued by the next rebalance to the same final state; then resume has nothing to do', async () => {
    const before = await placement(await currentRing(d.metaUrl), urls);
    const partial = await json('shard', 'rebalance', '--weight', 'shard-0=3', '--max-rows', '400');
    expect(partial.body.data.execution.status).toBe('partial');
    // The hourly `shard rebalance` continues the plan in progress.
    const resumed = await json('shard', 'rebalance');
    expect(resumed.exitCode).toBe(0);
    expect(resumed.body.data.resumed).toBe(partial.body.data.execution.planId);
    expect(resumed.body.data.execution).toMatchObject({ status: 'done', planState: 'done' });
    const after = await placement(await currentRing(d.metaUrl), urls);
    expect(after.misplaced).toBe(0);
    expect(after.totals).toEqual(before.totals);
    expect((await cli('shard', 'resume')).stdout).toMatch(/nothing to resume/);
  });

  it('--offline: rows changed on the source while a move is paused are not lost: verify reads the source, copies again, and the new versions land', async () => {
    const keysOf = async (url: string) =>
      new Set((await sql<{ k: string }>(url, `SELECT room_id || ':' || id AS k FROM public.messages`)).map((r) => r.k));
    const ring = await currentRing(d.metaUrl);
    const before = await placement(ring, urls);
    // shard-1 gains weight: the moves bring it rows from the others.
    const weight = ring.members.find((m) => m.id === 'shard-1')!.weight + 2;
    const held = await keysOf(urls['shard-1']!);
    const partial = await json('shard', 'rebalance', '--weight', `shard-1=${weight}`, '--max-rows', '400', '--parallel', '1', '--offline');
    expect(partial.body.data.execution.status).toBe('partial');
    // Two rows already copied to shard-1, still on their source: one is edited there, one deleted.
    const copied = [...(await keysOf(urls['shard-1']!))].filter((k) => !held.has(k));
    expect(copied.length).toBeGreaterThan(1);
    const sourceOf = async (key: string) => {
      for (const id of Object.keys(urls).filter((id) => id !== 'shard-1')) if ((await keysOf(urls[id]!)).has(key)) return id;
      throw new Error(`${key} is on no source`);
    };
    const [edited, deleted] = [copied[0]!.split(':').map(Number), copied[1]!.split(':').map(Number)] as [number[], number[]];
    await sql(urls[await sourceOf(copied[0]!)]!, `UPDATE public.messages SET body = 'edited during the move' WHERE room_id = $1 AND id = $2`, edited);
    await sql(urls[await sourceOf(copied[1]!)]!, `DELETE FROM public.messages WHERE room_id = $1 AND id = $2`, deleted);

    const resumed = await json('shard', 'rebalance');
    expect(resumed.exitCode, JSON.stringify(resumed.body)).toBe(0);
    expect(resumed.body.data.execution).toMatchObject({ status: 'done', planState: 'done' });
    const verified = resumed.body.data.execution.moves.flatMap((m: { tables: Array<{ resyncs: number }> }) => m.tables);
    expect(verified.some((t: { resyncs: number }) => t.resyncs > 0), 'a table was copied again').toBe(true);
    const after = await placement(await currentRing(d.metaUrl), urls);
    expect(after.misplaced).toBe(0);
    expect(after.totals.messages!.rows).toBe(before.totals.messages!.rows - 1);
    const everywhere = async (where: string, values: unknown[]) => {
      let n = 0;
      for (const url of Object.values(urls)) n += (await sql<{ n: number }>(url, `SELECT count(*)::int AS n FROM public.messages WHERE ${where}`, values))[0]!.n;
      return n;
    };
    expect(await everywhere(`room_id = $1 AND id = $2 AND body = 'edited during the move'`, edited)).toBe(1);
    expect(await everywhere('room_id = $1 AND id = $2', deleted)).toBe(0);
  });

  it('SIGINT finishes the current batch, journals, and exits 130; resume completes', async () => {
    const before = await placement(await currentRing(d.metaUrl), urls);
    await d.rewrite((raw) => {
      raw.migration = { batchSize: 50, parallel: 1, maxRowsPerSecond: 400 };
    });
    const child = execa('node', [BIN, '-c', d.configPath, 'shard', 'rebalance', '--weight', 'shard-2=3'], { reject: false });
    await new Promise((r) => setTimeout(r, 1200));
    child.kill('SIGINT');
    const result = await child;
    expect(result.exitCode).toBe(130);
    expect(String(result.stderr)).toMatch(/interrupted at a batch boundary/);
    await d.rewrite((raw) => {
      raw.migration = { batchSize: 300, parallel: 2 };
    });
    expect((await cli('shard', 'resume')).exitCode).toBe(0);
    const after = await placement(await currentRing(d.metaUrl), urls);
    expect(after.misplaced).toBe(0);
    expect(after.totals).toEqual(before.totals);
  });

  it('shard remove needs --confirm ID without a terminal, then drains and retires the shard', async () => {
    const refused = await cli('shard', 'remove', 'shard-1');
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toMatch(/pass --confirm shard-1/);
    const before = await placement(await currentRing(d.metaUrl), urls);
    const r = await json('shard', 'remove', 'shard-1', '--confirm', 'shard-1');
    expect(r.exitCode).toBe(0);
    const after = await placement(await currentRing(d.metaUrl), urls);
    expect(after.perShard['shard-1']).toEqual({ messages: 0, reactions: 0 });
    expect(after.misplaced).toBe(0);
    expect(after.totals).toEqual(before.totals);
    const list = await json('shard', 'list');
    expect(list.body.data.shards.find((s: { id: string }) => s.id === 'shard-1').state).toBe('retired');
    const last = await cli('shard', 'remove', 'shard-0', '--confirm', 'shard-0', '--dry-run');
    expect(last.exitCode).toBe(0);
  });

  it('shard index builds the routing-hash index CONCURRENTLY on every shard, once', async () => {
    const first = await json('shard', 'index');
    expect(first.exitCode).toBe(0);
    const statuses = first.body.data.shards.flatMap((s: { tables: Array<{ status: string }> }) => s.tables.map((t) => t.status));
    expect(statuses.every((s: string) => s === 'created')).toBe(true);
    const again = await json('shard', 'index');
    expect(again.body.data.shards.flatMap((s: { tables: Array<{ status: string }> }) => s.tables.map((t) => t.status)).every((s: string) => s === 'exists')).toBe(true);
    const defs = await sql(urls['shard-0']!, `SELECT indexdef FROM pg_indexes WHERE indexname = 'messages_shardctl_route_hash'`);
    expect(defs[0]!.indexdef).toMatch(/shardctl\.route_hash\(\(room_id\)::text\)/);
  });

  it('with the routing-hash index, moves and the misplaced-row check read through it, and every row ends where the ring says', async () => {
    const scans = async (url: string) =>
      // The CLI's sessions flushed their statistics when they ended.
      Number((await sql(url, `SELECT coalesce(sum(idx_scan), 0)::int AS n FROM pg_stat_user_indexes WHERE indexrelname LIKE '%_shardctl_route_hash'`))[0]!.n);
    const before = await placement(await currentRing(d.metaUrl), urls);
    const [s0, s2] = [await scans(urls['shard-0']!), await scans(urls['shard-2']!)];
    const ring = await currentRing(d.metaUrl);
    const weight = ring.members.find((m) => m.id === 'shard-0')!.weight + 1;
    const r = await json('shard', 'rebalance', '--weight', `shard-0=${weight}`);
    expect(r.exitCode).toBe(0);
    expect(r.body.data.execution.status).toBe('done');
    expect(r.body.data.plan.moves.length).toBeGreaterThan(0);
    // shard-2 gave rows to shard-0 (copy, verify, cleanup by index); both were checked for misplaced rows.
    expect(await scans(urls['shard-2']!)).toBeGreaterThan(s2);
    expect(await scans(urls['shard-0']!)).toBeGreaterThan(s0);
    const after = await placement(await currentRing(d.metaUrl), urls);
    expect(after.misplaced).toBe(0);
    expect(after.totals).toEqual(before.totals);
    const idle = await json('shard', 'rebalance');
    expect(idle.exitCode).toBe(0);
    expect(idle.body.data.nothingToDo).toBe(true);
  });
});

