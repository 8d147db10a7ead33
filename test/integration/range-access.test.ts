import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { multirangeLiteral, type Interval } from '../../src/core/move-plan.js';
import { blockCopyState, clearBlockCopy, copyByBlock, deleteBatches, recordedBatches, type BlockBatch } from '../../src/mover/block-copy.js';
import { copyRange } from '../../src/mover/copy-range.js';
import { rangeAccessFor, SCAN, type RangeAccess } from '../../src/mover/range-access.js';
import type { TableShape } from '../../src/mover/table-shape.js';
import { countInRanges, misplacedByOwner, rangeChecksum } from '../../src/mover/verify.js';
import { connect, type PgClient } from '../../src/postgres/connect.js';
import { closeMoverPair, moverPair, type MoverPair } from '../support/mover-pair.js';

/*
 * Reading a move's ranges by the routing-hash index (`shard index`) instead of
 * hashing every row: chosen only when the planner can use an index for the
 * ranges, and giving exactly the rows, sums and deletions a scan gives.
 */

const SPAN = 2 ** 32;
/** 64 ranges covering a quarter of the hash space, spread over it as a ring's vnodes are. */
const QUARTER: Interval[] = Array.from({ length: 64 }, (_, i) => ({ start: (i * SPAN) / 64, end: (i * SPAN) / 64 + SPAN / 256 - 1 }));
const ID = { planId: 'p-index', moveNo: 1, table: 'public.messages' };
const INDEX = 'messages_shardctl_route_hash';

describe('reading hash ranges by the routing-hash index', () => {
  let source: PgClient;
  let target: PgClient;
  let shape: TableShape;
  let byIndex: RangeAccess;

  /** Index scans of the routing-hash index on the source so far (the statistics collector's count, flushed). */
  async function indexScans(): Promise<number> {
    await source.query('SELECT pg_stat_force_next_flush()').catch(() => {});
    const { rows } = await source.query<{ n: number }>(`SELECT coalesce(sum(idx_scan), 0)::int AS n FROM pg_stat_user_indexes WHERE indexrelname = $1`, [INDEX]);
    return rows[0]!.n;
  }

  let pair: Partial<MoverPair> = {};

  beforeAll(async () => {
    pair = await moverPair('sct_idx');
    ({ source, target, shape } = pair as MoverPair);
  });
  afterAll(async () => {
    // The tests reconnect the source: close the clients they left, then drop.
    await closeMoverPair(pair, [source, target]);
  });

  it('is chosen only when the planner can use an index on the routing hash for the ranges', async () => {
    // Only the primary key: with sequential scans off the planner would walk it whole, which is no index read.
    expect(await rangeAccessFor(source, shape, QUARTER)).toEqual(SCAN);
    await source.query(`CREATE INDEX messages_md5 ON public.messages (md5(room_id::text))`);
    expect(await rangeAccessFor(source, shape, QUARTER)).toEqual(SCAN);
    await source.query(`CREATE INDEX ${INDEX} ON public.messages (shardctl.route_hash(room_id::text))`);
    await source.query('ANALYZE public.messages');
    byIndex = await rangeAccessFor(source, shape, QUARTER);
    expect(byIndex.kind).toBe('index');
    // Enough work_mem for an exact bitmap of every page (and never less than the session's).
    expect(byIndex.kind === 'index' && byIndex.workMemKb).toBeGreaterThanOrEqual(1024);
    expect(await rangeAccessFor(source, shape, [])).toEqual(SCAN);
  });

  it('counts, sums and finds misplaced rows exactly as a scan does, through the index', async () => {
    const scans = await indexScans();
    const scan = await rangeChecksum(source, shape, QUARTER, 'hash', false, SCAN);
    expect(scan.rows).toBeGreaterThan(1000);
    expect(scan.rows).toBeLessThan(2500);
    expect(await rangeChecksum(source, shape, QUARTER, 'hash', false, byIndex)).toEqual(scan);
    expect(await rangeChecksum(source, shape, QUARTER, 'md5', false, byIndex)).toEqual(await rangeChecksum(source, shape, QUARTER, 'md5', true, SCAN));
    expect(await countInRanges(source, shape, QUARTER, byIndex)).toBe(scan.rows);
    expect(await countInRanges(source, shape, QUARTER)).toBe(scan.rows);
    // The shard owns the rest of the space; two other shards own halves of QUARTER.
    const rest: Interval[] = [];
    let at = 0;
    for (const r of QUARTER) {
      if (r.start > at) rest.push({ start: at, end: r.start - 1 });
      at = r.end + 1;
    }
    rest.push({ start: at, end: SPAN - 1 });
    const owned = new Map([
      ['self', rest],
      ['a', QUARTER.filter((_, i) => i % 2 === 0)],
      ['b', QUARTER.filter((_, i) => i % 2 === 1)],
    ]);
    const misplaced = await misplacedByOwner(source, shape, 'self', owned);
    expect((misplaced.get('a') ?? 0) + (misplaced.get('b') ?? 0)).toBe(scan.rows);
    expect(misplaced.get('a')).toBe(await countInRanges(source, shape, owned.get('a')!, SCAN));
    // Every read above but the scans went through the index.
    expect((await indexScans()) - scans).toBeGreaterThanOrEqual(64 * 4);
  });

  it('copies in physical order by the index, resumably, and cleanup by the index deletes only spans still as copied', async () => {
    const want = await rangeChecksum(source, shape, QUARTER, 'hash');
    const scans = await indexScans();
    const batches: BlockBatch[] = [];
    const run = () =>
      copyByBlock(source, target, shape, {
        id: ID,
        ranges: QUARTER,
        digest: 'hash',
        batchSize: 300,
        access: byIndex,
        onBatch: async (b) => {
          batches.push(b);
          return batches.length !== 2;
        },
      });
    expect((await run()).done).toBe(false);
    // A stopped copy leaves the source's connection mid-COPY: the engine closes it; here, a new one.
    await source.end();
    source = await connect(pair.dbs![0]!.url, { label: pair.dbs![0]!.name });
    expect((await run()).done).toBe(true);
    expect(await indexScans()).toBeGreaterThan(scans);
    expect(batches.length).toBeGreaterThan(3);
    for (let i = 1; i < batches.length; i++) expect(batches[i]!.firstBlock).toBeGreaterThan(batches[i - 1]!.lastBlock);
    expect(await rangeChecksum(target, shape, QUARTER, 'hash')).toEqual(want);
    const held = await blockCopyState(target, ID);
    expect({ rows: held.rows, sum: held.sum.toString() }).toEqual(want);

    const recorded = await recordedBatches(target, ID, -1);
    const { rows: victim } = await source.query<{ room_id: number; id: number }>(
      `SELECT room_id, id FROM public.messages t WHERE t.ctid >= '(${recorded[0]!.firstBlock},0)'::tid AND t.ctid < '(${recorded[0]!.lastBlock + 1},0)'::tid
          AND $1::int8multirange @> shardctl.route_hash(room_id::text) LIMIT 1`,
      [multirangeLiteral(QUARTER)],
    );
    const { rows: moved } = await source.query<{ block: number }>(
      `UPDATE public.messages SET body = body || ' (edited)' WHERE room_id = $1 AND id = $2 RETURNING (ctid::text::point)[0]::int AS block`,
      [victim[0]!.room_id, victim[0]!.id],
    );
    // The edited row's old span no longer holds what was copied, nor does the span its new version went to.
    const touched = recorded.filter((b) => b === recorded[0] || (b.firstBlock <= moved[0]!.block && moved[0]!.block <= b.lastBlock));
    for (const b of touched) expect(await deleteBatches(source, shape, ID, QUARTER, 'hash', [b], false, byIndex)).toBeNull();
    const rest = recorded.filter((b) => !touched.includes(b));
    expect(rest.length).toBeGreaterThan(1);
    expect(await deleteBatches(source, shape, ID, QUARTER, 'hash', rest.slice(0, 2), false, byIndex)).toBe(rest[0]!.rows + rest[1]!.rows);
    for (const b of rest.slice(2)) expect(await deleteBatches(source, shape, ID, QUARTER, 'hash', [b], false, byIndex)).toBe(b.rows);
    // Left: the touched spans' rows. Every row outside the ranges is still there.
    const kept = touched.reduce((n, b) => n + b.rows, 0);
    expect(await countInRanges(source, shape, QUARTER, SCAN)).toBe(kept);
    const { rows: all } = await source.query<{ n: number }>('SELECT count(*)::int AS n FROM public.messages');
    expect(all[0]!.n).toBe(6000 - want.rows + kept);
    await clearBlockCopy(target, shape, ID, QUARTER);
  });

  it('the hash-ordered copy (merge moves, older servers) reads by the index too, and adds exactly the missing rows', async () => {
    // What the source holds of the ranges now (cleanup above left some).
    const want = await rangeChecksum(source, shape, QUARTER, 'hash');
    expect(want.rows).toBeGreaterThan(200);
    // The target already holds some of the rows (a merge target has its own).
    const { rows: some } = await source.query<{ room_id: string; id: string; body: string }>(
      `SELECT room_id, id, body FROM public.messages WHERE $1::int8multirange @> shardctl.route_hash(room_id::text) ORDER BY room_id, id LIMIT 20`,
      [multirangeLiteral(QUARTER)],
    );
    for (const r of some) await target.query(`INSERT INTO public.messages (room_id, id, body) VALUES ($1, $2, $3)`, [r.room_id, r.id, r.body]);
    const scans = await indexScans();
    let batches = 0;
    const result = await copyRange(source, target, shape, {
      mode: 'merge',
      ranges: QUARTER,
      cursor: -1,
      batchSize: 40,
      access: byIndex,
      onBatch: async () => {
        batches++;
        return true;
      },
    });
    expect(result.done).toBe(true);
    expect(batches).toBeGreaterThan(3);
    expect(result.affected).toBe(want.rows - some.length);
    expect(await indexScans()).toBeGreaterThan(scans);
    expect(await rangeChecksum(target, shape, QUARTER, 'hash')).toEqual(want);
  });
});
