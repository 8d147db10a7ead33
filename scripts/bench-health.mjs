// health (issue 13): 32 shard databases (each with the two sharded tables and a
// daily partitioned table) and 1,000 streams of 100 entries with two groups, on
// a private redis-server started for this run and stopped at the end.
// (a) `shardctl --json health` (every group) beside the slowest single shard's
//     checks alone (`health --only shards --shard ID`, for every shard; the
//     maximum), alternating, BENCH_HEALTH_ROUNDS (3) times; goal: within 2x.
// (b) the same deployment plus one shard that hangs: a TCP listener that
//     accepts connections and never answers, which is what a client sees of a
//     SIGSTOPped postmaster or of a firewall that drops packets after the
//     handshake (the integration tests SIGSTOP a real server). `health
//     --timeout 2s`; goal: the timeout + 1 s at most, with every other shard
//     still reported.
// Peak RSS of the health process from /usr/bin/time (VmHWM), and its CPU time
// (user + system: steadier than wall time on a shared machine, and what the
// ratio is made of besides the servers' share). The servers' share too, where
// the PostgreSQL server runs on this machine: the CPU its backends used during
// each run (the postmaster's reaped children, /proc), and from the two a floor
// on the ratio: the run's CPU seconds (health + backends) spread over every core,
// against the slowest single shard's wall time. Prints JSON lines.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedis } from './bench-servers.mjs';
import { Redis } from 'ioredis';
import pg from 'pg';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = path.join(ROOT, 'bin/shardctl');
const SHARDS = Number(process.env.BENCH_HEALTH_SHARDS ?? 32);
const STREAMS = Number(process.env.BENCH_HEALTH_STREAMS ?? 1000);
const ROUNDS = Number(process.env.BENCH_HEALTH_ROUNDS ?? 3);
const HANG_TIMEOUT_S = 2;

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const r2 = (x) => +x.toFixed(2);

/** Accepts TCP connections and never answers: a hung server as a client sees it. */
async function startBlackHole() {
  const sockets = new Set();
  const server = net.createServer((s) => { sockets.add(s); s.on('error', () => {}); s.on('close', () => sockets.delete(s)); });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: server.address().port, close: () => { for (const s of sockets) s.destroy(); return new Promise((r) => server.close(r)); } };
}

/** Spawned under /usr/bin/time: wall seconds, exit code, peak RSS (KiB), CPU seconds (user + system), stdout. */
function timed(args) {
  const rssFile = path.join(os.tmpdir(), `shardctl-bench-health-${process.pid}-${Date.now()}.time`);
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M %U %S', '-o', rssFile, 'node', BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 * 1024 * 1024 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  let peakRssKiB = null;
  let cpuSeconds = null;
  try {
    const [rss, user, system] = readFileSync(rssFile, 'utf8').trim().split('\n').pop().split(' ').map(Number);
    peakRssKiB = rss;
    cpuSeconds = user + system;
  } catch { /* null */ }
  rmSync(rssFile, { force: true });
  if (r.status === null || r.status > 3) throw new Error(`shardctl ${args.join(' ')} exited ${r.status}: ${r.stderr.toString().slice(-2000)}`);
  return { seconds, exitCode: r.status, peakRssKiB, cpuSeconds, stdout: r.stdout.toString() };
}

/**
 * CPU seconds (user + system) of the PostgreSQL server's exited backends so far: the postmaster's
 * cutime + cstime, which grow as it reaps each backend. Null unless the server runs on this
 * machine and /proc can be read (the postmaster is the parent of `admin`'s backend).
 */
async function serverCpuReader(admin) {
  try {
    const { rows: [{ pid, addr }] } = await admin.query('SELECT pg_backend_pid() AS pid, host(inet_server_addr()) AS addr');
    // Only a server on this machine: a remote backend's pid may be some local process's.
    if (addr !== null && addr !== '127.0.0.1' && addr !== '::1') return null;
    const ppid = Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
    const comm = (p) => readFileSync(`/proc/${p}/comm`, 'utf8').trim();
    if (comm(pid) !== 'postgres' || comm(ppid) !== 'postgres') return null;
    const tick = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
    const read = () => {
      const fields = readFileSync(`/proc/${ppid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
      // After "(comm) ": field 3 is the state, so cutime and cstime (stat fields 16, 17) are at 13 and 14.
      return (Number(fields[13]) + Number(fields[14])) / tick;
    };
    read();
    return read;
  } catch {
    return null;
  }
}

async function withClient(url, fn) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try { return await fn(c); } finally { await c.end(); }
}

export async function benchHealth() {
  const baseUrl = process.env.SHARDCTL_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const suffix = `${process.pid}_${Date.now().toString(36)}`;
  const urlOf = (db) => { const u = new URL(baseUrl); u.pathname = `/${db}`; return u.toString(); };
  const meta = `bench_hmeta_${suffix}`;
  const shards = Array.from({ length: SHARDS }, (_, i) => `bench_h${i}_${suffix}`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'shardctl-bench-health-'));
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  const redis = await startRedis(dir);
  const hole = await startBlackHole();
  try {
    for (const db of shards) await admin.query(`CREATE DATABASE "${db}"`);
    const today = new Date().toISOString().slice(0, 10);
    await Promise.all(shards.map((db) => withClient(urlOf(db), (c) => c.query(`
      CREATE TABLE public.messages (id bigint PRIMARY KEY, room_id text NOT NULL, body text);
      CREATE TABLE public.reactions (id bigint PRIMARY KEY, room_id text NOT NULL);
      INSERT INTO public.messages SELECT g, 'room-' || (g % 500), 'hello ' || g FROM generate_series(1, 2000) g;
      CREATE TABLE public.events (id bigint NOT NULL, at timestamptz NOT NULL) PARTITION BY RANGE (at);
      CREATE TABLE public.events_default PARTITION OF public.events DEFAULT;
      CREATE TABLE public.events_p${today.replaceAll('-', '')} PARTITION OF public.events FOR VALUES FROM ('${today} 00:00:00+00') TO ('${today} 00:00:00+00'::timestamptz + interval '1 day');
      ANALYZE;`))));
    // 1,000 streams of 100 entries, each with a caught-up group and one 10 entries behind with 5 pending.
    const p = redis.client.pipeline();
    for (let s = 0; s < STREAMS; s++) {
      const key = `messages:{room-${s}}`;
      for (let i = 1; i <= 100; i++) p.xadd(key, `${1_700_000_000_000 + i}-0`, 'body', `m${i}`);
      p.xgroup('CREATE', key, 'broadcast', '$');
      p.xgroup('CREATE', key, 'moderation', `${1_700_000_000_000 + 85}-0`);
      p.xreadgroup('GROUP', 'moderation', 'mod-1', 'COUNT', 5, 'STREAMS', key, '>');
    }
    await p.exec();

    const configOf = (extra) => ({
      metadata: { url: urlOf(meta) },
      redis: { url: redis.url },
      shards: [...shards.map((db, i) => ({ id: `shard-${i}`, url: urlOf(db) })), ...extra],
      tables: [{ name: 'public.messages', key: 'room_id' }, { name: 'public.reactions', key: 'room_id' }],
      partitions: [{ table: 'public.events', column: 'at', interval: 'daily', premake: 3 }],
      streams: [{ match: 'messages:*', maxLen: 1000 }],
      health: { timeout: '10s' },
    });
    const config = path.join(dir, 'shardctl.config.json');
    writeFileSync(config, JSON.stringify(configOf([])));
    const init = spawnSync('node', [BIN, '-c', config, '-q', 'init'], { stdio: ['ignore', 'ignore', 'pipe'] });
    if (init.status !== 0) throw new Error(`shardctl init exited ${init.status}: ${init.stderr}`);

    const serverCpu = await serverCpuReader(admin);
    // A run's backends are reaped by the time health has exited and its sessions have closed; a moment more for the postmaster's SIGCHLD.
    const withServerCpu = async (args) => {
      const before = serverCpu?.();
      const run = timed(args);
      await new Promise((r) => setTimeout(r, 50));
      return { ...run, serverCpuSeconds: serverCpu ? serverCpu() - before : null };
    };
    const whole = [];
    const alone = [];
    const wholeCpu = [];
    const aloneCpu = [];
    const wholeServerCpu = [];
    const aloneServerCpu = [];
    let rss = [];
    let results = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const run = await withServerCpu(['-c', config, '--json', 'health']);
      const report = JSON.parse(run.stdout).data;
      results = report.results.length;
      const streamsSeen = new Set(report.results.filter((r) => r.check === 'stream_length').map((r) => r.target)).size;
      if (streamsSeen !== STREAMS) throw new Error(`health reported ${streamsSeen} streams, expected ${STREAMS}`);
      whole.push(run.seconds);
      wholeCpu.push(run.cpuSeconds);
      wholeServerCpu.push(run.serverCpuSeconds);
      rss.push(run.peakRssKiB);
      let slowest = 0;
      let mostCpu = 0;
      let mostServerCpu = 0;
      for (let i = 0; i < SHARDS; i++) {
        const one = await withServerCpu(['-c', config, '--json', 'health', '--only', 'shards', '--shard', `shard-${i}`]);
        slowest = Math.max(slowest, one.seconds);
        mostCpu = Math.max(mostCpu, one.cpuSeconds);
        mostServerCpu = Math.max(mostServerCpu, one.serverCpuSeconds ?? 0);
      }
      alone.push(slowest);
      aloneCpu.push(mostCpu);
      aloneServerCpu.push(serverCpu ? mostServerCpu : null);
    }
    const ratio = median(whole) / median(alone);
    const cores = os.cpus().length;
    // Health's CPU plus its backends', on every core at once with nothing serial: the least the whole run's wall time can be here.
    const cpuFloorSeconds = serverCpu ? (median(wholeCpu) + median(wholeServerCpu)) / cores : null;
    console.log(JSON.stringify({
      bench: 'health.all', impl: 'shardctl health (every group)', shards: SHARDS, streams: STREAMS, results, runs: ROUNDS,
      seconds: { median: r2(median(whole)), samples: whole.map(r2) }, peakRssMiB: r2(median(rss) / 1024),
      slowestSingleShardSeconds: { median: r2(median(alone)), samples: alone.map(r2) }, ratioVsSlowestShard: r2(ratio), goal: '<= 2x the slowest single shard alone',
      cpuSeconds: { median: r2(median(wholeCpu)), slowestSingleShard: r2(median(aloneCpu)) },
      serverCpuSeconds: serverCpu ? { median: r2(median(wholeServerCpu)), slowestSingleShard: r2(median(aloneServerCpu)) } : null,
      cores,
      cpuFloorSeconds: cpuFloorSeconds === null ? null : r2(cpuFloorSeconds),
      ratioCpuFloor: cpuFloorSeconds === null ? null : r2(cpuFloorSeconds / median(alone)),
    }));

    // (b) one shard hangs.
    const hungConfig = path.join(dir, 'shardctl.hung.json');
    writeFileSync(hungConfig, JSON.stringify(configOf([{ id: 'shard-hung', url: `postgres://postgres@127.0.0.1:${hole.port}/hung` }])));
    const hung = [];
    rss = [];
    for (let round = 0; round < ROUNDS; round++) {
      const run = timed(['-c', hungConfig, '--json', 'health', '--timeout', `${HANG_TIMEOUT_S}s`]);
      const report = JSON.parse(run.stdout).data;
      const bad = report.results.find((r) => r.check === 'reachable' && r.target === 'shard-hung');
      if (bad?.status !== 'critical' || run.exitCode !== 2) throw new Error(`the hung shard was not CRITICAL: ${JSON.stringify(bad)} (exit ${run.exitCode})`);
      const others = report.results.filter((r) => r.check === 'reachable' && r.target.startsWith('shard-') && r.target !== 'shard-hung' && r.status === 'ok').length;
      if (others !== SHARDS) throw new Error(`only ${others} of ${SHARDS} other shards were reported reachable`);
      hung.push(run.seconds);
      rss.push(run.peakRssKiB);
    }
    console.log(JSON.stringify({
      bench: 'health.hung-shard', impl: `shardctl health --timeout ${HANG_TIMEOUT_S}s, one shard accepting and never answering`, shards: SHARDS + 1, streams: STREAMS, runs: ROUNDS,
      seconds: { median: r2(median(hung)), max: r2(Math.max(...hung)), samples: hung.map(r2) }, peakRssMiB: r2(median(rss) / 1024), goal: `<= ${HANG_TIMEOUT_S + 1}s (the timeout + 1 s)`,
    }));
  } finally {
    await hole.close();
    redis.client.disconnect();
    redis.child.kill('SIGTERM');
    for (const db of [meta, ...shards]) await admin.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchHealth();
