import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { init } from '../../src/engine/init.js';
import { LockLostError } from '../../src/errors.js';
import { Journal } from '../../src/metadata/journal.js';
import { Lease } from '../../src/metadata/lease.js';
import { MetadataStore } from '../../src/metadata/store.js';
import { acquireAdvisoryLock } from '../../src/postgres/advisory-lock.js';
import { connect, SESSION_SETTINGS } from '../../src/postgres/connect.js';
import { createDeployment, testRun, type TestDeployment } from '../support/deployment.js';
import { metadataLockHolder } from '../support/locks.js';
import { sql } from '../support/migrations.js';

/*
 * SPEC invariant 3 when the lock's session is lost: the lease (a fencing token
 * in the metadata database) makes the database itself refuse the writes of a
 * run that no longer holds the lock, whether or not the run has noticed.
 */

async function until(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<number> {
  const started = Date.now();
  while (!(await probe())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
  return Date.now() - started;
}

describe('the metadata lease (fencing token)', () => {
  let d: TestDeployment;
  const opened: Array<{ close(): Promise<void> }> = [];
  const open = async () => {
    const store = await MetadataStore.open(d.metaUrl);
    opened.push(store);
    return store;
  };
  const lease = (store: MetadataStore, holder: string) => Lease.acquire(store, { holder: `shardctl ${holder}`, waitMs: 0, staleAfterMs: 120_000 });

  beforeAll(async () => {
    d = await createDeployment({ shards: 1, redis: false, tables: false });
    await init(d.config, testRun());
  });
  afterAll(async () => {
    for (const s of opened) await s.close();
    await d.cleanup();
  });

  it('a write to the journal from a session without the lease is refused (SQLSTATE SHL01)', async () => {
    await expect(sql(d.metaUrl, `UPDATE shardctl.shards SET weight = weight`)).rejects.toMatchObject({ code: 'SHL01' });
    await expect(sql(d.metaUrl, `DELETE FROM shardctl.plans`)).rejects.toMatchObject({ code: 'SHL01' });
  });

  it('a run whose lock session was terminated is fenced at once, before anyone takes over; the next run bumps the generation', async () => {
    const storeA = await open();
    const a = await lease(storeA, 'test A');
    await a.take();
    const journalA = new Journal(storeA.client);
    await journalA.setShardState('shard-0', 'active');

    const pid = await metadataLockHolder(d.metaUrl);
    expect(pid).not.toBeNull();
    await sql(d.metaUrl, 'SELECT pg_terminate_backend($1, 5000)', [pid]);
    // Nobody holds the lock yet: the fence still refuses A (its lock session is gone).
    await expect(journalA.setShardState('shard-0', 'active')).rejects.toMatchObject({ code: 'SHL01' });
    const noticedMs = await until('A to notice', () => a.lostReason !== null);
    expect(noticedMs).toBeLessThan(2_000);
    expect(a.signal.aborted).toBe(true);
    await expect(a.check()).rejects.toBeInstanceOf(LockLostError);

    const storeB = await open();
    const b = await lease(storeB, 'test B');
    await b.take();
    expect(b.generation).toBe(a.generation! + 1);
    await new Journal(storeB.client).setShardState('shard-0', 'active');
    await expect(journalA.setShardState('shard-0', 'active')).rejects.toMatchObject({ code: 'SHL01' });
    await b.check();
    await b.release();
    await a.release();
  });

  it('taking the lease waits for a write of the previous holder that is in flight, and that holder cannot write after it', async () => {
    const storeA = await open();
    const a = await lease(storeA, 'test A');
    await a.take();
    // A is inside a transaction that has written (the fence holds the lease row FOR KEY SHARE) when its lock session dies.
    await storeA.client.query('BEGIN');
    await new Journal(storeA.client).setShardState('shard-0', 'active');
    await sql(d.metaUrl, 'SELECT pg_terminate_backend($1, 5000)', [await metadataLockHolder(d.metaUrl)]);
    const storeB = await open();
    const b = await lease(storeB, 'test B');
    let taken = false;
    const taking = b.take().then(() => (taken = true));
    await until('B to wait on the lease row', async () =>
      (await sql(d.metaUrl, `SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%FROM shardctl.leases%FOR UPDATE%'`)).length > 0,
    );
    expect(taken).toBe(false);
    await storeA.client.query('COMMIT');
    await taking;
    await expect(new Journal(storeA.client).setShardState('shard-0', 'active')).rejects.toMatchObject({ code: 'SHL01' });
    await b.release();
    await a.release();
  });

  it('a released lease fences its own session too', async () => {
    const store = await open();
    const a = await lease(store, 'test A');
    await a.take();
    const generation = a.generation!;
    await a.release();
    // The session setting is cleared; claim the old generation by hand: still refused.
    await store.client.query(`SELECT set_config('shardctl.lease', $1, false)`, [String(generation)]);
    await expect(new Journal(store.client).setShardState('shard-0', 'active')).rejects.toMatchObject({ code: 'SHL01' });
  });
});

describe('session settings', () => {
  let d: TestDeployment;
  beforeAll(async () => {
    d = await createDeployment({ shards: 1, redis: false, tables: false });
  });
  afterAll(async () => {
    await d.cleanup();
  });

  const show = async (client: pg.Client, name: string) => (await client.query<Record<string, string>>(`SHOW ${name}`)).rows[0]![name];

  it('every session sets TCP keepalives (30 s idle, 3 probes 10 s apart) and client_connection_check_interval, and keeps the URL\'s own options', async () => {
    expect(SESSION_SETTINGS).toEqual({ tcp_keepalives_idle: '30', tcp_keepalives_interval: '10', tcp_keepalives_count: '3', client_connection_check_interval: '10s' });
    const url = new URL(d.shardUrls[0]!);
    url.searchParams.set('options', '-c statement_timeout=4321');
    const client = await connect(url.toString(), { applicationName: 'shardctl test' });
    try {
      expect(await show(client, 'tcp_keepalives_idle')).toBe('30');
      expect(await show(client, 'tcp_keepalives_interval')).toBe('10');
      expect(await show(client, 'tcp_keepalives_count')).toBe('3');
      expect(await show(client, 'client_connection_check_interval')).toBe('10s');
      expect(await show(client, 'statement_timeout')).toBe('4321ms');
      expect(await show(client, 'application_name')).toMatch(/^shardctl\[[0-9a-f]{8}\] test$/);
    } finally {
      await client.end();
    }
    // The lock's own session, which is what a vanished client must free.
    const lock = await acquireAdvisoryLock(d.shardUrls[0]!, 'migrate', { waitMs: 0, applicationName: 'shardctl test lock', label: 'test' });
    try {
      expect(await show(lock.client, 'tcp_keepalives_idle')).toBe('30');
      expect(await show(lock.client, 'tcp_keepalives_count')).toBe('3');
    } finally {
      await lock.release();
    }
  });
});

describe('a batch written into a dead connection', () => {
  let d: TestDeployment;
  beforeAll(async () => {
    d = await createDeployment({ shards: 1, redis: false, tables: false });
    await sql(d.shardUrls[0]!, 'CREATE TABLE public.t (id int, body text)');
  });
  afterAll(async () => {
    await d.cleanup();
  });

  it('rejects instead of waiting for ever (a stalled run must never look finished)', async () => {
    const { BatchWriter } = await import('../../src/mover/hash-stream.js');
    const client = await connect(d.shardUrls[0]!, { applicationName: 'shardctl test writer' });
    const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    await sql(d.shardUrls[0]!, 'SELECT pg_terminate_backend($1, 5000)', [pid]);
    await until('the client to see its session end', () => (client as unknown as { _ended: boolean })._ended);
    const rows = Buffer.from('1\tx\n'.repeat(200_000));
    const outcome = (async () => {
      const batch = await BatchWriter.open(client, { writeSql: 'COPY public.t (id, body) FROM STDIN' });
      await batch.write(rows, 200_000);
      await batch.write(rows, 200_000);
      await batch.commit();
    })();
    const result = await Promise.race([outcome.then(() => 'committed', () => 'rejected'), sleep(5_000).then(() => 'hung')]);
    expect(result).toBe('rejected');
    await client.end().catch(() => {});
  });
});

describe('the audit log of runs that died', () => {
  let d: TestDeployment;
  beforeAll(async () => {
    d = await createDeployment({ shards: 1, redis: false, tables: false });
    await init(d.config, testRun());
  });
  afterAll(async () => {
    await d.cleanup();
  });

  it("shows a row left 'running' by a dead process as 'died', and the live run's own row as running", async () => {
    const store = await MetadataStore.open(d.metaUrl);
    try {
      // A run that was SIGKILLed: its row was never finished.
      const dead = await store.auditStart({ actor: 'cron@host', command: 'shard rebalance', commandLine: 'shardctl shard rebalance' });
      const outcome = async (id: number) => (await store.listAudit({ limit: 10 })).find((r) => r.id === id)!.outcome;
      expect(await outcome(dead)).toBe('died');
      const live = await Lease.acquire(store, { holder: 'shardctl shard add by test', waitMs: 0, staleAfterMs: 120_000 });
      await live.take();
      const mine = await store.auditStart({ actor: 'test', command: 'shard add', commandLine: 'shardctl shard add' });
      expect(await outcome(mine)).toBe('running');
      expect(await outcome(dead)).toBe('died');
      await live.release();
      expect(await outcome(mine)).toBe('died');
    } finally {
      await store.close();
    }
  });
});
