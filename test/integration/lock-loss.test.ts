import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { metadataLockHolder } from '../support/locks.js';
import { sql } from '../support/migrations.js';
import { createBench, expectCompleted, prng, reachedPhase, readJournal, startCli, waitFor, type Bench } from '../support/move-trials.js';

/*
 * The scenario of the lock issue, on the real CLI: a `shard add` loses its
 * metadata lock session mid-move (pg_terminate_backend, as a DBA or a failover
 * does) and a `shard resume` starts right after. The first run must stop
 * without writing further, the two must never make progress on the plan
 * together, and the data must end as if one run had done it all.
 *
 * "Progress together" is checked from logs the databases keep themselves:
 * statement triggers record every write to the journal (with the lease
 * generation the writing session claimed) and every write to a sharded table
 * on each shard (with the writing session's application_name, which carries
 * the process id), each with clock_timestamp() of one machine.
 */

const LOG_SQL = `
CREATE TABLE IF NOT EXISTS public.sct_write_log (lease text, app text, tbl text, at timestamptz NOT NULL);
CREATE OR REPLACE FUNCTION public.sct_log_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.sct_write_log VALUES (current_setting('shardctl.lease', true), current_setting('application_name'), TG_TABLE_NAME, clock_timestamp());
  RETURN NULL;
END $$;`;

async function installWriteLogs(b: Bench): Promise<void> {
  await sql(b.d.metaUrl, LOG_SQL);
  await sql(b.d.metaUrl, 'TRUNCATE public.sct_write_log');
  for (const t of ['plans', 'moves', 'move_tables']) {
    await sql(b.d.metaUrl, `CREATE TRIGGER sct_log AFTER INSERT OR UPDATE OR DELETE ON shardctl.${t} FOR EACH STATEMENT EXECUTE FUNCTION public.sct_log_write()`);
  }
  for (const url of Object.values(b.urls)) {
    await sql(url, LOG_SQL);
    for (const t of ['messages', 'reactions']) {
      await sql(url, `CREATE OR REPLACE TRIGGER sct_log AFTER INSERT OR DELETE ON public.${t} FOR EACH STATEMENT EXECUTE FUNCTION public.sct_log_write()`);
    }
    await sql(url, 'TRUNCATE public.sct_write_log');
  }
}

interface LoggedWrite {
  lease: string | null;
  app: string;
  tbl: string;
  at: Date;
}

async function journalWrites(b: Bench): Promise<LoggedWrite[]> {
  return sql<LoggedWrite>(b.d.metaUrl, 'SELECT lease, app, tbl, at FROM public.sct_write_log ORDER BY at');
}

async function shardWrites(b: Bench): Promise<LoggedWrite[]> {
  const all: LoggedWrite[] = [];
  for (const url of Object.values(b.urls)) all.push(...(await sql<LoggedWrite>(url, 'SELECT lease, app, tbl, at FROM public.sct_write_log')));
  return all.sort((x, y) => x.at.getTime() - y.at.getTime());
}

/**
 * The property: every write of the first run (journal: its lease generation;
 * shards: its process id) happened before the first journal write of the
 * second run. Returns the two generations.
 */
async function expectNoOverlap(b: Bench, firstPid: number): Promise<{ first: string; second: string }> {
  const journal = await journalWrites(b);
  expect(journal.every((w) => w.lease), 'a journal write without a lease').toBe(true);
  const generations = [...new Set(journal.map((w) => w.lease!))];
  expect(generations, 'journal writes come from exactly two leases, the first run and the resume').toHaveLength(2);
  const [first, second] = generations as [string, string];
  expect(Number(second)).toBeGreaterThan(Number(first));
  const secondStarts = journal.find((w) => w.lease === second)!.at.getTime();
  const lastOfFirst = Math.max(...journal.filter((w) => w.lease === first).map((w) => w.at.getTime()));
  expect(lastOfFirst, 'the first run wrote to the journal after the second began').toBeLessThan(secondStarts);
  const ofFirst = (await shardWrites(b)).filter((w) => w.app.includes(` pid ${firstPid}`));
  expect(ofFirst.length, `the first run (pid ${firstPid}) wrote to the shards: ${JSON.stringify([...new Set((await shardWrites(b)).map((w) => w.app))])}`).toBeGreaterThan(0);
  const lastShardWrite = Math.max(...ofFirst.map((w) => w.at.getTime()));
  expect(lastShardWrite, 'the first run wrote to a shard after the second began').toBeLessThan(secondStarts);
  return { first, second };
}

async function auditOutcomes(b: Bench): Promise<Array<{ command: string; outcome: string; exit_code: number | null; summary: any }>> {
  return sql(b.d.metaUrl, `SELECT command, outcome, exit_code, summary FROM shardctl.audit_log WHERE command LIKE 'shard %' ORDER BY id`);
}

const RATE = 2000;

describe('shard add whose metadata lock session is terminated mid-move', () => {
  let bench: Bench | undefined;
  beforeAll(async () => {
    bench = await createBench({ rooms: 300, perRoom: 20 });
  });
  afterAll(async () => {
    await bench?.dispose();
  });

  const SEEDS = [7, 19, 31, 47, 59];

  it('is fenced at once, a shard resume started right after completes the plan alone, and every row ends once on its owner', async () => {
    const b = bench!;
    const log: string[] = [];
    const stoppedAfter: number[] = [];
    for (const [i, seed] of SEEDS.entries()) {
      const random = prng(seed);
      await b.reset();
      await installWriteLogs(b);
      const child = startCli([...b.addArgs, '--max-rows-per-second', String(RATE)]);
      let exitedAt = 0;
      void child.finally(() => (exitedAt = Date.now()));
      // Where the lock is lost: in the throttled copy after a seeded delay, or once cleanup has begun.
      const atCleanup = i === SEEDS.length - 1;
      const point = atCleanup ? 'cleanup' : `copy +${Math.round(100 + random() * 900)} ms`;
      if (atCleanup) {
        await waitFor('cleanup', async () => reachedPhase(await readJournal(b.d.metaUrl), 'cleanup'), { everyMs: 2, unless: () => exitedAt > 0 });
      } else {
        await waitFor('copy progress', async () => reachedPhase(await readJournal(b.d.metaUrl), 'copying'), { everyMs: 2, unless: () => exitedAt > 0 });
        await sleep(Number(/\+(\d+)/.exec(point)![1]));
      }
      expect(exitedAt, `shard add ended before the lock could be taken from it (${point})`).toBe(0);
      const holder = await metadataLockHolder(b.d.metaUrl);
      expect(holder).not.toBeNull();
      const lostAt = Date.now();
      await sql(b.d.metaUrl, 'SELECT pg_terminate_backend($1, 5000)', [holder]);
      await sleep(Math.round(random() * 500));
      const resume = await runCli(['-c', b.d.configPath, 'shard', 'resume']);
      const first = await child;
      stoppedAfter.push(exitedAt - lostAt);
      const stderr = String(first.stderr);
      log.push(`seed ${seed}, ${point}: first run exited ${first.exitCode} ${exitedAt - lostAt} ms after losing its session; resume exited ${resume.exitCode}`);

      expect(stderr, 'the CLI crashed instead of reporting the lost lock').not.toMatch(/internal error|^\s+at /m);
      expect(first.exitCode, stderr).toBe(1);
      expect(stderr).toMatch(/the metadata lock was lost/);
      expect(stderr).toMatch(/`shard resume` continues/);
      expect(resume.exitCode, resume.stderr).toBe(0);
      await expectNoOverlap(b, child.pid!);
      await expectCompleted(b);
      const audit = await auditOutcomes(b);
      expect(audit.map((a) => [a.command, a.outcome, a.exit_code])).toEqual([
        ['shard add', 'lock-lost', 1],
        ['shard resume', 'success', 0],
      ]);
    }
    console.error('[lock loss]\n' + log.map((l) => `  ${l}`).join('\n'));
    // Noticed at once (the server closes the session's socket), stopped at the next step.
    expect(Math.max(...stoppedAfter)).toBeLessThan(5_000);
  }, 240_000);

  it('a run paused (SIGSTOP) past metadata.lockStaleAfter is reported stale, --break-stale-lock takes over, and the paused run is fenced when it wakes', async () => {
    const b = bench!;
    await b.d.rewrite((raw) => {
      (raw.metadata as Record<string, unknown>).lockStaleAfter = '3s';
    });
    try {
      await b.reset();
      await installWriteLogs(b);
      const child = startCli([...b.addArgs, '--max-rows-per-second', String(RATE / 2)]);
      let exited = false;
      void child.finally(() => (exited = true));
      await waitFor('copy progress', async () => reachedPhase(await readJournal(b.d.metaUrl), 'copying'), { everyMs: 2, unless: () => exited });
      expect(exited).toBe(false);
      process.kill(child.pid!, 'SIGSTOP');
      const stoppedAt = Date.now();
      try {
        const early = await runCli(['-c', b.d.configPath, 'shard', 'resume']);
        expect(early.exitCode, early.stderr).toBe(75);
        if (Date.now() - stoppedAt < 2_500) expect(early.stderr).toMatch(/last heartbeat [\d.]+m?s ago/);
        expect(early.stderr).toMatch(/shard add by/);

        await sleep(Math.max(0, 3_500 - (Date.now() - stoppedAt)));
        const stale = await runCli(['-c', b.d.configPath, 'shard', 'resume']);
        expect(stale.exitCode, stale.stderr).toBe(75);
        expect(stale.stderr).toMatch(/silent for [\d.]+s: stale \(metadata\.lockStaleAfter is 3s\); --break-stale-lock/);

        const broken = await runCli(['-c', b.d.configPath, '--break-stale-lock', 'shard', 'resume']);
        expect(broken.exitCode, broken.stderr).toBe(0);
        expect(broken.stderr).toMatch(/broke a stale metadata lock/);
      } finally {
        process.kill(child.pid!, 'SIGCONT');
      }
      const first = await child;
      expect(first.exitCode, `${first.stderr}\n${first.stdout}`).toBe(1);
      expect(String(first.stderr)).toMatch(/the metadata lock was lost/);
      await expectNoOverlap(b, child.pid!);
      await expectCompleted(b);
      const audit = await auditOutcomes(b);
      expect(audit.map((a) => [a.command, a.outcome])).toEqual([
        ['shard add', 'lock-lost'],
        ['shard resume', 'lock-held'],
        ['shard resume', 'lock-held'],
        ['shard resume', 'success'],
      ]);
      expect(audit[3]!.summary.brokeStaleLock.holder).toMatch(/^shardctl\[[0-9a-f]{8}\] shard add by /);
    } finally {
      await b.d.rewrite((raw) => {
        delete (raw.metadata as Record<string, unknown>).lockStaleAfter;
      });
    }
  }, 120_000);
});
