import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HEALTH_CHECKS } from '../../src/core/health-checks.js';
import { compareStatus, evaluateThresholds, exitCodeOfStatus, parseThresholdValue, sparkline, worstStatus, type HealthStatus } from '../../src/core/thresholds.js';

const STATUSES: HealthStatus[] = ['ok', 'unknown', 'warning', 'critical'];

describe('thresholds', () => {
  it('an "above" check fires at its level, critical winning over warning; a null value is OK', () => {
    const t = { warning: 30, critical: 300 };
    expect(evaluateThresholds(29.9, t, 'above')).toBe('ok');
    expect(evaluateThresholds(30, t, 'above')).toBe('warning');
    expect(evaluateThresholds(300, t, 'above')).toBe('critical');
    expect(evaluateThresholds(null, t, 'above')).toBe('ok');
    expect(evaluateThresholds(1e9, { warning: null, critical: null }, 'above')).toBe('ok');
  });

  it('a "below" check fires when the value falls to its level (a runway of 0 is critical)', () => {
    expect(evaluateThresholds(3, { warning: 2, critical: 0 }, 'below')).toBe('ok');
    expect(evaluateThresholds(2, { warning: 2, critical: 0 }, 'below')).toBe('warning');
    expect(evaluateThresholds(0, { warning: 2, critical: 0 }, 'below')).toBe('critical');
  });

  it('property: the status never improves as the value gets worse', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, min: -1e6, max: 1e6 }), fc.double({ noNaN: true, min: 0, max: 1e6 }), fc.double({ noNaN: true, min: -1e6, max: 1e6 }), fc.double({ noNaN: true, min: -1e6, max: 1e6 }), (v, step, w, c) => {
        for (const direction of ['above', 'below'] as const) {
          const worse = direction === 'above' ? v + step : v - step;
          const t = { warning: w, critical: c };
          expect(compareStatus(evaluateThresholds(worse, t, direction), evaluateThresholds(v, t, direction))).toBeLessThanOrEqual(0);
        }
      }),
    );
  });

  it('the worst status decides the exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN', () => {
    expect(worstStatus([])).toBe('ok');
    expect(worstStatus(['ok', 'unknown'])).toBe('unknown');
    expect(worstStatus(['unknown', 'warning', 'ok'])).toBe('warning');
    expect(worstStatus(['warning', 'critical', 'unknown'])).toBe('critical');
    expect(STATUSES.map(exitCodeOfStatus)).toEqual([0, 3, 1, 2]);
    fc.assert(fc.property(fc.array(fc.constantFrom(...STATUSES)), (xs) => {
      const worst = worstStatus(xs);
      for (const s of xs) expect(compareStatus(worst, s)).toBeLessThanOrEqual(0);
    }));
  });

  it('reads levels in the check\'s unit: durations, sizes, percentages; and refuses anything else naming what it expects', () => {
    expect(parseThresholdValue('30s', 'seconds')).toBe(30);
    expect(parseThresholdValue('5m', 'seconds')).toBe(300);
    expect(parseThresholdValue('250ms', 'seconds')).toBe(0.25);
    expect(parseThresholdValue(45, 'seconds')).toBe(45);
    expect(parseThresholdValue('1GiB', 'bytes')).toBe(1024 ** 3);
    expect(parseThresholdValue('512MB', 'bytes')).toBe(512e6);
    expect(parseThresholdValue('80%', 'ratio')).toBe(0.8);
    expect(parseThresholdValue('0.8', 'ratio')).toBe(0.8);
    expect(() => parseThresholdValue('soon', 'seconds')).toThrow(/duration such as "30s"/);
    expect(() => parseThresholdValue('80%', 'bytes')).toThrow(/size such as/);
  });

  it('every check has a unique name and metric, and only the labels Prometheus allows', () => {
    expect(new Set(HEALTH_CHECKS.map((c) => c.name)).size).toBe(HEALTH_CHECKS.length);
    expect(new Set(HEALTH_CHECKS.map((c) => c.metric)).size).toBe(HEALTH_CHECKS.length);
    for (const c of HEALTH_CHECKS) {
      expect(c.metric).toMatch(/^shardctl_[a-z_]+$/);
      for (const l of c.labels) expect(l).toMatch(/^[a-z_]+$/);
    }
  });

  it('a sparkline spans the range of its values', () => {
    expect(sparkline([0, 5, 10])).toBe('▁▅█');
    expect(sparkline([3, 3])).toBe('▁▁');
    expect(sparkline([null, 1])).toBe(' ▁');
  });
});
