import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RingSpec } from '../../src/core/ring.js';
import { init } from '../../src/engine/init.js';
import { MetadataStore } from '../../src/metadata/store.js';
import { BIN, runCli, type CliResult } from '../support/cli.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';
import { createSchema, loadRooms, placement, type Placement } from '../support/dataset.js';
import { createDeployment, testRun, type TestDeployment } from '../support/deployment.js';
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

const ROOMS = 300;
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

/** The journal as the metadata database has it right now (read directly: a CLI round trip is too slow to aim a kill). */
async function readJournal(metaUrl: string): Promise<JournalView> {
  const exists = await sql<{ ok: boolean }>(metaUrl, `SELECT to_regclass('shardctl.plans') IS NOT NULL AS ok`).catch(() => [{ ok: false }]);
  if (!exists[0]?.ok) return { plan: null, moves: [] };
  const plans = await sql<{ id: string; state: string; error: string | null }>(metaUrl, `SELECT id, state, error FROM shardctl.plans ORDER BY created_at DESC LIMIT 1`);
  const plan = plans[0] ?? null;
  if (!plan) return { plan: null, moves: [] };
  const moves = await sql<JournalView['moves'][number]>(
    metaUrl,
    `SELECT m.move_no, m.state, m.error, sum(t.rows_copied)::int AS rows_copied, sum(t.rows_deleted)::int AS rows_deleted
       FROM shardctl.moves m JOIN shardctl.move_tables t USING (plan_id, move_no)
      WHERE m.plan_id = $1 GROUP BY m.move_no, m.state, m.error ORDER BY m.move_no`,
    [plan.id],
  );
  return { plan, moves };
}

/** One word for where a run was when it died, for the trial log and the coverage check. */
function phaseOf(j: JournalView): string {
  if (!j.plan) return 'before the plan';
  if (j.plan.state === 'done') return 'after done';
  if (j.plan.state === 'switched') return j.moves.some((m) => m.rows_deleted > 0 || m.state === 'cleaned') ? 'cleanup' : 'switched';
  if (j.moves.every((m) => m.state === 'planned')) return 'planned';
  if (j.moves.some((m) => m.state === 'copying')) return 'copying';
  return 'copied/verified';
}

function isMidMove(phase: string): boolean {
  return phase !== 'before the plan' && phase !== 'after done';
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

interface Trial {
  d: TestDeployment;
  extra: TestDatabase;
  /** shard id → URL, shard-2 (the one being added) included. */
  urls: Record<string, string>;
  ring: RingSpec;
  before: Placement;
  addArgs: string[];
}

async function currentRing(metaUrl: string) {
  const store = await MetadataStore.open(metaUrl);
  try {
    return (await store.currentRing())!;
  } finally {
    await store.close();
  }
}

/** Two loaded shards and an empty database for shard-2, with small batches so a move has many cursors. */
async function newTrial(options: { newShardUrl?: string } = {}): Promise<Trial> {
  const d = await createDeployment({ shards: 2, redis: false, vnodes: 64 });
  const extra = await createTestDatabase('sct_s2');
  await d.rewrite((raw) => {
    raw.migration = { batchSize: BATCH, parallel: 2 };
  });
  await init(d.config, testRun());
  const newShardUrl = options.newShardUrl ?? extra.url;
  await createSchema([...d.shardUrls, newShardUrl]);
  const ring = await currentRing(d.metaUrl);
  const urls: Record<string, string> = { 'shard-0': d.shardUrls[0]!, 'shard-1': d.shardUrls[1]!, 'shard-2': newShardUrl };
  await loadRooms(ring, urls, { rooms: ROOMS, perRoom: PER_ROOM });
  const before = await placement(ring, urls);
  return { d, extra, urls, ring, before, addArgs: ['-c', d.configPath, 'shard', 'add', 'shard-2', '--url', newShardUrl] };
}

async function disposeTrial(t: Trial | undefined): Promise<void> {
  await t?.extra.drop();
  await t?.d.cleanup();
}

/** `shard status --json`, parsed. */
async function statusOf(t: Trial): Promise<{ result: CliResult; plans: any[] }> {
  const result = await runCli(['-c', t.d.configPath, 'shard', 'status', '--json']);
  expect(result.exitCode, result.stderr).toBe(0);
  return { result, plans: JSON.parse(result.stdout).data.plans };
}

/**
 * Recovery as an operator (or a cron job) would do it: `shard resume` while a
 * plan is in progress; `shard add` again when the crash came before the plan
 * was journaled. Optionally the first recovery run is SIGKILLed too.
 */
async function recover(t: Trial, options: { killFirstAfterMs?: number } = {}): Promise<{ runs: string[] }> {
  const runs: string[] = [];
  for (let round = 0; round < 8; round++) {
    const j = await readJournal(t.d.metaUrl);
    if (j.plan?.state === 'done') return { runs };
    const args = j.plan ? ['-c', t.d.configPath, 'shard', 'resume'] : t.addArgs;
    const name = j.plan ? 'resume' : 'add';
    if (round === 0 && options.killFirstAfterMs !== undefined) {
      const child = startCli(args);
      await sleep(options.killFirstAfterMs);
      const { exitCode } = await killHard(child);
      runs.push(`${name}(killed${exitCode !== undefined ? `, had exited ${exitCode}` : ''})`);
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

/** The end state every recovery must reach, whatever the crash point. */
async function expectCompleted(t: Trial): Promise<void> {
  const { plans } = await statusOf(t);
  expect(plans.map((p) => [p.kind, p.state])).toEqual([['add', 'done']]);
  const plan = plans[0];
  expect(plan.switchedEpoch).toBe(2);
  expect(plan.moves.length).toBeGreaterThan(0);
  for (const m of plan.moves) {
    expect(m.state, `move ${m.moveNo}`).toBe('cleaned');
    for (const table of m.tables) expect(table.rowsLeft, `move ${m.moveNo} ${table.table}`).toBe(0);
  }
  const ring = await currentRing(t.d.metaUrl);
  expect(ring.epoch).toBe(2);
  expect(ring.members.map((m) => m.id)).toEqual(['shard-0', 'shard-1', 'shard-2']);
  const after = await placement(ring, t.urls);
  expect(after.misplaced).toBe(0);
  expect(after.totals).toEqual(t.before.totals);
  expect(after.perShard['shard-2']!.messages).toBeGreaterThan(0);
}

type KillPoint =
  /** A delay from the start of the process: may fall before the plan is journaled. */
  | { kind: 'from-start'; delayMs: number }
  /** A delay from the moment the plan is journaled, spread over the move's measured duration. */
  | { kind: 'in-move'; delayMs: number }
  /** As soon as the journal shows this phase (plus a few ms of jitter). */
  | { kind: 'at-phase'; phase: 'copying' | 'copied/verified' | 'cleanup'; jitterMs: number };

describe('shard add under crashes', () => {
  // Measured on one uninterrupted run: process start → plan journaled, and plan journaled → process exit.
  let startupMs = 0;
  let moveMs = 0;

  beforeAll(async () => {
    const t = await newTrial();
    try {
      const started = Date.now();
      const child = startCli(t.addArgs);
      let journaledAt = 0;
      let exited = false;
      void child.finally(() => (exited = true));
      await waitFor('the plan to be journaled', async () => (await readJournal(t.d.metaUrl)).plan, { everyMs: 10, unless: () => exited });
      journaledAt = Date.now();
      const result = await child;
      expect(result.exitCode, String(result.stderr)).toBe(0);
      startupMs = journaledAt - started;
      moveMs = Date.now() - journaledAt;
      await expectCompleted(t);
      console.error(`[crash trials] uninterrupted shard add: ${startupMs} ms to the plan, ${moveMs} ms of moving (${t.before.totals.messages!.rows + t.before.totals.reactions!.rows} rows in all, batchSize ${BATCH})`);
    } finally {
      await disposeTrial(t);
    }
  });

  const SEEDS = [11, 23, 37, 41, 53, 67, 79, 83, 97, 101, 113, 127];

  it('SIGKILL of the CLI at random points of a move: shard resume brings the data to the same final state, with no row lost or duplicated', async () => {
    const log: Array<{ seed: number; point: string; phase: string; recovery: string; ms: number }> = [];
    for (const [i, seed] of SEEDS.entries()) {
      const random = prng(seed);
      // Two trials aim anywhere from the start, three at named phases, the rest inside the move; every third one also kills the first resume.
      const point: KillPoint =
        i < 2
          ? { kind: 'from-start', delayMs: Math.round(50 + random() * (startupMs + 200)) }
          : i < 5
            ? { kind: 'at-phase', phase: (['copying', 'copied/verified', 'cleanup'] as const)[i - 2]!, jitterMs: Math.round(random() * 15) }
            : { kind: 'in-move', delayMs: Math.round(random() * moveMs) };
      const killResumeAfterMs = i % 3 === 2 ? Math.round(300 + random() * (startupMs + moveMs)) : undefined;
      const t = await newTrial();
      const trialStart = Date.now();
      try {
        const child = startCli(t.addArgs);
        let exited = false;
        void child.finally(() => (exited = true));
        if (point.kind === 'from-start') {
          await sleep(point.delayMs);
        } else if (point.kind === 'in-move') {
          await waitFor('the plan to be journaled', async () => (await readJournal(t.d.metaUrl)).plan, { everyMs: 2, unless: () => exited });
          await sleep(point.delayMs);
        } else {
          await waitFor(`phase ${point.phase}`, async () => {
            const j = await readJournal(t.d.metaUrl);
            const phase = phaseOf(j);
            if (point.phase === 'copying') return phase === 'copying' && j.moves.some((m) => m.rows_copied > 0);
            if (point.phase === 'copied/verified') return phase === 'copied/verified' || phase === 'switched' || phase === 'cleanup';
            return phase === 'cleanup';
          }, { everyMs: 2, unless: () => exited });
          await sleep(point.jitterMs);
        }
        const killed = await killHard(child);
        const phase = killed.signal === 'SIGKILL' ? phaseOf(await readJournal(t.d.metaUrl)) : `exited ${killed.exitCode} first`;
        const { runs } = await recover(t, killResumeAfterMs !== undefined ? { killFirstAfterMs: killResumeAfterMs } : {});
        await expectCompleted(t);
        log.push({ seed, point: JSON.stringify(point), phase, recovery: runs.join(' → ') || '(nothing to do)', ms: Date.now() - trialStart });
      } finally {
        await disposeTrial(t);
      }
    }
    console.error('[crash trials]\n' + log.map((l) => `  seed ${l.seed}: ${l.point} → killed in ${l.phase}; ${l.recovery} (${l.ms} ms)`).join('\n'));
    // The point of the exercise: most kills land inside the move, not before or after it.
    expect(log.filter((l) => isMidMove(l.phase)).length).toBeGreaterThanOrEqual(Math.ceil(SEEDS.length * 0.6));
  });
});
