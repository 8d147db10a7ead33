import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Interval } from '../../src/core/move-plan.js';
import {
  blockCopyState,
  clearBlockCopy,
  copiedRowsChecksum,
  copiedTids,
  copyByBlock,
  deleteBatches,
  deleteCopiedRows,
  recordedBatches,
  removedState,
  sourceUnchangedSince,
  type BlockBatch,
} from '../../src/mover/block-copy.js';
import { describeTable, keysRepeat, type TableShape } from '../../src/mover/table-shape.js';
import { rangeChecksum } from '../../src/mover/verify.js';
import { connect, type PgClient } from '../../src/postgres/connect.js';
import { closeMoverPair, moverPair, type MoverPair } from '../support/mover-pair.js';

/*
 * The physical-order copy and its batch records, on real servers: what the
 * fast path of a fresh move rests on (resume from the target's records,
 * verification from the digests read, cleanup that deletes a block span only
 * when it still holds exactly the rows copied).
 */

const HALF: Interval[] = [{ start: 0, end: 2 ** 31 - 1 }];
const ID = { planId: 'p-test', moveNo: 1, table: 'public.messages' };

describe('block-ordered copy', () => {
  let source: PgClient;
  let target: PgClient;
  let shape: TableShape;

  let pair: Partial<MoverPair> = {};

  beforeAll(async () => {
    pair = await moverPair('sct_blk');
    ({ source, target, shape } = pair as MoverPair);
  });
  afterAll(async () => {
    // The tests reconnect the source: close the clients they left, then drop.
    await closeMoverPair(pair, [source, target]);
  });

  /**
   * A fresh copy of the ranges whose snapshot saw no transaction of another
   * test open. xids are cluster-wide: one open while the snapshot is taken
   * holds its xmin back behind the rows' own xid, and the checks then (rightly,
   * conservatively) say "maybe changed". Copied again until that is not so.
   */
  async function copyInQuietSnapshot(batchSize: number): Promise<{ xmin: string; tableRows: number }> {
    for (let attempt = 0; attempt < 40; attempt++) {
      if (attempt) await new Promise((r) => setTimeout(r, 50));
      await source.query(`DELETE FROM shardctl.move_batches WHERE plan_id = $1`, [ID.planId]);
      await clearBlockCopy(target, shape, ID, HALF);
      let snapshot: { xmin: string; tableRows: number } | undefined;
      await copyByBlock(source, target, shape, { id: ID, ranges: HALF, digest: 'hash', batchSize, onStart: async (s) => void (snapshot = s), onBatch: async () => true });
      if (await sourceUnchangedSince(source, shape, snapshot!)) return snapshot!;
    }
    throw new Error('no copy took its snapshot with no other transaction open');
  }

  /** The source's 6000 rows again (the tests before deleted some). */
  async function refillSource(): Promise<void> {
    await source.query('TRUNCATE public.messages');
    await source.query(
      `INSERT INTO public.messages (room_id, id, body) SELECT r, m, 'message ' || m || repeat('.', (r % 9) * 20) FROM generate_series(1, 20) m, generate_series(1, 300) r`,
    );
  }

  async function fullCopy(options: { memo: boolean; stopAfter?: number }): Promise<{ starts: number; batches: BlockBatch[] }> {
    let starts = 0;
    const batches: BlockBatch[] = [];
    const run = (stopAfter: number) =>
      copyByBlock(source, target, shape, {
        id: ID,
        ranges: HALF,
        digest: 'hash',
        batchSize: 500,
        memo: options.memo,
        onStart: async () => {
          starts++;
        },
        onBatch: async (b) => {
          batches.push(b);
          return batches.length !== stopAfter;
        },
      });
    if (options.stopAfter) {
      const first = await run(options.stopAfter);
      expect(first.done).toBe(false);
      // A stopped copy leaves the source's connection mid-COPY: the engine closes it; here, a new one.
      await source.end();
      source = await connect(pair.dbs![0]!.url, { label: pair.dbs![0]!.name });
    }
    expect((await run(-1)).done).toBe(true);
    return { starts, batches };
  }

  it('copies the ranges in physical order, resumably: the target holds exactly the source rows, and its records sum to their checksum', async () => {
    expect(await keysRepeat(source, shape)).toBe(true);
    const want = await rangeChecksum(source, shape, HALF, 'hash');
    expect(want.rows).toBeGreaterThan(2000);
    for (const memo of [false, true]) {
      await clearBlockCopy(target, shape, ID, HALF);
      const { starts, batches } = await fullCopy({ memo, stopAfter: 2 });
      // The snapshot is taken once, by the run that starts from the first block.
      expect(starts).toBe(1);
      expect(batches.length).toBeGreaterThan(3);
      for (let i = 1; i < batches.length; i++) {
        expect(batches[i]!.firstBlock).toBeGreaterThan(batches[i - 1]!.lastBlock);
        expect(batches[i]!.batchNo).toBe(batches[i - 1]!.batchNo + 1);
      }
      const got = await rangeChecksum(target, shape, HALF, 'hash');
      const { rows: all } = await target.query<{ n: number }>('SELECT count(*)::int AS n FROM public.messages');
      expect(got).toEqual(want);
      expect(all[0]!.n).toBe(want.rows);
      const held = await blockCopyState(target, ID);
      expect({ rows: held.rows, sum: held.sum.toString() }).toEqual(want);
      expect(held.batches).toBe(batches.length);
    }
  });

  it('the target side of verification counts exactly the copied rows still as written: an update or delete of one shows, other rows do not', async () => {
    await clearBlockCopy(target, shape, ID, HALF);
    await fullCopy({ memo: true, stopAfter: 2 });
    const held = await blockCopyState(target, ID);
    const copied = async () => copiedRowsChecksum(target, shape, ID, 'hash');
    expect(await copied()).toEqual({ rows: held.rows, sum: held.sum.toString() });
    // Rows of the table the copy did not write (outside the ranges here) are not its business.
    await target.query(`INSERT INTO public.messages (room_id, id, body) SELECT 1000000 + i, 1, 'other' FROM generate_series(1, 50) i`);
    expect(await copied()).toEqual({ rows: held.rows, sum: held.sum.toString() });
    // A copied row changed since, even to the same value, or deleted: the target no longer holds what was read.
    const { rows: some } = await target.query<{ room_id: number; id: number }>(
      `SELECT room_id, id FROM public.messages WHERE room_id < 1000000 ORDER BY room_id, id LIMIT 2`,
    );
    await target.query(`UPDATE public.messages SET body = body WHERE room_id = $1 AND id = $2`, [some[0]!.room_id, some[0]!.id]);
    expect((await copied()).rows).toBe(held.rows - 1);
    await target.query(`DELETE FROM public.messages WHERE room_id = $1 AND id = $2`, [some[1]!.room_id, some[1]!.id]);
    expect((await copied()).rows).toBe(held.rows - 2);
    expect((await copied()).sum).not.toBe(held.sum.toString());
    await target.query(`DELETE FROM public.messages WHERE room_id >= 1000000`);
  });

  it('tells an untouched source from one written to since the copy: an update, a delete or an insert, in the ranges or not', async () => {
    const snapshot = await copyInQuietSnapshot(500);
    expect(snapshot.tableRows).toBe(6000);
    const writes = [
      `UPDATE public.messages SET body = body || '!' WHERE room_id = 7 AND id = 3`,
      `DELETE FROM public.messages WHERE room_id = 8 AND id = 4`,
      `INSERT INTO public.messages (room_id, id, body) VALUES (100000, 1, 'new')`,
    ];
    const undo = [
      `UPDATE public.messages SET body = left(body, -1) WHERE room_id = 7 AND id = 3`,
      `INSERT INTO public.messages (room_id, id, body) SELECT 8, 4, 'message 4' || repeat('.', (8 % 9) * 20)`,
      `DELETE FROM public.messages WHERE room_id = 100000`,
    ];
    for (const [i, write] of writes.entries()) {
      await source.query(write);
      expect(await sourceUnchangedSince(source, shape, snapshot), write).toBe(false);
      await source.query(undo[i]!);
    }
  });

  it('cleanup deletes a span only while it holds exactly the rows copied, and records it as removed on the source', async () => {
    await clearBlockCopy(target, shape, ID, HALF);
    await fullCopy({ memo: true });
    const batches = await recordedBatches(target, ID, -1);
    expect(batches.length).toBeGreaterThan(3);
    const before = await rangeChecksum(source, shape, HALF, 'hash');

    // A row of the first batch's span changed since the copy: nothing of that span goes.
    const { rows: victim } = await source.query<{ room_id: number; id: number }>(
      `SELECT room_id, id FROM public.messages t WHERE t.ctid >= '(${batches[0]!.firstBlock},0)'::tid AND t.ctid < '(${batches[0]!.lastBlock + 1},0)'::tid
          AND '{[0,2147483647]}'::int8multirange @> shardctl.route_hash(room_id::text) LIMIT 1`,
    );
    await source.query(`UPDATE public.messages SET body = body || ' (edited)' WHERE room_id = $1 AND id = $2`, [victim[0]!.room_id, victim[0]!.id]);
    expect(await deleteBatches(source, shape, ID, HALF, 'hash', [batches[0]!], true)).toBeNull();
    expect((await rangeChecksum(source, shape, HALF, 'hash')).rows).toBe(before.rows);

    // Untouched spans go, two batches in one transaction, both with the memoized hash and without.
    expect(await deleteBatches(source, shape, ID, HALF, 'hash', [batches[1]!, batches[2]!], true)).toBe(batches[1]!.rows + batches[2]!.rows);
    expect(await deleteBatches(source, shape, ID, HALF, 'hash', [batches[3]!], false)).toBe(batches[3]!.rows);
    const after = await rangeChecksum(source, shape, HALF, 'hash');
    expect(after.rows).toBe(before.rows - batches[1]!.rows - batches[2]!.rows - batches[3]!.rows);
    // Deleting a span again finds nothing of it: it does not match, and nothing else is touched.
    expect(await deleteBatches(source, shape, ID, HALF, 'hash', [batches[1]!], true)).toBeNull();
    expect(await removedState(source, ID)).toEqual({ lastBatch: batches[3]!.batchNo, rows: batches[1]!.rows + batches[2]!.rows + batches[3]!.rows });
    // Rows outside the ranges in those spans are still there.
    const { rows: outside } = await source.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM public.messages WHERE NOT '{[0,2147483647]}'::int8multirange @> shardctl.route_hash(room_id::text)`,
    );
    expect(outside[0]!.n).toBe(6000 - before.rows);
  });

  it('cleanup confirmed by the copy snapshot deletes a span only while no row in it is newer than the snapshot', async () => {
    const bySnapshot = { snapshotXmin: (await copyInQuietSnapshot(200)).xmin };
    const batches = await recordedBatches(target, ID, -1);
    expect(batches.length).toBeGreaterThan(3);
    const before = await rangeChecksum(source, shape, HALF, 'hash');
    const spanOf = (b: BlockBatch) => `t.ctid >= '(${b.firstBlock},0)'::tid AND t.ctid < '(${b.lastBlock + 1},0)'::tid`;
    const inHalf = `'{[0,2147483647]}'::int8multirange @> shardctl.route_hash(room_id::text)`;
    const outside = async () => (await source.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.messages WHERE NOT ${inHalf}`)).rows[0]!.n;
    const outsideBefore = await outside();

    // An update that writes the same value back still leaves a newer row version: the span stays.
    const { rows: victim } = await source.query<{ room_id: number; id: number }>(
      `SELECT room_id, id FROM public.messages t WHERE ${spanOf(batches[0]!)} AND ${inHalf} LIMIT 1`,
    );
    await source.query(`UPDATE public.messages SET body = body WHERE room_id = $1 AND id = $2`, [victim[0]!.room_id, victim[0]!.id]);
    expect(await deleteBatches(source, shape, ID, HALF, bySnapshot, [batches[0]!], true)).toBeNull();
    expect((await rangeChecksum(source, shape, HALF, 'hash')).rows).toBe(before.rows);
    // Its digests still match, so the digest confirmation (which cleanup tries next) takes it.
    expect(await deleteBatches(source, shape, ID, HALF, 'hash', [batches[0]!], true)).toBe(batches[0]!.rows);

    // A row deleted since the copy: the span's count is short, nothing of it goes.
    const { rows: gone } = await source.query<{ room_id: number; id: number }>(
      `DELETE FROM public.messages t WHERE ctid = (SELECT ctid FROM public.messages t WHERE ${spanOf(batches[1]!)} AND ${inHalf} LIMIT 1) RETURNING room_id, id`,
    );
    expect(gone).toHaveLength(1);
    expect(await deleteBatches(source, shape, ID, HALF, bySnapshot, [batches[1]!], false)).toBeNull();

    // Untouched spans go, together and alone, with the memoized hash and without.
    expect(await deleteBatches(source, shape, ID, HALF, bySnapshot, [batches[2]!, batches[3]!], true)).toBe(batches[2]!.rows + batches[3]!.rows);
    for (const b of batches.slice(4)) expect(await deleteBatches(source, shape, ID, HALF, bySnapshot, [b], false)).toBe(b.rows);
    const left = await rangeChecksum(source, shape, HALF, 'hash');
    expect(left.rows).toBe(batches[1]!.rows - 1);
    expect(await outside()).toBe(outsideBefore);
  });

  it("cleanup by the copied ctids deletes exactly the batch's rows while each is as copied and the table keeps its file", async () => {
    await refillSource();
    const snapshot = await copyInQuietSnapshot(100);
    const batches = await recordedBatches(target, ID, -1);
    expect(batches.length).toBeGreaterThan(6);
    const inHalf = `'{[0,2147483647]}'::int8multirange @> shardctl.route_hash(room_id::text)`;
    const count = async (where: string) => (await source.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.messages t WHERE ${where}`)).rows[0]!.n;
    const outsideBefore = await count(`NOT ${inHalf}`);
    const insideBefore = await count(inHalf);
    const rowsAt = async (b: BlockBatch) => (await source.query<{ room_id: number; id: number }>(
      `SELECT room_id, id FROM public.messages t WHERE t.ctid = ANY ($1::tid[]) ORDER BY room_id, id`, [(await copiedTids(target, ID, [b]))!.tids],
    )).rows;
    const remove = async (b: BlockBatch[]) => deleteCopiedRows(source, shape, ID, snapshot.xmin, b, (await copiedTids(target, ID, b))!);

    // The records say where each batch's rows were: exactly the batch's rows, all in the ranges.
    const first = await rowsAt(batches[0]!);
    expect(first).toHaveLength(batches[0]!.rows);
    // A row changed since (even to the same value) or deleted since: nothing of that batch goes.
    await source.query(`UPDATE public.messages SET body = body WHERE room_id = $1 AND id = $2`, [first[0]!.room_id, first[0]!.id]);
    expect(await remove([batches[0]!])).toBeNull();
    const second = await rowsAt(batches[1]!);
    await source.query(`DELETE FROM public.messages WHERE room_id = $1 AND id = $2`, [second[0]!.room_id, second[0]!.id]);
    expect(await remove([batches[1]!])).toBeNull();
    expect(await count(inHalf)).toBe(insideBefore - 1);

    // Untouched batches go, alone or together, and only their rows.
    expect(await remove([batches[2]!])).toBe(batches[2]!.rows);
    expect(await remove([batches[3]!, batches[4]!])).toBe(batches[3]!.rows + batches[4]!.rows);
    expect(await count(inHalf)).toBe(insideBefore - 1 - batches[2]!.rows - batches[3]!.rows - batches[4]!.rows);
    expect(await count(`NOT ${inHalf}`)).toBe(outsideBefore);
    expect((await removedState(source, ID)).rows).toBe(batches[2]!.rows + batches[3]!.rows + batches[4]!.rows);

    // A batch whose slot holds another row now (a row outside the ranges, written since): nothing of it goes.
    const { rows: own } = await source.query<{ r: number }>(
      `SELECT r FROM generate_series(100000, 100400) r WHERE NOT '{[0,2147483647]}'::int8multirange @> shardctl.route_hash(r::text) LIMIT 1`,
    );
    const { rows: squatter } = await source.query<{ ctid: string }>(`INSERT INTO public.messages (room_id, id, body) VALUES ($1, 1, 'stays') RETURNING ctid::text`, [own[0]!.r]);
    await target.query(
      `UPDATE shardctl.move_batches SET source_tids = regexp_replace(source_tids, '"[(][0-9]+,[0-9]+[)]"', '"' || $2 || '"') WHERE plan_id = $1 AND kind = 'copied' AND batch_no = $3`,
      [ID.planId, squatter[0]!.ctid, batches[6]!.batchNo],
    );
    expect(await remove([batches[6]!])).toBeNull();
    expect(await count(`NOT ${inHalf}`)).toBe(outsideBefore + 1);

    // A rewrite moves every row: the ctids mean nothing any more, nothing goes.
    await source.query('VACUUM FULL public.messages');
    expect(await remove([batches[5]!])).toBeNull();
    expect(await count(`NOT ${inHalf}`)).toBe(outsideBefore + 1);
    // A record without ctids (written by an earlier version) gives none.
    await target.query(`UPDATE shardctl.move_batches SET source_tids = NULL WHERE plan_id = $1 AND batch_no = $2`, [ID.planId, batches[5]!.batchNo]);
    expect(await copiedTids(target, ID, [batches[5]!])).toBeNull();
  });

  it('keysRepeat says no for unique keys and for a table without statistics', async () => {
    await source.query(`CREATE TABLE public.users (id bigint PRIMARY KEY, name text)`);
    const users = (await describeTable(source, { name: 'public.users', key: 'id' }))!;
    expect(await keysRepeat(source, users)).toBe(false);
    await source.query(`INSERT INTO public.users SELECT i, 'u' || i FROM generate_series(1, 2000) i`);
    await source.query('ANALYZE public.users');
    expect(await keysRepeat(source, users)).toBe(false);
  });
});
