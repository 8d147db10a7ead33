import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderExecution, renderStatus, renderVerify } from '../../src/cli/render/moves.js';
import { init } from '../../src/engine/init.js';
import { shardAbort, shardAdd, shardRebalance, shardStatus } from '../../src/engine/shards/change.js';
import { shardVerify } from '../../src/engine/shards/verify.js';
import { installCapture, listCaptures, moveTag, removeCapture } from '../../src/mover/capture.js';
import { describeTable } from '../../src/mover/table-shape.js';
import { connect, type PgClient } from '../../src/postgres/connect.js';
import { runCli } from '../support/cli.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';
import { createSchema, loadRooms } from '../support/dataset.js';
import { createDeployment, currentRing, testRun, type TestDeployment } from '../support/deployment.js';

const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');
const LOCK = { lockTimeoutMs: 1000 };

/** `shard status` and `shard verify` for online moves: their figures, and the capture objects a move leaves behind. */
describe('online moves in shard status and shard verify', () => {
  let d: TestDeployment;
  let extra: TestDatabase;
  const urls: Record<string, string> = {};
  const cli = (...args: string[]) => runCli(['-c', d.configPath, ...args]);

  const withShard = async <T>(url: string, fn: (c: PgClient) => Promise<T>): Promise<T> => {
    const c = await connect(url);
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };
  const shapes = async (c: PgClient) => [(await describeTable(c, d.config.tables[0]!))!];

  beforeAll(async () => {
    d = await createDeployment({ shards: 2, redis: false, vnodes: 64 });
    extra = await createTestDatabase('sct_s2');
    d.shardUrls.forEach((u, i) => (urls[`shard-${i}`] = u));
    await init(d.config, testRun());
    await createSchema([...d.shardUrls, extra.url]);
    await loadRooms(await currentRing(d.metaUrl), urls, { rooms: 120, perRoom: 10 });
  });
  afterAll(async () => {
    await extra?.drop();
    await d?.cleanup();
  });

  it('a capture no plan accounts for is a leftover (verify fails, exit 1) until it is removed', async () => {
    expect((await shardVerify(d.config)).leftovers).toEqual([]);
    const fake = { planId: 'p-fake', moveNo: 1 };
    await withShard(urls['shard-1']!, async (c) => installCapture(c, { ...fake, ranges: [{ start: 0, end: 1000000 }], shapes: await shapes(c) }, LOCK));

    const report = await shardVerify(d.config);
    expect(report.ok).toBe(false);
    expect(report.misplacedRows).toBe(0);
    expect(report.leftovers).toHaveLength(1);
    const [leftover] = report.leftovers;
    const tag = moveTag('p-fake', 1);
    expect(leftover).toMatchObject({ shard: 'shard-1', tag, planId: 'p-fake', moveNo: 1, planState: null });
    expect(leftover!.objects).toEqual(
      expect.arrayContaining([
        `registry row ${tag}`,
        `table shardctl.move_${tag}_changes`,
        `sequence shardctl.move_${tag}_fence`,
        `function shardctl.move_${tag}_fence_check`,
        `trigger shardctl_move_${tag}_c_ins on messages`,
        `trigger shardctl_move_${tag}_f_del on messages`,
      ]),
    );
    const text = plain(renderVerify(report));
    expect(text).toContain(`shard-1: online-move objects ${tag}, plan p-fake move 1 (not in the journal):`);
    expect(text).toContain(`  table shardctl.move_${tag}_changes`);
    expect(text).toMatch(/plan is unknown: no command removes them; drop them by hand on shard-1/);
    expect(text).toMatch(/1 leftover online-move capture\(s\)/);

    const v = await cli('shard', 'verify', '--json');
    expect(v.exitCode).toBe(1);
    const body = JSON.parse(v.stdout);
    expect(body.data.leftovers).toEqual([expect.objectContaining({ shard: 'shard-1', tag, planId: 'p-fake', moveNo: 1 })]);
    const human = await cli('shard', 'verify');
    expect(human.exitCode).toBe(1);
    expect(plain(human.stdout + human.stderr)).toMatch(/1 leftover online-move capture\(s\) on shard-1/);

    await withShard(urls['shard-1']!, (c) => removeCapture(c, { ...fake, tables: [d.config.tables[0]!.name] }, LOCK, true));
    const clean = await shardVerify(d.config);
    expect(clean.leftovers).toEqual([]);
    expect(clean.ok).toBe(true);
    expect((await cli('shard', 'verify')).exitCode).toBe(0);
  });

  it('objects without a registry row are leftovers too', async () => {
    const tag = moveTag('p-orphan', 2);
    await withShard(urls['shard-0']!, async (c) => {
      await installCapture(c, { planId: 'p-orphan', moveNo: 2, ranges: [{ start: 0, end: 1000 }], shapes: await shapes(c) }, LOCK);
      await c.query(`DELETE FROM shardctl.move_captures WHERE tag = $1`, [tag]);
    });
    const report = await shardVerify(d.config);
    expect(report.leftovers).toEqual([expect.objectContaining({ shard: 'shard-0', tag, planId: null, moveNo: null, planState: null })]);
    expect(report.leftovers[0]!.objects.some((o) => o.startsWith('registry row'))).toBe(false);
    expect(plain(renderVerify(report))).toContain(`shard-0: online-move objects ${tag}, no registry row:`);
    await withShard(urls['shard-0']!, (c) => removeCapture(c, { planId: 'p-orphan', moveNo: 2, tables: [d.config.tables[0]!.name] }, LOCK, true));
    expect((await shardVerify(d.config)).leftovers).toEqual([]);
  });

  it('an online shard add: status shows backlog, catch-up rate and fence per move (table and --json); nothing is left behind', async () => {
    const result = await shardAdd(d.config, testRun(), { id: 'shard-2', url: extra.url });
    urls['shard-2'] = extra.url;
    const execution = result.execution!;
    expect(execution).toMatchObject({ status: 'done', planState: 'done', online: true });
    expect(typeof execution.longestFenceMs).toBe('number');
    expect(plain(renderExecution(execution))).toMatch(/^online: longest fenced interval [\d,]+ ms; [\d,]+ captured row\(s\) replayed in catch-up$/m);

    const status = await shardStatus(d.config, { limit: 5 });
    const plan = status.plans[0]!;
    expect(plan.options.online).toBe(true);
    expect(plan.moves.length).toBeGreaterThan(0);
    for (const m of plan.moves) {
      expect(m.state).toBe('cleaned');
      expect(m.online!.fenceAttempts).toBeGreaterThanOrEqual(1);
      expect(typeof m.online!.longestFenceMs).toBe('number');
    }
    const table = plain(renderStatus(status));
    expect(table).toMatch(new RegExp(`^${plan.id}  add  online  ok  epoch 1 → 2`, 'm'));
    const header = table.split('\n').find((l) => l.includes('backlog'))!;
    expect(header).toMatch(/backlog\s+catch-up rows\/s\s+fence \(longest\)/);
    for (const m of plan.moves) {
      const o = m.online!;
      const row = table.split('\n').find((l) => l.trim().startsWith(`${m.moveNo} `) && l.includes(`${m.source} → ${m.target}`))!;
      expect(row).toContain(`${Math.round(o.longestFenceMs!).toLocaleString('en-US')} ms (${o.fenceAttempts} attempt${o.fenceAttempts === 1 ? '' : 's'})`);
    }

    const json = await cli('shard', 'status', '--json');
    expect(json.exitCode).toBe(0);
    const [jsonPlan] = JSON.parse(json.stdout).data.plans;
    expect(jsonPlan.id).toBe(plan.id);
    expect(jsonPlan.options.online).toBe(true);
    for (const m of jsonPlan.moves) expect(m.online).toMatchObject({ fenceAttempts: expect.any(Number), longestFenceMs: expect.any(Number) });

    for (const url of Object.values(urls)) expect(await withShard(url, listCaptures)).toEqual([]);
    const verify = await shardVerify(d.config);
    expect(verify.leftovers).toEqual([]);
    expect(verify.ok).toBe(true);
  });

  it('a capture of a finished plan is a leftover, with its plan and state', async () => {
    const plan = (await shardStatus(d.config, { limit: 1 })).plans[0]!;
    const move = plan.moves[0]!;
    const sourceUrl = urls[move.source]!;
    await withShard(sourceUrl, async (c) => installCapture(c, { planId: plan.id, moveNo: move.moveNo, ranges: move.ranges, shapes: await shapes(c) }, LOCK));
    const report = await shardVerify(d.config);
    expect(report.leftovers).toEqual([expect.objectContaining({ shard: move.source, planId: plan.id, moveNo: move.moveNo, planState: 'done' })]);
    expect(plain(renderVerify(report))).toMatch(new RegExp(`plan ${plan.id} move ${move.moveNo} \\(done\\):[\\s\\S]*plan is done: no command removes them`));
    await withShard(sourceUrl, (c) => removeCapture(c, { planId: plan.id, moveNo: move.moveNo, tables: [d.config.tables[0]!.name] }, LOCK, true));
    expect((await shardVerify(d.config)).ok).toBe(true);
  });
  it('the captures of a plan in progress are expected on their sources; anything else of it is a leftover, to drop by hand (abort and resume act on each move’s source only)', async () => {
    await d.rewrite((raw) => {
      raw.migration = { batchSize: 50 };
    });
    const partial = await shardRebalance(d.config, testRun(), { weights: [{ id: 'shard-2', weight: 3 }], maxRows: 1 });
    expect(partial.execution).toMatchObject({ status: 'partial', planState: 'running', online: true });
    const plan = (await shardStatus(d.config, { limit: 1 })).plans[0]!;
    const started = plan.moves.filter((m) => m.state !== 'planned');
    expect(started.length).toBeGreaterThan(0);
    const installed = await withShard(urls[started[0]!.source]!, listCaptures);
    expect(installed.map((c) => c.planId)).toContain(plan.id);
    expect(plain(renderStatus({ plans: [plan] }))).toMatch(/backlog\s+catch-up rows\/s\s+fence \(longest\)/);

    // The move's own capture on its source: expected, not a leftover.
    expect((await shardVerify(d.config)).leftovers).toEqual([]);

    // The same move's objects on a shard that is not its source: a leftover of a plan in progress.
    const move = started[0]!;
    const stray = Object.keys(urls).find((id) => id !== move.source)!;
    await withShard(urls[stray]!, async (c) => installCapture(c, { planId: plan.id, moveNo: move.moveNo, ranges: move.ranges, shapes: await shapes(c) }, LOCK));
    const report = await shardVerify(d.config);
    expect(report.ok).toBe(false);
    expect(report.leftovers).toEqual([expect.objectContaining({ shard: stray, planId: plan.id, moveNo: move.moveNo, planState: 'running' })]);
    expect(plain(renderVerify(report))).toContain(`left by an interrupted online move whose plan is running (they are not its moves' own: another shard, or a move already cleaned): no command removes them; drop them by hand`);
    await withShard(urls[stray]!, (c) => removeCapture(c, { planId: plan.id, moveNo: move.moveNo, tables: [d.config.tables[0]!.name] }, LOCK, true));

    await shardAbort(d.config, testRun(), plan.id);
    for (const url of Object.values(urls)) expect(await withShard(url, listCaptures)).toEqual([]);
    const after = await shardVerify(d.config);
    expect(after.leftovers).toEqual([]);
    expect(after.ok).toBe(true);
  });
});
