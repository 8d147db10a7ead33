import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { init } from '../../src/engine/init.js';
import { shardAdd } from '../../src/engine/shards/change.js';
import { shardVerify } from '../../src/engine/shards/verify.js';
import { chooseDigest, describeTable } from '../../src/mover/table-shape.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';
import { withPg } from '../support/dataset.js';
import { createDeployment, testRun, type TestDeployment } from '../support/deployment.js';

const DOCS = 'CREATE TABLE public.docs (doc_id text PRIMARY KEY, body json NOT NULL, tags text[] NOT NULL)';

describe('row digests', () => {
  let d: TestDeployment;
  let extra: TestDatabase;

  beforeAll(async () => {
    d = await createDeployment({ shards: 2, redis: false, vnodes: 32, tables: false });
    extra = await createTestDatabase('sct_dg');
    await d.rewrite((raw) => {
      raw.tables = [{ name: 'public.docs', key: 'doc_id' }];
      raw.migration = { batchSize: 100 };
    });
    await init(d.config, testRun());
    for (const url of [...d.shardUrls, extra.url]) await withPg(url, (c) => c.query(DOCS));
    // Every doc on the shard the ring gives it, via the SQL ring.
    const { exportCurrentRing } = await import('../../src/engine/shards/info.js');
    const ringSql = (await exportCurrentRing(d.config, 'sql')).text;
    for (const [i, url] of d.shardUrls.entries()) {
      await withPg(url, async (c) => {
        await c.query(ringSql);
        await c.query(
          `INSERT INTO public.docs SELECT 'doc-' || g, json_build_object('n', g, 'text', repeat('é', g % 9)), ARRAY['t' || (g % 3)]
             FROM generate_series(1, 1500) g WHERE shardctl_locate('doc-' || g) = $1`,
          [`shard-${i}`],
        );
      });
    }
  });
  afterAll(async () => {
    await extra?.drop();
    await d?.cleanup();
  });

  it('uses hash_record_extended when both servers can, and md5 of the row text for a json column', async () => {
    await withPg(d.shardUrls[0]!, async (c) => {
      await c.query('CREATE TABLE public.plain (id bigint PRIMARY KEY, v text)');
      const docs = (await describeTable(c, { name: 'public.docs', key: 'doc_id' }))!;
      const plain = (await describeTable(c, { name: 'public.plain', key: 'id' }))!;
      await withPg(d.shardUrls[1]!, async (other) => {
        expect(await chooseDigest(c, other, docs)).toBe('md5');
        expect(await chooseDigest(c, other, plain)).toBe('hash');
      });
    });
  });

  it('a table whose rows only md5 can fingerprint moves completely, verified and cleaned', async () => {
    const all = async (urls: string[]) => {
      const rows: string[] = [];
      for (const url of urls) rows.push(...(await withPg(url, async (c) => (await c.query<{ r: string }>('SELECT t::text AS r FROM public.docs t')).rows.map((x) => x.r))));
      return rows.sort();
    };
    const before = await all(d.shardUrls);
    expect(before).toHaveLength(1500);
    const result = await shardAdd(d.config, testRun(), { id: 'shard-2', url: extra.url });
    expect(result.execution).toMatchObject({ status: 'done' });
    expect(result.execution!.moves.every((m) => m.rowsLeft === 0 && m.rowsDeleted === m.rowsCopied && m.rowsCopied > 0)).toBe(true);
    expect(await all([...d.shardUrls, extra.url])).toEqual(before);
    expect(await shardVerify(d.config)).toMatchObject({ ok: true, misplacedRows: 0 });
  });
});
