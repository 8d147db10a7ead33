import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatJson } from '../../src/cli/render/moves.js';
import { PLAN_FORMAT, planFileOf, readPlanFile, type PlanDocument } from '../../src/engine/moves/plan.js';

const doc: PlanDocument = {
  format: PLAN_FORMAT,
  kind: 'remove',
  fromEpoch: 3,
  targetRing: { vnodes: 64, members: [{ id: 'shard-0', weight: 1 }] },
  removeShard: 'shard-1',
  estimate: 'statistics',
  moves: [
    {
      source: 'shard-1',
      target: 'shard-0',
      mode: 'fresh',
      ranges: [{ start: 0, end: 10 }, { start: 20, end: 4294967295 }],
      fraction: 0.5,
      estRows: 10,
      estBytes: 100,
      tables: [{ table: 'public.messages', rows: 10, bytes: 100 }],
    },
  ],
  createdAt: '2026-12-01T11:00:00.000Z',
  createdBy: 'vitest@test',
};

describe('plan files', () => {
  it('are written with ranges as [start, end] pairs and read back as the same plan', () => {
    const file = planFileOf(doc);
    expect(file.moves[0]!.ranges).toEqual([[0, 10], [20, 4294967295]]);
    expect(readPlanFile(JSON.parse(formatJson(file)))).toEqual(doc);
  });

  it('of format shardctl-plan/1, with {start, end} objects, are still read', () => {
    const old = JSON.parse(JSON.stringify({ ...doc, format: 'shardctl-plan/1' }));
    expect(readPlanFile(old)).toEqual(doc);
  });

  it('that are not plans, or hold a range outside the hash space, are refused as usage errors', () => {
    expect(() => readPlanFile({ format: 'something/1', moves: [] })).toThrow(/not a shardctl plan file/);
    expect(() => readPlanFile(null)).toThrow(/not a shardctl plan file/);
    const bad = (ranges: unknown) => readPlanFile({ ...planFileOf(doc), moves: [{ ...planFileOf(doc).moves[0], ranges }] });
    expect(() => bad([[5, 1]])).toThrow(/move 1 has a range/);
    expect(() => bad([[0, 2 ** 32]])).toThrow(/move 1 has a range/);
    expect(() => bad([{ start: 'a', end: 2 }])).toThrow(/move 1 has a range/);
    expect(() => bad('0-10')).toThrow(/move 1 has no ranges/);
  });
});

describe('formatJson', () => {
  it('is JSON.stringify(value, null, 2) for any JSON value, except that arrays of numbers or of number arrays stay on one line', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(JSON.parse(formatJson(value))).toEqual(JSON.parse(JSON.stringify(value)));
      }),
    );
    expect(formatJson({ a: { ranges: [[1, 2], [3, 4]], n: [1, 2] }, s: ['x'] })).toBe('{\n  "a": {\n    "ranges": [[1,2],[3,4]],\n    "n": [1,2]\n  },\n  "s": [\n    "x"\n  ]\n}');
  });

  it('prints a plan of thousands of ranges in a few dozen lines', () => {
    const ranges = Array.from({ length: 4000 }, (_, i) => ({ start: i * 10, end: i * 10 + 5 }));
    const text = formatJson(planFileOf({ ...doc, moves: [{ ...doc.moves[0]!, ranges }] }));
    expect(text.split('\n').length).toBeLessThan(50);
  });
});
