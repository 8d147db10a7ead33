// Startup wall time: `shardctl --help` and `shardctl shard locate` beside `node -e 0`,
// measured in the same run. Prints JSON lines.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = path.join(ROOT, 'bin/shardctl');
const RUNS = Number(process.env.BENCH_STARTUP_RUNS ?? 30);

function timeRuns(argv, runs) {
  const samples = [];
  for (let i = 0; i < runs + 3; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
    if (i >= 3) samples.push(ms); // the first runs warm the file cache
  }
  samples.sort((a, b) => a - b);
  const median = samples[Math.floor(samples.length / 2)];
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  return { runs, medianMs: +median.toFixed(1), meanMs: +mean.toFixed(1), minMs: +samples[0].toFixed(1) };
}

export async function benchStartup() {
  const baseUrl = process.env.SHARDCTL_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const suffix = `${process.pid}_${Date.now().toString(36)}`;
  const dbs = [`bench_meta_${suffix}`, `bench_s0_${suffix}`, `bench_s1_${suffix}`];
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'shardctl-bench-'));
  try {
    for (const db of dbs.slice(1)) await admin.query(`CREATE DATABASE "${db}"`);
    const url = (db) => { const u = new URL(baseUrl); u.pathname = `/${db}`; return u.toString(); };
    const config = path.join(dir, 'shardctl.config.yaml');
    writeFileSync(config, JSON.stringify({
      metadata: { url: url(dbs[0]) },
      shards: [{ id: 'shard-0', url: url(dbs[1]) }, { id: 'shard-1', url: url(dbs[2]) }],
    }));
    execFileSync('node', [BIN, '-c', config, '-q', 'init'], { stdio: 'ignore' });

    const baseline = timeRuns(['node', '-e', '0'], RUNS);
    const help = timeRuns(['node', BIN, '--help'], RUNS);
    const locate = timeRuns(['node', BIN, '-c', config, 'shard', 'locate', 'room-1'], RUNS);
    console.log(JSON.stringify({ bench: 'startup', command: 'node -e 0', ...baseline }));
    console.log(JSON.stringify({ bench: 'startup', command: 'shardctl --help', ...help, ratioToNode: +(help.medianMs / baseline.medianMs).toFixed(2), goal: '<= 2.5x node -e 0' }));
    console.log(JSON.stringify({ bench: 'startup', command: 'shardctl shard locate room-1', ...locate, ratioToNode: +(locate.medianMs / baseline.medianMs).toFixed(2), note: 'includes connecting to the metadata database and reading the ring' }));
  } finally {
    for (const db of dbs) await admin.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchStartup();
