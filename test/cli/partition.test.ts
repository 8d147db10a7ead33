import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { createDeployment, type TestDeployment } from '../support/deployment.js';
import { sql } from '../support/migrations.js';

/** The partition commands as cron and CI run them: exit codes, --json, the lock. */
describe('shardctl partition', () => {
  let d: TestDeployment;
  const cli = (...args: string[]) => runCli(['-c', d.configPath, ...args]);

  beforeAll(async () => {
    d = await createDeployment({ shards: 2, redis: false, tables: false });
    await d.rewrite((raw) => {
      raw.partitions = [{ table: 'public.events', column: 'at', interval: 'daily', premake: 2, retention: '2d', retentionMode: 'drop' }];
    });
    for (const url of d.shardUrls) await sql(url, 'CREATE TABLE public.events (id bigint, at timestamptz NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)');
    expect((await cli('init')).exitCode).toBe(0);
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('rotate --dry-run --json is one document with the SQL per shard; rotate then creates, audits, and a second run says nothing to do', async () => {
    const dry = await cli('--json', 'partition', 'rotate', '--dry-run', '--now', '2026-12-01T10:00:00Z');
    expect(dry.exitCode, dry.stderr).toBe(0);
    const body = JSON.parse(dry.stdout);
    expect(body).toMatchObject({ ok: true, command: 'partition rotate', data: { dryRun: true, summary: { created: 6 } } });
    expect(body.data.shards[0].tables[0].sql.some((q: string) => /ATTACH PARTITION/.test(q))).toBe(true);

    const r = await cli('partition', 'rotate', '--now', '2026-12-01T10:00:00Z');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/created events_p20261201/);
    const again = await cli('partition', 'rotate', '--now', '2026-12-01T10:00:00Z');
    expect(again.exitCode).toBe(0);
    expect(again.stdout).toMatch(/nothing to do/);
    const audit = await sql<{ outcome: string }>(d.metaUrl, `SELECT outcome FROM shardctl.audit_log WHERE command = 'partition rotate' ORDER BY id`);
    expect(audit.map((a) => a.outcome)).toEqual(['success', 'success']);
  });

  it('list shows the runway; list --retired shows what rotate dropped', async () => {
    const later = await cli('partition', 'rotate', '--now', '2026-12-05T10:00:00Z');
    expect(later.exitCode, later.stderr).toBe(0);
    const list = await cli('--json', 'partition', 'list', '--retired', '--now', '2026-12-05T10:00:00Z');
    expect(list.exitCode, list.stderr).toBe(0);
    const data = JSON.parse(list.stdout).data;
    expect(data.shards[0].tables[0].runway.intervals).toBe(2);
    expect(data.retired.some((x: { mode: string; nowAt: string | null }) => x.mode === 'drop' && x.nowAt === null)).toBe(true);
  });

  it('a bad --now is a usage error (exit 2); setup of a table that is not partitioned exits 1 with the SQL to fix it', async () => {
    expect((await cli('partition', 'rotate', '--now', 'yesterday')).exitCode).toBe(2);
    await sql(d.shardUrls[0]!, 'CREATE TABLE public.flat (id bigint PRIMARY KEY, at timestamptz)');
    await d.rewrite((raw) => {
      (raw.partitions as unknown[]).push({ table: 'public.flat', column: 'at', interval: 'daily' });
    });
    const r = await cli('partition', 'setup', 'public.flat');
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(/PARTITION BY RANGE/);
  });
});
