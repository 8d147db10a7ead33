import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { addCost, MOVE_PHASES, roundCosts, sumCosts, type PhaseCosts } from '../../src/core/move-phases.js';

describe('move phases', () => {
  it('adds costs per phase and sums parts in phase order, whatever the order they were added in', () => {
    const a: PhaseCosts = {};
    addCost(a, 'cleanup', { seconds: 1, bytesWritten: 10 });
    addCost(a, 'copy', { seconds: 2, bytesRead: 5, bytesWritten: 5 });
    addCost(a, 'copy', { seconds: 0.5 });
    const b: PhaseCosts = {};
    addCost(b, 'plan', { seconds: 0.25 });
    const total = sumCosts([a, b]);
    expect(Object.keys(total)).toEqual(['plan', 'copy', 'cleanup']);
    expect(total.copy).toEqual({ seconds: 2.5, bytesRead: 5, bytesWritten: 5 });
  });

  it('a sum of parts equals the parts added one by one (seconds to the millisecond in reports)', () => {
    const part = fc.dictionary(fc.constantFrom(...MOVE_PHASES), fc.record({ seconds: fc.double({ min: 0, max: 1000, noNaN: true }), bytesRead: fc.nat(), bytesWritten: fc.nat() }));
    fc.assert(
      fc.property(fc.array(part, { maxLength: 6 }), (parts) => {
        const total = roundCosts(sumCosts(parts as PhaseCosts[]));
        for (const phase of MOVE_PHASES) {
          const seconds = parts.reduce((s, p) => s + (p[phase]?.seconds ?? 0), 0);
          const read = parts.reduce((s, p) => s + (p[phase]?.bytesRead ?? 0), 0);
          if (!parts.some((p) => p[phase])) expect(total[phase]).toBeUndefined();
          else {
            expect(Math.abs(total[phase]!.seconds - seconds)).toBeLessThanOrEqual(0.0005 + 1e-9);
            expect(total[phase]!.bytesRead).toBe(read);
          }
        }
      }),
    );
  });
});
