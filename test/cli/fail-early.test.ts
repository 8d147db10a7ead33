import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { BIN, runCli } from '../support/cli.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';
import { createSchema, loadRooms, placement, SCHEMA_SQL } from '../support/dataset.js';
import { createDeployment, currentRing, type TestDeployment } from '../support/deployment.js';
import { appliedVersions, migrationDir, sql } from '../support/migrations.js';

const UNREACHABLE = 'postgres://app:secret@no-such-host.invalid:5432/db';

describe('the CLI says early, and with the right exit code, what a later step would refuse', () => {
  let d: TestDeployment;
  let empty: TestDatabase;
  let otherColumns: TestDatabase;
  let noKey: TestDatabase;
  let files: Awaited<ReturnType<typeof migrationDir>>;
  const urls: Record<string, string> = {};
  const cli = (...args: string[]) => runCli(['-c', d.configPath, ...args]);
  const json = async (...args: string[]) => {
    const r = await cli(...args, '--json');
    return { ...r, body: r.stdout ? JSON.parse(r.stdout) : null };
  };
  const tablesOn = async (url: string) =>
    (await sql<{ t: string }>(url, `SELECT schemaname || '.' || tablename AS t FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`)).map((r) => r.t);
  const withMigrateDir = async (dir: string | undefined) =>
    d.rewrite((raw) => {
      if (dir === undefined) delete raw.migrate;
      else raw.migrate = { dir };
    });

  beforeAll(async () => {
    d = await createDeployment({ shards: 2, redis: true, vnodes: 64 });
    [empty, otherColumns, noKey] = [await createTestDatabase('sct_empty'), await createTestDatabase('sct_cols'), await createTestDatabase('sct_nokey')];
    d.shardUrls.forEach((u, i) => (urls[`shard-${i}`] = u));
    files = await migrationDir({ '0001_schema.sql': SCHEMA_SQL });
    expect((await cli('init')).exitCode).toBe(0);
    await createSchema(d.shardUrls);
    await sql(otherColumns.url, SCHEMA_SQL);
    await sql(otherColumns.url, 'ALTER TABLE public.messages ADD COLUMN edited boolean');
    await sql(noKey.url, SCHEMA_SQL.replace('PRIMARY KEY (room_id, id)', 'UNIQUE (room_id, id)'));
    await loadRooms(await currentRing(d.metaUrl), urls, { rooms: 60, perRoom: 5 });
  });
  afterAll(async () => {
    await Promise.all([empty?.drop(), otherColumns?.drop(), noKey?.drop()]);
    await files?.remove();
    await d?.cleanup();
  });

  describe('shard plan --add and shard add --dry-run / --plan-out run the new shard\'s checks, read-only', () => {
    it('an unreachable new shard: exit 1 naming it, no plan printed or written', async () => {
      const plan = await cli('shard', 'plan', '--add', 'shard-9', '--url', UNREACHABLE);
      expect(plan.exitCode).toBe(1);
      expect(plan.stdout).toBe('');
      expect(plan.stderr).toMatch(/shard-9 does not answer: shard add would refuse it/);
      expect(plan.stderr).toMatch(/no-such-host\.invalid/);
      expect(plan.stderr).not.toMatch(/secret/);
      const file = path.join(d.dir, 'unreachable.json');
      const out = await cli('shard', 'add', 'shard-9', '--url', UNREACHABLE, '--plan-out', file);
      expect(out.exitCode).toBe(1);
      await expect(readFile(file, 'utf8')).rejects.toThrow(/ENOENT/);
      const dry = await json('shard', 'add', 'shard-9', '--url', UNREACHABLE, '--dry-run');
      expect(dry.exitCode).toBe(1);
      expect(dry.body).toMatchObject({ ok: false, error: { kind: 'operation', exitCode: 1 } });
    });

    it('missing tables that the migration set creates: the plan says the set will be applied first, and nothing is applied', async () => {
      await withMigrateDir(files.dir);
      try {
        const plan = await cli('shard', 'plan', '--add', 'shard-9', '--url', empty.url);
        expect(plan.exitCode, plan.stderr).toBe(0);
        expect(plan.stdout).toMatch(/add plan from ring epoch 1: 2 move\(s\)/);
        expect(plan.stdout).toMatch(/shard-9: the migration set will be applied first \(0001_schema\.sql from .*\); it is expected to create public\.messages, public\.reactions/);
        const dry = await json('shard', 'add', 'shard-9', '--url', empty.url, '--dry-run');
        expect(dry.exitCode).toBe(0);
        expect(dry.body.data.readiness).toMatchObject({ shard: 'shard-9', pendingMigrations: ['0001_schema.sql'], createdByMigrations: ['public.messages', 'public.reactions'], refusals: [] });
        // Read-only: no table, no tracking table, no shardctl.route_hash() on the new database.
        expect(await tablesOn(empty.url)).toEqual([]);
        expect(await appliedVersions(empty.url)).toEqual([]);
        expect(await sql(empty.url, `SELECT 1 FROM pg_namespace WHERE nspname = 'shardctl'`)).toEqual([]);
      } finally {
        await withMigrateDir(undefined);
      }
    });

    it('missing tables and no migration folder: refused (exit 1), each table listed', async () => {
      const plan = await cli('shard', 'plan', '--add', 'shard-9', '--url', empty.url);
      expect(plan.exitCode).toBe(1);
      expect(plan.stdout).toBe('');
      expect(plan.stderr).toMatch(/shard-9 is not ready to receive rows: shard add would refuse it/);
      expect(plan.stderr).toMatch(/public\.messages does not exist on shard-9, and the migration set has no file pending there/);
      expect(plan.stderr).toMatch(/public\.reactions does not exist on shard-9/);
    });

    it('a table that exists with other columns, or without a primary key, is a refusal (exit 1), even with migrations pending', async () => {
      await withMigrateDir(files.dir);
      try {
        const plan = await json('shard', 'plan', '--add', 'shard-9', '--url', otherColumns.url);
        expect(plan.exitCode).toBe(1);
        expect(plan.body.error.message).toMatch(/shard-9 is not ready to receive rows/);
        expect(plan.body.error.details.join('\n')).toMatch(/public\.messages differs between shard-0 \(.*\) and shard-9 \(.*edited boolean\)/);
        expect(plan.body.error.data.readiness.refusals).toHaveLength(1);
      } finally {
        await withMigrateDir(undefined);
      }
      const nokey = await cli('shard', 'add', 'shard-9', '--url', noKey.url, '--dry-run');
      expect(nokey.exitCode).toBe(1);
      expect(nokey.stderr).toMatch(/public\.messages has no primary key on shard-9/);
      expect(await tablesOn(otherColumns.url)).toEqual(['public.messages', 'public.reactions']);
    });

    it('a ready shard with no migration folder configured plans as before (exit 0)', async () => {
      const ready = await createTestDatabase('sct_ready');
      try {
        await createSchema([ready.url]);
        const plan = await cli('shard', 'plan', '--add', 'shard-9', '--url', ready.url);
        expect(plan.exitCode, plan.stderr).toBe(0);
        expect(plan.stdout).toMatch(/shard-9 answers and has every sharded table/);
      } finally {
        await ready.drop();
      }
    });
  });

  describe('shard list --stats with a shard that does not answer', () => {
    it('exits 1 with the error on stderr and the shard marked in the table; --json keeps per-shard status and error', async () => {
      const good = d.raw.shards as Array<{ id: string; url: string }>;
      const saved = good[1]!.url;
      await d.rewrite(() => void (good[1]!.url = UNREACHABLE));
      try {
        const text = await cli('shard', 'list', '--stats');
        expect(text.exitCode).toBe(1);
        expect(text.stderr).toMatch(/could not read the statistics of 1 shard\(s\)/);
        expect(text.stderr).toMatch(/shard-1: cannot connect to shard shard-1 at .*no-such-host\.invalid/);
        expect(text.stdout).toMatch(/shard-1\s+✗ not read/);
        expect(text.stdout).toMatch(/shard-0\s+public\.messages\s+\S+/);
        expect(text.stdout).not.toMatch(/ENOTFOUND|cannot connect/);
        const j = await json('shard', 'list', '--stats');
        expect(j.exitCode).toBe(1);
        expect(j.stdout.trim().split('\n').filter((l) => l === '}')).toHaveLength(1);
        expect(j.body).toMatchObject({ ok: false, command: 'shard list', error: { kind: 'operation', exitCode: 1 } });
        const shards = j.body.error.data.shards as Array<{ id: string; stats: { status: string; error?: string } }>;
        expect(shards.map((s) => [s.id, s.stats.status])).toEqual([['shard-0', 'ok'], ['shard-1', 'error']]);
        expect(shards[1]!.stats.error).toMatch(/no-such-host\.invalid/);
        // Without --stats no shard is contacted: the listing still works.
        expect((await cli('shard', 'list')).exitCode).toBe(0);
      } finally {
        await d.rewrite(() => void (good[1]!.url = saved));
      }
      const ok = await json('shard', 'list', '--stats');
      expect(ok.exitCode).toBe(0);
      expect(ok.body.data.shards.map((s: { stats: { status: string } }) => s.stats.status)).toEqual(['ok', 'ok']);
    });
  });

  describe('a missing migration folder is a usage or configuration error', () => {
    it('migrate up --dir /nonexistent exits 2 naming the folder; so does a migrate.dir that is not there', async () => {
      const up = await cli('migrate', 'up', '--dir', '/nonexistent/migrations');
      expect(up.exitCode).toBe(2);
      expect(up.stderr).toMatch(/migration directory not found: \/nonexistent\/migrations/);
      const j = await json('migrate', 'up', '--dir', '/nonexistent/migrations');
      expect(j.exitCode).toBe(2);
      expect(j.body.error.kind).toBe('usage');
      // migrate.dir unset: the default ./db/migrations next to the config file.
      const status = await cli('migrate', 'status');
      expect(status.exitCode).toBe(2);
      expect(status.stderr).toMatch(new RegExp(`migration directory not found: ${path.join(d.dir, 'db', 'migrations').replace(/[/.]/g, '\\$&')}`));
      const aFile = path.join(d.dir, 'not-a-dir.sql');
      await writeFile(aFile, 'SELECT 1;\n');
      const notDir = await cli('migrate', 'validate', '--dir', aFile);
      expect(notDir.exitCode).toBe(2);
      expect(notDir.stderr).toMatch(/not a migration directory: .*not-a-dir\.sql is a file/);
    });
  });

  describe('--json plans and plan files: ranges as [start, end] pairs', () => {
    it('shard plan --json keeps each move\'s ranges on one line as pairs, in one document', async () => {
      const r = await json('shard', 'plan', '--remove', 'shard-1');
      expect(r.exitCode).toBe(0);
      const moves = r.body.data.plan.moves as Array<{ ranges: unknown[] }>;
      expect(r.body.data.plan.format).toBe('shardctl-plan/2');
      expect(moves[0]!.ranges.length).toBeGreaterThan(30);
      for (const range of moves[0]!.ranges) {
        expect(range).toEqual([expect.any(Number), expect.any(Number)]);
        const [start, end] = range as [number, number];
        expect(start).toBeLessThanOrEqual(end);
      }
      // About 64 ranges: a few dozen lines, not four per range.
      expect(r.stdout.split('\n').length).toBeLessThan(60);
      expect(r.stdout).toMatch(/"ranges": \[\[\d+,\d+\],\[\d+,\d+\]/);
    });

    it('--plan-out writes pairs; shard apply reads it, and also an older plan file with {start, end} objects', async () => {
      const before = await placement(await currentRing(d.metaUrl), urls);
      const oldFile = path.join(d.dir, 'old-format.json');
      expect((await cli('shard', 'plan', '--weight', 'shard-0=2', '--plan-out', oldFile)).exitCode).toBe(0);
      const written = JSON.parse(await readFile(oldFile, 'utf8'));
      expect(written.format).toBe('shardctl-plan/2');
      expect(written.moves[0].ranges[0]).toEqual([expect.any(Number), expect.any(Number)]);
      // The plan file as an earlier shardctl wrote it.
      const old = {
        ...written,
        format: 'shardctl-plan/1',
        moves: written.moves.map((m: { ranges: Array<[number, number]> }) => ({ ...m, ranges: m.ranges.map(([start, end]) => ({ start, end })) })),
      };
      await writeFile(oldFile, JSON.stringify(old, null, 2));
      const applied = await json('shard', 'apply', oldFile);
      expect(applied.exitCode, JSON.stringify(applied.body)).toBe(0);
      expect(applied.body.data.execution.status).toBe('done');
      expect(applied.body.data.plan.moves[0].ranges[0]).toEqual([expect.any(Number), expect.any(Number)]);

      const newFile = path.join(d.dir, 'new-format.json');
      expect((await cli('shard', 'rebalance', '--weight', 'shard-0=1', '--plan-out', newFile)).exitCode).toBe(0);
      expect((await cli('shard', 'apply', newFile)).exitCode).toBe(0);
      const after = await placement(await currentRing(d.metaUrl), urls);
      expect(after.misplaced).toBe(0);
      expect(after.totals).toEqual(before.totals);
      expect((await currentRing(d.metaUrl)).epoch).toBe(3);

      await writeFile(newFile, JSON.stringify({ ...written, moves: [{ ...written.moves[0], ranges: [[5, 1]] }] }));
      const bad = await cli('shard', 'apply', newFile);
      expect(bad.exitCode).toBe(2);
      expect(bad.stderr).toMatch(/not a shardctl plan file: move 1 has a range/);
    });
  });

  describe('shard remove: --confirm ID or the global --yes', () => {
    it('without a terminal and without either flag it is refused (exit 2) naming both; --help says so', async () => {
      const refused = await json('shard', 'remove', 'shard-1');
      expect(refused.exitCode).toBe(2);
      expect(refused.body.error.kind).toBe('usage');
      expect(refused.stderr).toMatch(/pass --confirm shard-1 or --yes/);
      const wrong = await cli('shard', 'remove', 'shard-1', '--confirm', 'shard-0', '--yes');
      expect(wrong.exitCode).toBe(2);
      expect(wrong.stderr).toMatch(/--confirm shard-0 does not match shard-1/);
      expect((await currentRing(d.metaUrl)).members.map((m) => m.id)).toEqual(['shard-0', 'shard-1']);
      const help = await cli('shard', 'remove', '--help');
      expect(help.stdout).toMatch(/--confirm ID or --yes is required/);
    });

    it('at a terminal it asks to type the id; another answer does nothing (exit 2)', async () => {
      const command = ['node', BIN, '-c', d.configPath, 'shard', 'remove', 'shard-1'].map((a) => `'${a}'`).join(' ');
      // A pseudo-terminal (util-linux script) that gets the wrong id typed.
      const r = await execa('script', ['-qec', command, '/dev/null'], {
        reject: false,
        timeout: 30_000,
        input: 'shard-0\n',
        env: { ...process.env, NO_COLOR: '1', CI: undefined, TERM: 'xterm-256color' },
        extendEnv: false,
      });
      expect(String(r.stdout)).toMatch(/Type shard-1 to drain and retire it/);
      expect(String(r.stdout)).toMatch(/not confirmed; nothing was done/);
      expect(r.exitCode).toBe(2);
      expect((await currentRing(d.metaUrl)).members.map((m) => m.id)).toEqual(['shard-0', 'shard-1']);
    });

    it('the global --yes satisfies it: the shard is drained and retired', async () => {
      const before = await placement(await currentRing(d.metaUrl), urls);
      const r = await runCli(['-c', d.configPath, '--yes', 'shard', 'remove', 'shard-1', '--json']);
      expect(r.exitCode, r.stderr).toBe(0);
      const after = await placement(await currentRing(d.metaUrl), urls);
      expect(after.perShard['shard-1']).toEqual({ messages: 0, reactions: 0 });
      expect(after.totals).toEqual(before.totals);
      const list = await json('shard', 'list');
      expect(list.body.data.shards.find((s: { id: string }) => s.id === 'shard-1').state).toBe('retired');
    });
  });
});
