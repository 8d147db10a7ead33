import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { ShardctlConfig } from '../../src/config/schema.js';
import { HEALTH_CHECKS } from '../../src/core/health-checks.js';
import { runHealth } from '../../src/engine/health/run.js';
import type { CheckResult, HealthReport } from '../../src/engine/health/types.js';
import { quoteIdent } from '../../src/postgres/ident.js';
import { createTestDatabase, pgUrl, type TestDatabase } from '../support/databases.js';
import { sql } from '../support/migrations.js';
import { startSecondServer, type SecondServer } from '../support/second-server.js';

/*
 * The `shards` group of `health` on real servers. The shards are uniquely
 * named databases on the shared test server, where other test files run
 * transactions at the same time: every condition is made for real in one
 * shard's database, and the other shard and the metadata database (same
 * server) must not see it. Thresholds are set low (warning 0.2 s) so a
 * condition held a fraction of a second fires; critical stays at 1 h.
 */

const SHARD_CHECKS = HEALTH_CHECKS.filter((c) => c.group === 'shards').map((c) => c.name);
const LOW = (check: string) => ({ [check]: { warning: 0.2, critical: '1h' } });

function configOf(metaUrl: string, shards: Array<{ id: string; url: string }>, health: { timeout?: string; thresholds?: Record<string, unknown> } = {}): ShardctlConfig {
  return parseConfig({ metadata: { url: metaUrl }, shards, health }, 'health-shards.test.ts', {});
}

function result(report: HealthReport, check: string, target: string): CheckResult {
  const found = report.results.find((r) => r.check === check && r.target === target);
  if (!found) throw new Error(`no ${check} result for ${target}: ${JSON.stringify(report.results.map((r) => `${r.check}@${r.target}`))}`);
  return found;
}

/** A session of its own, named so a message can be checked for it. */
async function session(url: string, applicationName: string): Promise<pg.Client & { pid: number }> {
  const client = new pg.Client({ connectionString: url, application_name: applicationName });
  client.on('error', () => {});
  await client.connect();
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  return Object.assign(client, { pid: rows[0]!.pid });
}

async function waitUntil(what: string, probe: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function stateOf(pid: number): Promise<{ state: string | null; wait_event_type: string | null } | undefined> {
  return (await sql<{ state: string | null; wait_event_type: string | null }>(pgUrl(), 'SELECT state, wait_event_type FROM pg_stat_activity WHERE pid = $1', [pid]))[0];
}

describe('health: shards on the shared test server', () => {
  let meta: TestDatabase;
  let shard0: TestDatabase;
  let shard1: TestDatabase;
  const shards = () => [
    { id: 'shard-0', url: shard0.url },
    { id: 'shard-1', url: shard1.url },
  ];
  const health = (thresholds: Record<string, unknown> = {}) => runHealth(configOf(meta.url, shards(), { thresholds }), { only: ['shards'] });

  beforeAll(async () => {
    meta = await createTestDatabase('sct_hmeta');
    shard0 = await createTestDatabase('sct_hs0');
    shard1 = await createTestDatabase('sct_hs1');
    for (const s of [shard0, shard1]) await sql(s.url, 'CREATE TABLE items (id int PRIMARY KEY, note text); INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 100) g');
  });
  afterAll(async () => {
    await Promise.all([meta, shard0, shard1].map((d) => d?.drop()));
  });

  it('an all-OK deployment: every check OK on every shard and on the metadata database (target "metadata")', async () => {
    // latency at 0.5 s: a 2-core CI machine running two test files can stall a round trip past the 50 ms default.
    const report = await health({ latency: { warning: 0.5 } });
    for (const target of ['metadata', 'shard-0', 'shard-1']) {
      for (const check of SHARD_CHECKS) {
        const r = result(report, check, target);
        expect(r.status, `${check} on ${target}: ${r.message}`).toBe('ok');
        expect(r.group).toBe('shards');
        expect(r.labels).toEqual({ shard: target });
      }
      expect(result(report, 'reachable', target).value).toBe(1);
      expect(result(report, 'server_version', target).value).toBeGreaterThanOrEqual(130000);
      expect(result(report, 'latency', target).value).toBeGreaterThan(0);
      expect(result(report, 'replication_lag', target)).toMatchObject({ value: null, message: 'no replicas' });
      expect(result(report, 'longest_transaction', target)).toMatchObject({ value: 0 });
      expect(result(report, 'lock_waits', target)).toMatchObject({ value: 0 });
      expect(result(report, 'slow_statements', target).message).toMatch(/not installed/);
    }
    expect(result(report, 'database_size', 'shard-0').message).toContain(shard0.name);
    expect(result(report, 'database_size', 'shard-0').value).toBeGreaterThan(1_000_000);
    expect(report.results.filter((r) => r.group === 'shards')).toHaveLength(SHARD_CHECKS.length * 3);
  });

  it('a transaction held open fires longest_transaction on its shard only, naming the session', async () => {
    const holder = await session(shard0.url, 'sct-open-tx');
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT count(*) FROM items');
      await sleep(300);
      const report = await health(LOW('longest_transaction'));
      const r = result(report, 'longest_transaction', 'shard-0');
      expect(r.status, r.message).toBe('warning');
      expect(r.value).toBeGreaterThanOrEqual(0.3);
      expect(r.message).toContain(`pid ${holder.pid} (sct-open-tx)`);
      expect(r.message).toMatch(/open [\d.]+m?s, now idle in transaction/);
      expect(r.message).toContain('SELECT count(*) FROM items');
      // Same server, other databases: not theirs.
      expect(result(report, 'longest_transaction', 'shard-1').status).toBe('ok');
      expect(result(report, 'longest_transaction', 'metadata').status).toBe('ok');
    } finally {
      await holder.end();
    }
  });

  it('a session idle in transaction fires idle_in_transaction, naming it', async () => {
    const idle = await session(shard1.url, 'sct-idle-tx');
    try {
      await idle.query('BEGIN');
      await idle.query("UPDATE items SET note = 'x' WHERE id = 1");
      await sleep(300);
      const report = await health(LOW('idle_in_transaction'));
      const r = result(report, 'idle_in_transaction', 'shard-1');
      expect(r.status, r.message).toBe('warning');
      expect(r.message).toMatch(/^1 session idle in transaction/);
      expect(r.message).toContain(`pid ${idle.pid} (sct-idle-tx), idle in transaction for`);
      expect(r.message).toContain('UPDATE items SET note');
      expect(result(report, 'idle_in_transaction', 'shard-0').status).toBe('ok');
    } finally {
      await idle.end();
    }
  });

  it('a session waiting on a lock another holds fires lock_waits, naming the waiter and its blocker', async () => {
    const holder = await session(shard0.url, 'sct-lock-holder');
    const waiter = await session(shard0.url, 'sct-lock-waiter');
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE items IN ACCESS EXCLUSIVE MODE');
      const waiting = waiter.query('SELECT count(*) FROM items').catch((err: Error) => err);
      await waitUntil('the waiter to queue for the lock', async () => (await stateOf(waiter.pid))?.wait_event_type === 'Lock');
      await sleep(250);
      const report = await health(LOW('lock_waits'));
      const r = result(report, 'lock_waits', 'shard-0');
      expect(r.status, r.message).toBe('warning');
      expect(r.value).toBeGreaterThanOrEqual(0.2);
      expect(r.message).toMatch(/^1 session waiting for a lock/);
      expect(r.message).toContain(`pid ${waiter.pid} (sct-lock-waiter)`);
      expect(r.message).toContain(`for AccessShareLock on items behind pid ${holder.pid}: "SELECT count(*) FROM items"`);
      expect(result(report, 'lock_waits', 'shard-1').status).toBe('ok');
      await holder.query('ROLLBACK');
      expect(await waiting).not.toBeInstanceOf(Error);
    } finally {
      await holder.end();
      await waiter.end();
    }
  });

  it('a long query in another session fires longest_query, naming it', async () => {
    const sleeper = await session(shard1.url, 'sct-long-query');
    try {
      const running = sleeper.query('SELECT pg_sleep(30) /* long */').catch((err: Error) => err);
      await waitUntil('the query to run', async () => (await stateOf(sleeper.pid))?.state === 'active');
      await sleep(250);
      const report = await health(LOW('longest_query'));
      const r = result(report, 'longest_query', 'shard-1');
      expect(r.status, r.message).toBe('warning');
      expect(r.message).toContain(`pid ${sleeper.pid} (sct-long-query), active for`);
      expect(r.message).toContain('SELECT pg_sleep(30)');
      expect(result(report, 'longest_query', 'shard-0').status).toBe('ok');
      await sql(pgUrl(), 'SELECT pg_cancel_backend($1)', [sleeper.pid]);
      expect(await running).toBeInstanceOf(Error);
    } finally {
      await sleeper.end();
    }
  });

  it('pg_stat_statements installed but not preloaded: slow_statements has no value and says so, the rest measure', async () => {
    // Per database: only shard-1 has it.
    await sql(shard1.url, 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    const report = await health();
    const r = result(report, 'slow_statements', 'shard-1');
    expect(r).toMatchObject({ status: 'ok', value: null });
    expect(r.message).toMatch(/installed .* but not loaded .*shared_preload_libraries/);
    expect(result(report, 'slow_statements', 'shard-0').message).toMatch(/not installed/);
    expect(result(report, 'cache_hit_ratio', 'shard-1').status).not.toBe('unknown');
  });

  it('--check runs one check of the group', async () => {
    const report = await runHealth(configOf(meta.url, shards()), { check: 'xid_age' });
    expect(report.results.map((r) => `${r.check}@${r.target}`).sort()).toEqual(['xid_age@metadata', 'xid_age@shard-0', 'xid_age@shard-1']);
    expect(result(report, 'xid_age', 'shard-0').value).toBeGreaterThan(0);
  });
});

describe('health: a shard on a server of its own', () => {
  let server: SecondServer | undefined;
  let meta: TestDatabase;
  let local: TestDatabase;
  let stopped: number | null = null;
  const REMOTE_DB = 'sct_hremote';
  const shards = () => [
    { id: 'shard-0', url: local.url },
    { id: 'shard-r', url: server!.url(REMOTE_DB) },
  ];

  beforeAll(async () => {
    meta = await createTestDatabase('sct_hmeta2');
    local = await createTestDatabase('sct_hlocal');
    server = await startSecondServer();
    // pg_stat_statements needs its library loaded at server start.
    await sql(server.url(), "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'");
    await server.restart();
    await sql(server.url(), `CREATE DATABASE ${quoteIdent(REMOTE_DB)}`);
  });
  afterAll(async () => {
    if (stopped !== null) process.kill(stopped, 'SIGCONT');
    await server?.cleanup();
    await Promise.all([meta, local].map((d) => d?.drop()));
  });

  it('slow_statements reads the slowest mean time of pg_stat_statements in that database, naming the statement', async () => {
    await sql(server!.url(REMOTE_DB), 'CREATE EXTENSION pg_stat_statements');
    await sql(server!.url(REMOTE_DB), 'SELECT pg_sleep(0.3) AS slow_one');
    // Another database's slower statement is not this shard's.
    await sql(server!.url(), 'SELECT pg_sleep(0.5) AS other_database');
    const report = await runHealth(configOf(meta.url, shards(), { thresholds: LOW('slow_statements') }), { only: ['shards'] });
    const r = result(report, 'slow_statements', 'shard-r');
    expect(r.status, r.message).toBe('warning');
    expect(r.value).toBeGreaterThanOrEqual(0.3);
    expect(r.value).toBeLessThan(0.5);
    expect(r.message).toContain('pg_sleep');
    expect(result(report, 'server_version', 'shard-r').value).toBeGreaterThanOrEqual(170000);
  });

  it('an inactive replication slot: inactive_slots is the WAL it retains, naming the slot', async () => {
    const url = server!.url(REMOTE_DB);
    await sql(url, "SELECT pg_create_physical_replication_slot('sct_idle_slot', true)");
    try {
      await sql(url, 'CREATE TABLE wal_filler AS SELECT g, md5(g::text) AS t FROM generate_series(1, 20000) g');
      const report = await runHealth(configOf(meta.url, shards(), { thresholds: { inactive_slots: { warning: 1024, critical: '1TiB' } } }), { only: ['shards'] });
      const r = result(report, 'inactive_slots', 'shard-r');
      expect(r.status, r.message).toBe('warning');
      expect(r.value).toBeGreaterThan(1024);
      expect(r.message).toMatch(/^1 inactive replication slot, oldest "sct_idle_slot" \(physical\) retains/);
      expect(result(report, 'inactive_slots', 'shard-0').value).toBeNull();
    } finally {
      await sql(url, "SELECT pg_drop_replication_slot('sct_idle_slot')");
    }
  });

  it('a hanging server (postmaster SIGSTOPped): CRITICAL reachable within timeout + 1 s, the other targets report normally', async () => {
    const pid = (await server!.pid())!;
    expect(pid).toBeGreaterThan(0);
    process.kill(pid, 'SIGSTOP');
    stopped = pid;
    try {
      const started = Date.now();
      const report = await runHealth(configOf(meta.url, shards(), { timeout: '1500ms' }), { only: ['shards'] });
      const took = Date.now() - started;
      expect(took).toBeLessThan(2500);
      const r = result(report, 'reachable', 'shard-r');
      expect(r).toMatchObject({ status: 'critical', value: 0 });
      expect(r.message).toMatch(/no answer within 1\.5s/);
      expect(report.status).toBe('critical');
      for (const check of SHARD_CHECKS.filter((c) => c !== 'reachable')) {
        expect(result(report, check, 'shard-r')).toMatchObject({ status: 'unknown', value: null, message: 'not measured: shard-r is unreachable' });
      }
      for (const target of ['shard-0', 'metadata']) {
        expect(result(report, 'reachable', target)).toMatchObject({ status: 'ok', value: 1 });
        expect(result(report, 'xid_age', target).status).toBe('ok');
        expect(result(report, 'connections', target).status).not.toBe('unknown');
      }
    } finally {
      process.kill(pid, 'SIGCONT');
      stopped = null;
    }
  });

  it('a stopped server: CRITICAL reachable with the connection error, the other targets report normally', async () => {
    await server!.stop();
    const report = await runHealth(configOf(meta.url, shards()), { only: ['shards'] });
    const r = result(report, 'reachable', 'shard-r');
    expect(r).toMatchObject({ status: 'critical', value: 0 });
    expect(r.message).toMatch(/cannot connect to shard shard-r at postgres:\/\/.*ECONNREFUSED/);
    expect(result(report, 'latency', 'shard-r').status).toBe('unknown');
    for (const target of ['shard-0', 'metadata']) {
      expect(result(report, 'reachable', target)).toMatchObject({ status: 'ok', value: 1 });
      expect(result(report, 'database_size', target).value).toBeGreaterThan(0);
    }
  });
});
