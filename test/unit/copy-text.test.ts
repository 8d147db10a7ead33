import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CopyRowSplitter, splitLeadingHash } from '../../src/core/copy-text.js';

describe('COPY text parsing', () => {
  it('splits rows across arbitrary chunk boundaries without losing or merging any', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'grapheme' }).map((s) => s.replace(/\n/g, '\\n')), { maxLength: 30 }), fc.array(fc.nat(50)), (rows, cuts) => {
        const stream = Buffer.from(rows.map((r) => `${r}\n`).join(''));
        const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
        const splitter = new CopyRowSplitter();
        const out: string[] = [];
        let prev = 0;
        for (const p of [...points, stream.length]) {
          for (const row of splitter.push(stream.subarray(prev, p))) out.push(row.toString('utf8'));
          prev = p;
        }
        expect(out).toEqual(rows.map((r) => `${r}\n`));
        expect(splitter.pendingBytes).toBe(0);
      }),
    );
  });

  it('reads the leading hash and returns the rest of the row untouched', () => {
    const { hash, rest } = splitLeadingHash(Buffer.from('4294967295\t42\thello\\tworld\n'));
    expect(hash).toBe(4294967295);
    expect(rest.toString()).toBe('42\thello\\tworld\n');
  });
});
