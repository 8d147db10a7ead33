import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import pg from 'pg';
import { expect } from 'vitest';
import { init } from '../../src/engine/init.js';
import { shardStatus } from '../../src/engine/shards/change.js';
import { BIN, runCli } from './cli.js';
import { createTestDatabase, type TestDatabase } from './databases.js';
import { createSchema, loadRooms, placement, type Placement } from './dataset.js';
import { createDeployment, testRun, type TestDeployment, currentRing } from './deployment.js';
import { sql } from './migrations.js';

/*
 * What the crash and lock-loss trials share: a deployment of two loaded shards
 * and an empty third, reset between trials; the CLI started as CI would start
 * it and killed when the test decides; the journal read directly, fast enough
 * to aim a kill; and the end state every recovery must reach.
 */

/** Small batches, so a move has many cursors to crash between. */
export const BATCH = 200;

export { prng } from './prng.js';

/** The CLI started the way CI would run it (no TTY, no stdin), not awaited: the test decides when it dies. */
export function startCli(args: string[]): ResultPromise<{ reject: false; stdin: 'ignore'; extendEnv: false; env: Record<string, string | undefined> }> {
  return execa('node', [BIN, ...args], {
    reject: false,
    stdin: 'ignore',
    extendEnv: false,
    env: { ...process.env, NO_COLOR: undefined, FORCE_COLOR: undefined, CI: undefined },
  });
}

/** SIGKILL, then wait for the exit so nothing of it is left running. */
export async function killHard(child: ReturnType<typeof startCli>): Promise<{ exitCode: number | undefined; signal: string | undefined }> {
  child.kill('SIGKILL');
  const result = await child;
  return { exitCode: result.exitCode, signal: result.signal };
}

export interface JournalView {
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

export async function closeJournalReader(metaUrl: string): Promise<void> {
  const reader = journalReaders.get(metaUrl);
  journalReaders.delete(metaUrl);
  await reader?.then((c) => c.end()).catch(() => {});
}

/** The journal as the metadata database has it right now (read directly: a CLI round trip is too slow to aim a kill). */
export async function readJournal(metaUrl: string): Promise<JournalView> {
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
export function phaseOf(j: JournalView): string {
  if (!j.plan) return 'no plan yet';
  return `${j.plan.state}: ${j.moves.map((m) => (m.state === 'switched' && m.rows_deleted > 0 ? 'cleaning' : m.state)).join(', ')}`;
}

export function isMidMove(phase: string): boolean {
  return /^(running|switched):/.test(phase);
}

export async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, options: { timeoutMs?: number; everyMs?: number; unless?: () => boolean } = {}): Promise<T | null> {
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
export interface Bench {
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

export async function createBench(options: { newShardUrl?: string; rooms: number; perRoom: number; batchSize?: number; redis?: boolean }): Promise<Bench> {
  const d = await createDeployment({ shards: 2, redis: options.redis ?? false, vnodes: 64 });
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
export async function statusOf(b: Bench): Promise<any[]> {
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
export async function recover(b: Bench, options: { killFirst?: { jitterMs: number } } = {}): Promise<string[]> {
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
export async function expectCompleted(b: Bench, options: { viaCli?: boolean } = {}): Promise<void> {
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

/** Whether the journal shows `phase` (or, for a short one, that it went past it). */
export function reachedPhase(j: JournalView, phase: 'copying' | 'copied/verified' | 'cleanup'): boolean {
  const states = j.moves.map((m) => m.state);
  const switched = j.plan?.state === 'switched' || j.plan?.state === 'done';
  if (phase === 'copying') return !switched && j.moves.some((m) => m.state === 'copying' && m.rows_copied > 0);
  if (phase === 'copied/verified') return switched || states.some((s) => s === 'copied' || s === 'verified');
  return j.moves.some((m) => m.rows_deleted > 0) || j.plan?.state === 'done';
}

