import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Ring, type RingSpec } from '../../src/core/ring.js';
import { publishRing, ringChannel as publisherChannel, ringKey as publisherKey } from '../../src/redis/ring-publisher.js';
import {
  createRouter,
  FENCE_SQLSTATE,
  fencedWrite,
  ringChannel,
  ringKey,
  RingUnavailableError,
  routingHash,
  withFencedRetry,
  type RingInfo,
  type Router,
} from '../../src/router/index.js';
import { DEFAULT_TEST_PG_URL, DEFAULT_TEST_REDIS_URL } from '../support/test-servers.js';

/*
 * The application router (`shardctl/router`) against the real test servers:
 * it routes as the CLI's ring does, follows the ring published on Redis,
 * falls back to the metadata database, and recognises the fenced-write
 * SQLSTATEs that PostgreSQL raises during a move.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');

function provided(key: 'pgUrl' | 'redisUrl'): string | null | undefined {
  try {
    return inject(key);
  } catch {
    return undefined;
  }
}
const PG_URL = provided('pgUrl') ?? process.env.SHARDCTL_TEST_PG_URL ?? DEFAULT_TEST_PG_URL;
const REDIS_URL = provided('redisUrl') ?? process.env.SHARDCTL_TEST_REDIS_URL ?? DEFAULT_TEST_REDIS_URL;
/** A port nothing listens on: a Redis that does not answer. */
const DEAD_REDIS_URL = 'redis://127.0.0.1:1';

const SPEC_A: RingSpec = {
  vnodes: 100,
  members: [
    { id: 'shard-0', weight: 1 },
    { id: 'shard-1', weight: 1 },
    { id: 'shard-2', weight: 2 },
  ],
};
const SPEC_B: RingSpec = { vnodes: 100, members: [...SPEC_A.members, { id: 'shard-3', weight: 1 }] };
const SPEC_C: RingSpec = { vnodes: 50, members: [{ id: 'shard-9', weight: 1 }] };

function testPrefix(): string {
  return `test-router-${process.pid}-${randomBytes(4).toString('hex')}:`;
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** A promise of the next ring the router installs whose epoch is `epoch` (the onChange callback resolves it). */
function changes() {
  const seen: RingInfo[] = [];
  const waiters: Array<{ epoch: number; resolve: (r: RingInfo) => void }> = [];
  return {
    seen,
    onChange(ring: RingInfo) {
      seen.push(ring);
      for (const w of waiters.filter((x) => x.epoch === ring.epoch)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(ring);
      }
    },
    next(epoch: number): Promise<RingInfo> {
      const found = seen.find((r) => r.epoch === epoch);
      if (found) return Promise.resolve(found);
      return new Promise((resolve) => waiters.push({ epoch, resolve }));
    },
  };
}

describe('shardctl/router', () => {
  let redis: Redis;
  let db: pg.Client;
  const prefixes: string[] = [];
  const routers: Router[] = [];

  function prefix(): string {
    const p = testPrefix();
    prefixes.push(p);
    return p;
  }

  async function router(options: Parameters<typeof createRouter>[0]): Promise<Router> {
    const r = await createRouter(options);
    routers.push(r);
    return r;
  }

  beforeAll(async () => {
    redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    db = new pg.Client({ connectionString: PG_URL });
    await db.connect();
  });

  afterAll(async () => {
    for (const r of routers) await r.close();
    for (const p of prefixes) await redis.del(ringKey(p));
    await redis?.quit();
    await db?.end();
  });

  describe('routing', () => {
    it('hashes the SPEC vectors', () => {
      expect(routingHash('room-1')).toBe(878070096);
      expect(routingHash('room-42')).toBe(2226950767);
      expect(routingHash('42')).toBe(2714814184);
    });

    it('names the key and channel as the publisher does', () => {
      expect(ringKey('x:')).toBe(publisherKey('x:'));
      expect(ringChannel('x:')).toBe(publisherChannel('x:'));
      expect(ringKey()).toBe('shardctl:ring');
      expect(ringChannel()).toBe('shardctl:ring:changed');
    });

    it('agrees with Ring.build(spec).locate for 1,000 keys of a ring read from Redis', async () => {
      const p = prefix();
      await publishRing(redis, p, { epoch: 7, ...SPEC_A });
      const r = await router({ redis: REDIS_URL, prefix: p });
      expect(r.epoch).toBe(7);
      expect(r.ring.source).toBe('redis');
      const reference = Ring.build(SPEC_A);
      const owners = new Set<string>();
      for (let i = 0; i < 1_000; i++) {
        const key = i % 2 === 0 ? `room-${i}` : randomBytes(6).toString('hex');
        owners.add(r.shardFor(key));
        expect(r.shardFor(key)).toBe(reference.locate(key));
      }
      expect(owners.size).toBe(3);
      // Numbers and bigints route as their ::text form.
      expect(r.shardFor(42)).toBe(reference.locate('42'));
      expect(r.shardFor(42n)).toBe(reference.locate('42'));
      expect(r.shardFor(-7)).toBe(reference.locate('-7'));
      expect(r.shardFor(2n ** 63n - 1n)).toBe(reference.locate('9223372036854775807'));
      expect(() => r.shardFor(2 ** 60)).toThrow(/bigint or a string/);
    });

    it('routes a key as PostgreSQL hashes its key::text', async () => {
      const p = prefix();
      await publishRing(redis, p, { epoch: 1, ...SPEC_A });
      const r = await router({ redis: REDIS_URL, prefix: p });
      const { rows } = await db.query<{ t: string; h: string }>(
        `SELECT k::text AS t, ('x' || left(md5(k::text), 8))::bit(32)::bigint AS h
           FROM (VALUES (42::bigint), (-1), (9007199254740993)) v(k)`,
      );
      for (const row of rows) {
        expect(routingHash(row.t)).toBe(Number(row.h));
        expect(r.shardFor(BigInt(row.t))).toBe(Ring.build(SPEC_A).locate(row.t));
      }
    });

    it('works with an existing ioredis client and leaves it open on close', async () => {
      const p = prefix();
      await publishRing(redis, p, { epoch: 3, ...SPEC_A });
      const seen = changes();
      const r = await createRouter({ redis, prefix: p, onChange: seen.onChange });
      expect(r.epoch).toBe(3);
      await publishRing(redis, p, { epoch: 4, ...SPEC_B });
      expect((await seen.next(4)).epoch).toBe(4);
      await r.close();
      expect(await redis.ping()).toBe('PONG');
    });
  });

  describe('following the ring', () => {
    it('follows a PUBLISH on the channel and ignores an older epoch published afterwards', async () => {
      const p = prefix();
      await publishRing(redis, p, { epoch: 1, ...SPEC_A });
      const seen = changes();
      const r = await router({ redis: REDIS_URL, prefix: p, onChange: seen.onChange });
      expect(r.epoch).toBe(1);
      expect(seen.seen.map((x) => x.epoch)).toEqual([1]);

      await publishRing(redis, p, { epoch: 5, ...SPEC_B });
      const five = await seen.next(5);
      expect(five.source).toBe('channel');
      expect(r.epoch).toBe(5);
      const refB = Ring.build(SPEC_B);
      for (let i = 0; i < 200; i++) expect(r.shardFor(`room-${i}`)).toBe(refB.locate(`room-${i}`));

      // An out-of-order message (epoch 2 < 5), then a newer one (6): messages on
      // one channel arrive in order, so once 6 is in, 2 was seen and refused.
      const publish = (epoch: number, spec: RingSpec) =>
        redis.publish(ringChannel(p), JSON.stringify({ epoch, hash: 'md5-be32', ...spec, publishedAt: new Date().toISOString() }));
      await publish(2, SPEC_C);
      await publish(6, SPEC_A);
      await seen.next(6);
      expect(seen.seen.map((x) => x.epoch)).toEqual([1, 5, 6]);
      expect(r.epoch).toBe(6);

      // A reload that finds an older ring in the key keeps the newer one.
      await redis.set(ringKey(p), JSON.stringify({ epoch: 3, hash: 'md5-be32', ...SPEC_C }));
      expect(await r.reload()).toBe(6);
      expect(r.shardFor('room-1')).toBe(Ring.build(SPEC_A).locate('room-1'));
    });

    it('reports a message that holds no valid ring and keeps its ring', async () => {
      const p = prefix();
      await publishRing(redis, p, { epoch: 1, ...SPEC_A });
      const seen = changes();
      const errors: Error[] = [];
      let reported!: () => void;
      const gotError = new Promise<void>((resolve) => (reported = resolve));
      const r = await router({
        redis: REDIS_URL,
        prefix: p,
        onChange: seen.onChange,
        onError: (err) => {
          errors.push(err);
          reported();
        },
      });
      await redis.publish(ringChannel(p), JSON.stringify({ epoch: 9, hash: 'crc32', ...SPEC_B }));
      await gotError;
      expect(errors[0]?.message).toMatch(/hash "crc32"/);
      expect(r.epoch).toBe(1);
    });
  });

  describe('the metadata fallback', () => {
    let meta: { name: string; url: string } | undefined;
    let empty: { name: string; url: string } | undefined;

    beforeAll(async () => {
      const tag = `${process.pid}_${randomBytes(4).toString('hex')}`;
      meta = { name: `sct_router_meta_${tag}`, url: '' };
      empty = { name: `sct_router_empty_${tag}`, url: '' };
      for (const d of [meta, empty]) {
        await adminQuery(`CREATE DATABASE ${d.name}`);
        d.url = withDatabase(PG_URL, d.name);
        const c = new pg.Client({ connectionString: d.url });
        await c.connect();
        try {
          await c.query(`CREATE SCHEMA shardctl`);
          await c.query(`CREATE TABLE shardctl.ring_epochs (
            epoch bigint PRIMARY KEY, vnodes int, members jsonb, reason text, created_by text,
            created_at timestamptz DEFAULT now())`);
          if (d === meta) {
            const insert = `INSERT INTO shardctl.ring_epochs (epoch, vnodes, members, reason, created_by) VALUES ($1, $2, $3, 'test', 'router.test')`;
            await c.query(insert, [11, SPEC_A.vnodes, JSON.stringify(SPEC_A.members)]);
            await c.query(insert, [12, SPEC_B.vnodes, JSON.stringify(SPEC_B.members)]);
          }
        } finally {
          await c.end();
        }
      }
    });

    afterAll(async () => {
      for (const d of [meta, empty]) if (d) await adminQuery(`DROP DATABASE IF EXISTS ${d.name} WITH (FORCE)`);
    });

    it('reads the newest ring_epochs row when the Redis key is absent, then follows the channel', async () => {
      const p = prefix();
      const seen = changes();
      const r = await router({ redis: REDIS_URL, metadataUrl: meta!.url, prefix: p, onChange: seen.onChange });
      expect(r.epoch).toBe(12);
      expect(r.ring.source).toBe('metadata');
      const refB = Ring.build(SPEC_B);
      for (let i = 0; i < 200; i++) expect(r.shardFor(i)).toBe(refB.locate(String(i)));

      // Subscribed all the same: a ring published later is followed.
      await publishRing(redis, p, { epoch: 13, ...SPEC_C });
      await seen.next(13);
      expect(r.shardFor('anything')).toBe('shard-9');
    });

    it('reads the metadata database alone, and when Redis does not answer', async () => {
      const alone = await router({ metadataUrl: meta!.url });
      expect(alone.epoch).toBe(12);
      const unreachable = await router({ redis: DEAD_REDIS_URL, metadataUrl: meta!.url, timeoutMs: 2_000 });
      expect(unreachable.epoch).toBe(12);
      expect(unreachable.ring.source).toBe('metadata');
    });

    it('re-reads the metadata database every refreshMs without being asked, and a reload takes the newer of Redis and the metadata database', async () => {
      const seen = changes();
      const polling = await router({ metadataUrl: meta!.url, refreshMs: 50, onChange: seen.onChange });
      expect(polling.epoch).toBe(12);
      const p = prefix();
      await publishRing(redis, p, { epoch: 13, ...SPEC_C });
      const both = await router({ redis: REDIS_URL, metadataUrl: meta!.url, prefix: p, refreshMs: 0 });
      expect(both.epoch).toBe(13);
      const c = new pg.Client({ connectionString: meta!.url });
      await c.connect();
      try {
        // Switched in the metadata database, not (yet) published: as between an online move's switch and its publish.
        await c.query(`INSERT INTO shardctl.ring_epochs (epoch, vnodes, members, reason, created_by) VALUES (14, $1, $2, 'test', 'router.test')`, [SPEC_A.vnodes, JSON.stringify(SPEC_A.members)]);
        await seen.next(14);
        expect(polling.epoch).toBe(14);
        expect(await both.reload()).toBe(14);
      } finally {
        await c.query(`DELETE FROM shardctl.ring_epochs WHERE epoch = 14`);
        await c.end();
      }
    });

    it('rejects with a clear error when neither source has a ring', async () => {
      const p = prefix();
      const err = await createRouter({ redis: REDIS_URL, metadataUrl: empty!.url, prefix: p }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RingUnavailableError);
      expect((err as Error).message).toContain(`has no key ${ringKey(p)}`);
      expect((err as Error).message).toContain('has no row in shardctl.ring_epochs');

      const dead = await createRouter({ redis: DEAD_REDIS_URL, timeoutMs: 2_000 }).catch((e: unknown) => e);
      expect(dead).toBeInstanceOf(RingUnavailableError);
      expect((dead as Error).message).toMatch(/no ring to route with: Redis \(redis:\/\/127\.0\.0\.1:1\)/);

      await expect(createRouter({})).rejects.toThrow(/give `redis`/);
    });
  });

  describe('fenced writes', () => {
    async function raise(code: string, detail = 'plan=p-test move=3'): Promise<never> {
      await db.query(`DO $$ BEGIN RAISE EXCEPTION 'fenced' USING ERRCODE = '${code}', DETAIL = '${detail}'; END $$`);
      throw new Error('the DO block did not raise');
    }
    const caught = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);

    it('recognises SH001 and SH002 raised by PostgreSQL, and nothing else', async () => {
      expect(fencedWrite(await caught(raise('SH001')))).toEqual({ kind: 'moving', code: 'SH001', detail: 'plan=p-test move=3' });
      expect(fencedWrite(await caught(raise('SH002', 'plan=p-9 move=1')))).toEqual({ kind: 'moved', code: 'SH002', detail: 'plan=p-9 move=1' });
      expect(FENCE_SQLSTATE).toEqual({ moving: 'SH001', moved: 'SH002' });

      // A wrapped driver error (as ORMs do) is found through `cause`.
      const wrapped = new Error('query failed', { cause: await caught(raise('SH002')) });
      expect(fencedWrite(wrapped)?.kind).toBe('moved');

      await db.query('CREATE TEMP TABLE IF NOT EXISTS fence_uniq (k int PRIMARY KEY)');
      await db.query('INSERT INTO fence_uniq VALUES (1) ON CONFLICT DO NOTHING');
      const unique = await caught(db.query('INSERT INTO fence_uniq VALUES (1)'));
      expect((unique as { code?: string }).code).toBe('23505');
      expect(fencedWrite(unique)).toBeNull();
      expect(fencedWrite(await caught(raise('P0001')))).toBeNull();
      expect(fencedWrite(undefined)).toBeNull();
      expect(fencedWrite('SH001')).toBeNull();
    });

    it('withFencedRetry retries twice-moving then succeeds, rethrows others at once, and gives up after attempts', async () => {
      const p = prefix();
      await publishRing(redis, p, { epoch: 1, ...SPEC_A });
      const r = await router({ redis: REDIS_URL, prefix: p });

      let calls = 0;
      const value = await withFencedRetry(
        r,
        async () => {
          calls++;
          if (calls <= 2) await raise('SH001');
          return r.shardFor('room-1');
        },
        { baseDelayMs: 5 },
      );
      expect(calls).toBe(3);
      expect(value).toBe(Ring.build(SPEC_A).locate('room-1'));

      calls = 0;
      const other = await caught(
        withFencedRetry(r, async () => {
          calls++;
          await db.query('SELECT 1/0');
        }),
      );
      expect((other as { code?: string }).code).toBe('22012');
      expect(calls).toBe(1);

      calls = 0;
      const last = await caught(
        withFencedRetry(
          r,
          async () => {
            calls++;
            await raise('SH002', `plan=p move=${calls}`);
          },
          { attempts: 4, baseDelayMs: 1, maxDelayMs: 2 },
        ),
      );
      expect(calls).toBe(4);
      expect(fencedWrite(last)).toEqual({ kind: 'moved', code: 'SH002', detail: 'plan=p move=4' });
    });

    it('withFencedRetry reloads the ring after SH002, so the retry routes to the new owner', async () => {
      const p = prefix();
      await publishRing(redis, p, { epoch: 1, ...SPEC_A });
      const r = await router({ redis: REDIS_URL, prefix: p });
      const routed: string[] = [];
      const result = await withFencedRetry(r, async () => {
        routed.push(r.shardFor('room-42'));
        if (routed.length === 1) {
          // The ring changed in the key, and the announcement never came: the reload must find it.
          await redis.set(ringKey(p), JSON.stringify({ epoch: 2, hash: 'md5-be32', ...SPEC_C }));
          await raise('SH002');
        }
        return r.epoch;
      });
      expect(result).toBe(2);
      expect(routed).toEqual([Ring.build(SPEC_A).locate('room-42'), 'shard-9']);
    });
  });

  describe('the package', () => {
    it("imports only pure core code, ioredis and pg (never the CLI's config, engine or zod)", () => {
      const dir = path.join(ROOT, 'src/router');
      for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
        const text = readFileSync(path.join(dir, file), 'utf8');
        const specifiers = [...text.matchAll(/(?:from|import\()\s*'([^']+)'/g)].map((m) => m[1]!);
        for (const s of specifiers) {
          if (s === 'shardctl/router') continue; // the TSDoc example
          expect(s, `${file} imports ${s}`).toMatch(/^(\.\/[\w-]+\.js|\.\.\/core\/(ring|routing-hash)\.js|ioredis|pg)$/);
        }
      }
    });

    it.runIf(existsSync(path.join(ROOT, 'dist/router/index.js')))('resolves shardctl/router through the exports map in plain Node', async () => {
      const script = `const m = await import('shardctl/router'); console.log(typeof m.createRouter, typeof m.withFencedRetry, m.FENCE_SQLSTATE.moved, m.routingHash('room-1'));`;
      const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT });
      expect(stdout.trim()).toBe('function function SH002 878070096');
      expect(existsSync(path.join(ROOT, 'dist/router/index.d.ts'))).toBe(true);
    });
  });
});
