import { parse as parseCsv } from 'csv-parse/sync';
import fc from 'fast-check';
import { PassThrough, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { PgTypeOid } from '../../src/core/pg-values.js';
import type { QueryColumn, QueryRow, QuerySummary, ShardOutcome } from '../../src/engine/query/types.js';
import { createQueryWriter, type QueryFormat } from '../../src/cli/render/query-writers.js';
import { CopyNdjsonEncoder } from '../../src/cli/render/query-ndjson-copy.js';
import { RowJsonEncoder } from '../../src/cli/render/query-row-json.js';
import { copyTextValues } from '../../src/core/copy-text.js';

const TEXT = 25;
const TIMESTAMPTZ = 1184;

/** A Writable that keeps what it is given and counts the write calls. */
function collector(options: { highWaterMark?: number; delayMs?: number } = {}) {
  const chunks: string[] = [];
  let writes = 0;
  let inFlight = false;
  const stream = new Writable({
    highWaterMark: options.highWaterMark ?? 16 * 1024,
    decodeStrings: false,
    write(chunk: string | Buffer, _enc, done) {
      writes++;
      chunks.push(chunk.toString());
      if (!options.delayMs) return done();
      inFlight = true;
      setTimeout(() => {
        inFlight = false;
        done();
      }, options.delayMs);
    },
  });
  return {
    stream,
    text: () => chunks.join(''),
    get writes() {
      return writes;
    },
    get inFlight() {
      return inFlight;
    },
  };
}

function summaryOf(shards: ShardOutcome[], rows: number, limited = false): QuerySummary {
  return { shards, rows, durationMs: 12, limited };
}
const ok = (shard: string, rows = 0): ShardOutcome => ({ shard, status: 'ok', rows, durationMs: 5 });

async function run(format: QueryFormat, columns: QueryColumn[], rows: QueryRow[], summary = summaryOf([ok('s1', rows.length)], rows.length), tableMaxRows?: number) {
  const out = collector();
  const writer = createQueryWriter(format, out.stream, { command: 'query', tableMaxRows });
  await writer.columns(columns);
  for (const row of rows) await writer.row(row);
  await writer.end(summary);
  return out.text();
}

/**
 * csv-parse, with an unquoted empty field read as NULL (as COPY FROM reads it)
 * and any line break ending a record outside quotes, as most readers take it.
 */
function readCsv(text: string): Array<Array<string | null>> {
  return parseCsv(text, { record_delimiter: ['\r\n', '\n', '\r'], cast: (value: string, ctx: { quoting: boolean }) => (value === '' && !ctx.quoting ? null : value), relax_column_count: false });
}

const textColumns = (n: number): QueryColumn[] => Array.from({ length: n }, (_, i) => ({ name: `c${i}`, typeOid: TEXT }));

const tricky: Array<string | null> = ['a,b', 'say "hi"', 'line1\nline2', 'cr\rhere', 'crlf\r\nin', '', null, 'ünïcødé 😀 漢字', ' lead and trail ', 'NULL'];

describe('csv', () => {
  it('parses back with csv-parse to the same values: commas, quotes, newlines, NULL vs "", unicode', async () => {
    const rows: QueryRow[] = [
      { shard: 's1', values: tricky },
      { shard: 's,2', values: [...tricky].reverse() },
    ];
    const text = await run('csv', textColumns(tricky.length), rows);
    const records = readCsv(text);
    expect(records[0]).toEqual(['shard', ...textColumns(tricky.length).map((c) => c.name)]);
    expect(records.slice(1)).toEqual(rows.map((r) => [r.shard, ...r.values]));
  });

  it('writes NULL as an empty unquoted field and the empty string as "", records ending in CRLF', async () => {
    const text = await run('csv', textColumns(3), [{ shard: 's1', values: [null, '', 'x'] }]);
    expect(text).toBe('shard,c0,c1,c2\r\ns1,,"",x\r\n');
  });

  it('quotes a field holding a comma, a quote, a lone LF or a lone CR, doubling its quotes', async () => {
    const text = await run('csv', textColumns(4), [{ shard: 's1', values: ['a,b', 'say "hi"', 'l1\nl2', 'c\rr'] }]);
    expect(text).toBe('shard,c0,c1,c2,c3\r\ns1,"a,b","say ""hi""","l1\nl2","c\rr"\r\n');
  });

  it('writes the header once however many batches the rows take', async () => {
    const rows = Array.from({ length: 20_000 }, (_, i) => ({ shard: `s${i % 4}`, values: [String(i), 'x'.repeat(20)] }));
    const text = await run('csv', textColumns(2), rows);
    const records = readCsv(text);
    expect(records.filter((r) => r[0] === 'shard')).toHaveLength(1);
    expect(records).toHaveLength(20_001);
    expect(records.slice(1).map((r) => r[1])).toEqual(rows.map((r) => r.values[0]));
  });

  it('has the header only when no row comes', async () => {
    expect(await run('csv', textColumns(1), [])).toBe('shard,c0\r\n');
  });
});

describe('field names', () => {
  it('a column named shard and duplicate names get a suffix instead of overwriting a value', async () => {
    const columns: QueryColumn[] = [
      { name: 'shard', typeOid: TEXT },
      { name: 'id', typeOid: PgTypeOid.int4 },
      { name: 'id', typeOid: PgTypeOid.int4 },
    ];
    const text = await run('ndjson', columns, [{ shard: 's1', values: ['mine', '1', '2'] }]);
    expect(JSON.parse(text)).toEqual({ shard: 's1', shard_2: 'mine', id: 1, id_2: 2 });
    expect(Object.keys(JSON.parse(text))).toEqual(['shard', 'shard_2', 'id', 'id_2']);
    expect(readCsv(await run('csv', columns, []))[0]).toEqual(['shard', 'shard_2', 'id', 'id_2']);
  });
});

const typedColumns: QueryColumn[] = [
  { name: 'big', typeOid: PgTypeOid.int8 },
  { name: 'small', typeOid: PgTypeOid.int8 },
  { name: 'amount', typeOid: PgTypeOid.numeric },
  { name: 'price', typeOid: PgTypeOid.numeric },
  { name: 'at', typeOid: TIMESTAMPTZ },
  { name: 'doc', typeOid: PgTypeOid.jsonb },
  { name: 'flag', typeOid: PgTypeOid.bool },
  { name: 'ratio', typeOid: PgTypeOid.float8 },
  { name: 'note', typeOid: TEXT },
];
const typedRow: QueryRow = {
  shard: 'shard-1',
  values: ['9007199254740993', '42', '12345678901234567890.123456789', '1.10', '2024-02-29 23:59:59.123456+00', '{"a": [1, null], "b": "x\\ny"}', 't', 'NaN', ''],
};
const typedRow2: QueryRow = { shard: 'shard-2', values: [null, '-7', 'NaN', '2.5', null, 'null', 'f', '1e+100', null] };
const typedObject = {
  shard: 'shard-1',
  big: '9007199254740993',
  small: 42,
  amount: '12345678901234567890.123456789',
  price: 1.1,
  at: '2024-02-29 23:59:59.123456+00',
  doc: { a: [1, null], b: 'x\ny' },
  flag: true,
  ratio: 'NaN',
  note: '',
};
const typedObject2 = { shard: 'shard-2', big: null, small: -7, amount: 'NaN', price: 2.5, at: null, doc: null, flag: false, ratio: 1e100, note: null };

describe('ndjson', () => {
  it('is one JSON object per row and line, typed: bigints past 2^53 and long numerics as strings, timestamps as printed', async () => {
    const text = await run('ndjson', typedColumns, [typedRow, typedRow2]);
    const lines = text.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.map((l) => JSON.parse(l))).toEqual([typedObject, typedObject2]);
  });

  it('writes no line when no row comes', async () => {
    expect(await run('ndjson', typedColumns, [])).toBe('');
  });
});

describe('json', () => {
  const columnsOut = [
    { name: 'shard', key: 'shard', type: 'text', typeOid: 25 },
    { name: 'big', key: 'big', type: 'int8', typeOid: 20 },
  ];

  it('is the envelope with typed rows, the shards and the summary', async () => {
    const text = await run('json', typedColumns, [typedRow, typedRow2], summaryOf([ok('shard-1', 1), ok('shard-2', 1)], 2));
    const doc = JSON.parse(text);
    expect(doc.ok).toBe(true);
    expect(doc.command).toBe('query');
    expect(doc.error).toBeUndefined();
    expect(doc.data.columns.slice(0, 2)).toEqual(columnsOut);
    expect(doc.data.rows).toEqual([typedObject, typedObject2]);
    expect(doc.data.shards).toEqual([ok('shard-1', 1), ok('shard-2', 1)]);
    expect(doc.data.summary).toEqual({ shards: 2, failed: 0, rows: 2, durationMs: 12, limited: false, slowest: { shard: 'shard-1', durationMs: 5 } });
    expect(text.endsWith('\n')).toBe(true);
  });

  it('is a valid document for 0 rows, also when no shard described a result', async () => {
    const doc = JSON.parse(await run('json', typedColumns, []));
    expect(doc.ok).toBe(true);
    expect(doc.data.rows).toEqual([]);
    expect(doc.data.columns).toHaveLength(typedColumns.length + 1);

    const out = collector();
    const writer = createQueryWriter('json', out.stream, { command: 'query' });
    const failed: ShardOutcome = { shard: 's1', status: 'failed', rows: 0, durationMs: 3, error: 'relation "t" does not exist', code: '42P01' };
    await writer.end(summaryOf([failed], 0));
    const empty = JSON.parse(out.text());
    expect(empty.data.columns).toEqual([{ name: 'shard', key: 'shard', type: 'text', typeOid: 25 }]);
    expect(empty.data.rows).toEqual([]);
    expect(empty.ok).toBe(false);
  });

  it('has ok false and an error naming the failed shards, with the other shards\' rows still in data', async () => {
    const timeout: ShardOutcome = { shard: 'shard-2', status: 'timeout', rows: 0, durationMs: 5000, error: 'no answer within 5s' };
    const failed: ShardOutcome = { shard: 'shard-3', status: 'failed', rows: 0, durationMs: 4, error: 'division by zero', code: '22012' };
    const doc = JSON.parse(await run('json', typedColumns, [typedRow], summaryOf([ok('shard-1', 1), timeout, failed], 1)));
    expect(doc.ok).toBe(false);
    expect(doc.error).toEqual({
      kind: 'operation',
      message: '2 of 3 shards failed: shard-2, shard-3',
      exitCode: 1,
      details: ['shard-2: timeout: no answer within 5s', 'shard-3: failed: division by zero (22012)'],
    });
    expect(doc.data.rows).toEqual([typedObject]);
    expect(doc.data.shards.map((s: ShardOutcome) => s.status)).toEqual(['ok', 'timeout', 'failed']);
    expect(doc.data.summary.failed).toBe(2);
    expect(doc.data.summary.slowest).toEqual({ shard: 'shard-2', durationMs: 5000 });
  });

  it('counts a shard cancelled at --limit as done, and one cancelled otherwise as failed', async () => {
    const cancelled: ShardOutcome = { shard: 's2', status: 'cancelled', rows: 3, durationMs: 2 };
    expect(JSON.parse(await run('json', typedColumns, [], summaryOf([ok('s1'), cancelled], 0, true))).ok).toBe(true);
    expect(JSON.parse(await run('json', typedColumns, [], summaryOf([ok('s1'), cancelled], 0, false))).ok).toBe(false);
  });

  it('is valid JSON with 100k rows, every row once and in order', async () => {
    const rows = Array.from({ length: 100_000 }, (_, i) => ({ shard: `s${i % 7}`, values: [String(i), `v,"${i}"\n`] }));
    const columns: QueryColumn[] = [{ name: 'i', typeOid: PgTypeOid.int4 }, { name: 'v', typeOid: TEXT }];
    const doc = JSON.parse(await run('json', columns, rows, summaryOf([ok('s1', 100_000)], 100_000)));
    expect(doc.data.rows).toHaveLength(100_000);
    expect(doc.data.rows.every((r: { i: number; v: string }, i: number) => r.i === i && r.v === `v,"${i}"\n`)).toBe(true);
  });

  it('abort() closes the document: still valid, ok false, the error and the rows already written', async () => {
    const out = collector();
    const writer = createQueryWriter('json', out.stream, { command: 'query' });
    await writer.columns(typedColumns);
    await writer.row(typedRow);
    await writer.abort({ kind: 'interrupted', message: 'interrupted by SIGINT', exitCode: 130 });
    await writer.end(summaryOf([], 0)); // ignored: the document is already closed
    const doc = JSON.parse(out.text());
    expect(doc.ok).toBe(false);
    expect(doc.error).toEqual({ kind: 'interrupted', message: 'interrupted by SIGINT', exitCode: 130, details: [] });
    expect(doc.data.rows).toEqual([typedObject]);
  });
});

describe('table', () => {
  it('shows NULL as ∅, distinct from an empty string and the text NULL', async () => {
    const text = await run('table', textColumns(3), [{ shard: 's1', values: [null, '', 'NULL'] }]);
    const line = text.split('\n')[1]!;
    expect(line).toMatch(/^s1\s+∅\s+NULL$/);
    expect(line.indexOf('∅')).toBeLessThan(line.indexOf('NULL'));
  });

  it('keeps tableMaxRows rows and then only counts the rest', async () => {
    const rows = Array.from({ length: 25 }, (_, i) => ({ shard: 's1', values: [`row-${i}`] }));
    const text = await run('table', textColumns(1), rows, undefined, 10);
    expect(text).toContain('row-9');
    expect(text).not.toContain('row-10');
    expect(text.trimEnd().split('\n').at(-1)).toBe('… 15 more rows (use --format csv|ndjson|json for all)');
    expect(text.trimEnd().split('\n')).toHaveLength(1 + 10 + 1);
  });

  it('shows the header and says there are no rows when none came', async () => {
    expect(await run('table', textColumns(1), [])).toMatch(/^shard\s+c0\n\(no rows\)\n$/);
  });
});

describe('writing to the stream', () => {
  const formats: QueryFormat[] = ['ndjson', 'json', 'csv'];

  it.each(formats)('%s: waits for drain on a slow reader, losing nothing and keeping order', async (format) => {
    const out = collector({ highWaterMark: 256, delayMs: 2 });
    const writer = createQueryWriter(format, out.stream, { command: 'query' });
    const big = 'x'.repeat(10_000);
    const n = 60;
    let waited = 0;
    await writer.columns([{ name: 'i', typeOid: PgTypeOid.int4 }, { name: 'pad', typeOid: TEXT }]);
    for (let i = 0; i < n; i++) {
      const pending = writer.row({ shard: 's1', values: [String(i), big] });
      if (pending) {
        waited++;
        // The promise is the back-pressure: while it is pending, the reader is still busy with a write.
        expect(out.inFlight).toBe(true);
        await pending;
      }
    }
    await writer.end(summaryOf([ok('s1', n)], n));
    await new Promise<void>((resolve) => out.stream.end(resolve));
    expect(waited).toBeGreaterThan(3);
    const text = out.text();
    const ids =
      format === 'csv'
        ? readCsv(text).slice(1).map((r) => Number(r[1]))
        : format === 'ndjson'
          ? text.trimEnd().split('\n').map((l) => JSON.parse(l).i)
          : JSON.parse(text).data.rows.map((r: { i: number }) => r.i);
    expect(ids).toEqual(Array.from({ length: n }, (_, i) => i));
  });

  it.each(formats)('%s: batches small rows into few writes', async (format) => {
    const out = collector();
    const writer = createQueryWriter(format, out.stream, { command: 'query' });
    await writer.columns([{ name: 'i', typeOid: PgTypeOid.int4 }]);
    for (let i = 0; i < 50_000; i++) await writer.row({ shard: 's1', values: [String(i)] });
    await writer.end(summaryOf([ok('s1', 50_000)], 50_000));
    expect(out.writes).toBeLessThan(50);
    expect(out.writes).toBeGreaterThan(1);
  });

  it.each(formats)('%s: stops writing once the reader is gone (EPIPE destroys the stream)', async (format) => {
    const out = new PassThrough();
    out.on('error', () => {});
    let written = 0;
    const write = out.write.bind(out);
    out.write = ((chunk: string, ...rest: never[]) => {
      written += chunk.length;
      return write(chunk, ...rest);
    }) as typeof out.write;
    const writer = createQueryWriter(format, out, { command: 'query' });
    await writer.columns(textColumns(1));
    out.destroy();
    expect(writer.closed).toBe(true);
    for (let i = 0; i < 20_000; i++) await writer.row({ shard: 's1', values: ['y'.repeat(20)] });
    await writer.end(summaryOf([ok('s1')], 0));
    expect(written).toBe(0);
  });
});

describe('a reader that goes away', () => {
  it.each(['ndjson', 'json', 'csv'] as QueryFormat[])('%s: is closed once a write fails with EPIPE on a stream that, like process.stdout, is not destroyed by it', async (format) => {
    let writes = 0;
    const out = new Writable({
      autoDestroy: false,
      emitClose: false,
      write(_chunk, _enc, done) {
        writes++;
        done(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    out.on('error', () => {});
    const writer = createQueryWriter(format, out, { command: 'query' });
    await writer.columns(textColumns(1));
    for (let i = 0; i < 20_000 && !writer.closed; i++) await writer.row({ shard: 's1', values: ['y'.repeat(20)] });
    await new Promise((resolve) => setImmediate(resolve));
    expect(out.destroyed).toBe(false);
    expect(writer.closed).toBe(true);
    const before = writes;
    for (let i = 0; i < 20_000; i++) await writer.row({ shard: 's1', values: ['y'.repeat(20)] });
    await writer.end(summaryOf([ok('s1')], 0));
    expect(writes).toBe(before);
  });
});

describe('round trips', () => {
  // Any text, and text made of what CSV must quote, so both kinds are drawn often.
  const special = fc.string({ unit: fc.constantFrom(',', '"', '\n', '\r', ' ', 'a', '😀'), maxLength: 8 });
  const value = fc.option(fc.oneof(fc.string({ unit: 'grapheme', maxLength: 12 }), special), { nil: null, freq: 4 });
  const shardId = fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,10}$/);
  const rows = (width: number) => fc.array(fc.record({ shard: shardId, values: fc.array(value, { minLength: width, maxLength: width }) }), { maxLength: 20 });

  it('any strings and NULLs come back exactly through CSV', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 4 }).chain((w) => fc.tuple(fc.constant(w), rows(w))), async ([width, input]) => {
        const records = readCsv(await run('csv', textColumns(width), input));
        expect(records.slice(1)).toEqual(input.map((r) => [r.shard, ...r.values]));
      }),
      { numRuns: 300 },
    );
  });

  it('any strings and NULLs come back exactly through NDJSON', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 4 }).chain((w) => fc.tuple(fc.constant(w), rows(w))), async ([width, input]) => {
        const text = await run('ndjson', textColumns(width), input);
        const lines = text ? text.slice(0, -1).split('\n') : [];
        expect(lines.map((l) => JSON.parse(l))).toEqual(
          input.map((r) => Object.fromEntries([['shard', r.shard], ...r.values.map((v, i) => [`c${i}`, v])])),
        );
      }),
      { numRuns: 300 },
    );
  });
});

describe('--format csv from COPY text (copyRows)', () => {
  const copyEscape = (v: string | null) =>
    v === null ? '\\N' : v.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\v/g, '\\v').replace(/\x08/g, '\\b').replace(/\f/g, '\\f');
  const copyOf = (rows: Array<Array<string | null>>) => Buffer.from(rows.map((r) => r.map(copyEscape).join('\t') + '\n').join(''));
  const viaCopy = async (columns: QueryColumn[], chunks: Array<{ shard: string; rows: Array<Array<string | null>> }>) => {
    const out = collector();
    const writer = createQueryWriter('csv', out.stream, { command: 'query' });
    await writer.columns(columns);
    for (const chunk of chunks) await writer.copyRows!(chunk.shard, copyOf(chunk.rows), chunk.rows.length);
    await writer.end(summaryOf([], 0));
    return out.text();
  };
  const viaRows = (columns: QueryColumn[], chunks: Array<{ shard: string; rows: Array<Array<string | null>> }>) =>
    run('csv', columns, chunks.flatMap((c) => c.rows.map((values) => ({ shard: c.shard, values }))), summaryOf([], 0));

  it('writes what row() writes through csv-stringify: commas, quotes, CR, LF, tabs, backslashes, empty strings and NULLs', async () => {
    const columns = [{ name: 'a', typeOid: 25 }, { name: 'b', typeOid: 25 }, { name: 'n', typeOid: 20 }];
    const chunks = [
      { shard: 's1', rows: [['x, "y"', 'line\r\nnext', '1'], ['', null, null], ['tab\there \\ back', 'é 😀 漢字', '9007199254740993']] },
      { shard: 's2', rows: [[null, '', '-2'], ['"', ',', '3'], ['\v\b\f', '\n', '4']] },
    ];
    const got = await viaCopy(columns, chunks);
    expect(got).toBe(await viaRows(columns, chunks));
    const parsed = parseCsv(got, { relax_column_count: false }) as string[][];
    expect(parsed[0]).toEqual(['shard', 'a', 'b', 'n']);
    expect(parsed[1]).toEqual(['s1', 'x, "y"', 'line\r\nnext', '1']);
  });

  it('equals the row() output for any values (property)', async () => {
    const value = fc.oneof(fc.constant(null), fc.string({ unit: fc.constantFrom('a', ',', '"', '\r', '\n', '\t', '\\', ' ', 'é', '😀', '\v', 'N') }));
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(value, value), { minLength: 1, maxLength: 6 }), fc.constantFrom('s1', 'shard-2'), async (rows, shard) => {
        const columns = [{ name: 'a', typeOid: 25 }, { name: 'b', typeOid: 25 }];
        const chunks = [{ shard, rows: rows.map((r) => [...r]) }];
        expect(await viaCopy(columns, chunks)).toBe(await viaRows(columns, chunks));
      }),
      { numRuns: 300 },
    );
  });
});

describe('the --json document from COPY text (copyRows)', () => {
  const columns = [
    { name: 'id', typeOid: 20 },
    { name: 'body', typeOid: 25 },
    { name: 'ok', typeOid: 16 },
  ];
  const copyEscape = (v: string | null) => (v === null ? '\\N' : v.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n'));
  const copyOf = (rows: Array<Array<string | null>>) => Buffer.from(rows.map((r) => r.map(copyEscape).join('\t') + '\n').join(''));
  const a: Array<Array<string | null>> = [['1', 'x, "y"\n', 't'], ['2', '', null]];
  const b: Array<Array<string | null>> = [['3', null, 'f']];
  const c: Array<Array<string | null>> = [['4', 'tab\there', 't'], ['9007199254740993', 'é', 'f']];

  it('is byte for byte the document row() writes, for chunks of two shards and a row() between them', async () => {
    const byRows = await run('json', columns, [
      ...a.map((values) => ({ shard: 's1', values })),
      ...b.map((values) => ({ shard: 's2', values })),
      ...c.map((values) => ({ shard: 's1', values })),
    ], summaryOf([ok('s1', 4), ok('s2', 1)], 5));
    const out = collector();
    const writer = createQueryWriter('json', out.stream, { command: 'query' });
    await writer.columns(columns);
    await writer.copyRows!('s1', copyOf(a), a.length);
    await writer.row({ shard: 's2', values: b[0]! });
    await writer.copyRows!('s1', copyOf(c), c.length);
    await writer.end(summaryOf([ok('s1', 4), ok('s2', 1)], 5));
    expect(out.text()).toBe(byRows);
    expect(JSON.parse(out.text()).data.rows.map((r: { id: unknown }) => r.id)).toEqual([1, 2, 3, 4, '9007199254740993']);
  });

  it('a first chunk from COPY opens the rows as row() would, and an empty chunk writes nothing', async () => {
    const out = collector();
    const writer = createQueryWriter('json', out.stream, { command: 'query' });
    await writer.columns(columns);
    await writer.copyRows!('s1', Buffer.alloc(0), 0);
    await writer.copyRows!('s1', copyOf(b), 1);
    await writer.end(summaryOf([ok('s1', 1)], 1));
    expect(out.text()).toBe(await run('json', columns, [{ shard: 's1', values: b[0]! }], summaryOf([ok('s1', 1)], 1)));
  });
});

describe('CopyNdjsonEncoder', () => {
  it('turns COPY text into the bytes RowJsonEncoder writes for the same values, NULL apart from ""', () => {
    const columns = [
      { name: 'id', typeOid: 20 },
      { name: 'body', typeOid: 25 },
      { name: 'n', typeOid: 23 },
      { name: 'ok', typeOid: 16 },
      { name: 'amount', typeOid: 1700 },
      { name: 'doc', typeOid: 3802 },
      { name: 'big', typeOid: 20 },
    ];
    const rows: Array<Array<string | null>> = [
      ['1', 'tab\there\nline\\back "q" \x01\v\b\f\r é 😀', '-7', 't', '12.50', '{"a": "x\\"y"}', '9007199254740993'],
      ['2', '', null, 'f', '12345678901234567890.123456789', null, '-9007199254740991'],
      ['3', null, '0', null, 'NaN', '[1, 2]', '9007199254740992'],
    ];
    const copyText = rows
      .map((r) => r.map((v) => (v === null ? '\\N' : v.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\v/g, '\\v').replace(/\x08/g, '\\b').replace(/\f/g, '\\f'))).join('\t') + '\n')
      .join('');
    const expected = rows.map((values) => new RowJsonEncoder(columns).encode({ shard: 's"1', values }) + '\n').join('');
    const got = new CopyNdjsonEncoder(columns).encode('s"1', Buffer.from(copyText), rows.length).toString('utf8');
    expect(got).toBe(expected);
    expect(got.split('\n').slice(0, -1).map((l) => JSON.parse(l).body)).toEqual([rows[0]![1], '', null]);
  });

  /** Values as COPY TO writes them in text format. */
  const copyEscape = (v: string | null) =>
    v === null ? '\\N' : v.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\v/g, '\\v').replace(/\x08/g, '\\b').replace(/\f/g, '\\f');
  const copyOf = (rows: Array<Array<string | null>>) => rows.map((r) => r.map(copyEscape).join('\t') + '\n').join('');
  const viaRows = (columns: QueryColumn[], shard: string, rows: Array<Array<string | null>>) => {
    const encoder = new RowJsonEncoder(columns);
    return rows.map((values) => encoder.encode({ shard, values }) + '\n').join('');
  };

  it('writes what RowJsonEncoder writes, for values each type\'s fast path takes and ones it leaves to the slow path', () => {
    const types = { int8: 20, int4: 23, numeric: 1700, bool: 16, json: 114, jsonb: 3802, float8: 701, text: 25 };
    const columns = Object.entries(types).map(([name, typeOid]) => ({ name, typeOid }));
    const rows: Array<Array<string | null>> = [
      // Fast: copied (int8 of 15 characters, numeric of 15 digits), mapped (bool), unescaped (json, jsonb).
      ['-12345678901234', '-2147483648', '-1234567.12345678', 't', '{"a":\n"b\\"c"}', '{"k": "tab\\there"}', '1.5', 'plain'],
      ['123456789012345', '0', '0.00', 'f', '[1,\r\n2]', '"\\u00e9"', '-0', ''],
      // Slow: a long int8 (past 2^53 and not), numerics of 16+ digits, NaN, a bool that is not t/f, floats that are not JSON numbers.
      ['9007199254740993', '7', '12345678901234567890.123456789', 'true', 'null', 'null', 'NaN', 'ü 😀 漢字'],
      ['-9007199254740991', '1', '1234567890123456', 'x', '1', '2', 'Infinity', '\\N'],
      ['1000000000000000', '2', '0.1234567890123456789', 'tt', '""', '{}', '-Infinity', '\\'],
      // Shapes shortDecimal must refuse: no integer part, a trailing dot, two dots, a sign alone, an exponent, empty.
      ['1', '3', '.5', 't', '[]', '[]', '1e5', 'a'],
      ['2', '4', '5.', 'f', '[]', '[]', '1E+5', 'b'],
      ['3', '5', '1.2.3', 't', '[]', '[]', '0.1', 'c'],
      ['4', '6', '-', 't', '[]', '[]', '2', 'd'],
      ['5', '7', '1e5', 't', '[]', '[]', '3', 'e'],
      ['6', '8', '', '', '[]', '[]', '', 'f'],
      [null, null, null, null, null, null, null, null],
    ];
    const got = new CopyNdjsonEncoder(columns).encode('s1', Buffer.from(copyOf(rows)), rows.length).toString('utf8');
    expect(got).toBe(viaRows(columns, 's1', rows));
    const parsed = got.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(parsed[0]).toMatchObject({ int8: -12345678901234, numeric: -1234567.12345678, bool: true, json: { a: 'b"c' }, jsonb: { k: 'tab\there' } });
    expect(parsed[2]).toMatchObject({ int8: '9007199254740993', numeric: '12345678901234567890.123456789', bool: 'true', float8: 'NaN' });
    expect(parsed[3]).toMatchObject({ int8: -9007199254740991, numeric: 1234567890123456, text: '\\N' });
    expect(parsed.at(-1)).toEqual({ shard: 's1', ...Object.fromEntries(Object.keys(types).map((k) => [k, null])) });
  });

  it('escapes text byte for byte as JSON.stringify does: COPY escapes, \\N as text, quotes, control characters, unicode, "" apart from NULL', () => {
    const columns = [{ name: 'a', typeOid: TEXT }, { name: 'b', typeOid: TIMESTAMPTZ }];
    const every = Array.from({ length: 0x80 }, (_, c) => String.fromCharCode(c)).join('');
    const rows: Array<Array<string | null>> = [
      ['\t', '\n'],
      ['\\', '\\N'],
      ['\\\\N', 'N'],
      ['', null],
      [null, ''],
      [every, '\u2028\u2029 \ufeff é 😀 漢字'],
      ['"', '""'],
      ['trailing\\', '\\t'],
      ['2026-01-01 00:00:00.123456+00', '1999-12-31 23:59:59+00'],
    ];
    const got = new CopyNdjsonEncoder(columns).encode('s', Buffer.from(copyOf(rows)), rows.length).toString('utf8');
    expect(got).toBe(viaRows(columns, 's', rows));
    expect(got.trimEnd().split('\n').map((l) => { const o = JSON.parse(l); return [o.a, o.b]; })).toEqual(rows);
  });

  it('escapes a special character wherever it falls in the 4-byte words text is copied by', () => {
    const columns = [{ name: 'id', typeOid: 23 }, { name: 't', typeOid: TEXT }, { name: 'u', typeOid: TEXT }];
    const rows: Array<Array<string | null>> = [];
    for (const special of ['\x00', '\x01', '\x1f', '\x7f', '"', '\\', '\t', '\n', '\r', 'é', '😀', '\u2028'])
      for (let at = 0; at < 9; at++) for (const lead of ['', 'x', 'xy', 'xyz']) rows.push([String(at), lead + 'a'.repeat(at) + special + 'b'.repeat(9 - at), special.repeat(at % 3 + 1)]);
    const got = new CopyNdjsonEncoder(columns).encode('s', Buffer.from(copyOf(rows)), rows.length).toString('utf8');
    expect(got).toBe(viaRows(columns, 's', rows));
  });

  it('equals RowJsonEncoder on any values of any type, over several calls and shards', () => {
    const piece = fc.constantFrom('\t', '\n', '\r', '\\', '\\N', '\\t', 'N', '"', '\x01', '\x1f', '\x7f', 'é', '😀', '漢', 't', 'f', '-', '.', '0', '1', '9', 'e', '{', '}', ' ', 'a');
    const integer = fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }).map(String);
    const anyText = fc.oneof(fc.string({ unit: piece, maxLength: 8 }), fc.string({ unit: 'grapheme', maxLength: 6 }), integer);
    // PostgreSQL prints int2/int4/oid/int8 as digits only; any other type's value may be any text here.
    const valueOf = (typeOid: number) => fc.option([20, 21, 23, 26].includes(typeOid) ? integer : anyText, { nil: null, freq: 5 });
    const typeOid = fc.constantFrom(16, 20, 21, 23, 25, 26, 114, 700, 701, 1043, 1184, 1700, 3802, 2950);
    fc.assert(
      fc.property(
        fc.array(typeOid, { minLength: 1, maxLength: 5 }).chain((types) =>
          fc.tuple(fc.constant(types), fc.array(fc.tuple(fc.constantFrom('s1', 'shard-"2"'), fc.array(fc.tuple(...types.map(valueOf)), { minLength: 1, maxLength: 6 })), { maxLength: 4 })),
        ),
        ([types, calls]) => {
          const columns = types.map((typeOid, i) => ({ name: i === 0 ? 'shard' : `c${i % 2}`, typeOid }));
          const encoder = new CopyNdjsonEncoder(columns);
          for (const [shard, rows] of calls) {
            expect(encoder.encode(shard, Buffer.from(copyOf(rows)), rows.length).toString('utf8')).toBe(viaRows(columns, shard, rows));
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('NDJSON copyRows with reuseBuffers: the same bytes as row() for a reader that takes each write at once and for one that keeps writes pending', async () => {
    const columns = [{ name: 'id', typeOid: 20 }, { name: 'body', typeOid: TEXT }];
    const chunks = Array.from({ length: 40 }, (_, c) => Array.from({ length: 500 }, (_, r) => [String(c * 500 + r), `body ${c}/${r} "q" \t ${'x'.repeat(r % 50)}`]));
    const expected = chunks.map((rows) => viaRows(columns, 's1', rows)).join('');
    for (const delayMs of [0, 1]) {
      // Like a socket: a write's bytes are read when it completes (a reused buffer written over before then would show).
      const got: string[] = [];
      // A high-water mark above a chunk: write() says go on while its bytes are still pending.
      const stream = new Writable({
        highWaterMark: 8 << 20,
        write(chunk: Buffer, _enc, done) {
          if (!delayMs) return got.push(chunk.toString()), done();
          setTimeout(() => (got.push(chunk.toString()), done()), delayMs);
        },
      });
      const writer = createQueryWriter('ndjson', stream, { command: 'query', reuseBuffers: true });
      await writer.columns(columns);
      for (const rows of chunks) await writer.copyRows!('s1', Buffer.from(copyOf(rows)), rows.length);
      await writer.end(summaryOf([ok('s1', 20_000)], 20_000));
      await new Promise<void>((resolve) => stream.end(resolve));
      expect(got.join('')).toBe(expected);
    }
  });

  it('NDJSON copyRows waits (a promise) only while the stream holds bytes it has not handed on, not because a write was larger than its highWaterMark', async () => {
    const columns = [{ name: 'id', typeOid: 20 }];
    const rows = Array.from({ length: 2000 }, (_, r) => [String(r)]);
    for (const delayMs of [0, 1]) {
      // A small high-water mark: every chunk is larger, so write() returns false each time.
      const stream = new Writable({
        highWaterMark: 1024,
        write(_chunk: Buffer, _enc, done) {
          if (!delayMs) return done();
          setTimeout(done, delayMs);
        },
      });
      const writer = createQueryWriter('ndjson', stream, { command: 'query', reuseBuffers: true });
      await writer.columns(columns);
      const pending = writer.copyRows!('s1', Buffer.from(copyOf(rows)), rows.length);
      // Taken at once (as process.stdout takes a write into a pipe): nothing to wait for.
      if (!delayMs) expect(pending).toBeUndefined();
      else {
        expect(pending).toBeInstanceOf(Promise);
        expect(stream.writableLength).toBeGreaterThan(0);
        await pending;
        expect(stream.writableLength).toBe(0);
      }
    }
  });

  it('reads the octal and hex escapes COPY FROM syntax allows as the bytes they name', () => {
    const got = new CopyNdjsonEncoder([{ name: 't', typeOid: 25 }]).encode('s', Buffer.from('a\\101\\x42\\x7\\q\n'), 1).toString();
    expect(got).toBe('{"shard":"s","t":"aAB\\u0007q"}\n');
    expect(copyTextValues('a\\101\\x42\\x7\\q\t\\N\t')).toEqual(['aAB\x07q', null, '']);
  });
});
