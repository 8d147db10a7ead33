import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { caughtUp, fenceBackoffMs, fenceMarginMs, MAX_KEYS_TO_VERIFY_IN_FENCE, needsSnapshotVerify } from '../../src/core/catch-up.js';

describe('online move decisions', () => {
  it('a round that took fewer records than its limit found the backlog empty', () => {
    expect(caughtUp({ taken: 0, limit: 5000 })).toBe(true);
    expect(caughtUp({ taken: 4999, limit: 5000 })).toBe(true);
    expect(caughtUp({ taken: 5000, limit: 5000 })).toBe(false);
  });

  it('the fence keeps a margin of a quarter of its timeout, between 50 ms and 1 s', () => {
    expect(fenceMarginMs(5000)).toBe(1000);
    expect(fenceMarginMs(1000)).toBe(250);
    expect(fenceMarginMs(100)).toBe(50);
    fc.assert(fc.property(fc.integer({ min: 1, max: 10_000_000 }), (ms) => {
      const m = fenceMarginMs(ms);
      return m >= 50 && m <= 1000 && (ms < 200 || m <= ms / 4 + 1);
    }));
  });

  it('backoff between fences grows, is capped, and is jittered ±50%', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 50 }), fc.double({ min: 0, max: 0.999999, noNaN: true }), (attempt, r) => {
      const base = Math.min(2000, 100 * 2 ** (attempt - 1));
      const ms = fenceBackoffMs(attempt, r);
      return ms >= Math.floor(base * 0.5) && ms <= Math.ceil(base * 1.5);
    }));
    expect(fenceBackoffMs(1, 0.5)).toBe(100);
    expect(fenceBackoffMs(3, 0.5)).toBe(400);
    expect(fenceBackoffMs(20, 0.5)).toBe(2000);
  });

  it('the whole ranges are compared again before the fence when nothing was compared in this run or too many keys changed since', () => {
    expect(needsSnapshotVerify(0, false)).toBe(true);
    expect(needsSnapshotVerify(10, true)).toBe(false);
    expect(needsSnapshotVerify(MAX_KEYS_TO_VERIFY_IN_FENCE, true)).toBe(false);
    expect(needsSnapshotVerify(MAX_KEYS_TO_VERIFY_IN_FENCE + 1, true)).toBe(true);
  });
});
