import { Redis } from 'ioredis';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_VNODES } from '../../src/core/ring.js';
import { init } from '../../src/engine/init.js';
import { listAudit } from '../../src/engine/audit.js';
import { listShards } from '../../src/engine/shards/info.js';
import { LockHeldError, OperationError } from '../../src/errors.js';
import { LOCK_NAMESPACE, LOCKS } from '../../src/postgres/advisory-lock.js';
import { createTestDatabase, redisUrl } from '../support/databases.js';
import { createDeployment, testRun, type TestDeployment } from '../support/deployment.js';

async function query<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

describe('init', () => {
  let d: TestDeployment;
  beforeEach(async () => {
    d = await createDeployment({ shards: 3 });
  });
  afterEach(async () => {
    await d.cleanup();
  });

  it('creates the metadata database and schema, registers the shards, makes ring epoch 1, installs route_hash everywhere', async () => {
    const result = await init(d.config, testRun());
    expect(result.schema.applied).toEqual(['0001_metadata.sql', '0002_move_journal.sql', '0003_block_copy.sql', '0004_leases.sql', '0005_retired_partitions.sql', '0006_health_samples.sql', '0007_online_moves.sql']);
    expect(result.ring).toEqual({ epoch: 1, created: true, vnodes: DEFAULT_VNODES, members: 3 });
    expect(result.shards.map((s) => [s.shard, s.status, s.registered])).toEqual([
      ['shard-0', 'ok', 'new'],
      ['shard-1', 'ok', 'new'],
      ['shard-2', 'ok', 'new'],
    ]);
    const shards = await query<{ id: string; state: string }>(d.metaUrl, 'SELECT id, state FROM shardctl.shards ORDER BY id');
    expect(shards).toEqual([
      { id: 'shard-0', state: 'active' },
      { id: 'shard-1', state: 'active' },
      { id: 'shard-2', state: 'active' },
    ]);
    for (const url of [d.metaUrl, ...d.shardUrls]) {
      const [row] = await query<{ h: string }>(url, `SELECT shardctl.route_hash('room-1') AS h`);
      expect(Number(row!.h)).toBe(878070096);
    }
  });

  it('running it twice changes nothing', async () => {
    await init(d.config, testRun());
    const snapshot = async () => ({
      migrations: await query(d.metaUrl, 'SELECT version, checksum FROM shardctl.tool_migrations ORDER BY version'),
      epochs: await query(d.metaUrl, 'SELECT epoch, vnodes, members FROM shardctl.ring_epochs ORDER BY epoch'),
      shards: await query(d.metaUrl, 'SELECT id, url, weight, state, created_at FROM shardctl.shards ORDER BY id'),
    });
    const before = await snapshot();
    const second = await init(d.config, testRun());
    expect(second.schema.applied).toEqual([]);
    expect(second.ring?.created).toBe(false);
    expect(second.shards.every((s) => s.registered === 'existing')).toBe(true);
    expect(await snapshot()).toEqual(before);
    const audit = await listAudit(d.config, { limit: 10 });
    expect(audit.map((a) => [a.command, a.outcome, a.exitCode])).toEqual([
      ['init', 'success', 0],
      ['init', 'success', 0],
    ]);
  });

  it('never stores a password in the metadata database', async () => {
    const withPassword = d.shardUrls[0]!.replace('postgres@', 'postgres:hunter2@');
    await d.rewrite((raw) => {
      (raw.shards as Array<{ url: string }>)[0]!.url = withPassword;
    });
    await init(d.config, testRun({ commandLine: `shardctl init --url ${withPassword}`.replace('hunter2', '***') }));
    const dump = JSON.stringify(await query(d.metaUrl, 'SELECT * FROM shardctl.shards')) +
      JSON.stringify(await query(d.metaUrl, 'SELECT * FROM shardctl.audit_log'));
    expect(dump).not.toContain('hunter2');
    expect(dump).toContain('shard-0');
  });

  it('registers a shard added to the config later as pending, leaving the ring alone', async () => {
    await init(d.config, testRun());
    const extra = await createTestDatabase('sct_s9');
    await d.rewrite((raw) => {
      (raw.shards as unknown[]).push({ id: 'shard-9', url: extra.url, weight: 1 });
    });
    const again = await init(d.config, testRun());
    await d.rewrite((raw) => {
      (raw.shards as unknown[]).pop();
    });
    await extra.drop();
    expect(again.ring).toMatchObject({ epoch: 1, members: 3 });
    expect(again.warnings.join('\n')).toMatch(/shard-9 is new: registered as pending/);
    const list = await listShards(d.config);
    expect(list.shards.find((s) => s.id === 'shard-9')).toMatchObject({ state: 'pending', points: 0 });
  });

  it('refuses to run when an applied metadata migration no longer matches its file', async () => {
    await init(d.config, testRun());
    await query(d.metaUrl, `UPDATE shardctl.tool_migrations SET checksum = 'tampered' WHERE version = '0001'`);
    await expect(init(d.config, testRun())).rejects.toThrow(OperationError);
    await expect(init(d.config, testRun())).rejects.toMatchObject({
      details: [expect.stringMatching(/0001_metadata: applied file changed/)],
    });
  });

  it('backs off with LockHeldError naming the holder when another run holds the lock, and audits the refusal', async () => {
    await init(d.config, testRun());
    const holder = new pg.Client({ connectionString: d.metaUrl, application_name: 'shardctl shard add by alice' });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1, $2)', [LOCK_NAMESPACE, LOCKS.metadata]);
      const started = Date.now();
      const err = await init(d.config, testRun({ lockWaitMs: 600 })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LockHeldError);
      expect((err as LockHeldError).exitCode).toBe(75);
      expect((err as LockHeldError).holder).toMatch(/shardctl shard add by alice/);
      expect(Date.now() - started).toBeGreaterThanOrEqual(500);
    } finally {
      await holder.end();
    }
    const audit = await listAudit(d.config, { limit: 1 });
    expect(audit[0]).toMatchObject({ command: 'init', outcome: 'lock-held', exitCode: 75 });
    // Released: the next run goes through.
    await expect(init(d.config, testRun())).resolves.toBeTruthy();
  });

  it('publishes the ring to Redis: the key holds it and the channel announces it', async () => {
    const sub = new Redis(redisUrl());
    const redis = new Redis(redisUrl());
    try {
      const messages: string[] = [];
      await sub.subscribe(`${d.redisPrefix}ring:changed`);
      sub.on('message', (_channel, message) => messages.push(message));
      const result = await init(d.config, testRun());
      expect(result.published).toMatchObject({ status: 'published', epoch: 1, key: `${d.redisPrefix}ring` });
      const stored = JSON.parse((await redis.get(`${d.redisPrefix}ring`)) ?? 'null');
      expect(stored).toMatchObject({ epoch: 1, hash: 'md5-be32', vnodes: DEFAULT_VNODES });
      expect(stored.members.map((m: { id: string }) => m.id)).toEqual(['shard-0', 'shard-1', 'shard-2']);
      await expect.poll(() => messages.length).toBe(1);
      expect(JSON.parse(messages[0]!).epoch).toBe(1);
    } finally {
      await redis.del(`${d.redisPrefix}ring`);
      sub.disconnect();
      redis.disconnect();
    }
  });

  it('fails with exit 1 and per-shard outcomes when a shard does not answer, after doing the rest', async () => {
    await d.rewrite((raw) => {
      (raw.shards as unknown[]).push({ id: 'shard-dead', url: 'postgres://postgres@127.0.0.1:1/nowhere', weight: 1 });
    });
    const err = (await init(d.config, testRun()).catch((e: unknown) => e)) as OperationError;
    expect(err).toBeInstanceOf(OperationError);
    expect(err.exitCode).toBe(1);
    expect(err.details.join('\n')).toMatch(/shard-dead: cannot connect to shard shard-dead/);
    const data = err.data as { shards: Array<{ shard: string; status: string }> };
    expect(data.shards.filter((s) => s.status === 'ok').map((s) => s.shard)).toEqual(['shard-0', 'shard-1', 'shard-2']);
    const audit = await listAudit(d.config, { limit: 1 });
    expect(audit[0]).toMatchObject({ outcome: 'failed', exitCode: 1 });
  });
});
