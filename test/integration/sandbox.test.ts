import { access, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { postgresAnswers } from '../../src/sandbox/postgres.js';
import { findRedisServer, pingRedis, redisEndpoint } from '../../src/sandbox/redis.js';
import { sandboxDown, sandboxStatus, sandboxUp, type SandboxUpResult } from '../../src/sandbox/sandbox.js';
import { withPg } from '../support/dataset.js';

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

describe('sandbox', () => {
  let root: string;
  let dir: string;
  let up: SandboxUpResult;
  let redisInstalled: boolean;

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'shardctl-sandbox-test-'));
    dir = path.join(root, 'sbx');
    redisInstalled = (await findRedisServer()) !== null;
    const progress: string[] = [];
    up = await sandboxUp({ dir, shards: 2, onProgress: (m) => progress.push(m) });
    expect(progress.length).toBeGreaterThan(0);
  });

  afterAll(async () => {
    // Whatever a failed assertion left running is stopped here.
    await sandboxDown({ dir }).catch(() => {});
    await rm(root, { recursive: true, force: true });
  });

  it('up writes a config that parses, with a metadata database and one URL per shard', async () => {
    expect(up.outcome).toBe('started');
    expect(up.configPath).toBe(path.join(dir, 'shardctl.config.yaml'));
    expect(up.nextCommand).toMatch(/^shardctl -c \S+shardctl\.config\.yaml init$/);
    const config = parseConfig(YAML.parse(await readFile(up.configPath, 'utf8')), up.configPath, {});
    expect(config.metadata.url).toBe(up.metadataUrl);
    expect(config.metadata.url).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/shardctl_meta$/);
    expect(config.shards.map((s) => s.id)).toEqual(['shard-0', 'shard-1']);
    expect(config.shards.map((s) => new URL(s.url).pathname)).toEqual(['/shard_0', '/shard_1']);
    expect(config.tables).toEqual([
      { name: 'public.messages', key: 'room_id' },
      { name: 'public.reactions', key: 'room_id' },
    ]);
    expect(up.createdDatabases).toEqual(['shardctl_meta', 'shard_0', 'shard_1']);
    expect(path.resolve(dir, config.migrate.dir)).toBe(up.migrationsDir);
    expect(up.migrationsDir).toBe(path.join(dir, 'migrations'));
    expect(up.exportCommand).toBe(`export SHARDCTL_CONFIG=${up.configPath}`);
    const state = JSON.parse(await readFile(path.join(dir, 'state.json'), 'utf8'));
    expect(state.postgres.port).toBe(Number(new URL(up.metadataUrl).port));
    expect(state.startedAt).toBe(up.startedAt);
  });

  it('PostgreSQL answers on the metadata and every shard URL', async () => {
    const config = parseConfig(YAML.parse(await readFile(up.configPath, 'utf8')), up.configPath, {});
    for (const url of [config.metadata.url, ...config.shards.map((s) => s.url)]) {
      expect(await postgresAnswers(url), url).toBe(true);
    }
  });

  it('up creates the tables the config lists on every shard, through migrate\'s tracking table', async () => {
    expect(up.migrations).toEqual([
      { shard: 'shard-0', status: 'migrated', applied: ['0001_sandbox_tables.sql'] },
      { shard: 'shard-1', status: 'migrated', applied: ['0001_sandbox_tables.sql'] },
    ]);
    for (const shard of up.shards) {
      const { rows } = await withPg(shard.url, (c) =>
        c.query<{ name: string; pk: string }>(
          `SELECT c.oid::regclass::text AS name, pg_get_constraintdef(k.oid) AS pk
             FROM pg_class c JOIN pg_constraint k ON k.conrelid = c.oid AND k.contype = 'p'
            WHERE c.oid IN ('public.messages'::regclass, 'public.reactions'::regclass) ORDER BY 1`,
        ),
      );
      expect(rows, shard.id).toEqual([
        { name: 'messages', pk: 'PRIMARY KEY (room_id, id)' },
        { name: 'reactions', pk: 'PRIMARY KEY (room_id, message_id, emoji, user_id)' },
      ]);
      const applied = await withPg(shard.url, (c) => c.query('SELECT version, name FROM shardctl.schema_migrations'));
      expect(applied.rows).toEqual([{ version: '0001', name: 'sandbox_tables' }]);
    }
  });

  it('redis answers when redis-server is installed, and is reported unavailable otherwise', async () => {
    const redis = up.components.find((c) => c.name === 'redis')!;
    if (!redisInstalled) {
      expect(redis.status).toBe('unavailable');
      expect(up.redisUrl).toBeNull();
      return;
    }
    expect(redis.status).toBe('up');
    const config = parseConfig(YAML.parse(await readFile(up.configPath, 'utf8')), up.configPath, {});
    expect(config.redis?.url).toBe(up.redisUrl);
    const { host, port } = redisEndpoint(up.redisUrl!);
    expect(await pingRedis(port, host)).toBe(true);
  });

  it('status says up, with a pid and port per component', async () => {
    const status = await sandboxStatus({ dir });
    expect(status.state).toBe('up');
    if (status.state === 'absent') return;
    const pg = status.components.find((c) => c.name === 'postgres')!;
    expect(pg).toMatchObject({ status: 'up', port: Number(new URL(up.metadataUrl).port) });
    expect(pg.pid).toBeGreaterThan(0);
  });

  it('up again reports the running sandbox and changes nothing', async () => {
    const again = await sandboxUp({ dir, shards: 2 });
    expect(again.outcome).toBe('already-running');
    expect(again.createdDatabases).toEqual([]);
    expect(again.metadataUrl).toBe(up.metadataUrl);
    expect(again.redisUrl).toBe(up.redisUrl);
    expect(again.components.map((c) => c.pid)).toEqual(up.components.map((c) => c.pid));
    expect(again.migrations.map((m) => [m.shard, m.status])).toEqual([
      ['shard-0', 'up-to-date'],
      ['shard-1', 'up-to-date'],
    ]);
  });

  it('up refuses a DIR that has a migrations folder of its own: down would delete it', async () => {
    const foreign = path.join(root, 'project');
    await mkdir(path.join(foreign, 'migrations'), { recursive: true });
    await expect(sandboxUp({ dir: foreign, shards: 1 })).rejects.toThrow(/already holds migrations but no state\.json/);
    expect(await exists(path.join(foreign, 'migrations'))).toBe(true);
  });

  it('down stops every server and removes the directory; status then says absent', async () => {
    const urls = [up.metadataUrl];
    const down = await sandboxDown({ dir });
    expect(down.found).toBe(true);
    expect(down.stopped.map((s) => [s.name, s.outcome])).toEqual(
      redisInstalled ? [['postgres', 'stopped'], ['redis', 'stopped']] : [['postgres', 'stopped']],
    );
    expect(down.removed).toContain(path.join(dir, 'migrations'));
    expect(await exists(dir)).toBe(false);
    expect(await postgresAnswers(urls[0]!, 1_000)).toBe(false);
    if (up.redisUrl) {
      const { host, port } = redisEndpoint(up.redisUrl);
      expect(await pingRedis(port, host, 1_000)).toBe(false);
    }
    for (const c of up.components) {
      if (c.pid) expect(() => process.kill(c.pid!, 0)).toThrow();
    }
    expect((await sandboxStatus({ dir })).state).toBe('absent');
    expect((await sandboxDown({ dir })).found).toBe(false);
  });
});
