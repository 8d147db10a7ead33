import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import type { RingSpec } from '../../src/core/ring.js';
import { init } from '../../src/engine/init.js';
import type { ExecutionReport, MoveEvent } from '../../src/engine/moves/execute.js';
import { shardAbort, shardAdd, shardRebalance, shardRemove } from '../../src/engine/shards/change.js';
import { listCaptures } from '../../src/mover/capture.js';
import { createTestDatabase, redisUrl, type TestDatabase } from '../support/databases.js';
import { createSchema, loadRooms, placement } from '../support/dataset.js';
import { createDeployment, currentRing, testRun, type TestDeployment } from '../support/deployment.js';
import { sql } from '../support/migrations.js';
import { waitFor } from '../support/move-trials.js';
import { DOCS_SQL, fencedOutsideMoves, OnlineWriter, seedDocs, capturesOn, roomMoving, trackedClient } from '../support/online-writer.js';

const roomMovingIn = (before: RingSpec, after: RingSpec, from: string, to: string) => roomMoving(before, after, from, to, ROOMS);

/*
 * Online moves (README, "Online moves") against the real servers: an
 * application keeps writing through shardctl/router while shards are added,
 * removed and reweighted, and afterwards every shard together holds exactly
 * what the application committed, each row where the new ring says. The
 * fence refuses only the moving keys; --offline moves as before; DDL and
 * TRUNCATE of a moving table stop the move before the switch.
 */

const ROOMS = 120;
const PER_ROOM = 10;

interface Env {
  d: TestDeployment;
  extra: TestDatabase;
  /** Every shard the tests may use, shard-2 (not in the ring at first) included. */
  urls: Record<string, string>;
  cleanup(): Promise<void>;
}

const envs: Env[] = [];
const writers: OnlineWriter[] = [];
const clients: pg.Client[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) await c.end().catch(() => {});
  for (const w of writers.splice(0)) await w.close().catch(() => {});
  for (const e of envs.splice(0)) await e.cleanup().catch(() => {});
});

async function setup(): Promise<Env> {
  const d = await createDeployment({ shards: 2, redis: true, vnodes: 64 });
  const extra = await createTestDatabase('sct_s2');
  const urls: Record<string, string> = { 'shard-0': d.shardUrls[0]!, 'shard-1': d.shardUrls[1]!, 'shard-2': extra.url };
  const env: Env = { d, extra, urls, cleanup: async () => (await extra.drop(), await d.cleanup()) };
  envs.push(env);
  await d.rewrite((raw) => {
    raw.migration = { batchSize: 200, parallel: 2 };
    (raw.tables as unknown[]).push({ name: 'public.docs', key: 'room_id' });
  });
  await init(d.config, testRun());
  await createSchema(Object.values(urls));
  for (const url of Object.values(urls)) await sql(url, DOCS_SQL);
  const ring = await currentRing(d.metaUrl);
  await loadRooms(ring, urls, { rooms: ROOMS, perRoom: PER_ROOM });
  await seedDocs(ring, urls, ROOMS);
  return env;
}

async function writerFor(e: Env, seed: number): Promise<OnlineWriter> {
  const w = await OnlineWriter.create({ urls: e.urls, metadataUrl: e.d.metaUrl, redis: redisUrl(), prefix: e.d.redisPrefix, seed, rooms: ROOMS });
  writers.push(w);
  return w;
}

function connect(url: string): Promise<pg.Client> {
  return trackedClient(url, clients);
}

function specOf(ring: { vnodes: number; members: RingSpec['members'] }): RingSpec {
  return { vnodes: ring.vnodes, members: ring.members.map((m) => ({ id: m.id, weight: m.weight })) };
}


/**
 * A writer's transaction on `url`, open since before any fence, on a key that
 * does not move: it must begin after the capture is installed (the capture's
 * DDL waits for it otherwise), and before the copy ends. So the copy into the
 * target waits behind a SHARE lock taken as the plan is announced, until the
 * holder's transaction is open.
 */
async function holdBeforeFence(e: Env, start: (onEvent: (x: MoveEvent) => void) => Promise<unknown>, url: string, statement: string, values: unknown[]) {
  const blocker = await connect(e.urls['shard-2']!);
  let locked: Promise<unknown> | undefined;
  const events: MoveEvent[] = [];
  let finished = false;
  const running = start((x) => {
    events.push(x);
    if (x.type === 'plan' && !locked) locked = blocker.query('BEGIN; LOCK TABLE public.messages, public.reactions, public.docs IN SHARE MODE');
  });
  const outcome = running.then(
    (r) => ({ ok: true as const, result: r }),
    (err: unknown) => ({ ok: false as const, err: err as Error & { details?: string[] } }),
  );
  void outcome.finally(() => (finished = true));
  await waitFor('the plan', async () => locked, { timeoutMs: 30_000, unless: () => finished });
  await locked;
  const probe = await connect(e.urls['shard-0']!);
  // The triggers, not the sequence: the capture's objects commit first, its triggers after them.
  const tag = await waitFor('the capture on shard-0', async () => (await listCaptures(probe)).find((c) => c.objects.some((o) => o.startsWith('trigger ')))?.tag, { timeoutMs: 30_000, unless: () => finished });
  expect(tag, 'the plan ended before its capture was seen').toBeTruthy();
  const holder = await connect(url);
  await holder.query('BEGIN');
  await holder.query(statement, values);
  await blocker.query('COMMIT');
  return { events, outcome, holder, probe, tag: tag!, finished: () => finished };
}

/** Runs one plan with the writer going; then the whole property of an online move. */
async function underWrites(e: Env, w: OnlineWriter, label: string, run: () => Promise<{ execution?: ExecutionReport }>): Promise<ExecutionReport> {
  const before = specOf(await currentRing(e.d.metaUrl));
  w.takeStats();
  w.start();
  // The writer is writing before the plan starts, and keeps writing through it.
  await waitFor('the writer to get going', async () => w.stats.writes >= 20, { timeoutMs: 10_000 });
  const started = Date.now();
  const result = await run();
  const writesDuring = w.stats.writes;
  await w.stop();
  const stats = w.takeStats();
  const ringAfter = await currentRing(e.d.metaUrl);
  const after = specOf(ringAfter);
  console.error(`[online ${label}] ${Date.now() - started} ms; ${stats.writes} writes, ${stats.fenced.length} fenced (${[...new Set(stats.fenced.map((f) => f.code))].join(', ') || '-'}), longest fence ${result.execution?.longestFenceMs} ms, ${w.size} rows in the model`);

  expect(result.execution).toMatchObject({ status: 'done', planState: 'done', online: true });
  expect(typeof result.execution!.longestFenceMs).toBe('number');
  expect(result.execution!.moves.every((m) => m.state === 'cleaned')).toBe(true);
  expect(writesDuring, 'writes committed while the plan ran').toBeGreaterThan(20);
  expect(stats.failures, 'writes that failed (other than fenced writes that were retried)').toEqual([]);
  expect(fencedOutsideMoves(stats.fenced, before, after), 'writes refused on keys that do not move').toEqual([]);
  expect(await w.check(after), 'the shards together vs the model of what the application committed').toEqual([]);
  expect((await placement(after, e.urls)).misplaced).toBe(0);
  expect(await capturesOn(e.urls), 'capture objects left on the shards').toEqual({});
  return result.execution!;
}

describe('online moves', () => {
  it('shard add, shard remove and a weight change while an application writes through the router: the shards end equal to what it committed, each row where the new ring says, and writes to keys that stay never failed', async () => {
    const e = await setup();
    const w = await writerFor(e, 1234);
    const added = await underWrites(e, w, 'add', () => shardAdd(e.d.config, testRun(), { id: 'shard-2', url: e.urls['shard-2']! }));
    expect((await currentRing(e.d.metaUrl)).epoch).toBe(2);
    // Under writes the comparison takes the source's side from the copy's records and the keys replayed
    // since (not a second read of the source), and finds no difference that is not there.
    expect(added.moves.flatMap((m) => m.tables.map((t) => t.resyncs)), 'tables copied again').toEqual(added.moves.flatMap((m) => m.tables.map(() => 0)));
    expect(added.moves.some((m) => Object.values(m.online?.compared ?? {}).includes('records+replayed'))).toBe(true);
    await underWrites(e, w, 'remove', () => shardRemove(e.d.config, testRun(), { id: 'shard-1' }));
    expect((await currentRing(e.d.metaUrl)).members.map((m) => m.id)).toEqual(['shard-0', 'shard-2']);
    await underWrites(e, w, 'weights', () => shardRebalance(e.d.config, testRun(), { weights: [{ id: 'shard-0', weight: 3 }] }));
    expect((await currentRing(e.d.metaUrl)).epoch).toBe(4);
  }, 120_000);

  it('a copy that did not land as read (rows altered on the target as they arrive) is found by the comparison under writes, that table is copied again, and the move ends exact', async () => {
    const e = await setup();
    const w = await writerFor(e, 4321);
    // A faulty target: the first 20 messages with id % 7 = 3 that it receives are altered on the way in.
    await sql(
      e.urls['shard-2']!,
      `CREATE TABLE public.corrupt_budget (n int); INSERT INTO public.corrupt_budget VALUES (20);
       CREATE FUNCTION public.corrupt() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NEW.id % 7 = 3 AND (SELECT n FROM public.corrupt_budget) > 0 THEN
           UPDATE public.corrupt_budget SET n = n - 1;
           NEW.body := NEW.body || ' (corrupted)';
         END IF;
         RETURN NEW;
       END $$;
       CREATE TRIGGER corrupt BEFORE INSERT ON public.messages FOR EACH ROW EXECUTE FUNCTION public.corrupt();`,
    );
    const added = await underWrites(e, w, 'add, faulty target', () => shardAdd(e.d.config, testRun(), { id: 'shard-2', url: e.urls['shard-2']! }));
    expect((await sql<{ n: number }>(e.urls['shard-2']!, 'SELECT n FROM public.corrupt_budget'))[0]!.n, 'the faulty copy happened').toBeLessThanOrEqual(0);
    const messages = added.moves.flatMap((m) => m.tables.filter((t) => t.table === 'public.messages'));
    expect(messages.some((t) => t.resyncs > 0), 'public.messages copied again after the comparison found the difference').toBe(true);
    expect(added.moves.some((m) => m.online?.compared?.['public.messages'] === 'records+replayed'), 'compared from the records and the replayed keys').toBe(true);
  }, 120_000);

  it('while a fence is up, a write to a moving key on the source is refused with SH001 and a write to a key that stays succeeds; a transaction open since before the fence makes it miss, and once it ends the move completes', async () => {
    const e = await setup();
    const w = await writerFor(e, 99);
    const before = specOf(await currentRing(e.d.metaUrl));
    const target: RingSpec = { vnodes: before.vnodes, members: [...before.members, { id: 'shard-2', weight: 1 }] };
    const moving = roomMovingIn(before, target, 'shard-0', 'shard-2');
    const staying = roomMovingIn(before, target, 'shard-0', 'shard-0');

    const events: MoveEvent[] = [];
    const fences = () => events.filter((x): x is Extract<MoveEvent, { type: 'fence' }> => x.type === 'fence');
    // A writer's transaction on the source, on a key that does not move, open since before any fence.
    const held = await holdBeforeFence(
      e,
      (onEvent) => shardAdd(e.d.config, testRun(), { id: 'shard-2', url: e.urls['shard-2']!, fenceTimeoutMs: 1200, onEvent: (x) => (events.push(x), onEvent(x)) }),
      e.urls['shard-0']!,
      `INSERT INTO public.messages (room_id, id, body) VALUES ($1, 999999999, 'held open')`,
      [staying],
    );
    const { holder, probe, tag } = held;
    const finished = held.finished;
    // The fence up on shard-0, with time left on its deadline.
    await waitFor(
      'the fence on shard-0',
      async () => {
        const { rows } = await probe.query<{ left: string }>(`SELECT pg_sequence_last_value(to_regclass($1)) - (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS left`, [`shardctl.move_${tag}_fence`]);
        return Number(rows[0]!.left) > 400;
      },
      { timeoutMs: 30_000, everyMs: 2, unless: finished },
    );
    const refused = await w.tryInsert('shard-0', moving);
    const accepted = await w.tryInsert('shard-0', staying);
    expect(refused, `a write to room ${moving} (moving) while fenced`).toMatchObject({ committed: false, code: 'SH001' });
    expect(accepted, `a write to room ${staying} (staying) while fenced`).toMatchObject({ committed: true });

    await waitFor('a missed fence', async () => fences().some((f) => f.outcome === 'missed'), { timeoutMs: 30_000, unless: finished });
    expect(finished()).toBe(false);
    await holder.query('ROLLBACK');
    const outcome = await held.outcome;
    if (!outcome.ok) throw outcome.err;
    const result = outcome.result as Awaited<ReturnType<typeof shardAdd>>;
    expect(result.execution).toMatchObject({ status: 'done', online: true, epoch: 2 });
    expect(fences().map((f) => f.outcome)).toContain('missed');
    expect(fences().at(-1)!.outcome).toBe('held');
    expect(fences().find((f) => f.outcome === 'missed')!.reason).toMatch(/did not finish in time/);
    const after = specOf(await currentRing(e.d.metaUrl));
    expect(await w.check(after)).toEqual([]);
    expect(await capturesOn(e.urls)).toEqual({});
  }, 90_000);

  it('--offline moves as before: no capture objects are ever made, and the report says online: false', async () => {
    const e = await setup();
    const before = specOf(await currentRing(e.d.metaUrl));
    const totals = (await placement(before, e.urls)).totals;
    let finished = false;
    const seen: Array<Record<string, string[]>> = [];
    const adding = shardAdd(e.d.config, testRun(), { id: 'shard-2', url: e.urls['shard-2']!, offline: true }).finally(() => (finished = true));
    adding.catch(() => {});
    while (!finished) {
      const found = await capturesOn({ 'shard-0': e.urls['shard-0']!, 'shard-1': e.urls['shard-1']! });
      if (Object.keys(found).length) seen.push(found);
    }
    const result = await adding;
    expect(result.execution).toMatchObject({ status: 'done', planState: 'done', online: false, longestFenceMs: null, epoch: 2 });
    expect(result.execution!.moves.every((m) => m.online === null && m.state === 'cleaned')).toBe(true);
    expect(seen, 'capture objects seen during an offline move').toEqual([]);
    const after = await placement(specOf(await currentRing(e.d.metaUrl)), e.urls);
    expect(after.misplaced).toBe(0);
    expect(after.totals).toEqual(totals);
    expect(await capturesOn(e.urls)).toEqual({});
  }, 60_000);

  for (const change of [
    { what: 'ALTER TABLE … ADD COLUMN', statement: 'ALTER TABLE public.messages ADD COLUMN x int', error: /public\.messages changed on shard shard-0 during an online move/ },
    { what: 'TRUNCATE', statement: 'TRUNCATE public.messages', error: /public\.messages was truncated on shard shard-0 during an online move/ },
  ]) {
    it(`${change.what} of a moving table on the source during the catch-up stops the move with an error naming the table, nothing is switched, and shard abort leaves no trace`, async () => {
      const e = await setup();
      const before = await currentRing(e.d.metaUrl);
      const spec = specOf(before);
      const target: RingSpec = { vnodes: spec.vnodes, members: [...spec.members, { id: 'shard-2', weight: 1 }] };
      const staying = roomMovingIn(spec, target, 'shard-0', 'shard-0');
      const moving = roomMovingIn(spec, target, 'shard-0', 'shard-2');
      // Keeps every fence missing (a write to the other table, open since before the fence), so the move goes on catching up.
      let planId = '';
      const held = await holdBeforeFence(
        e,
        (onEvent) =>
          shardAdd(e.d.config, testRun(), {
            id: 'shard-2',
            url: e.urls['shard-2']!,
            fenceTimeoutMs: 500,
            onEvent: (x) => {
              if (x.type === 'started') planId = x.planId;
              onEvent(x);
            },
          }),
        e.urls['shard-0']!,
        `INSERT INTO public.reactions VALUES ($1, 1, 'hold', 424242)`,
        [staying],
      );
      const { events, holder } = held;
      await waitFor('a missed fence', async () => events.some((x) => x.type === 'fence' && x.outcome === 'missed'), { timeoutMs: 30_000, unless: held.finished });
      expect(held.finished(), 'the add ended before its fence missed').toBe(false);
      await sql(e.urls['shard-0']!, change.statement);
      const outcome = await held.outcome;
      const err = outcome.ok ? null : outcome.err;
      await holder.query('ROLLBACK');
      expect(err, 'the add went on after the change').not.toBeNull();
      const text = `${err!.message}\n${(err!.details ?? []).join('\n')}`;
      expect(text).toMatch(change.error);

      // Nothing switched.
      expect((await currentRing(e.d.metaUrl)).epoch).toBe(before.epoch);
      expect(events.some((x) => x.type === 'switched')).toBe(false);

      const aborted = await shardAbort(e.d.config, testRun(), planId);
      expect(aborted.planId).toBe(planId);
      expect(await capturesOn(e.urls), 'capture objects left after the abort').toEqual({});
      const left = await sql<{ n: string }>(e.urls['shard-2']!, `SELECT (SELECT count(*) FROM public.messages) + (SELECT count(*) FROM public.reactions) + (SELECT count(*) FROM public.docs) AS n`);
      expect(Number(left[0]!.n), 'rows left on the target').toBe(0);
      expect((await currentRing(e.d.metaUrl)).epoch).toBe(before.epoch);
      // The formerly moving keys take writes on the source again.
      await sql(e.urls['shard-0']!, `INSERT INTO public.messages (room_id, id, body) VALUES ($1, 777777777, 'after abort')`, [moving]);
    }, 90_000);
  }
});
