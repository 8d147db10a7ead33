import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatDuration } from '../../src/config/duration.js';
import { leaseTimings } from '../../src/core/lease-timings.js';

describe('lease timings', () => {
  it('the default lockStaleAfter (2m) beats every 5 s and counts the lease lost after 30 s without a confirmed beat', () => {
    expect(leaseTimings(120_000)).toEqual({ beatMs: 5_000, lossAfterMs: 30_000 });
  });

  it('a holder always gives up before others may call it stale, and beats several times before it gives up', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1_000, max: 7 * 86_400_000 }), (staleAfterMs) => {
        const { beatMs, lossAfterMs } = leaseTimings(staleAfterMs);
        expect(lossAfterMs).toBeLessThan(staleAfterMs);
        expect(lossAfterMs).toBeLessThanOrEqual(30_000);
        expect(lossAfterMs / beatMs).toBeGreaterThanOrEqual(4);
      }),
    );
  });
});

describe('formatDuration', () => {
  it('reads as people write durations', () => {
    expect(formatDuration(850)).toBe('850ms');
    expect(formatDuration(4_200)).toBe('4.2s');
    expect(formatDuration(190_000)).toBe('3m10s');
    expect(formatDuration(120_000)).toBe('2m');
    expect(formatDuration(7_500_000)).toBe('2h5m');
    expect(formatDuration(3 * 86_400_000 + 4 * 3_600_000)).toBe('3d4h');
  });
});
