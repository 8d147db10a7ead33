import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { init } from '../../src/engine/init.js';
import { streamInfoReport } from '../../src/engine/streams/info.js';
import { streamTrim } from '../../src/engine/streams/trim.js';
import { OperationError } from '../../src/errors.js';
import { runCli } from '../support/cli.js';
import { redisUrl } from '../support/databases.js';
import { createDeployment, testRun, type TestDeployment } from '../support/deployment.js';
import { sql } from '../support/migrations.js';

/*
 * stream info / trim through the engine and the CLI, on the test Redis, with
 * the config's policies (first match wins) and real consumer groups. The
 * safety property over random streams is tested on the adapter
 * (redis-streams.test.ts); here: the policies, the report, the lock.
 */

describe('stream trim by policy', () => {
  let d: TestDeployment;
  let redis: Redis;
  let p: string;
  const NOW = Date.UTC(2026, 11, 1, 12, 0, 0);
  const DAY = 86_400_000;

  /** `n` entries, one a minute, ending `endAgoMs` before NOW; ids carry their time. */
  async function fill(key: string, n: number, endAgoMs: number): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const id = `${NOW - endAgoMs - (n - 1 - i) * 60_000}-0`;
      await redis.xadd(key, id, 'n', String(i));
      ids.push(id);
    }
    return ids;
  }

  beforeAll(async () => {
    d = await createDeployment({ shards: 1, tables: false });
    p = d.redisPrefix;
    await d.rewrite((raw) => {
      raw.streams = [
        { match: `${p}messages:*`, maxLen: 5, approximate: false },
        { match: `${p}*`, maxAge: '1d', approximate: false },
      ];
    });
    await init(d.config, testRun());
    redis = new Redis(redisUrl());
  });
  afterAll(async () => {
    const keys = await redis.keys(`${p}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
    await d?.cleanup();
  });

  it('trims each stream by its first matching policy, never past what a group still needs, and says which group held it back', async () => {
    const room = `${p}messages:{room-1}`;
    const stuck = `${p}messages:{room-2}`;
    const audit = `${p}audit`;
    await fill(room, 20, 0);
    const stuckIds = await fill(stuck, 20, 0);
    // One group read everything and acked; one is stuck on an early pending entry.
    await redis.xgroup('CREATE', stuck, 'broadcast', '$');
    await redis.xgroup('CREATE', stuck, 'archival', '0');
    await redis.xreadgroup('GROUP', 'archival', 'archiver-1', 'COUNT', 3, 'STREAMS', stuck, '>');
    await fill(audit, 10, 2 * DAY); // all older than a day (second policy)
    await fill(audit + ':fresh', 10, 0);

    const dry = await streamTrim(d.config, testRun(), { dryRun: true, nowMs: NOW });
    expect(await redis.xlen(room)).toBe(20);
    expect(dry.totals.streams).toBe(4);

    const r = await streamTrim(d.config, testRun(), { nowMs: NOW });
    expect(await redis.xlen(room)).toBe(5); // maxLen 5 (messages policy, matched first)
    expect(await redis.xlen(audit)).toBe(0); // maxAge 1d
    expect(await redis.xlen(audit + ':fresh')).toBe(10);
    // The stuck group's three pending entries, and everything after them, stay.
    const left = await redis.xrange(stuck, '-', '+');
    expect(left[0]![0]).toBe(stuckIds[0]);
    expect(left.length).toBe(20);
    // Streams trimmed plainly to their policy are only counted; the one a group held back is listed in full.
    expect(r.totals).toMatchObject({ streams: 4, trimmed: 2, heldBack: 1 });
    expect(r.streams.map((s) => s.key)).toEqual([stuck]);
    const held = r.streams[0]!;
    expect(held.heldBack).toBe(true);
    expect(held.floor).toMatchObject({ group: 'archival', reason: 'pending', consumer: 'archiver-1' });
    expect(r.warnings.some((w) => w.includes(stuck) && /archival/.test(w) && /archiver-1/.test(w))).toBe(true);

    // The stuck consumer acknowledges and the group reads on: the next run meets the policy.
    await redis.xack(stuck, 'archival', ...stuckIds.slice(0, 3));
    await redis.xgroup('SETID', stuck, 'archival', '$');
    await streamTrim(d.config, testRun(), { nowMs: NOW });
    expect(await redis.xlen(stuck)).toBe(5);
    const audited = await sql<{ outcome: string }>(d.metaUrl, `SELECT outcome FROM shardctl.audit_log WHERE command = 'stream trim' ORDER BY id`);
    expect(audited.map((a) => a.outcome)).toEqual(['success', 'success']);
  });

  it('info shows length, groups, lag and the oldest pending entry', async () => {
    const key = `${p}messages:{room-9}`;
    await fill(key, 4, 0);
    await redis.xgroup('CREATE', key, 'moderation', '0');
    await redis.xreadgroup('GROUP', 'moderation', 'mod-1', 'COUNT', 1, 'STREAMS', key, '>');
    const info = await streamInfoReport(d.config, { pattern: key, nowMs: NOW });
    expect(info.streams).toHaveLength(1);
    const s = info.streams[0]!;
    expect(s).toMatchObject({ key, length: 4, policy: `${p}messages:*` });
    expect(s.groups[0]).toMatchObject({ name: 'moderation', pending: 1, lag: 3 });
    expect(s.groups[0]!.oldestPending).toMatchObject({ consumer: 'mod-1' });
  });

  it('the CLI: --json is one document; --force needs --yes without a terminal; a Redis that is down is a clear error naming it, exit 1', async () => {
    const j = await runCli(['-c', d.configPath, '--json', 'stream', 'trim', '--dry-run']);
    expect(j.exitCode, j.stderr).toBe(0);
    expect(JSON.parse(j.stdout)).toMatchObject({ ok: true, command: 'stream trim', data: { dryRun: true } });
    const refused = await runCli(['-c', d.configPath, 'stream', 'trim', '--force']);
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toMatch(/--yes/);

    await d.rewrite((raw) => {
      raw.redis = { url: 'redis://127.0.0.1:1', prefix: p };
    });
    try {
      const down = await runCli(['-c', d.configPath, 'stream', 'info']);
      expect(down.exitCode).toBe(1);
      expect(down.stderr).toMatch(/127\.0\.0\.1:1/);
      const trimDown = await streamTrim(d.config, testRun(), { nowMs: NOW }).catch((e: unknown) => e);
      expect(trimDown).toBeInstanceOf(OperationError);
    } finally {
      await d.rewrite((raw) => {
        raw.redis = { url: redisUrl(), prefix: p };
      });
    }
  });
});
