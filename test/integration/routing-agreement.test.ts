import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { init } from '../../src/engine/init.js';
import { exportCurrentRing, locateKeys } from '../../src/engine/shards/info.js';
import { createDeployment, testRun, type TestDeployment } from '../support/deployment.js';

describe('routing: SQL and the CLI agree', () => {
  let d: TestDeployment;
  let client: pg.Client;

  beforeAll(async () => {
    d = await createDeployment({ shards: 4, redis: false });
    await init(d.config, testRun());
    client = new pg.Client({ connectionString: d.shardUrls[0] });
    await client.connect();
    // The ring as an application would install it: `shard ring --format sql`.
    await client.query((await exportCurrentRing(d.config, 'sql')).text);
  });
  afterAll(async () => {
    await client?.end();
    await d?.cleanup();
  });

  it('for 10,000 random text, integer and uuid keys, shardctl.route_hash()/the SQL ring and `shard locate` give the same hash and owner', async () => {
    const texts = fc.sample(fc.string({ unit: 'grapheme', minLength: 0, maxLength: 24 }).filter((s) => !s.includes('\0')), { numRuns: 3334, seed: 42 });
    const ints = fc.sample(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), { numRuns: 3333, seed: 43 });
    const uuids = Array.from({ length: 3333 }, () => randomUUID());

    await client.query('CREATE TEMP TABLE k_text (i int, k text); CREATE TEMP TABLE k_int (i int, k bigint); CREATE TEMP TABLE k_uuid (i int, k uuid)');
    await client.query('INSERT INTO k_text SELECT * FROM unnest($1::int[], $2::text[])', [texts.map((_, i) => i), texts]);
    await client.query('INSERT INTO k_int SELECT * FROM unnest($1::int[], $2::bigint[])', [ints.map((_, i) => i), ints.map(String)]);
    await client.query('INSERT INTO k_uuid SELECT * FROM unnest($1::int[], $2::uuid[])', [uuids.map((_, i) => i), uuids]);

    for (const [table, keys] of [['k_text', texts], ['k_int', ints.map(String)], ['k_uuid', uuids]] as const) {
      const { rows } = await client.query<{ i: number; s: string; h: string; owner: string }>(
        `SELECT i, k::text AS s, shardctl.route_hash(k::text) AS h, shardctl_locate(k::text) AS owner FROM ${table} ORDER BY i`,
      );
      expect(rows.map((r) => r.s)).toEqual([...keys]);
      const located = await locateKeys(d.config, [...keys]);
      const fromSql = rows.map((r) => ({ key: r.s, hash: Number(r.h), shard: r.owner }));
      expect(fromSql).toEqual(located.keys);
    }
    // All four shards own some of the keys: the comparison covers every owner.
    const owners = new Set((await locateKeys(d.config, uuids)).keys.map((k) => k.shard));
    expect(owners.size).toBe(4);
  });
});
