import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RingSpec } from '../../src/core/ring.js';
import { listCaptures } from '../../src/mover/capture.js';
import { runCli } from '../support/cli.js';
import { placement } from '../support/dataset.js';
import { currentRing } from '../support/deployment.js';
import { sql } from '../support/migrations.js';
import { redisUrl } from '../support/databases.js';
import { createBench, killHard, phaseOf, prng, readJournal, recover, startCli, waitFor, type Bench } from '../support/move-trials.js';
import { DOCS_SQL, fencedOutsideMoves, OnlineWriter, seedDocs, capturesOn, roomMoving, trackedClient } from '../support/online-writer.js';

const roomMovingIn = (before: RingSpec, after: RingSpec, from: string, to: string) => roomMoving(before, after, from, to, ROOMS);

/*
 * Online moves under crashes: the CLI SIGKILLed in every online phase while
 * an application keeps writing through the router; a fence left by a dead
 * mover lapses on the server's clock (and what is written after it is
 * captured); `shard abort` during the catch-up leaves nothing behind.
 */

const ROOMS = 200;
const PER_ROOM = 10;

let bench: Bench | undefined;
const writers: OnlineWriter[] = [];
const clients: pg.Client[] = [];

beforeAll(async () => {
  // With Redis, as an application runs: the ring is published right after the switch, before cleanup lifts the old owner's fence.
  bench = await createBench({ rooms: ROOMS, perRoom: PER_ROOM, redis: true });
  await bench.d.rewrite((raw) => {
    (raw.tables as unknown[]).push({ name: 'public.docs', key: 'room_id' });
  });
});
afterAll(async () => {
  await bench?.dispose();
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.end().catch(() => {});
  for (const w of writers.splice(0)) await w.close().catch(() => {});
});

async function reset(b: Bench): Promise<RingSpec> {
  for (const url of Object.values(b.urls)) await sql(url, DOCS_SQL);
  await b.reset();
  for (const url of Object.values(b.urls)) await sql(url, 'TRUNCATE public.docs');
  const ring = await currentRing(b.d.metaUrl);
  await seedDocs(ring, b.urls, ROOMS);
  return { vnodes: ring.vnodes, members: ring.members.map((m) => ({ id: m.id, weight: m.weight })) };
}

async function startWriter(b: Bench, seed: number): Promise<OnlineWriter> {
  const w = await OnlineWriter.create({ urls: b.urls, metadataUrl: b.d.metaUrl, redis: redisUrl(), prefix: b.d.redisPrefix, seed, rooms: ROOMS });
  writers.push(w);
  w.start();
  await waitFor('the writer to get going', async () => w.stats.writes >= 10, { timeoutMs: 10_000 });
  return w;
}

function connect(url: string): Promise<pg.Client> {
  return trackedClient(url, clients);
}


function withShard2(spec: RingSpec): RingSpec {
  return { vnodes: spec.vnodes, members: [...spec.members, { id: 'shard-2', weight: 1 }] };
}

/** The writer stopped; the model property, no fenced write on a key that stays, no capture object left. */
/** `before` and `planned`: the rings of the plan (a fenced write is fair only on a key whose owner differs). */
async function expectModelHolds(b: Bench, w: OnlineWriter, before: RingSpec, epoch: number, planned: RingSpec = withShard2(before)): Promise<void> {
  await w.stop();
  const ring = await currentRing(b.d.metaUrl);
  expect(ring.epoch).toBe(epoch);
  const spec: RingSpec = { vnodes: ring.vnodes, members: ring.members.map((m) => ({ id: m.id, weight: m.weight })) };
  const stats = w.takeStats();
  expect(stats.failures, 'writes that failed').toEqual([]);
  expect(fencedOutsideMoves(stats.fenced, before, planned), 'writes refused on keys that do not move').toEqual([]);
  const problems = await w.check(spec);
  expect(problems, `the shards together vs the model: ${problems.slice(0, 3).join('; ')}`).toEqual([]);
  expect((await placement(spec, b.urls)).misplaced).toBe(0);
  expect(await capturesOn(b.urls), 'capture objects left').toEqual({});
}

/**
 * Opens a transaction on `url` (a write to a key that does not move) after
 * the capture is installed and before the first fence: the copy into shard-2
 * waits behind a SHARE lock until then. While it is open every fence misses.
 */
async function holdFences(b: Bench, child: ReturnType<typeof startCli>, staying: number): Promise<pg.Client> {
  let exited = false;
  void child.finally(() => (exited = true));
  const probe = await connect(b.urls['shard-0']!);
  // The triggers, not the sequence: the capture's objects commit first, its triggers after them.
  const tag = await waitFor('the capture on shard-0', async () => (await listCaptures(probe)).find((c) => c.objects.some((o) => o.startsWith('trigger ')))?.tag, { everyMs: 2, unless: () => exited });
  expect(tag, `the add ended before its capture was seen: ${exited ? (await child).stderr : ''}`).toBeTruthy();
  const holder = await connect(b.urls['shard-0']!);
  await holder.query('BEGIN');
  await holder.query(`INSERT INTO public.reactions VALUES ($1, 1, 'hold', 424242)`, [staying]);
  return holder;
}

async function blockTarget(b: Bench): Promise<pg.Client> {
  const blocker = await connect(b.urls['shard-2']!);
  await blocker.query('BEGIN; LOCK TABLE public.messages, public.reactions, public.docs IN SHARE MODE');
  return blocker;
}

describe('online shard add under crashes', () => {
  const SEEDS = [5, 17, 29, 31, 43, 59, 61, 73, 89, 103];
  const PHASES = ['capturing', 'copying', 'catching-up', 'fenced'] as const;

  it('SIGKILL of the CLI in capturing, copying, catching-up or fenced while the application writes: shard resume completes, the shards equal what it committed, every row where the ring says, no capture object left', async () => {
    const b = bench!;
    const log: string[] = [];
    const failures: string[] = [];
    try {
      for (const [i, seed] of SEEDS.entries()) {
        const random = prng(seed);
        const phase = PHASES[i % PHASES.length]!;
        const jitter = Math.round(random() * 15);
        const before = await reset(b);
        const w = await startWriter(b, seed);
        const started = Date.now();
        const child = startCli([...b.addArgs, '--fence-timeout', '1s']);
        let exited = false;
        void child.finally(() => (exited = true));
        try {
          await waitFor(`phase ${phase}`, async () => (await readJournal(b.d.metaUrl)).moves.some((m) => m.state === phase), { everyMs: 1, unless: () => exited, timeoutMs: 30_000 });
          await sleep(jitter);
        } finally {
          await killHard(child);
        }
        const killed = await child;
        const where = killed.signal === 'SIGKILL' ? phaseOf(await readJournal(b.d.metaUrl)) : `none (exited ${killed.exitCode} first)`;
        const trial = `seed ${seed}: aimed at ${phase} +${jitter} ms, killed in ${where}`;
        try {
          const recovery = await recover(b);
          await expectModelHolds(b, w, before, 2);
          log.push(`${trial}; then ${recovery.join(' → ') || 'nothing to do'}; ${w.size} rows (${Date.now() - started} ms)`);
        } catch (err) {
          log.push(`${trial}; FAILED: ${(err as Error).message.split('\n')[0]}`);
          failures.push(`${trial}: ${(err as Error).message}`);
        }
        for (const x of writers.splice(0)) await x.close();
      }
    } finally {
      console.error('[online crash trials]\n' + log.map((l) => `  ${l}`).join('\n'));
    }
    expect(failures, `${failures.length} of ${SEEDS.length} trials did not recover`).toEqual([]);
  }, 240_000);

  it('no fence outlives its deadline: after the CLI dies while fenced, a write to a moving key on the source is refused until the deadline on the server clock, then succeeds and is captured; shard resume then completes', async () => {
    const b = bench!;
    const before = await reset(b);
    const moving = roomMovingIn(before, withShard2(before), 'shard-0', 'shard-2');
    const staying = roomMovingIn(before, withShard2(before), 'shard-0', 'shard-0');
    const w = await startWriter(b, 4242);
    const blocker = await blockTarget(b);
    const child = startCli([...b.addArgs, '--fence-timeout', '1.5s']);
    let exited = false;
    void child.finally(() => (exited = true));
    let holder: pg.Client | undefined;
    let fence: { tag: string; until: number } | null = null;
    try {
      holder = await holdFences(b, child, staying);
      await blocker.query('COMMIT');
      const probe = await connect(b.urls['shard-0']!);
      fence = await waitFor(
        'a fence up on shard-0',
        async () => {
          const j = await readJournal(b.d.metaUrl);
          if (!j.moves.some((m) => m.state === 'fenced')) return null;
          const tag = (await listCaptures(probe)).find((c) => c.objects.some((o) => o.startsWith('sequence')))?.tag;
          if (!tag) return null;
          const { rows } = await probe.query<{ until: string; now: string }>(`SELECT pg_sequence_last_value(to_regclass($1))::text AS until, (extract(epoch FROM clock_timestamp()) * 1000)::bigint::text AS now`, [`shardctl.move_${tag}_fence`]);
          return Number(rows[0]!.until) - Number(rows[0]!.now) > 600 ? { tag, until: Number(rows[0]!.until) } : null;
        },
        { everyMs: 2, unless: () => exited, timeoutMs: 60_000 },
      );
    } finally {
      await killHard(child);
    }
    expect(fence, `the add ended before a fence was seen: ${(await child).stderr}`).not.toBeNull();
    const probe = await connect(b.urls['shard-0']!);
    const refused = await w.tryInsert('shard-0', moving);
    expect(refused, 'a write to a moving key before the deadline').toMatchObject({ committed: false, code: 'SH001' });
    await waitFor(
      'the server clock to pass the deadline',
      async () => Number((await probe.query<{ now: string }>(`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint::text AS now`)).rows[0]!.now) > fence!.until,
      { everyMs: 20, timeoutMs: 10_000 },
    );
    const accepted = await w.tryInsert('shard-0', moving);
    expect(accepted, 'a write to a moving key after the deadline').toMatchObject({ committed: true });
    const captured = await probe.query(`SELECT 1 FROM shardctl.${`"move_${fence!.tag}_changes"`} WHERE pk @> jsonb_build_object('room_id', $1::bigint, 'id', $2::bigint)`, [accepted.key.room_id, accepted.key.id]);
    expect(captured.rowCount, 'the write after the deadline is in the change table').toBeGreaterThan(0);
    await holder!.query('ROLLBACK');
    const recovery = await recover(b);
    console.error(`[fence deadline] killed while fenced (deadline ${fence!.until}), write after it captured; then ${recovery.join(' → ')}`);
    await expectModelHolds(b, w, before, 2);
  }, 90_000);

  it('shard abort during the catch-up removes every trace: no capture object on any shard, no row of the moving ranges on the target, the ring unchanged, and the moving keys take writes on the source', async () => {
    const b = bench!;
    const before = await reset(b);
    const moving = roomMovingIn(before, withShard2(before), 'shard-0', 'shard-2');
    const staying = roomMovingIn(before, withShard2(before), 'shard-0', 'shard-0');
    const w = await startWriter(b, 777);
    const blocker = await blockTarget(b);
    const child = startCli([...b.addArgs, '--fence-timeout', '500ms']);
    let exited = false;
    void child.finally(() => (exited = true));
    let holder: pg.Client | undefined;
    let planId: string | undefined;
    try {
      holder = await holdFences(b, child, staying);
      await blocker.query('COMMIT');
      // Past a missed fence: back in catching-up.
      let fenced = false;
      const j = await waitFor(
        'catching-up after a missed fence',
        async () => {
          const view = await readJournal(b.d.metaUrl);
          if (view.moves.some((m) => m.state === 'fenced')) fenced = true;
          return fenced && view.moves.every((m) => m.state === 'catching-up') ? view : null;
        },
        { everyMs: 1, unless: () => exited, timeoutMs: 60_000 },
      );
      planId = j?.plan?.id;
    } finally {
      await killHard(child);
    }
    expect(planId, `the add ended before its catch-up was caught: ${(await child).stderr}`).toBeTruthy();
    await holder!.query('ROLLBACK');
    let result = await runCli(['-c', b.d.configPath, 'shard', 'abort', planId!, '--yes']);
    for (let i = 0; i < 10 && result.exitCode === 75; i++) {
      await sleep(200);
      result = await runCli(['-c', b.d.configPath, 'shard', 'abort', planId!, '--yes']);
    }
    expect(result.exitCode, result.stderr).toBe(0);
    expect((await readJournal(b.d.metaUrl)).plan?.state).toBe('aborted');
    expect(await capturesOn(b.urls), 'capture objects left after the abort').toEqual({});
    const left = await sql<{ n: string }>(b.urls['shard-2']!, `SELECT (SELECT count(*) FROM public.messages) + (SELECT count(*) FROM public.reactions) + (SELECT count(*) FROM public.docs) AS n`);
    expect(Number(left[0]!.n), 'rows of the moving ranges left on the target').toBe(0);
    const write = await w.tryInsert('shard-0', moving);
    expect(write, 'a write to a formerly moving key on the source').toMatchObject({ committed: true });
    console.error(`[abort in catch-up] plan ${planId} aborted: ${result.stdout.trim().split('\n').join(' | ')}`);
    await expectModelHolds(b, w, before, 1);
  }, 90_000);
});
