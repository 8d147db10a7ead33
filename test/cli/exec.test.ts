import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LOCK_NAMESPACE, LOCKS } from '../../src/postgres/advisory-lock.js';
import { runCli } from '../support/cli.js';
import { createDeployment, type TestDeployment } from '../support/deployment.js';
import { sql } from '../support/migrations.js';

/** `shardctl exec` as CI and a DBA run it: confirmation, exit codes, the report on stdout, the audited command line. */
describe('shardctl exec', () => {
  let d: TestDeployment;
  const cli = (...args: string[]) => runCli(['-c', d.configPath, ...args]);
  const bodies = async () => Promise.all(d.shardUrls.map(async (url) => (await sql<{ body: string }>(url, 'SELECT body FROM public.notes ORDER BY id')).map((r) => r.body)));

  beforeAll(async () => {
    d = await createDeployment({ shards: 2, redis: false, tables: false });
    expect((await cli('init')).exitCode).toBe(0);
  });
  beforeEach(async () => {
    for (const url of d.shardUrls) await sql(url, `DROP TABLE IF EXISTS public.notes; CREATE TABLE public.notes (id int PRIMARY KEY, body text); INSERT INTO public.notes VALUES (1, 'a'), (2, 'b');`);
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('without a terminal and without --yes: exit 2 naming --yes and the shards, nothing run', async () => {
    const r = await cli('exec', `UPDATE public.notes SET body = 'x'`);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--yes/);
    expect(r.stderr).toMatch(/on 2 shard\(s\) \(shard-0, shard-1\)/);
    expect(await bodies()).toEqual([['a', 'b'], ['a', 'b']]);
  });

  it('with --yes: a table per shard and a summary on stdout; --json gives the same result as one document', async () => {
    const r = await cli('--yes', 'exec', `UPDATE public.notes SET body = 'x' WHERE id = $1`, '--param', '1');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/shard-0\s+ok\s+1\s+UPDATE 1/);
    expect(r.stdout).toMatch(/exec on 2 shard\(s\): 2 ok, 0 failed; 2 row\(s\) affected/);
    const j = await cli('--yes', '--json', 'exec', `DELETE FROM public.notes WHERE id = 2`);
    expect(j.exitCode, j.stderr).toBe(0);
    const body = JSON.parse(j.stdout);
    expect(body).toMatchObject({ ok: true, command: 'exec', data: { summary: { ok: 2, rows: 2 } } });
    expect(body.data.results.map((s: { tags: string[] }) => s.tags)).toEqual([['DELETE 1'], ['DELETE 1']]);
    expect(await bodies()).toEqual([['x'], ['x']]);
  });

  it('a failing shard: exit 1, the report still on stdout, the error named on stderr with its SQLSTATE', async () => {
    await sql(d.shardUrls[0]!, `ALTER TABLE public.notes ADD CONSTRAINT no_z CHECK (body <> 'z')`);
    const r = await cli('--yes', 'exec', `UPDATE public.notes SET body = 'z'`);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(/shard-0\s+failed/);
    expect(r.stdout).toMatch(/shard-1\s+ok\s+2/);
    expect(r.stderr).toMatch(/exec failed on 1 of 2 shard\(s\)/);
    expect(r.stderr).toMatch(/shard-0: .*no_z.*\(SQLSTATE 23514\)/);
    expect(await bodies()).toEqual([['a', 'b'], ['z', 'z']]);
  });

  it('the lock held by another run: exit 75, nothing run', async () => {
    const holder = new pg.Client({ connectionString: d.metaUrl, application_name: 'shardctl partition rotate by cron' });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1, $2)', [LOCK_NAMESPACE, LOCKS.metadata]);
      const r = await cli('--yes', 'exec', `UPDATE public.notes SET body = 'x'`);
      expect(r.exitCode).toBe(75);
      expect(r.stderr).toMatch(/holds the metadata lock/);
    } finally {
      await holder.end();
    }
    expect(await bodies()).toEqual([['a', 'b'], ['a', 'b']]);
  });

  it('the audit row keeps the statement from -f FILE and the parameter count, not the values or a password', async () => {
    const file = path.join(d.dir, 'fix.sql');
    await writeFile(file, `UPDATE public.notes SET body = $1 WHERE body <> 'postgres://u:s3cret@h/db'`);
    const r = await cli('--yes', 'exec', '-f', file, '--param', 'secret-value');
    expect(r.exitCode, r.stderr).toBe(0);
    const [row] = await sql<{ command_line: string; summary: { params: number; statement: string } }>(d.metaUrl, `SELECT command_line, summary FROM shardctl.audit_log WHERE command = 'exec' ORDER BY id DESC LIMIT 1`);
    expect(row!.command_line).toMatch(/--param '\*\*\*' # sql: UPDATE public.notes SET body = \$1 WHERE body <> 'postgres:\/\/u:\*\*\*@h\/db'/);
    expect(JSON.stringify(row)).not.toMatch(/s3cret|secret-value/);
    expect(row!.summary.params).toBe(1);
  });

  it('--dry-run needs no --yes, shows the shards and the statement, and changes nothing', async () => {
    const r = await cli('exec', '--dry-run', `DELETE FROM public.notes`);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/dry run \(nothing ran, no lock taken\): would run on 2 shard\(s\)/);
    expect(r.stdout).toMatch(/DELETE FROM public.notes/);
    expect(await bodies()).toEqual([['a', 'b'], ['a', 'b']]);
  });

  it('usage errors exit 2 before anything runs: no SQL, the argument and -f both, VACUUM with several statements outside a transaction', async () => {
    for (const args of [['exec'], ['exec', 'SELECT 1', '-f', 'x.sql'], ['exec', '--no-transaction', 'VACUUM; ANALYZE']]) {
      const r = await cli('--yes', ...args);
      expect(r.exitCode, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^shardctl: /);
    }
  });

  it('--help has the examples and says that exec does not route rows', async () => {
    const r = await runCli(['exec', '--help']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/exec 'ANALYZE public.messages'/);
    expect(r.stdout).toMatch(/--param/);
    expect(r.stdout).toMatch(/--key room-42/);
    expect(r.stdout).toMatch(/exec --dry-run/);
    expect(r.stdout).toMatch(/does not route rows/);
    expect(r.stdout).toMatch(/shard verify/);
  });
});
