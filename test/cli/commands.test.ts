import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_VNODES } from '../../src/core/ring.js';
import { LOCK_NAMESPACE, LOCKS } from '../../src/postgres/advisory-lock.js';
import { runCli } from '../support/cli.js';
import { createDeployment, type TestDeployment } from '../support/deployment.js';

describe('the shardctl binary against a real deployment', () => {
  let d: TestDeployment;
  const cli = (...args: string[]) => runCli(['-c', d.configPath, ...args]);

  beforeAll(async () => {
    d = await createDeployment({ shards: 3 });
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('init: text on stdout, exit 0; --json is the documented envelope', async () => {
    const r = await cli('init', '--actor', 'ci-bot');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/ring: epoch 1 \(created\), 3 shards/);
    const j = await cli('init', '--json');
    expect(j.exitCode).toBe(0);
    const body = JSON.parse(j.stdout);
    expect(body).toMatchObject({ ok: true, command: 'init', data: { ring: { epoch: 1, created: false }, schema: { applied: [] } } });
    expect(body.data.shards).toHaveLength(3);
  });

  it('shard list --stats --json: shards with state, weight, points and per-table stats', async () => {
    const shardClient = new pg.Client({ connectionString: d.shardUrls[1] });
    await shardClient.connect();
    await shardClient.query('CREATE TABLE public.messages (room_id bigint, id bigint, PRIMARY KEY (room_id, id)); INSERT INTO public.messages SELECT g, g FROM generate_series(1, 500) g');
    await shardClient.end();
    const r = await cli('shard', 'list', '--stats', '--exact', '--json');
    expect(r.exitCode).toBe(0);
    const { data } = JSON.parse(r.stdout);
    expect(data.epoch).toBe(1);
    expect(data.vnodes).toBe(DEFAULT_VNODES);
    expect(data.shards.map((s: { id: string; points: number; state: string }) => [s.id, s.points, s.state])).toEqual([
      ['shard-0', DEFAULT_VNODES, 'active'],
      ['shard-1', DEFAULT_VNODES, 'active'],
      ['shard-2', DEFAULT_VNODES, 'active'],
    ]);
    const s1 = data.shards[1].stats.tables;
    expect(s1).toEqual([
      { table: 'public.messages', exists: true, rows: 500, bytes: expect.any(Number) },
      { table: 'public.reactions', exists: false, rows: null, bytes: null },
    ]);
    const text = await cli('shard', 'list', '--stats');
    expect(text.stdout).toMatch(/shard-1\s+public\.messages\s+\S+/);
    expect(text.stdout).toMatch(/public\.reactions\s+missing/);
  });

  it('shard locate gives the routing contract owners', async () => {
    const r = await cli('shard', 'locate', 'room-1', 'room-42', '42', '--json');
    expect(r.exitCode).toBe(0);
    const { data } = JSON.parse(r.stdout);
    expect(data.keys.map((k: { key: string; hash: number }) => [k.key, k.hash])).toEqual([
      ['room-1', 878070096],
      ['room-42', 2226950767],
      ['42', 2714814184],
    ]);
    for (const k of data.keys) expect(['shard-0', 'shard-1', 'shard-2']).toContain(k.shard);
  });

  it('shard ring --format csv lists every point', async () => {
    const r = await cli('shard', 'ring', '--format', 'csv');
    expect(r.exitCode).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe('point,shard_id');
    expect(lines).toHaveLength(1 + 3 * DEFAULT_VNODES);
  });

  it('shard simulate --add reports movement near the ideal and writes nothing', async () => {
    const before = await cli('audit', '--json');
    const r = await cli('shard', 'simulate', '--add', 'shard-3', '--keys', '100000', '--json');
    expect(r.exitCode).toBe(0);
    const { data } = JSON.parse(r.stdout);
    expect(data.idealMovedFraction).toBeCloseTo(0.25, 5);
    expect(Math.abs(data.movedFraction - 0.25)).toBeLessThan(0.03);
    expect(data.perShard).toHaveLength(4);
    const after = await cli('audit', '--json');
    expect(JSON.parse(after.stdout).data.entries).toHaveLength(JSON.parse(before.stdout).data.entries.length);
    const bad = await cli('shard', 'simulate', '--remove', 'nope');
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/--remove nope: not in the ring/);
  });

  it('a mutating command exits 75 when another run holds the lock, naming it', async () => {
    const holder = new pg.Client({ connectionString: d.metaUrl, application_name: 'shardctl shard rebalance by cron' });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1, $2)', [LOCK_NAMESPACE, LOCKS.metadata]);
      const r = await cli('init', '--lock-wait', '300ms');
      expect(r.exitCode).toBe(75);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/holds the metadata lock \(shardctl shard rebalance by cron/);
      const j = await cli('init', '--json');
      expect(j.exitCode).toBe(75);
      expect(JSON.parse(j.stdout).error).toMatchObject({ kind: 'lock-held', exitCode: 75 });
    } finally {
      await holder.end();
    }
  });

  it('audit lists who ran what, with outcomes', async () => {
    await runCli(['-c', d.configPath, 'init', '--actor', 'alice', '--lock-wait', '1s', '-v']);
    const r = await cli('audit', '--json', '-n', '20');
    expect(r.exitCode).toBe(0);
    const entries = JSON.parse(r.stdout).data.entries as Array<{ actor: string; command: string; outcome: string; commandLine: string }>;
    expect(entries[0]).toMatchObject({ actor: 'alice', command: 'init', outcome: 'success' });
    expect(entries.map((e) => e.outcome)).toContain('lock-held');
    expect(entries.find((e) => e.actor === 'ci-bot')).toBeTruthy();
    const text = await cli('audit', '--command', 'init');
    expect(text.stdout).toMatch(/alice/);
  });

  it('the metadata database not existing is a clear error, exit 1', async () => {
    await d.rewrite((raw) => {
      (raw.metadata as { url: string }).url = d.metaUrl + '_missing';
    });
    try {
      const r = await cli('shard', 'list');
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/does not exist: run `shardctl init` first/);
    } finally {
      await d.rewrite((raw) => {
        (raw.metadata as { url: string }).url = d.metaUrl;
      });
    }
  });
});
