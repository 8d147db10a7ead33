import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { init } from '../../src/engine/init.js';
import { shardStatus } from '../../src/engine/shard-change.js';
import { BIN, runCli } from '../support/cli.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';
import { createSchema, loadRooms, placement, type Placement } from '../support/dataset.js';
import { createDeployment, testRun, type TestDeployment, currentRing } from '../support/deployment.js';
import { sql } from '../support/migrations.js';
import { startSecondServer, type SecondServer } from '../support/second-server.js';

/*
 * SPEC safety invariant 2: "a crash at any instant leaves a state that
 * `shard resume` completes". These tests crash the real CLI (SIGKILL: no
 * handler runs, no connection is closed politely) and a shard's server
 * (pg_ctl stop -m immediate), then check the one thing that matters: after
 * recovery every row is on the shard the new ring gives it, and the multiset
 * of rows (count and checksum per table, over every shard) is what it was.
 */

const ROOMS = 400;
const PER_ROOM = 20;
const BATCH = 200;

/** A small seeded PRNG (mulberry32): the same seed picks the same kill point on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The CLI started the way CI would run it (no TTY, no stdin), not awaited: the test decides when it dies. */
function startCli(args: string[]): ResultPromise<{ reject: false; stdin: 'ignore'; extendEnv: false; env: Record<string, string | undefined> }> {
  return execa('node', [BIN, ...args], {
    reject: false,
    stdin: 'ignore',
    extendEnv: false,
    env: { ...process.env, NO_COLOR: undefined, FORCE_COLOR: undefined, CI: undefined },
  });
}

/** SIGKILL, then wait for the exit so nothing of it is left running. */
async function killHard(child: ReturnType<typeof startCli>): Promise<{ exitCode: number | undefined; signal: string | undefined }> {
  child.kill('SIGKILL');
  const result = await child;
  return { exitCode: result.exitCode, signal: result.signal };
}

interface JournalView {
  plan: { id: string; state: string; error: string | null } | null;
  moves: Array<{ move_no: number; state: string; error: string | null; rows_copied: number; rows_deleted: number }>;
}

const journalReaders = new Map<string, Promise<pg.Client>>();

/** One open session per metadata database for polling: a poll must be quick to aim a kill between batches. */
function journalReader(metaUrl: string): Promise<pg.Client> {
  let reader = journalReaders.get(metaUrl);
  if (!reader) {
    reader = (async () => {
      const client = new pg.Client({ connectionString: metaUrl });
      client.on('error', () => journalReaders.delete(metaUrl));
      await client.connect();
      return client;
    })();
    reader.catch(() => journalReaders.delete(metaUrl));
    journalReaders.set(metaUrl, reader);
  }
  return reader;
}

async function closeJournalReader(metaUrl: string): Promise<void> {
  const reader = journalReaders.get(metaUrl);
  journalReaders.delete(metaUrl);
  await reader?.then((c) => c.end()).catch(() => {});
}

/** The journal as the metadata database has it right now (read directly: a CLI round trip is too slow to aim a kill). */
async function readJournal(metaUrl: string): Promise<JournalView> {
  const client = await journalReader(metaUrl);
  try {
    const plans = await client.query<{ id: string; state: string; error: string | null }>(`SELECT id, state, error FROM shardctl.plans ORDER BY created_at DESC LIMIT 1`);
    const plan = plans.rows[0] ?? null;
    if (!plan) return { plan: null, moves: [] };
    const moves = await client.query<JournalView['moves'][number]>(
      `SELECT m.move_no, m.state, m.error, sum(t.rows_copied)::int AS rows_copied, sum(t.rows_deleted)::int AS rows_deleted
         FROM shardctl.moves m JOIN shardctl.move_tables t USING (plan_id, move_no)
        WHERE m.plan_id = $1 GROUP BY m.move_no, m.state, m.error ORDER BY m.move_no`,
      [plan.id],
    );
    return { plan, moves: moves.rows };
  } catch (err) {
    // Before `init` made the schema.
    if ((err as { code?: string }).code === '42P01' || (err as { code?: string }).code === '3F000') return { plan: null, moves: [] };
    throw err;
  }
}

/** Where a run was when it died, for the trial log and the coverage check: "running: copying, verified". */
function phaseOf(j: JournalView): string {
  if (!j.plan) return 'no plan yet';
  return `${j.plan.state}: ${j.moves.map((m) => (m.state === 'switched' && m.rows_deleted > 0 ? 'cleaning' : m.state)).join(', ')}`;
}

function isMidMove(phase: string): boolean {
  return /^(running|switched):/.test(phase);
}

async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, options: { timeoutMs?: number; everyMs?: number; unless?: () => boolean } = {}): Promise<T | null> {
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (options.unless?.()) return null;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(options.everyMs ?? 5);
  }
}

/**
 * Two loaded shards and an empty database for shard-2, with small batches so
 * a move has many cursors. The databases are made once and reset between
 * trials (metadata schema dropped and `init` run again, sharded tables
 * truncated and reloaded): dropping and creating four databases per trial
 * costs seconds, the reset a fraction of one.
 */
interface Bench {
  d: TestDeployment;
  /** shard id → URL, shard-2 (the one being added) included. */
  urls: Record<string, string>;
  /** `shard add shard-2 --url …` with the config. */
  addArgs: string[];
  /** Where the rows are before the add: set by reset(). */
  before: Placement;
  reset(): Promise<void>;
  dispose(): Promise<void>;
}

async function createBench(options: { newShardUrl?: string; rooms: number; perRoom: number; batchSize?: number }): Promise<Bench> {
  const d = await createDeployment({ shards: 2, redis: false, vnodes: 64 });
  let extra: TestDatabase | undefined;
  try {
    if (!options.newShardUrl) extra = await createTestDatabase('sct_s2');
    await d.rewrite((raw) => {
      raw.migration = { batchSize: options.batchSize ?? BATCH, parallel: 2 };
    });
  } catch (err) {
    await d.cleanup();
    throw err;
  }
  const newShardUrl = options.newShardUrl ?? extra!.url;
  const urls: Record<string, string> = { 'shard-0': d.shardUrls[0]!, 'shard-1': d.shardUrls[1]!, 'shard-2': newShardUrl };
  let initialised = false;
  const bench: Bench = {
    d,
    urls,
    addArgs: ['-c', d.configPath, 'shard', 'add', 'shard-2', '--url', newShardUrl],
    before: { totals: {}, misplaced: 0, perShard: {} },
    async reset() {
      if (initialised) await sql(d.metaUrl, 'DROP SCHEMA shardctl CASCADE');
      await init(d.config, testRun());
      initialised = true;
      await createSchema(Object.values(urls));
      for (const url of Object.values(urls)) await sql(url, 'TRUNCATE public.messages, public.reactions');
      const ring = await currentRing(d.metaUrl);
      await loadRooms(ring, urls, { rooms: options.rooms, perRoom: options.perRoom });
      bench.before = await placement(ring, urls);
      expect(bench.before.misplaced).toBe(0);
    },
    async dispose() {
      await closeJournalReader(d.metaUrl);
      await extra?.drop();
      await d.cleanup();
    },
  };
  return bench;
}

/** `shard status --json`, parsed: the plans as an operator sees them. */
async function statusOf(b: Bench): Promise<any[]> {
  const result = await runCli(['-c', b.d.configPath, 'shard', 'status', '--json']);
  expect(result.exitCode, result.stderr).toBe(0);
  return JSON.parse(result.stdout).data.plans;
}

/**
 * Recovery as an operator (or a cron job) would do it: `shard resume` while a
 * plan is in progress; `shard add` again when the crash came before the plan
 * was journaled. With `killFirst`, the first recovery run is SIGKILLed too,
 * once the journal shows it has made progress.
 */
async function recover(b: Bench, options: { killFirst?: { jitterMs: number } } = {}): Promise<string[]> {
  const runs: string[] = [];
  for (let round = 0; round < 8; round++) {
    const j = await readJournal(b.d.metaUrl);
    if (j.plan?.state === 'done') return runs;
    const args = j.plan ? ['-c', b.d.configPath, 'shard', 'resume'] : b.addArgs;
    const name = j.plan ? 'resume' : 'add';
    if (round === 0 && options.killFirst) {
      const child = startCli(args);
      let exited = false;
      void child.finally(() => (exited = true));
      const seen = JSON.stringify(j);
      let killed: Awaited<ReturnType<typeof killHard>>;
      try {
        await waitFor(`${name} to make progress`, async () => JSON.stringify(await readJournal(b.d.metaUrl)) !== seen, { everyMs: 2, unless: () => exited });
        await sleep(options.killFirst.jitterMs);
      } finally {
        killed = await killHard(child);
      }
      runs.push(killed.signal === 'SIGKILL' ? `${name} killed in ${phaseOf(await readJournal(b.d.metaUrl))}` : `${name}=${killed.exitCode} (finished before the kill)`);
      continue;
    }
    const result = await runCli(args);
    runs.push(`${name}=${result.exitCode}`);
    // 75: the killed run's metadata session may not be gone yet; cron would retry, so do we.
    if (result.exitCode === 75) {
      await sleep(200);
      continue;
    }
    expect(result.exitCode, `${name} after a crash:\n${result.stderr}\n${result.stdout}`).toBe(0);
  }
  throw new Error(`the plan did not finish after ${runs.join(', ')}`);
}

/**
 * The end state every recovery must reach, whatever the crash point: ring
 * epoch 2 with shard-2; every row where it says; the same rows as before; one
 * add plan, done, whose counters agree with the shards (rows copied = rows
 * shard-2 holds, rows deleted = rows the sources lost, none left behind).
 */
async function expectCompleted(b: Bench, options: { viaCli?: boolean } = {}): Promise<void> {
  const ring = await currentRing(b.d.metaUrl);
  expect(ring.epoch).toBe(2);
  expect(ring.members.map((m) => m.id)).toEqual(['shard-0', 'shard-1', 'shard-2']);
  const after = await placement(ring, b.urls);
  expect(after.misplaced, 'rows on a shard the new ring does not give them to').toBe(0);
  expect(after.totals, 'rows lost or duplicated').toEqual(b.before.totals);
  expect(after.perShard['shard-2']!.messages).toBeGreaterThan(0);

  // The engine's status (what the CLI renders) in-process saves a process start per trial; the CLI is checked too where asked.
  const plans = options.viaCli ? await statusOf(b) : (await shardStatus(b.d.config, { limit: 5 })).plans;
  expect(plans.map((p) => [p.kind, p.state])).toEqual([['add', 'done']]);
  const plan = plans[0];
  expect(plan.switchedEpoch).toBe(2);
  expect(plan.moves.map((m: { state: string }) => m.state)).toEqual(plan.moves.map(() => 'cleaned'));
  const sum = (field: 'rowsCopied' | 'rowsDeleted' | 'rowsLeft') =>
    plan.moves.reduce((s: number, m: { tables: Array<Record<string, number | null>> }) => s + m.tables.reduce((t, table) => t + (table[field] ?? 0), 0), 0);
  const rows = (p: Placement, shard: string) => p.perShard[shard]!.messages! + p.perShard[shard]!.reactions!;
  expect(sum('rowsCopied'), 'journaled rows copied vs rows on shard-2').toBe(rows(after, 'shard-2'));
  expect(sum('rowsDeleted'), 'journaled rows deleted vs rows the sources lost').toBe(rows(b.before, 'shard-0') + rows(b.before, 'shard-1') - rows(after, 'shard-0') - rows(after, 'shard-1'));
  expect(sum('rowsLeft'), 'journaled rows left on the sources (there are none)').toBe(0);
}

type KillPoint =
  /** A delay from the start of the process: may fall before the plan is journaled. */
  | { kind: 'from-start'; delayMs: number }
  /** A delay from the moment the plan is journaled, spread over the move's measured duration. */
  | { kind: 'in-move'; delayMs: number }
  /** As soon as the journal shows this phase, plus a few ms of jitter. */
  | { kind: 'at-phase'; phase: 'copying' | 'copied/verified' | 'cleanup'; jitterMs: number };

function describePoint(p: KillPoint): string {
  if (p.kind === 'from-start') return `${p.delayMs} ms after start`;
  if (p.kind === 'in-move') return `${p.delayMs} ms after the plan`;
  return `at ${p.phase} +${p.jitterMs} ms`;
}

/** Whether the journal shows `phase` (or, for a short one, that it went past it). */
function reachedPhase(j: JournalView, phase: 'copying' | 'copied/verified' | 'cleanup'): boolean {
  const states = j.moves.map((m) => m.state);
  const switched = j.plan?.state === 'switched' || j.plan?.state === 'done';
  if (phase === 'copying') return !switched && j.moves.some((m) => m.state === 'copying' && m.rows_copied > 0);
  if (phase === 'copied/verified') return switched || states.some((s) => s === 'copied' || s === 'verified');
  return j.moves.some((m) => m.rows_deleted > 0) || j.plan?.state === 'done';
}

/**
 * Holds the plan's move_tables rows FOR UPDATE on a connection of its own, so
 * the CLI's next journal write (the cursor of a batch that has just committed
 * on a shard) waits: a kill then lands exactly between "committed on the
 * shard" and "journaled", the window invariant 2 is about. `crash()` ends the
 * waiting metadata session too, so the journal write never happens, as if the
 * process had died before sending it.
 */
async function stallJournal(metaUrl: string, planId: string): Promise<{ waitingSessions(): Promise<number[]>; crash(): Promise<void>; release(): Promise<void> }> {
  const holder = new pg.Client({ connectionString: metaUrl });
  await holder.connect();
  const holderPid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  await holder.query('BEGIN');
  await holder.query('SELECT 1 FROM shardctl.move_tables WHERE plan_id = $1 FOR UPDATE', [planId]);
  // Read on other connections: pg_stat_activity is a snapshot per transaction.
  const waitingSessions = async () =>
    (await sql<{ pid: number }>(metaUrl, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND $1 = ANY (pg_blocking_pids(pid))`, [holderPid])).map((r) => r.pid);
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await holder.query('ROLLBACK').catch(() => {});
    await holder.end().catch(() => {});
  };
  return {
    waitingSessions,
    async crash() {
      for (const pid of await waitingSessions()) await sql(metaUrl, 'SELECT pg_terminate_backend($1)', [pid]);
      await release();
    },
    release,
  };
}

/** Rows of every sharded table on one shard. */
async function rowsOn(url: string): Promise<number> {
  const rows = await sql<{ n: number }>(url, `SELECT (SELECT count(*) FROM public.messages) + (SELECT count(*) FROM public.reactions) AS n`);
  return Number(rows[0]!.n);
}

describe('shard add under crashes', () => {
  let bench: Bench | undefined;
  // Measured on one uninterrupted run: process start → plan journaled, and plan journaled → exit.
  let startupMs = 0;
  let moveMs = 0;

  beforeAll(async () => {
    bench = await createBench({ rooms: ROOMS, perRoom: PER_ROOM });
    await bench.reset();
    const started = Date.now();
    const child = startCli(bench.addArgs);
    let exited = false;
    void child.finally(() => (exited = true));
    await waitFor('the plan to be journaled', async () => (await readJournal(bench!.d.metaUrl)).plan, { everyMs: 5, unless: () => exited });
    const journaledAt = Date.now();
    const result = await child;
    expect(result.exitCode, String(result.stderr)).toBe(0);
    startupMs = journaledAt - started;
    moveMs = Date.now() - journaledAt;
    await expectCompleted(bench, { viaCli: true });
    const rows = Object.values(bench.before.totals).reduce((s, t) => s + t.rows, 0);
    console.error(`[crash trials] uninterrupted shard add: ${startupMs} ms to the plan, then ${moveMs} ms to the end (${rows} rows, batchSize ${BATCH})`);
  });
  afterAll(async () => {
    await bench?.dispose();
  });

  const SEEDS = [11, 23, 37, 41, 53, 67, 79, 83, 97, 101, 113, 127];

  it('SIGKILL of the CLI at random points of a move: shard resume brings the data to the same final state, with no row lost or duplicated', async () => {
    const b = bench!;
    const log: string[] = [];
    const phases: string[] = [];
    const failures: string[] = [];
    try {
      for (const [i, seed] of SEEDS.entries()) {
        const random = prng(seed);
        // Two trials aim anywhere from the process start (before the plan exists, too), three at named
        // phases, the rest anywhere in the move; every third trial also kills the first resume.
        const point: KillPoint =
          i < 2
            ? { kind: 'from-start', delayMs: Math.round(50 + random() * (startupMs + 100)) }
            : i < 5
              ? { kind: 'at-phase', phase: (['copying', 'copied/verified', 'cleanup'] as const)[i - 2]!, jitterMs: Math.round(random() * 10) }
              : // The measured span ends with the process exit; stop well short of it (later runs are often faster than the measured one) so the kill lands before `done`.
                { kind: 'in-move', delayMs: Math.round(random() * moveMs * 0.7) };
        const killFirst = i % 3 === 2 ? { jitterMs: Math.round(random() * 30) } : undefined;
        await b.reset();
        const trialStart = Date.now();
        const child = startCli(b.addArgs);
        let exited = false;
        void child.finally(() => (exited = true));
        try {
          if (point.kind === 'from-start') {
            await sleep(point.delayMs);
          } else if (point.kind === 'in-move') {
            await waitFor('the plan to be journaled', async () => (await readJournal(b.d.metaUrl)).plan, { everyMs: 2, unless: () => exited });
            await sleep(point.delayMs);
          } else {
            await waitFor(`phase ${point.phase}`, async () => reachedPhase(await readJournal(b.d.metaUrl), point.phase), { everyMs: 2, unless: () => exited });
            await sleep(point.jitterMs);
          }
        } finally {
          await killHard(child);
        }
        const killed = await child;
        const phase = killed.signal === 'SIGKILL' ? phaseOf(await readJournal(b.d.metaUrl)) : `none (exited ${killed.exitCode} first)`;
        phases.push(phase);
        const trial = `seed ${seed}: killed ${describePoint(point)}, in ${phase}`;
        // Every trial runs even when one fails, so the report says which crash points break and which do not.
        try {
          const recovery = await recover(b, killFirst ? { killFirst } : {});
          await expectCompleted(b);
          log.push(`${trial}; then ${recovery.join(' → ') || 'nothing to do'} (${Date.now() - trialStart} ms)`);
        } catch (err) {
          log.push(`${trial}; FAILED: ${(err as Error).message.split('\n')[0]}`);
          failures.push(`${trial}: ${(err as Error).message}`);
        }
      }
    } finally {
      console.error('[crash trials]\n' + log.map((l) => `  ${l}`).join('\n'));
    }
    expect(failures, `${failures.length} of ${SEEDS.length} trials did not recover to the expected state`).toEqual([]);
    // The point of the exercise: most kills land inside the move, not before it or after it.
    expect(phases.filter(isMidMove).length).toBeGreaterThan(SEEDS.length / 2);
  }, 300_000);

  it('a crash after a batch committed on a shard and before its cursor was journaled (copy, then cleanup): resume neither loses nor duplicates rows, and counts them right', async () => {
    const b = bench!;
    for (const phase of ['copy', 'cleanup'] as const) {
      await b.reset();
      const child = startCli(b.addArgs);
      let exited = false;
      void child.finally(() => (exited = true));
      let stall: Awaited<ReturnType<typeof stallJournal>> | undefined;
      let unjournaled = 0;
      let attempts = 0;
      try {
        // Hold the journal, see what the held write is; if it is not a batch's cursor (the end of a
        // table, a verification), let it through and hold the next one.
        while (unjournaled <= 0) {
          expect(++attempts, `no batch of the ${phase} phase was caught between its commit and its journal entry`).toBeLessThanOrEqual(20);
          await stall?.release();
          const j = await waitFor(
            `the ${phase} phase`,
            async () => {
              const view = await readJournal(b.d.metaUrl);
              const ok = phase === 'copy' ? view.plan?.state === 'running' && view.moves.some((m) => m.state === 'copying' && m.rows_copied > 0) : view.plan?.state === 'switched';
              return ok ? view : null;
            },
            { everyMs: 2, unless: () => exited },
          );
          expect(j, `shard add ended before a batch of the ${phase} phase was caught: ${exited ? (await child).stderr : ''}`).not.toBeNull();
          stall = await stallJournal(b.d.metaUrl, j!.plan!.id);
          await waitFor('a journal write to wait behind the lock', async () => (await stall!.waitingSessions()).length > 0, { everyMs: 5, timeoutMs: 30_000, unless: () => exited });
          expect(exited, 'shard add ended while its journal was held').toBe(false);
          // The shards ahead of the journal: that is the window under test.
          const journal = await readJournal(b.d.metaUrl);
          if (phase === 'copy') {
            unjournaled = (await rowsOn(b.urls['shard-2']!)) - journal.moves.reduce((s, m) => s + m.rows_copied, 0);
          } else {
            const before = ['shard-0', 'shard-1'].reduce((s, id) => s + b.before.perShard[id]!.messages! + b.before.perShard[id]!.reactions!, 0);
            const deleted = before - (await rowsOn(b.urls['shard-0']!)) - (await rowsOn(b.urls['shard-1']!));
            unjournaled = deleted - journal.moves.reduce((s, m) => s + m.rows_deleted, 0);
          }
        }
      } finally {
        await killHard(child);
        await stall?.crash();
      }
      const recovery = await recover(b);
      console.error(`[journal stall] ${phase}: killed with ${unjournaled} row(s) ${phase === 'copy' ? 'copied' : 'deleted'} but not journaled (journal held ${attempts} time(s)); then ${recovery.join(' → ')}`);
      await expectCompleted(b);
    }
  }, 120_000);
});

describe('shard add when a shard server dies', () => {
  let server: SecondServer | undefined;
  let bench: Bench | undefined;

  beforeAll(async () => {
    // The new shard lives on a server of its own, so the test can take it down without touching the others.
    server = await startSecondServer();
    await sql(server.url(), 'CREATE DATABASE sct_remote');
    // Batches of a realistic byte size (the default is 10,000 rows): far more than a stream buffer
    // (16 KiB), so a batch is mostly written while waiting for 'drain', as in production.
    bench = await createBench({ newShardUrl: server.url('sct_remote'), rooms: ROOMS, perRoom: PER_ROOM * 2, batchSize: 1000 });
    await bench.reset();
  });
  afterAll(async () => {
    await bench?.dispose();
    await server?.cleanup();
  });

  it('a shard server killed mid-move: a clear error naming the shard, non-zero exit, the journal says failed; after the server is back, shard resume completes', async () => {
    const b = bench!;
    const child = startCli(b.addArgs);
    let exited = false;
    void child.finally(() => (exited = true));
    let copying: JournalView | null;
    let outcome: Awaited<typeof child> | null;
    let killedAt: number;
    try {
      copying = await waitFor(
        'a move copying with rows copied',
        async () => {
          const j = await readJournal(b.d.metaUrl);
          return j.plan?.state === 'running' && j.moves.some((m) => m.state === 'copying' && m.rows_copied > 0) ? j : null;
        },
        { everyMs: 2, unless: () => exited },
      );
      expect(copying, `shard add finished before the copy could be caught:\n${exited ? (await child).stderr : ''}`).not.toBeNull();
      // The server dies in the middle of a COPY into shard-2, where a mover spends most of its time:
      // a lock held on the target's tables keeps the next batch's COPY FROM open until the server is gone.
      const blocker = new pg.Client({ connectionString: server!.url('sct_remote') });
      blocker.on('error', () => {});
      await blocker.connect();
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE public.messages, public.reactions IN SHARE MODE');
      await waitFor(
        'a COPY into shard-2 to wait behind the lock',
        async () => (await sql(server!.url('sct_remote'), `SELECT 1 FROM pg_stat_activity WHERE query LIKE 'COPY %FROM STDIN' AND wait_event_type = 'Lock'`)).length > 0,
        { everyMs: 5, timeoutMs: 30_000, unless: () => exited },
      );
      expect(exited, 'shard add ended while its COPY was held').toBe(false);
      await server!.stop({ mode: 'immediate' });
      await blocker.end().catch(() => {});
      killedAt = Date.now();
      // It must end on its own, promptly: a run that hangs on a dead server holds the metadata lock for ever.
      outcome = await Promise.race([child, sleep(30_000).then(() => null)]);
    } finally {
      if (!exited) await killHard(child);
    }
    if (outcome === null) throw new Error(`shard add was still running 30 s after shard-2's server died (journal: ${phaseOf(await readJournal(b.d.metaUrl))})`);
    const exitedAfterMs = Date.now() - killedAt;
    const stderr = String(outcome.stderr);
    console.error(`[server kill] killed in ${phaseOf(copying!)}; shard add exited ${outcome.exitCode} ${exitedAfterMs} ms later:\n${stderr}`);
    // A crash of the CLI itself (an uncaught exception) would also exit 1, but journal nothing and name nothing.
    expect(stderr, 'the CLI crashed instead of reporting the failure').not.toMatch(/Unhandled 'error' event|internal error|^\s+at /m);
    expect(outcome.exitCode, stderr).toBe(1);
    expect(stderr, 'the error names the shard whose server died').toMatch(/shard shard-2\b/);

    const plans = await statusOf(b);
    expect(plans.map((p) => [p.kind, p.state])).toEqual([['add', 'failed']]);
    const failed = plans[0].moves.filter((m: { state: string }) => m.state === 'failed');
    expect(failed.length).toBeGreaterThan(0);
    for (const m of failed) {
      expect(m.target).toBe('shard-2');
      expect(m.error).toMatch(/shard shard-2\b/);
    }
    expect(plans[0].switchedEpoch).toBeNull();

    // Resuming while the server is still down fails the same way, at once, and changes nothing.
    const early = await runCli(['-c', b.d.configPath, 'shard', 'resume']);
    expect(early.exitCode, early.stderr).toBe(1);
    expect(early.stderr).toMatch(/shard shard-2\b/);
    expect((await readJournal(b.d.metaUrl)).plan?.state).toBe('failed');

    await server!.restart();
    const resumed = await runCli(['-c', b.d.configPath, 'shard', 'resume']);
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    await expectCompleted(b, { viaCli: true });
  }, 180_000);
});
