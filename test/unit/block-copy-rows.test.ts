import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BlockRowReader, DigestSum, TidList } from '../../src/core/block-copy-rows.js';

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

describe('BlockRowReader', () => {
  // A value as COPY text writes it: no raw tab or newline (they come escaped), any other byte, UTF-8 included.
  const value = fc.string({ unit: 'grapheme', maxLength: 40 }).map((v) => v.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r'));
  const row = fc.record({
    blockStep: fc.nat({ max: 3 }),
    offset: fc.integer({ min: 1, max: 291 }),
    columns: fc.array(value, { minLength: 1, maxLength: 4 }),
    digest: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  });

  it("gives each row's block, its columns without ctid and digest, the ctids as a tid[] literal and the digests' sum, however the stream is cut", () => {
    fc.assert(
      fc.property(fc.array(row, { maxLength: 60 }), fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }), (rows, cuts) => {
        let block = 0;
        const blocks: number[] = [];
        const text = rows
          .map((r) => {
            block += r.blockStep;
            blocks.push(block);
            return `(${block},${r.offset})\t${r.columns.join('\t')}\t${r.digest}\n`;
          })
          .join('');
        const stream = Buffer.from(text);
        const reader = new BlockRowReader();
        const digests = new DigestSum();
        const tids = new TidList();
        const seen: number[] = [];
        const out: Buffer[] = [];
        let from = 0;
        for (let i = 0; from < stream.length; i++) {
          const to = Math.min(stream.length, from + cuts[i % cuts.length]!);
          reader.feed(stream.subarray(from, to));
          from = to;
          const buf = Buffer.alloc(reader.unreadBytes);
          let at = 0;
          for (let b = reader.peekBlock(); b >= 0; b = reader.peekBlock()) {
            expect(reader.peekBlock()).toBe(b); // peeking twice reads the same row
            seen.push(b);
            at = reader.take(buf, at, digests, tids);
          }
          out.push(buf.subarray(0, at));
        }
        expect(reader.pendingRow).toBe(false);
        expect(seen).toEqual(blocks);
        expect(Buffer.concat(out).toString()).toBe(rows.map((r) => `${r.columns.join('\t')}\n`).join(''));
        expect(digests.take()).toBe(rows.reduce((a, r) => a + r.digest, 0n));
        let b = 0;
        expect(tids.take()).toBe(`{${rows.map((r) => `"(${(b += r.blockStep)},${r.offset})"`).join(',')}}`);
        expect(tids.take()).toBe('{}');
      }),
    );
  });

  it('holds back a row that has not ended, and says so at the end of the stream', () => {
    const reader = new BlockRowReader();
    reader.feed(Buffer.from('(7,1)\tabc\t12\n(8,2)\tde'));
    const buf = Buffer.alloc(reader.unreadBytes);
    const tids = new TidList();
    expect(reader.peekBlock()).toBe(7);
    const at = reader.take(buf, 0, new DigestSum(), tids);
    expect(buf.subarray(0, at).toString()).toBe('abc\n');
    expect(reader.peekBlock()).toBe(-1);
    expect(reader.pendingRow).toBe(true);
    reader.feed(Buffer.from('f\t-3\n'));
    const sum = new DigestSum();
    expect(reader.peekBlock()).toBe(8);
    const rest = Buffer.alloc(reader.unreadBytes);
    expect(rest.subarray(0, reader.take(rest, 0, sum, tids)).toString()).toBe('def\n');
    expect(sum.take()).toBe(-3n);
    expect(tids.take()).toBe('{"(7,1)","(8,2)"}');
    expect(reader.pendingRow).toBe(false);
  });

  it('refuses a row without a digest after its columns', () => {
    const reader = new BlockRowReader();
    reader.feed(Buffer.from('(3,1)\tonly\n'));
    expect(reader.peekBlock()).toBe(3);
    expect(() => reader.take(Buffer.alloc(16), 0, new DigestSum(), new TidList())).toThrow(/no digest/);
  });

  it('grows the ctid list past its first buffer', () => {
    const tids = new TidList();
    const one = Buffer.from('(4294967295,65535)');
    for (let i = 0; i < 10_000; i++) tids.add(one, 0, one.length);
    const literal = tids.take();
    expect(literal.length).toBe(2 + 10_000 * (one.length + 2) + 9_999);
    expect(literal.startsWith('{"(4294967295,65535)","(')).toBe(true);
  });
});
