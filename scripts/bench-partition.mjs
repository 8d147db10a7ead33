// partition rotate fan-out (issue 11): 16 shard databases, 2 partitioned tables
// each (public.events, daily on a timestamptz; public.ledger, daily on a date),
// one `shardctl partition rotate --now NOW` creating 7 partitions and retiring
// 7 per table (events: drop, ledger: detach). The default parallelism
// (migrate.parallel) beside --parallel 1, and --parallel 8 and 16, measured in
// this run on the same databases, alternating, BENCH_PARTITION_ROUNDS times
// each; before every run the partitions are reset (the created ones dropped, the
// 7 old ones per table recreated with rows) so every run does the same work,
// and after every run each table is checked to hold exactly the 7 new
// partitions (and the old ones gone, or detached). Prints JSON lines.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = path.join(ROOT, 'bin/shardctl');
const SHARDS = Number(process.env.BENCH_PARTITION_SHARDS ?? 16);
const ROUNDS = Number(process.env.BENCH_PARTITION_ROUNDS ?? 3);
/** Parallelisms measured beside the default and --parallel 1 (comma list; empty for none). */
const EXTRA = (process.env.BENCH_PARTITION_PARALLEL ?? '8,16').split(',').filter(Boolean).map(Number);
const ROWS_PER_PARTITION = 5;
const PREMAKE = 6; // the slot holding now + 6 ahead: 7 created
const RETENTION_DAYS = 7;
const NOW = new Date('2027-03-15T12:00:00Z');
const DAY = 86_400_000;
const midnight = (ms) => ms - (ms % DAY);
/** The 7 daily slots rotate creates at NOW, and 7 old ones ending well before the cut-off (NOW − 7 d). */
const NEW_DAYS = Array.from({ length: PREMAKE + 1 }, (_, i) => new Date(midnight(NOW.getTime()) + i * DAY));
const OLD_DAYS = Array.from({ length: 7 }, (_, i) => new Date(midnight(NOW.getTime()) - (23 - i) * DAY));
const ymd = (d) => d.toISOString().slice(0, 10);
const stamp = (d) => ymd(d).replaceAll('-', '');
const nextDay = (d) => new Date(d.getTime() + DAY);

const TABLES = [
  {
    table: 'events', column: 'at', mode: 'drop',
    ddl: 'CREATE TABLE public.events (id bigint NOT NULL, at timestamptz NOT NULL, payload text) PARTITION BY RANGE (at)',
    lit: (d) => `${ymd(d)} 00:00:00+00`,
    rows: (d) => `INSERT INTO public.events SELECT g, '${ymd(d)} 00:00:00+00'::timestamptz + g * interval '1 hour', 'row ' || g FROM generate_series(1, ${ROWS_PER_PARTITION}) g`,
  },
  {
    table: 'ledger', column: 'day', mode: 'detach',
    ddl: 'CREATE TABLE public.ledger (id bigint NOT NULL, day date NOT NULL, amount numeric) PARTITION BY RANGE (day)',
    lit: (d) => ymd(d),
    rows: (d) => `INSERT INTO public.ledger SELECT g, '${ymd(d)}'::date, g * 1.5 FROM generate_series(1, ${ROWS_PER_PARTITION}) g`,
  },
];
const bound = (t, d) => `FOR VALUES FROM ('${t.lit(d)}') TO ('${t.lit(nextDay(d))}')`;

async function withClient(url, fn) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try { return await fn(c); } finally { await c.end(); }
}

/** Every partition of the two tables dropped (and detached leftovers), then the 7 old ones per table recreated with rows. */
async function reset(urls) {
  await Promise.all(urls.map((url) => withClient(url, async (c) => {
    const { rows } = await c.query(
      `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'r' AND (c.relname LIKE 'events\\_p%' OR c.relname LIKE 'ledger\\_p%')`);
    const sql = rows.map((r) => `DROP TABLE public."${r.relname}";`);
    for (const t of TABLES) {
      for (const d of OLD_DAYS) sql.push(`CREATE TABLE public.${t.table}_p${stamp(d)} PARTITION OF public.${t.table} ${bound(t, d)};`, `${t.rows(d)};`);
    }
    await c.query(sql.join('\n'));
  })));
}

/** Each table holds exactly the 7 new partitions with their bounds; the old ones are gone (drop) or plain tables with their rows (detach). */
async function verify(urls) {
  const problems = [];
  await Promise.all(urls.map((url, i) => withClient(url, async (c) => {
    await c.query(`SET TimeZone = 'UTC'`);
    for (const t of TABLES) {
      const { rows } = await c.query(
        `SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'public.${t.table}'::regclass ORDER BY c.relname`);
      const got = rows.map((r) => `${r.relname} ${r.bound}`).join('; ');
      const want = NEW_DAYS.map((d) => `${t.table}_p${stamp(d)} ${bound(t, d)}`).join('; ');
      if (got !== want) problems.push(`shard ${i} ${t.table}: partitions [${got}], expected [${want}]`);
      const old = await c.query(
        `SELECT c.relname, c.relispartition FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND c.relname = ANY($1) ORDER BY c.relname`, [OLD_DAYS.map((d) => `${t.table}_p${stamp(d)}`)]);
      if (t.mode === 'drop' && old.rows.length) problems.push(`shard ${i} ${t.table}: old partitions still there: ${old.rows.map((r) => r.relname).join(', ')}`);
      if (t.mode === 'detach') {
        if (old.rows.length !== OLD_DAYS.length || old.rows.some((r) => r.relispartition)) {
          problems.push(`shard ${i} ${t.table}: expected ${OLD_DAYS.length} detached plain tables, got ${JSON.stringify(old.rows)}`);
        } else {
          const n = await c.query(`SELECT ${old.rows.map((r) => `(SELECT count(*) FROM public."${r.relname}")`).join(' + ')} AS n`);
          if (Number(n.rows[0].n) !== OLD_DAYS.length * ROWS_PER_PARTITION) problems.push(`shard ${i} ${t.table}: detached tables hold ${n.rows[0].n} rows`);
        }
      }
    }
  })));
  if (problems.length) throw new Error(`partition rotate left the wrong partitions:\n  ${problems.slice(0, 20).join('\n  ')}`);
}

/** Busy and total jiffies of all CPUs (/proc/stat): how much of the machine a run used. */
function cpuTimes() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + f[4];
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

function rotate(config, parallel) {
  const cpu0 = cpuTimes();
  const args = [BIN, '-c', config, '--json', 'partition', 'rotate', '--now', NOW.toISOString(), ...(parallel ? ['--parallel', String(parallel)] : [])];
  const t0 = process.hrtime.bigint();
  const r = spawnSync('node', args, { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 * 1024 * 1024 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu1 = cpuTimes();
  // Core-seconds every process on the machine spent busy during the run (the shardctl process and the PostgreSQL backends it drives).
  const busyCoreSeconds = ((cpu1.busy - cpu0.busy) / (cpu1.total - cpu0.total)) * seconds * os.availableParallelism();
  if (r.status !== 0) throw new Error(`partition rotate ${parallel ? `--parallel ${parallel}` : ''} exited ${r.status}: ${r.stdout.toString().slice(-2000)}`);
  const { summary } = JSON.parse(r.stdout.toString()).data;
  const expected = SHARDS * TABLES.length * NEW_DAYS.length;
  if (summary.created !== expected || summary.retired !== SHARDS * TABLES.length * OLD_DAYS.length || summary.kept || summary.failedShards) {
    throw new Error(`partition rotate summary ${JSON.stringify(summary)}: expected ${expected} created and ${SHARDS * TABLES.length * OLD_DAYS.length} retired`);
  }
  return { seconds, busyCoreSeconds };
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const r2 = (x) => +x.toFixed(2);

export async function benchPartition() {
  const baseUrl = process.env.SHARDCTL_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const suffix = `${process.pid}_${Date.now().toString(36)}`;
  const urlOf = (db) => { const u = new URL(baseUrl); u.pathname = `/${db}`; return u.toString(); };
  const meta = `bench_pmeta_${suffix}`;
  const shards = Array.from({ length: SHARDS }, (_, i) => `bench_p${i}_${suffix}`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'shardctl-bench-partition-'));
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  try {
    for (const db of shards) await admin.query(`CREATE DATABASE "${db}"`);
    const urls = shards.map(urlOf);
    await Promise.all(urls.map((url) => withClient(url, (c) => c.query(TABLES.map((t) => t.ddl).join(';\n')))));
    const configObject = {
      metadata: { url: urlOf(meta) },
      shards: shards.map((db, i) => ({ id: `shard-${i}`, url: urlOf(db) })),
      tables: [],
      partitions: TABLES.map((t) => ({
        table: `public.${t.table}`, column: t.column, interval: 'daily', premake: PREMAKE, retention: `${RETENTION_DAYS}d`, retentionMode: t.mode,
      })),
    };
    // The parallelism rotate uses without --parallel, as the CLI resolves this config.
    const { configSchema } = await import('../dist/config/schema.js');
    const defaultParallel = configSchema.parse(configObject).migrate.parallel;
    const config = path.join(dir, 'shardctl.config.yaml');
    writeFileSync(config, JSON.stringify(configObject));
    execInit(config);

    const modes = [
      { impl: `shardctl (default parallel, migrate.parallel ${defaultParallel})`, parallel: undefined, effective: defaultParallel },
      { impl: 'shardctl --parallel 1', parallel: 1, effective: 1 },
      ...EXTRA.filter((p) => p !== 1 && p !== defaultParallel).map((p) => ({ impl: `shardctl --parallel ${p}`, parallel: p, effective: p })),
    ];
    const samples = new Map(modes.map((m) => [m.impl, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of modes) {
        await reset(urls);
        samples.get(mode.impl).push(rotate(config, mode.parallel));
        await verify(urls);
      }
    }
    const baseline = median(samples.get('shardctl --parallel 1').map((x) => x.seconds));
    for (const mode of modes) {
      const runs = samples.get(mode.impl);
      const xs = runs.map((x) => x.seconds);
      const busy = median(runs.map((x) => x.busyCoreSeconds));
      console.log(JSON.stringify({
        bench: 'partition.rotate', impl: mode.impl, parallel: mode.effective, shards: SHARDS, tables: SHARDS * TABLES.length,
        created: SHARDS * TABLES.length * NEW_DAYS.length, retired: SHARDS * TABLES.length * OLD_DAYS.length, runs: xs.length,
        seconds: { min: r2(Math.min(...xs)), median: r2(median(xs)), max: r2(Math.max(...xs)) }, samples: xs.map(r2),
        speedupVsParallel1: +(baseline / median(xs)).toFixed(2),
        // What bounds the speed-up: a run can be no shorter than its busy core-seconds over the cores.
        busyCoreSeconds: r2(busy), cpuBoundFloorSeconds: r2(busy / os.availableParallelism()),
        ...(mode.parallel === undefined ? { goal: '>= 3x --parallel 1 (ratio of medians)', cpus: os.availableParallelism() } : {}),
      }));
    }
  } finally {
    for (const db of [meta, ...shards]) await admin.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

function execInit(config) {
  const r = spawnSync('node', [BIN, '-c', config, '-q', 'init'], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error(`shardctl init exited ${r.status}`);
}

if (import.meta.url === `file://${process.argv[1]}`) await benchPartition();
