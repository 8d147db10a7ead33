import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type PartitionSize, parseByteSize, projectGrowth } from '../../src/core/partition-growth.js';

const DAY = 86_400_000;
/** Daily partitions of the given row counts, 100 bytes a row. */
const days = (...rows: number[]): PartitionSize[] => rows.map((r, i) => ({ toMs: (i + 1) * DAY, rows: r, bytes: r * 100 }));

describe('projecting partition growth', () => {
  it('fits a least-squares line: steady growth is extrapolated to the next partition', () => {
    const p = projectGrowth(days(100, 200, 300, 400), { maxRows: 10_000, interval: 'daily' });
    expect(p.trendRowsPerPartition).toBeCloseTo(100);
    expect(p.trendBytesPerPartition).toBeCloseTo(10_000);
    expect(p.projectedNext).toEqual({ rows: 500, bytes: 50_000 });
    // 400 + 100k >= 10,000 at k = 96.
    expect(p.crossesAt).toBe(96);
    expect(p.suggestion).toBeNull();
    expect(p.reason).toBe('the next partition is projected at 5% of the threshold; the trend reaches it 96 partitions ahead');
  });

  it('one odd partition moves the trend only a little', () => {
    const p = projectGrowth(days(1000, 1000, 5000, 1000, 1000, 1000), { maxRows: 100_000, interval: 'daily' });
    expect(p.projectedNext.rows).toBeLessThan(2000);
  });

  it('a flat or shrinking trend under the threshold never crosses it', () => {
    expect(projectGrowth(days(500, 500, 500), { maxRows: 1000, interval: 'daily' }).crossesAt).toBeNull();
    expect(projectGrowth(days(900, 700, 500), { maxRows: 1000, interval: 'daily' })).toMatchObject({ crossesAt: null, suggestion: null });
  });

  it('suggests the longest shorter interval that keeps the next partition under 80% once it passes 80%', () => {
    const monthly = projectGrowth(days(800, 850, 900), { maxRows: 1000, interval: 'monthly' });
    expect(monthly.projectedNext.rows).toBe(950);
    expect(monthly.crossesAt).toBe(2);
    expect(monthly.suggestion).toBe('weekly'); // 95% × 7/30.4 ≈ 22%
    expect(monthly.reason).toMatch(/projected at 95% of the threshold \(over 80%\); weekly partitions would be about 22%/);
    expect(projectGrowth(days(85, 85), { maxRows: 100, interval: 'daily' }).suggestion).toBe('hourly');
  });

  it('bytes count as much as rows: the nearer threshold decides', () => {
    const p = projectGrowth(days(10, 10, 10), { maxRows: 1_000_000, maxBytes: 1100, interval: 'yearly' });
    expect(p.crossesAt).toBeNull(); // 1000 bytes of 1100: flat, never over, but at 91%
    expect(p.suggestion).toBe('monthly');
    expect(parseByteSize('10GB')).toBe(10 * 1024 ** 3);
    expect(projectGrowth(days(1, 1), { maxBytes: parseByteSize('1kB'), interval: 'daily' }).suggestion).toBeNull();
  });

  it('says when it can go no shorter, or the sizes would still be too big', () => {
    expect(projectGrowth(days(95, 95), { maxRows: 100, interval: 'hourly' })).toMatchObject({ suggestion: null, crossesAt: null });
    expect(projectGrowth(days(95, 100), { maxRows: 100, interval: 'hourly' })).toMatchObject({ suggestion: null, crossesAt: 1 });
    expect(projectGrowth(days(95, 95), { maxRows: 100, interval: 'hourly' }).reason).toMatch(/hourly is the shortest interval/);
    const tooBig = projectGrowth(days(5000, 5000), { maxRows: 100, interval: 'daily' });
    expect(tooBig.suggestion).toBe('hourly');
    expect(tooBig.reason).toMatch(/still over$/);
  });

  it('without thresholds or history it projects but suggests nothing', () => {
    expect(projectGrowth(days(1, 2, 3), { interval: 'daily' })).toMatchObject({ crossesAt: null, suggestion: null, reason: 'no maxRows or maxBytes set' });
    expect(projectGrowth([], { maxRows: 10, interval: 'daily' })).toMatchObject({
      projectedNext: { rows: 0, bytes: 0 },
      crossesAt: null,
      suggestion: null,
      reason: 'no complete partition to project from',
    });
    expect(projectGrowth(days(7), { maxRows: 10, interval: 'daily' })).toMatchObject({ trendRowsPerPartition: 0, projectedNext: { rows: 7 }, crossesAt: null });
  });

  it('crossesAt is the first partition ahead at which the line reaches the threshold', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 1_000_000 }), { minLength: 1, maxLength: 30 }), fc.integer({ min: 1, max: 2_000_000 }), (rows, maxRows) => {
        const p = projectGrowth(days(...rows), { maxRows, interval: 'daily' });
        const n = rows.length;
        const at = (k: number) => p.projectedNext.rows + p.trendRowsPerPartition * (k - 1);
        if (p.crossesAt === null) {
          expect(p.trendRowsPerPartition <= 0 || n === 0).toBe(true);
          expect(at(1)).toBeLessThan(maxRows + 1);
        } else {
          expect(at(p.crossesAt)).toBeGreaterThanOrEqual(maxRows - 1);
          if (p.crossesAt > 1) expect(at(p.crossesAt - 1)).toBeLessThan(maxRows + 1);
        }
        if (p.suggestion !== null) expect(p.projectedNext.rows).toBeGreaterThan(0.8 * maxRows - 1);
      }),
    );
  });
});

describe('byte sizes', () => {
  it('reads PostgreSQL-style sizes in binary multiples, or a positive byte count', () => {
    expect(parseByteSize(1)).toBe(1);
    expect(parseByteSize('800B')).toBe(800);
    expect(parseByteSize('512kB')).toBe(512 * 1024);
    expect(parseByteSize('1.5 TB')).toBe(1.5 * 1024 ** 4);
    expect(() => parseByteSize('10 gigs')).toThrow(/not a size/);
    expect(() => parseByteSize('10gb')).toThrow(/not a size/);
    expect(() => parseByteSize(0)).toThrow(/positive/);
    expect(() => parseByteSize(1.5)).toThrow(/positive whole number/);
    expect(() => parseByteSize('0MB')).toThrow(/positive size/);
  });
});
