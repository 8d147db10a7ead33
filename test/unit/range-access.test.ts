import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chooseRangeAccess, cleanupUsesIndex, MAX_BITMAP_WORK_MEM_KB, MAX_INDEX_RANGES, pagesTouched, type RangeAccessInput } from '../../src/core/range-access.js';

const table = (over: Partial<RangeAccessInput> = {}): RangeAccessInput => ({
  indexUsable: true,
  ranges: 128,
  tablePages: 31_250,
  rowsPerPage: 32,
  fraction: 1,
  workMemKb: 4096,
  ...over,
});

describe('choosing between a scan and an index read of hash ranges', () => {
  it('reads by index only when the planner can use one, for a sane number of ranges', () => {
    expect(chooseRangeAccess(table({ indexUsable: false }))).toEqual({ kind: 'scan' });
    expect(chooseRangeAccess(table({ ranges: 0 }))).toEqual({ kind: 'scan' });
    expect(chooseRangeAccess(table({ ranges: MAX_INDEX_RANGES + 1 })).kind).toBe('scan');
    expect(chooseRangeAccess(table({ ranges: MAX_INDEX_RANGES })).kind).toBe('index');
  });

  it('asks for a work_mem that keeps the bitmap exact (a lossy one re-hashes every row per range), never less than the session has', () => {
    // 31,250 pages (the 244 MB table measured) need about 6 MB: more than the default 4 MB, which went lossy at 1 MB.
    const access = chooseRangeAccess(table());
    expect(access).toEqual({ kind: 'index', workMemKb: Math.ceil((31_250 * 1.25 * 160) / 1024) });
    expect(chooseRangeAccess(table({ tablePages: 10, workMemKb: 65_536 }))).toEqual({ kind: 'index', workMemKb: 65_536 });
    expect(chooseRangeAccess(table({ tablePages: 10, workMemKb: 64 }))).toEqual({ kind: 'index', workMemKb: 1024 });
  });

  it('scans a table too big for an exact bitmap, unless the ranges hold few enough of its rows', () => {
    const huge = table({ tablePages: 4_000_000 });
    expect(chooseRangeAccess(huge)).toEqual({ kind: 'scan' });
    const small = chooseRangeAccess({ ...huge, fraction: 0.005 });
    expect(small.kind).toBe('index');
    expect(small.kind === 'index' && small.workMemKb).toBeLessThanOrEqual(MAX_BITMAP_WORK_MEM_KB);
    // Without statistics (rows per page unknown) every page counts.
    expect(chooseRangeAccess({ ...huge, fraction: 0.005, rowsPerPage: 0 })).toEqual({ kind: 'scan' });
  });

  it('pages touched grow with the share read and never exceed the table', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000_000 }), fc.double({ min: 0, max: 300, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), (pages, perPage, a, b) => {
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        const p = (fraction: number) => pagesTouched({ tablePages: pages, rowsPerPage: perPage, fraction });
        expect(p(lo)).toBeLessThanOrEqual(p(hi));
        expect(p(hi)).toBeLessThanOrEqual(pages);
        expect(p(0)).toBe(perPage > 0 ? 0 : pages);
      }),
    );
  });

  it('cleanup by index only for few groups of a small share, and never without an index', () => {
    const index = { kind: 'index' as const, workMemKb: 8192 };
    expect(cleanupUsesIndex(index, 1, 1)).toBe(true);
    expect(cleanupUsesIndex(index, 2, 0.01)).toBe(true);
    // The bench's move: a third of 1M rows in 7 groups of 50,000.
    expect(cleanupUsesIndex(index, 7, 0.33)).toBe(false);
    expect(cleanupUsesIndex({ kind: 'scan' }, 1, 0.01)).toBe(false);
  });
});
