import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeadlineExceeded, SharedHealthSession } from '../../src/postgres/health-session.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';

/*
 * The one session a health run keeps per database and shares between its
 * groups (src/postgres/health-session.ts), on the shared test server and on
 * a listener that accepts connections and never answers (what a client sees
 * of a SIGSTOPped server or of a firewall dropping packets).
 */

function sessionOn(url: string, timeoutMs: number): { session: SharedHealthSession; controller: AbortController } {
  const controller = new AbortController();
  const session = new SharedHealthSession(url, { deadline: Date.now() + timeoutMs, signal: controller.signal, label: 'shard shard-t' });
  return { session, controller };
}

describe('SharedHealthSession', () => {
  let db: TestDatabase;
  let hole: net.Server;
  const held = new Set<net.Socket>();

  beforeAll(async () => {
    db = await createTestDatabase('sct_hsess');
    hole = net.createServer((s) => {
      held.add(s);
      s.on('error', () => {});
      s.on('close', () => held.delete(s));
    });
    await new Promise<void>((resolve) => hole.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    for (const s of held) s.destroy();
    await new Promise((resolve) => hole?.close(resolve));
    await db?.drop();
  });

  it('runs its uses one at a time, in the order asked, on one backend', async () => {
    const { session } = sessionOn(db.url, 10_000);
    const events: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    try {
      const first = session.use(async (client) => {
        events.push('first starts');
        const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        await gate;
        events.push('first ends');
        return rows[0]!.pid;
      });
      const second = session.use(async (client) => {
        events.push('second starts');
        return (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      });
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(events).toEqual(['first starts']);
      release();
      const [a, b] = await Promise.all([first, second]);
      expect(events).toEqual(['first starts', 'first ends', 'second starts']);
      expect(a).toBe(b);
    } finally {
      await session.close();
    }
  });

  it('a use that fails inside a transaction is its failure alone: the next use runs outside any transaction', async () => {
    const { session } = sessionOn(db.url, 10_000);
    try {
      await expect(
        session.use(async (client) => {
          await client.query('BEGIN');
          await client.query('SELECT 1 / 0');
        }),
      ).rejects.toThrow(/division by zero/);
      const { rows } = await session.use((client) => client.query<{ now: boolean }>('SELECT now() = statement_timestamp() AS now'));
      expect(rows[0]!.now).toBe(true);
    } finally {
      await session.close();
    }
  });

  it('is read-only and bounded by the time left: default_transaction_read_only and statement_timeout are set', async () => {
    const { session } = sessionOn(db.url, 3_000);
    try {
      const { rows } = await session.use((client) =>
        client.query<{ ro: string; st: string }>("SELECT current_setting('default_transaction_read_only') AS ro, current_setting('statement_timeout') AS st"),
      );
      expect(rows[0]!.ro).toBe('on');
      expect(Number.parseInt(rows[0]!.st, 10)).toBeGreaterThan(0);
      expect(Number.parseInt(rows[0]!.st, 10)).toBeLessThanOrEqual(3_000);
      await expect(session.use((client) => client.query('CREATE TABLE t (id int)'))).rejects.toThrow(/read-only transaction/);
    } finally {
      await session.close();
    }
  });

  it('a server that never answers: the use in flight and every queued one reject with DeadlineExceeded by the deadline', async () => {
    const { port } = hole.address() as net.AddressInfo;
    const { session } = sessionOn(`postgres://postgres@127.0.0.1:${port}/hung`, 700);
    const started = Date.now();
    try {
      const uses = [session.use((c) => c.query('SELECT 1')), session.use((c) => c.query('SELECT 2')), session.use((c) => c.query('SELECT 3'))];
      const settled = await Promise.allSettled(uses);
      const took = Date.now() - started;
      for (const s of settled) {
        expect(s.status).toBe('rejected');
        expect((s as PromiseRejectedResult).reason).toBeInstanceOf(DeadlineExceeded);
        expect(((s as PromiseRejectedResult).reason as Error).message).toMatch(/^shard shard-t: no answer within 0\.7s$/);
      }
      expect(took).toBeGreaterThanOrEqual(600);
      expect(took).toBeLessThan(1_200);
    } finally {
      await session.close();
    }
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it('the run\'s abort (SIGINT, or the deadline signalled) fails a running use at once', async () => {
    const { session, controller } = sessionOn(db.url, 10_000);
    try {
      const sleeping = session.use((c) => c.query('SELECT pg_sleep(5)'));
      const queued = session.use((c) => c.query('SELECT 1'));
      await new Promise((resolve) => setTimeout(resolve, 200));
      const aborted = Date.now();
      controller.abort();
      await expect(sleeping).rejects.toBeInstanceOf(DeadlineExceeded);
      await expect(queued).rejects.toBeInstanceOf(DeadlineExceeded);
      expect(Date.now() - aborted).toBeLessThan(200);
    } finally {
      await session.close();
    }
  });
});
