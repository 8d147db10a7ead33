import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { init } from '../../src/engine/init.js';
import { BIN, runCli } from '../support/cli.js';
import { createDeployment, testRun, type TestDeployment } from '../support/deployment.js';
import { sql } from '../support/migrations.js';

/*
 * The query command as a script or a DBA runs it: output formats against
 * psql's own output of each shard, the stderr summary, exit codes, SQL from
 * the argument, a file or stdin.
 */

const VALUES_SQL = `
CREATE TABLE public.v (id bigint, t text, n numeric, at timestamptz);
INSERT INTO public.v VALUES
  (1, 'comma, "quote"' || chr(10) || 'newline', 12345678901234567890.123456789, '2026-03-01 12:00:00.123456+00'),
  (2, '', NULL, NULL),
  (3, NULL, -0.5, '1999-12-31 23:59:59.999999+00'),
  (9007199254740993, 'ünïcode ☃ 😀', 1, '2026-03-01 12:00:00+00');`;

/** psql's CSV of one shard's result (NULL empty, '' as ""), in a session set like query's. */
async function psqlCsv(url: string, statement: string): Promise<string[][]> {
  const r = await execa('psql', ['-X', '-q', '--csv', '-v', 'ON_ERROR_STOP=1', '-d', url, '-c', statement], { env: { PGTZ: 'UTC', PGDATESTYLE: 'ISO' } });
  return parseCsv(r.stdout) as string[][];
}

describe('shardctl query', () => {
  let d: TestDeployment;
  const cli = (args: string[]) => runCli(['-c', d.configPath, ...args]);

  beforeAll(async () => {
    d = await createDeployment({ shards: 3, redis: false, tables: false });
    await init(d.config, testRun());
    for (const url of d.shardUrls) await sql(url, VALUES_SQL);
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('a count per shard: a table on stdout, the summary (shards, rows, time, slowest) on stderr, exit 0', async () => {
    const r = await cli(['query', 'SELECT count(*) AS n FROM public.v']);
    expect(r.exitCode, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^shard\s+n$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)).sort()).toEqual([['shard-0', '4'], ['shard-1', '4'], ['shard-2', '4']]);
    expect(r.stderr).toMatch(/^info query: 3 shards, 3 rows in \d+\.\d\ds; slowest shard-\d \d+\.\d\ds$/);
  });

  it('--format csv is psql --csv of every shard, with the shard column first (commas, quotes, newlines, NULL vs "", unicode, bigints, numerics, microseconds)', async () => {
    const statement = 'SELECT * FROM public.v ORDER BY id';
    const r = await cli(['query', '--format', 'csv', statement]);
    expect(r.exitCode, r.stderr).toBe(0);
    const [header, ...rows] = parseCsv(r.stdout) as string[][];
    expect(header).toEqual(['shard', 'id', 't', 'n', 'at']);
    const expected: string[][] = [];
    for (const [i, url] of d.shardUrls.entries()) expected.push(...(await psqlCsv(url, statement)).slice(1).map((row) => [`shard-${i}`, ...row]));
    expect(rows.sort()).toEqual(expected.sort());
    // NULL is empty and unquoted, the empty string is "": the raw text keeps them apart.
    expect(r.stdout).toMatch(/^shard-\d,2,"",,$/m);
  });

  it('--json and --format ndjson carry the same rows, typed: bigints past 2^53 and long numerics as strings, NULL as null', async () => {
    const json = await cli(['--json', 'query', 'SELECT id, t, n, at FROM public.v']);
    expect(json.exitCode, json.stderr).toBe(0);
    expect(json.stderr).toBe('');
    const doc = JSON.parse(json.stdout) as { ok: boolean; data: { rows: Array<Record<string, unknown>> } };
    expect(doc.ok).toBe(true);
    const ndjson = await cli(['query', '--format', 'ndjson', 'SELECT id, t, n, at FROM public.v']);
    const lines = ndjson.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const key = (r: Record<string, unknown>) => JSON.stringify(r);
    expect(lines.map(key).sort()).toEqual(doc.data.rows.map(key).sort());
    expect(lines).toContainEqual({ shard: 'shard-1', id: '9007199254740993', t: 'ünïcode ☃ 😀', n: 1, at: '2026-03-01 12:00:00+00' });
    expect(lines).toContainEqual({ shard: 'shard-2', id: 2, t: '', n: null, at: null });
    expect(lines.find((l) => l.id === 1)).toMatchObject({ n: '12345678901234567890.123456789', at: '2026-03-01 12:00:00.123456+00' });
  });

  it('--merge-order created_at:desc --limit: globally ordered, cut at N, exit 0', async () => {
    const r = await cli(['query', '--format', 'ndjson', '--merge-order', 'at:desc,id', '--limit', '5', 'SELECT id, at FROM public.v WHERE at IS NOT NULL ORDER BY at DESC, id']);
    expect(r.exitCode, r.stderr).toBe(0);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { shard: string; id: unknown; at: string });
    expect(rows.map((x) => [x.shard, x.at])).toEqual([
      ['shard-0', '2026-03-01 12:00:00.123456+00'],
      ['shard-1', '2026-03-01 12:00:00.123456+00'],
      ['shard-2', '2026-03-01 12:00:00.123456+00'],
      ['shard-0', '2026-03-01 12:00:00+00'],
      ['shard-1', '2026-03-01 12:00:00+00'],
    ]);
    expect(r.stderr).toMatch(/5 rows \(stopped at --limit 5\)/);
  });

  it('a shard that fails: its error on stderr, one line, the others\' rows on stdout, exit 1; -q keeps the error and drops the summary', async () => {
    await sql(d.shardUrls[1]!, 'ALTER TABLE public.v RENAME TO v_moved');
    try {
      const r = await cli(['query', '--format', 'csv', 'SELECT id FROM public.v']);
      expect(r.exitCode).toBe(1);
      expect((parseCsv(r.stdout) as string[][]).slice(1).map((row) => row[0]).sort()).toEqual([...Array(4).fill('shard-0'), ...Array(4).fill('shard-2')]);
      expect(r.stderr).toMatch(/^info query: 3 shards, 8 rows in .*; 1 failed$/m);
      expect(r.stderr).toMatch(/^error shard-1: failed: relation "public.v" does not exist \(at character 16\) \(42P01\)$/m);
      const quiet = await cli(['-q', 'query', 'SELECT id FROM public.v']);
      expect(quiet.exitCode).toBe(1);
      expect(quiet.stderr).not.toMatch(/info query:/);
      expect(quiet.stderr).toMatch(/^error shard-1: failed: relation "public.v" does not exist/m);
      // --json: one document, ok false, the shard's status in it.
      const json = await cli(['--json', 'query', 'SELECT id FROM public.v']);
      expect(json.exitCode).toBe(1);
      const doc = JSON.parse(json.stdout) as { ok: boolean; data: { shards: Array<{ shard: string; status: string; code?: string }> } };
      expect(doc.ok).toBe(false);
      expect(doc.data.shards.find((s) => s.shard === 'shard-1')).toMatchObject({ status: 'failed', code: '42P01' });
    } finally {
      await sql(d.shardUrls[1]!, 'ALTER TABLE public.v_moved RENAME TO v');
    }
  });

  it('a reader that closes early (| head -1) stops every shard and ends the run quietly with exit 0, for rows read as COPY text and through the cursor', async () => {
    // Each shard could stream 20M rows; the reader wants one line. Two small series joined, not one of
    // 20M: PostgreSQL builds a set-returning function's whole result before its first row, which took
    // longer than the query's timeout on a loaded machine; the join's rows come out from the start.
    const rows = 'FROM generate_series(1, 20000) a, generate_series(1, 1000) b';
    for (const extra of ['', "--param 1 "]) {
      const statement = extra ? `SELECT (a - 1) * 1000 + b AS g, $1::int AS one ${rows}` : `SELECT (a - 1) * 1000 + b AS g ${rows}`;
      const started = Date.now();
      const r = await execa('bash', ['-c', `node ${BIN} -c '${d.configPath}' -q query --format ndjson ${extra}'${statement}' | head -1; echo "status=\${PIPESTATUS[0]}" >&2`], { reject: false, stdin: 'ignore' });
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(JSON.parse(String(r.stdout).trim())).toMatchObject({ g: 1 });
      expect(String(r.stderr).trim()).toBe('status=0');
    }
  });

  it('a write is refused on every shard (25006) and exits 1', async () => {
    const r = await cli(['query', "UPDATE public.v SET t = 'x'"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr.match(/cannot execute UPDATE in a read-only transaction \(25006\)/g)).toHaveLength(3);
    for (const url of d.shardUrls) expect(await sql(url, "SELECT count(*)::int AS n FROM public.v WHERE t = 'x'")).toEqual([{ n: 0 }]);
  });

  it('SQL from -f FILE, from stdin with "-", and from a piped stdin; --param binds', async () => {
    const file = path.join(d.dir, 'q.sql');
    await writeFile(file, 'SELECT $1::int + 1 AS x');
    const fromFile = await cli(['query', '--format', 'csv', '--shard', 'shard-0', '-f', file, '--param', '41']);
    // RFC 4180 line ends (execa drops the last one).
    expect(fromFile.stdout).toBe('shard,x\r\nshard-0,42');
    const env = { ...process.env, NO_COLOR: undefined, CI: undefined };
    for (const args of [['-'], []]) {
      const r = await execa('node', [BIN, '-c', d.configPath, 'query', '--format', 'csv', '--shard', 'shard-2', '--param', "it's", ...args], {
        input: 'SELECT $1 AS v',
        reject: false,
        env,
        extendEnv: false,
      });
      expect(r.exitCode, String(r.stderr)).toBe(0);
      expect(r.stdout).toBe("shard,v\r\nshard-2,it's");
    }
  });

  it('usage errors exit 2 and run nothing: no SQL, SQL twice, a bad --merge-order, --format, --timeout', async () => {
    expect((await cli(['query'])).stderr).toMatch(/no SQL/);
    for (const args of [
      ['query'],
      ['query', 'SELECT 1', '-f', 'x.sql'],
      ['query', '--merge-order', 'a:sideways', 'SELECT 1 AS a'],
      ['query', '--format', 'xml', 'SELECT 1'],
      ['query', '--timeout', 'soon', 'SELECT 1'],
      ['query', '--merge-order', 'b', 'SELECT 1 AS a'],
      ['query', '--shard', 'shard-9', 'SELECT 1'],
    ]) {
      const r = await cli(args);
      expect(r.exitCode, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stdout).toBe('');
    }
  });

  it('--help shows the examples: a count per shard, a key\'s rows, a merged time-ordered search', async () => {
    const r = await runCli(['query', '--help']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("query 'SELECT count(*) FROM public.messages'");
    expect(r.stdout).toContain('query --key room-42');
    expect(r.stdout).toContain('--merge-order created_at:desc --limit 50');
    expect(r.stdout).toMatch(/default health\.timeout/);
  });
});
