import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, runCli } from '../support/cli.js';
import { createBench, expectCompleted, reachedPhase, readJournal, startCli, waitFor, type Bench } from '../support/move-trials.js';
import { sql } from '../support/migrations.js';

/*
 * Progress on terminals and off them, through a real pseudo-terminal
 * (util-linux `script`). A pty made with no terminal around it has no size
 * (0 columns), as some CI runners and `docker exec -t` give; `stty cols N`
 * inside it gives it one.
 */

/** Cursor movement and erasing, what a redrawn board writes (colour codes are not counted). */
const REDRAW = /\u001b\[\d*[FJAK]/;

async function inPty(args: string[], options: { cols?: number; env?: Record<string, string | undefined>; timeoutMs?: number } = {}) {
  const command = ['node', BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const script = options.cols ? `stty cols ${options.cols} rows 40; ${command}` : command;
  const started = Date.now();
  const r = await execa('script', ['-qec', script, '/dev/null'], {
    reject: false,
    env: { ...process.env, NO_COLOR: undefined, FORCE_COLOR: undefined, CI: undefined, TERM: 'xterm-256color', ...options.env },
    extendEnv: false,
    stdin: 'ignore',
    timeout: options.timeoutMs ?? 60_000,
  });
  // Colour codes out; cursor movement and erasing stay (what these tests look for).
  return { exitCode: r.exitCode ?? -1, output: String(r.stdout).replace(/\u001b\[[0-9;]*m/g, ''), ms: Date.now() - started, timedOut: r.timedOut };
}

describe('progress on terminals', () => {
  let b: Bench;
  beforeAll(async () => {
    b = await createBench({ rooms: 200, perRoom: 20 });
  });
  afterAll(async () => {
    await b?.dispose();
  });

  it('a pseudo-terminal with no width gets plain log lines, no redraws, and the run ends as fast as without a terminal', async () => {
    await b.reset();
    const r = await inPty(b.addArgs, { timeoutMs: 60_000 });
    expect(r.timedOut, 'shard add hung on a zero-width terminal').toBe(false);
    expect(r.exitCode, r.output).toBe(0);
    expect(r.output).not.toMatch(REDRAW);
    expect(r.output.length, 'output stays the size of a report, not a redraw loop').toBeLessThan(20_000);
    expect(r.output).toMatch(/plan \S+: done/);
    await expectCompleted(b);
  });

  it('a terminal with a width shows the plan first, then one line per move and an overall line, erased before the report', async () => {
    await b.reset();
    await b.d.rewrite((raw) => {
      raw.migration = { batchSize: 200, parallel: 2, maxRowsPerSecond: 3000 };
    });
    try {
      const r = await inPty(b.addArgs, { cols: 120 });
      expect(r.exitCode, r.output).toBe(0);
      const out = r.output;
      expect(out).toMatch(REDRAW);
      const planAt = out.indexOf('add plan from ring epoch 1');
      const boardAt = out.search(/move 1 shard-\d → shard-2 /);
      const totalAt = out.search(/total [\d,]+\/[\d,]+ rows copied · [\d,]+ rows\/s/);
      const reportAt = out.search(/plan \S+: done/);
      expect(planAt, 'the plan is shown').toBeGreaterThanOrEqual(0);
      expect(boardAt, 'a line per move').toBeGreaterThan(planAt);
      expect(totalAt, 'an overall line').toBeGreaterThan(planAt);
      expect(reportAt, 'the report comes after the board').toBeGreaterThan(totalAt);
      // The board is erased before the report: after the last erase, only the report.
      const afterLastErase = out.slice(out.lastIndexOf('\u001b[J') + 3);
      expect(afterLastErase).not.toMatch(/total [\d,]+\/[\d,]+ rows copied/);
      // Never faster than a few redraws a second.
      const redraws = out.split('\u001b[J').length - 1;
      expect(redraws).toBeLessThanOrEqual(Math.ceil((r.ms / 1000) * 5) + 10);
      await expectCompleted(b);
    } finally {
      await b.d.rewrite((raw) => {
        raw.migration = { batchSize: 200, parallel: 2 };
      });
    }
  });

  it.each([
    ['TERM=dumb', { TERM: 'dumb' }],
    ['NO_COLOR', { NO_COLOR: '1' }],
    ['CI', { CI: 'true' }],
  ])('%s on a terminal with a width gives plain log lines', async (_name, env) => {
    await b.reset();
    const r = await inPty(b.addArgs, { cols: 120, env });
    expect(r.exitCode, r.output).toBe(0);
    expect(r.output).not.toMatch(REDRAW);
    await expectCompleted(b);
  });

  it('SIGTERM (cron, systemd, timeout) stops a run at a safe point within seconds, exits 143, and resume completes', async () => {
    await b.reset();
    const child = startCli([...b.addArgs, '--max-rows-per-second', '500']);
    let exited = false;
    void child.finally(() => (exited = true));
    await waitFor('copy progress', async () => reachedPhase(await readJournal(b.d.metaUrl), 'copying'), { everyMs: 5, unless: () => exited });
    const sentAt = Date.now();
    child.kill('SIGTERM');
    const r = await child;
    const tookMs = Date.now() - sentAt;
    expect(r.exitCode, String(r.stderr)).toBe(143);
    expect(tookMs).toBeLessThan(5_000);
    expect(String(r.stderr)).toMatch(/interrupted at a batch boundary/);
    const audit = await sql<{ outcome: string }>(b.d.metaUrl, `SELECT outcome FROM shardctl.audit_log WHERE command = 'shard add'`);
    expect(audit.map((a) => a.outcome)).toEqual(['interrupted']);
    const resumed = await runCli(['-c', b.d.configPath, 'shard', 'resume']);
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    await expectCompleted(b);
  });
});
