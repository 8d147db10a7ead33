// query (issue 15), on the local PostgreSQL, unique databases dropped at the end.
// (a) `SELECT count(*)` over 32 shard databases (10,000 rows each): the wall
//     time of `shardctl query` beside the slowest single shard alone (`query
//     --shard ID`, every shard, the maximum) and beside a serial `psql` loop
//     over the same 32 databases, BENCH_QUERY_ROUNDS (3) times, alternating.
//     Goals: <= 1.5x the slowest shard alone; >= 2x faster than the loop.
// (b) 2M rows (4 shards of 500,000) streamed as NDJSON into `wc -l`, beside
//     `psql -c "\copy (…) to stdout"` of the same rows (the 4 psql at once,
//     into one `wc -l`): rows/s, goal >= 0.5x psql's rate; peak RSS of the
//     shardctl process from /usr/bin/time at 200k and at 2M rows: goal
//     < 150 MB and no higher at 2M than at 200k (flat: a bounded batch per
//     shard, back-pressure to the pipe; "no higher" allows 5%, the few MiB
//     RSS varies between identical runs).
// BENCH_QUERY_PARTS: which of them to run, "count,stream" (default both).
// BENCH_QUERY_STREAM_ROUNDS (1): (b)'s runs at each size, alternating
// shardctl and psql; the lines give the median of each.
// Prints JSON lines.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = path.join(ROOT, 'bin/shardctl');
const PG_URL = process.env.SHARDCTL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const COUNT_SHARDS = Number(process.env.BENCH_QUERY_SHARDS ?? 32);
const ROUNDS = Number(process.env.BENCH_QUERY_ROUNDS ?? 3);
const STREAM_SHARDS = 4;
const STREAM_ROWS = Number(process.env.BENCH_QUERY_ROWS ?? 2_000_000);
const SMALL_ROWS = 200_000;
const PARTS = new Set((process.env.BENCH_QUERY_PARTS ?? 'count,stream').split(',').map((p) => p.trim()));
const STREAM_ROUNDS = Number(process.env.BENCH_QUERY_STREAM_ROUNDS ?? 1);

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const r2 = (x) => +x.toFixed(2);
const dbUrl = (db) => { const u = new URL(PG_URL); u.pathname = `/${db}`; return u.toString(); };

/** A shell pipeline, timed; with `rss`, the peak RSS (KiB) of the command /usr/bin/time wraps. */
function shell(script, env = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('sh', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${script} exited ${r.status}: ${r.stderr}`);
  return { seconds, stdout: String(r.stdout) };
}

const q = (s) => `'${s.replace(/'/g, `'\\''`)}'`;

async function deployment(admin, name, shards, fill) {
  const tag = `${process.pid}_${Date.now().toString(36)}`;
  const meta = `sctb_q${name}_meta_${tag}`;
  const dbs = Array.from({ length: shards }, (_, i) => `sctb_q${name}_s${i}_${tag}`);
  for (const db of dbs) {
    await admin.query(`CREATE DATABASE "${db}"`);
    const c = new pg.Client({ connectionString: dbUrl(db) });
    await c.connect();
    try {
      await fill(c, dbs.indexOf(db));
    } finally {
      await c.end();
    }
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), `shardctl-bench-query-${name}-`));
  const config = path.join(dir, 'shardctl.config.yaml');
  writeFileSync(config, JSON.stringify({
    metadata: { url: dbUrl(meta) },
    shards: dbs.map((db, i) => ({ id: `shard-${i}`, url: dbUrl(db), weight: 1 })),
    health: { timeout: '60s' },
  }));
  const init = spawnSync('node', [BIN, '-c', config, '-q', 'init'], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (init.status !== 0) throw new Error(`shardctl init exited ${init.status}: ${init.stderr}`);
  return {
    dbs,
    config,
    async drop() {
      for (const db of [meta, ...dbs]) await admin.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function benchQuery() {
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  try {
    // (a) a count over 32 shards.
    if (PARTS.has('count')) await benchCount(admin);
    // (b) 2M rows as NDJSON.
    if (PARTS.has('stream')) await benchStream(admin);
  } finally {
    await admin.end();
  }
}

async function benchCount(admin) {
  const a = await deployment(admin, 'c', COUNT_SHARDS, (c) =>
    c.query('CREATE TABLE public.items (id bigint PRIMARY KEY, body text); INSERT INTO public.items SELECT g, md5(g::text) FROM generate_series(1, 10000) g; ANALYZE public.items'),
  );
  try {
    const statement = 'SELECT count(*) FROM public.items';
    const all = [];
    const slowestAlone = [];
    const loop = [];
    for (let round = 0; round < ROUNDS; round++) {
      const run = shell(`node ${q(BIN)} -c ${q(a.config)} -q query --format csv ${q(statement)}`);
      if (run.stdout.trim().split('\n').length !== COUNT_SHARDS + 1) throw new Error(`query printed ${run.stdout}`);
      all.push(run.seconds);
      let slowest = 0;
      for (let i = 0; i < COUNT_SHARDS; i++) slowest = Math.max(slowest, shell(`node ${q(BIN)} -c ${q(a.config)} -q query --format csv --shard shard-${i} ${q(statement)}`).seconds);
      slowestAlone.push(slowest);
      loop.push(shell(a.dbs.map((db) => `psql -X -q -At -d ${q(dbUrl(db))} -c ${q(statement)}`).join(' && ') + ' > /dev/null').seconds);
    }
    const [m, s, l] = [median(all), median(slowestAlone), median(loop)];
    console.log(JSON.stringify({
      bench: 'query.count', impl: `shardctl query '${statement}' (parallel 8)`, shards: COUNT_SHARDS, rowsPerShard: 10_000, runs: ROUNDS,
      seconds: r2(m), slowestShardAloneSeconds: r2(s), psqlLoopSeconds: r2(l),
      vsSlowestShard: r2(m / s), fasterThanLoop: r2(l / m),
      goal: '<= 1.5x the slowest shard alone; >= 2x faster than a serial psql loop',
      met: m <= 1.5 * s && l >= 2 * m,
    }));
  } finally {
    await a.drop();
  }
}

async function benchStream(admin) {
  const perShard = STREAM_ROWS / STREAM_SHARDS;
  const b = await deployment(admin, 'r', STREAM_SHARDS, (c, i) =>
    c.query(`CREATE TABLE public.messages (id bigint PRIMARY KEY, room_id text NOT NULL, body text, created_at timestamptz NOT NULL);
             INSERT INTO public.messages SELECT g, 'room-' || (g % 1000), 'message body ' || md5(g::text), timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second'
             FROM generate_series(${i * perShard + 1}, ${(i + 1) * perShard}) g; ANALYZE public.messages`),
  );
  try {
    let smallRss = null;
    for (const rows of [SMALL_ROWS, STREAM_ROWS]) {
      const select = rows === STREAM_ROWS ? 'SELECT * FROM public.messages' : `SELECT * FROM public.messages WHERE id % ${perShard} BETWEEN 1 AND ${rows / STREAM_SHARDS}`;
      const rssFile = path.join(os.tmpdir(), `shardctl-bench-query-${process.pid}.time`);
      const oursRuns = [];
      const peerRuns = [];
      const rssRuns = [];
      let ourRows = 0;
      let peerRows = 0;
      for (let round = 0; round < STREAM_ROUNDS; round++) {
        const ours = shell(`/usr/bin/time -f %M -o ${q(rssFile)} node ${q(BIN)} -c ${q(b.config)} -q query --format ndjson --timeout 10m ${q(select)} | wc -l`);
        rssRuns.push(Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop()));
        rmSync(rssFile, { force: true });
        oursRuns.push(ours.seconds);
        ourRows = Number(ours.stdout.trim());
        const peer = shell(`( ${b.dbs.map((db) => `psql -X -q -d ${q(dbUrl(db))} -c ${q(`\\copy (${select}) to stdout`)} &`).join(' ')} wait ) | wc -l`);
        peerRuns.push(peer.seconds);
        peerRows = Number(peer.stdout.trim());
      }
      const ours = { seconds: median(oursRuns) };
      const peer = { seconds: median(peerRuns) };
      const rss = Math.max(...rssRuns);
      if (ourRows !== rows || peerRows !== rows) throw new Error(`rows: shardctl ${ourRows}, psql ${peerRows}, expected ${rows}`);
      const flat = rows === SMALL_ROWS ? true : rss <= smallRss * 1.05;
      if (rows === SMALL_ROWS) smallRss = rss;
      console.log(JSON.stringify({
        bench: 'query.stream', impl: 'shardctl query --format ndjson | wc -l', shards: STREAM_SHARDS, rows, runs: STREAM_ROUNDS,
        seconds: r2(ours.seconds), rowsPerSecond: Math.round(rows / ours.seconds), peakRssMiB: r2(rss / 1024),
        psqlCopySeconds: r2(peer.seconds), psqlRowsPerSecond: Math.round(rows / peer.seconds), vsPsql: r2(peer.seconds / ours.seconds),
        // The goal is judged at 2M rows; the 200k run is its RSS baseline (its rate is mostly start-up).
        ...(rows === SMALL_ROWS ? { role: 'RSS baseline for the 2M run' } : {
          goal: '>= 0.5x psql \\copy rate; peak RSS < 150 MB and no higher at 2M than at 200k',
          peakRssMiBAtSmall: r2(smallRss / 1024), rssFlat: flat,
          met: peer.seconds / ours.seconds >= 0.5 && rss / 1024 < 150 && flat,
        }),
      }));
    }
  } finally {
    await b.drop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchQuery();
