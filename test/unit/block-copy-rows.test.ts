import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DigestSum } from '../../src/mover/block-copy.js';

describe('DigestSum', () => {
  it('sums signed 64-bit decimal digests exactly, as BigInt does', () => {
    fc.assert(
      fc.property(fc.array(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), { maxLength: 200 }), (values) => {
        const sum = new DigestSum();
        for (const v of values) {
          const buf = Buffer.from(`x\t${v}\n`);
          sum.add(buf, 2, buf.length - 1);
        }
        expect(sum.take()).toBe(values.reduce((a, b) => a + b, 0n));
        expect(sum.take()).toBe(0n);
      }),
    );
  });

  it('stays exact past the point where it folds into a BigInt', () => {
    const sum = new DigestSum();
    const v = 2n ** 63n - 1n;
    const buf = Buffer.from(`${v}`);
    const n = (1 << 19) + 5;
    for (let i = 0; i < n; i++) sum.add(buf, 0, buf.length);
    expect(sum.take()).toBe(v * BigInt(n));
  });
});
