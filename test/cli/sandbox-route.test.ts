import { access, appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { postgresAnswers } from '../../src/sandbox/postgres.js';
import { sandboxDown } from '../../src/sandbox/sandbox.js';
import { runCli, type CliResult } from '../support/cli.js';
import { withPg } from '../support/dataset.js';

// README's sandbox route, step by step, on the built binary against a real
// sandbox in a temp dir: up, init, list --stats, rows, plan --add, apply,
// verify, migrate create + up, down. Each step relies on the ones before it.

const ROOMS = 60;
const PER_ROOM = 5;

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

function databaseUrl(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** What every step of the route must show: its exit code, and no error on stderr. */
function expectOk(r: CliResult, what: string): void {
  expect(r.exitCode, `${what}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`).toBe(0);
  expect(r.stderr, what).not.toMatch(/^(error|shardctl:)/m);
}

describe("README's sandbox route", () => {
  let root: string;
  let dir: string;
  let configPath: string;
  let shardUrls: Record<string, string>;
  let newShardUrl: string;
  let totalMessages = 0;
  let totalReactions = 0;
  // Run from the temp root, as a user would from their project: relative paths (plan.json) land there.
  const cli = (...args: string[]) => runCli(['-c', configPath, ...args], { cwd: root });

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'shardctl-sandbox-route-'));
    dir = path.join(root, 'sbx');
    configPath = path.join(dir, 'shardctl.config.yaml');
  });

  afterAll(async () => {
    // Whatever a failed step left running is stopped and removed here.
    await sandboxDown({ dir }).catch(() => {});
    await rm(root, { recursive: true, force: true });
  });

  it('sandbox up creates the tables its config lists, with its own migration set, and prints the export line', async () => {
    const up = await runCli(['sandbox', 'up', '--shards', '2', '--dir', dir], { cwd: root });
    expectOk(up, 'sandbox up');
    expect(up.stdout).toMatch(/^sandbox started in /m);
    expect(up.stdout.split('\n')).toContain(`export SHARDCTL_CONFIG=${configPath}`);
    // The next command as typed here (relative to the working directory); the export line is absolute, for any directory.
    expect(up.stdout).toContain('next:   shardctl -c sbx/shardctl.config.yaml init');
    expect(up.stdout).toContain(`applied to shard-0, shard-1; migration set ${path.join(dir, 'migrations')}`);
    // Progress goes to stderr, the result to stdout.
    expect(up.stderr).toContain(`info applying ${path.join(dir, 'migrations')} to shard-0, shard-1`);
    expect(up.stdout).not.toMatch(/^info /m);

    const config = YAML.parse(await readFile(configPath, 'utf8'));
    expect(config.migrate).toEqual({ dir: './migrations' });
    expect(config.tables.map((t: { name: string }) => t.name)).toEqual(['public.messages', 'public.reactions']);
    expect(await readFile(path.join(dir, 'migrations', '0001_sandbox_tables.sql'), 'utf8')).toMatch(/CREATE TABLE IF NOT EXISTS public\.messages/);
    shardUrls = Object.fromEntries(config.shards.map((s: { id: string; url: string }) => [s.id, s.url]));
    expect(Object.keys(shardUrls)).toEqual(['shard-0', 'shard-1']);
  });

  it('sandbox up again is a no-op: every shard already at the set', async () => {
    const again = await runCli(['sandbox', 'up', '--shards', '2', '--dir', dir, '--json'], { cwd: root });
    expectOk(again, 'sandbox up (again)');
    const data = JSON.parse(again.stdout).data;
    expect(data.outcome).toBe('already-running');
    expect(data.exportCommand).toBe(`export SHARDCTL_CONFIG=${configPath}`);
    expect(data.migrations).toEqual([
      { shard: 'shard-0', status: 'up-to-date', applied: [] },
      { shard: 'shard-1', status: 'up-to-date', applied: [] },
    ]);
  });

  it('init makes the metadata store and the ring', async () => {
    const init = await cli('init');
    expectOk(init, 'init');
    expect(init.stdout).toMatch(/ring: epoch 1 \(created\), 2 shards/);
  });

  it('shard list --stats finds every sharded table on every shard', async () => {
    const text = await cli('shard', 'list', '--stats');
    expectOk(text, 'shard list --stats');
    expect(text.stdout).not.toContain('missing');
    const json = await cli('shard', 'list', '--stats', '--json');
    expectOk(json, 'shard list --stats --json');
    const shards = JSON.parse(json.stdout).data.shards as Array<{ id: string; stats: { tables: Array<{ table: string; exists: boolean }> } }>;
    expect(shards.flatMap((s) => s.stats.tables.map((t) => [s.id, t.table, t.exists]))).toEqual([
      ['shard-0', 'public.messages', true],
      ['shard-0', 'public.reactions', true],
      ['shard-1', 'public.messages', true],
      ['shard-1', 'public.reactions', true],
    ]);
  });

  it('rows go where `shard locate` puts their room', async () => {
    const rooms = Array.from({ length: ROOMS }, (_, i) => String(i + 1));
    const located = await cli('shard', 'locate', ...rooms, '--json');
    expectOk(located, 'shard locate');
    const byShard = new Map<string, number[]>();
    for (const k of JSON.parse(located.stdout).data.keys as Array<{ key: string; shard: string }>) {
      byShard.set(k.shard, [...(byShard.get(k.shard) ?? []), Number(k.key)]);
    }
    expect([...byShard.keys()].sort()).toEqual(['shard-0', 'shard-1']);
    for (const [shard, owned] of byShard) {
      await withPg(shardUrls[shard]!, async (c) => {
        const m = await c.query(
          `INSERT INTO public.messages (room_id, id, body) SELECT r, m, 'message ' || m FROM unnest($1::bigint[]) r, generate_series(1, $2) m`,
          [owned, PER_ROOM],
        );
        const r = await c.query(`INSERT INTO public.reactions SELECT room_id, id, '+1', id % 4 FROM public.messages WHERE id % 2 = 1`);
        totalMessages += m.rowCount ?? 0;
        totalReactions += r.rowCount ?? 0;
        await c.query('ANALYZE public.messages, public.reactions');
      });
    }
    expect(totalMessages).toBe(ROOMS * PER_ROOM);
  });

  it('shard plan --add writes a plan for a new database on the sandbox server', async () => {
    await withPg(databaseUrl(shardUrls['shard-0']!, 'postgres'), (c) => c.query('CREATE DATABASE shard_2'));
    newShardUrl = databaseUrl(shardUrls['shard-0']!, 'shard_2');
    const plan = await cli('shard', 'plan', '--add', 'shard-2', '--url', newShardUrl, '--plan-out', 'plan.json');
    expectOk(plan, 'shard plan --add');
    expect(plan.stdout).toMatch(/^add plan from ring epoch 1: 2 move\(s\)/m);
    expect(plan.stderr).toContain(`plan written to ${path.join(root, 'plan.json')}`);
    expect(JSON.parse(await readFile(path.join(root, 'plan.json'), 'utf8'))).toMatchObject({ addShard: { id: 'shard-2' } });
  });

  it('shard apply runs the plan: the new shard gets the migration set, then its rows', async () => {
    const apply = await cli('shard', 'apply', 'plan.json');
    expectOk(apply, 'shard apply');
    expect(apply.stdout).toMatch(/ring epoch 2/);
    const applied = await withPg(newShardUrl, (c) => c.query<{ version: string }>('SELECT version FROM shardctl.schema_migrations ORDER BY version'));
    expect(applied.rows.map((r) => r.version)).toEqual(['0001']);
    const counts = await Promise.all(
      [...Object.values(shardUrls), newShardUrl].map((url) =>
        withPg(url, async (c) => {
          const { rows } = await c.query<{ m: number; r: number }>(
            'SELECT (SELECT count(*) FROM public.messages)::int AS m, (SELECT count(*) FROM public.reactions)::int AS r',
          );
          return rows[0]!;
        }),
      ),
    );
    expect(counts[2]!.m).toBeGreaterThan(0);
    expect(counts.reduce((sum, c) => sum + c.m, 0)).toBe(totalMessages);
    expect(counts.reduce((sum, c) => sum + c.r, 0)).toBe(totalReactions);
  });

  it('shard verify finds every row where the ring says', async () => {
    const verify = await cli('shard', 'verify');
    expectOk(verify, 'shard verify');
    expect(verify.stdout).toMatch(/every row is where the ring says/);
    expect(verify.stdout).toMatch(/^shard-2 +public\.messages +0/m);
  });

  it('migrate create says where it wrote, absolutely, and that the sandbox set is throwaway; migrate up reaches every shard', async () => {
    const created = await cli('migrate', 'create', 'add_column');
    expectOk(created, 'migrate create');
    const file = path.join(dir, 'migrations', '0002_add_column.sql');
    expect(created.stdout.trim()).toBe(`created ${file}`);
    expect(created.stderr).toContain(`warn ${path.join(dir, 'migrations')} is the sandbox's migration set: \`shardctl sandbox down\` deletes it`);
    await appendFile(file, 'ALTER TABLE public.messages ADD COLUMN IF NOT EXISTS edited_at timestamptz;\n');

    const up = await cli('migrate', 'up', '--json');
    expectOk(up, 'migrate up');
    const result = JSON.parse(up.stdout).data as { targets: Array<{ target: string; status: string; applied: Array<{ file: string }> }> };
    expect(result.targets.map((t) => [t.target, t.status, t.applied.map((a) => a.file)]).sort()).toEqual([
      ['shard-0', 'migrated', ['0002_add_column.sql']],
      ['shard-1', 'migrated', ['0002_add_column.sql']],
      ['shard-2', 'migrated', ['0002_add_column.sql']],
    ]);
    const status = await cli('migrate', 'status', '--check');
    expectOk(status, 'migrate status --check');
    for (const url of [...Object.values(shardUrls), newShardUrl]) {
      const { rows } = await withPg(url, (c) =>
        c.query(`SELECT 1 FROM information_schema.columns WHERE table_name = 'messages' AND column_name = 'edited_at'`),
      );
      expect(rows, url).toHaveLength(1);
    }
  });

  it('with the export line, later commands find the sandbox without -c', async () => {
    const env = { SHARDCTL_CONFIG: configPath };
    const status = await runCli(['migrate', 'status', '--check'], { cwd: root, env });
    expectOk(status, 'SHARDCTL_CONFIG=… migrate status --check');
    expect(status.stdout).toMatch(/every target is up to date/);
    const sandbox = await runCli(['sandbox', 'status', '--json'], { cwd: root, env });
    expectOk(sandbox, 'SHARDCTL_CONFIG=… sandbox status');
    expect(JSON.parse(sandbox.stdout).data).toMatchObject({ dir, state: 'up' });
  });

  it('sandbox down --yes stops the servers and removes the sandbox with its migration set', async () => {
    const down = await cli('--yes', 'sandbox', 'down');
    expectOk(down, 'sandbox down');
    expect(down.stdout).toMatch(/^stopped postgres/m);
    expect(down.stdout).toMatch(/^removed .*sbx\/migrations, /m);
    expect(await exists(dir)).toBe(false);
    expect(await postgresAnswers(newShardUrl, 1_000)).toBe(false);
    expect(await exists(path.join(root, 'plan.json'))).toBe(true);
  });
});

describe('migrate create outside a sandbox', () => {
  let repo: string;

  beforeAll(async () => {
    repo = await mkdtemp(path.join(os.tmpdir(), 'shardctl-create-git-'));
    await execa('git', ['init', '-q'], { cwd: repo });
    await writeFile(path.join(repo, '.gitignore'), 'scratch/\n');
    await mkdir(path.join(repo, 'db'), { recursive: true });
  });
  afterAll(async () => {
    await rm(repo, { recursive: true, force: true });
  });

  it('warns when the folder is ignored by git, and is quiet when it is not', async () => {
    const ignored = await runCli(['migrate', 'create', 'add_users', '--dir', 'scratch/migrations'], { cwd: repo });
    expectOk(ignored, 'migrate create (ignored)');
    const file = path.join(repo, 'scratch', 'migrations', '0001_add_users.sql');
    expect(ignored.stdout.trim()).toBe(`created ${file}`);
    expect(ignored.stderr).toContain(`warn ${file} is ignored by git`);

    const tracked = await runCli(['migrate', 'create', 'add_users', '--dir', 'db/migrations', '--json'], { cwd: repo });
    expectOk(tracked, 'migrate create (tracked)');
    expect(JSON.parse(tracked.stdout).data).toMatchObject({ path: path.join(repo, 'db', 'migrations', '0001_add_users.sql'), notes: [] });
    expect(tracked.stderr).toBe('');
  });
});
