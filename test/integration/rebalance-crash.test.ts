import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { sql } from '../support/migrations.js';
import {
  BATCH,
  createBench,
  expectCompleted,
  isMidMove,
  killHard,
  phaseOf,
  prng,
  reachedPhase,
  readJournal,
  recover,
  startCli,
  statusOf,
  waitFor,
  type Bench,
  type JournalView,
} from '../support/move-trials.js';
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
