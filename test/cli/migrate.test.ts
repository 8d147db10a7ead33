import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { createDeployment, type TestDeployment } from '../support/deployment.js';
import { appliedVersions, migrationDir } from '../support/migrations.js';

describe('shardctl migrate', () => {
  let d: TestDeployment;
  let files: Awaited<ReturnType<typeof migrationDir>>;
  const cli = (...args: string[]) => runCli(['-c', d.configPath, ...args]);

  beforeAll(async () => {
    d = await createDeployment({ shards: 2, redis: false, tables: false });
    files = await migrationDir({});
    await d.rewrite((raw) => {
      raw.migrate = { dir: files.dir };
    });
    expect((await cli('init')).exitCode).toBe(0);
  });
  afterAll(async () => {
    await files?.remove();
    await d?.cleanup();
  });

  it('create makes the next numbered file; --no-transaction puts the directive on its first line', async () => {
    const a = await cli('migrate', 'create', 'Add users');
    expect(a.exitCode).toBe(0);
    expect(a.stdout).toMatch(/created .*0001_add_users\.sql/);
    const b = await cli('migrate', 'create', 'users email index', '--no-transaction', '--json');
    expect(JSON.parse(b.stdout).data).toMatchObject({ file: '0002_users_email_index.sql', version: '0002', transaction: false });
    expect((await readFile(path.join(files.dir, '0002_users_email_index.sql'), 'utf8')).split('\n')[0]).toBe('-- shardctl:no-transaction');
    expect(await readdir(files.dir)).toEqual(['0001_add_users.sql', '0002_users_email_index.sql']);
    await files.write('0001_add_users.sql', 'CREATE TABLE public.users (id bigint PRIMARY KEY, email text);\n');
    await files.write('0002_users_email_index.sql', '-- shardctl:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS users_email ON public.users (email);\n');
  });

  it('up --dry-run lists per shard what would run and changes nothing; status --check fails while anything is pending', async () => {
    const dry = await cli('migrate', 'up', '--dry-run');
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout).toMatch(/shard-0\s+pending\s+2\s+-\s+\d+\s+0001_add_users\.sql 0002_users_email_index\.sql/);
    expect(await appliedVersions(d.shardUrls[0]!)).toEqual([]);
    const check = await cli('migrate', 'status', '--check');
    expect(check.exitCode).toBe(1);
    expect(check.stdout).toMatch(/shard-1\s+-\s+0\/2\s+·\s+·/);
  });

  it('up --json applies everything and reports per target; then status --check passes', async () => {
    const up = await cli('migrate', 'up', '--json', '--parallel', '2');
    expect(up.exitCode).toBe(0);
    const body = JSON.parse(up.stdout);
    expect(body).toMatchObject({ ok: true, command: 'migrate up', data: { files: 2, summary: { migrated: 2 } } });
    expect(body.data.targets[0]).toMatchObject({ target: 'shard-0', status: 'migrated', version: '0002', applied: [{ file: '0001_add_users.sql' }, { file: '0002_users_email_index.sql' }] });
    expect((await cli('migrate', 'status', '--check')).exitCode).toBe(0);
    expect((await cli('migrate', 'validate')).exitCode).toBe(0);
  });

  it('a failing file shows the file, line, a caret under the position, and the code; exit 1', async () => {
    await files.write('0003_broken.sql', 'ALTER TABLE public.users\n  ADD COLUMN age int;\nSELECT nope FROM public.users;\n');
    const r = await cli('migrate', 'up');
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(/shard-0\s+failed/);
    expect(r.stdout).toContain('0003_broken.sql:3:8: column "nope" does not exist');
    expect(r.stdout).toMatch(/3 \| SELECT nope FROM public\.users;\n\s+\|\s{8}\^/);
    expect(r.stdout).toMatch(/code: 42703/);
    expect(r.stderr).toMatch(/migrate up did not complete on 2 of 2 target/);
    expect(await appliedVersions(d.shardUrls[0]!)).toEqual(['0001', '0002']);
  });

  it('validate names the file and shard when an applied file changed; exit 1', async () => {
    await files.write('0003_broken.sql', 'SELECT 1;\n');
    await files.write('0001_add_users.sql', 'CREATE TABLE public.users (id bigint PRIMARY KEY, email text, x int);\n');
    const r = await cli('migrate', 'validate');
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('shard-0: 0001_add_users.sql changed since it was applied (checksum differs)');
    expect(r.stderr).toContain('shard-1: 0001_add_users.sql changed since it was applied (checksum differs)');
    const up = await cli('migrate', 'up');
    expect(up.exitCode).toBe(1);
    expect(up.stderr).toMatch(/refusing to migrate/);
    expect(await appliedVersions(d.shardUrls[1]!)).toEqual(['0001', '0002']);
  });
});
