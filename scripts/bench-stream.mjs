// stream trim (issue 12), on a private `redis-server --save "" --appendonly no`
// started on a free port for this run and stopped at the end (the shared 6379 is
// not touched), with a uniquely named metadata database for the lock and audit.
// (a) BENCH_STREAM_KEYS streams (10,000) of 1,000 entries, each with two groups:
//     `acked` (read and acknowledged everything) and `behind` (last delivered
//     entry 950, entries 946..950 still pending). Policy maxLen 100, exact and
//     approximate. `shardctl --json stream trim` beside the naive loop a careful
//     person writes with ioredis and no safety (NAIVE_LOOP below: SCAN MATCH …
//     TYPE stream COUNT 1000, then one pipeline of `XTRIM key MAXLEN [~] 100` per
//     SCAN batch, awaited before the next SCAN), spawned the same way;
//     alternating, BENCH_STREAM_ROUNDS (3) times each, medians compared.
// (b) one stream of BENCH_STREAM_BIG entries (1M), same two groups near its
//     head, trimmed to 10,000: `shardctl stream trim --match <that key>` beside a
//     bare `XTRIM key MAXLEN 10000` (on a connected client, and by redis-cli),
//     with the commands shardctl sent (MONITOR, separate run) and the
//     INFO commandstats deltas.
// The groups' floor lies inside the kept window, so every implementation
// removes the same entries; each run is checked for that. Before every run the
// data is rebuilt identically: the streams are built once with XADD (explicit
// ids, pipelined), DUMPed, and RESTOREd (pipelined) after a FLUSHALL of the
// private server. Peak RSS from /usr/bin/time -v's "Maximum resident set size"
// (VmHWM) of the spawned process. For (a) also the private server's own CPU
// seconds during each run (INFO cpu, user + sys), a figure a busy box disturbs
// far less than wall time, Redis's time per stream in each command (INFO
// commandstats), and shardctl's fixed cost in each round (a run matching no
// stream): with Redis's CPU, which starts only after it, a floor on the wall
// time (floorSeconds, ratioFloor). Prints JSON lines.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedis } from './bench-servers.mjs';
import { Redis } from 'ioredis';
import pg from 'pg';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = path.join(ROOT, 'bin/shardctl');
const KEYS = Number(process.env.BENCH_STREAM_KEYS ?? 10_000);
const ENTRIES = Number(process.env.BENCH_STREAM_ENTRIES ?? 1_000);
const MAXLEN = 100;
const BIG = Number(process.env.BENCH_STREAM_BIG ?? 1_000_000);
const BIG_MAXLEN = 10_000;
const ROUNDS = Number(process.env.BENCH_STREAM_ROUNDS ?? 3);
const BASE_MS = 1_700_000_000_000;
const idOf = (i) => `${BASE_MS + i}-0`; // entry i (1-based)
const TIME = '/usr/bin/time';

/** The baseline: SCAN + one XTRIM per key, pipelined per SCAN batch, no consumer-group safety. */
const NAIVE_LOOP = `
import { Redis } from 'ioredis';
const [url, pattern, maxLen, approximate] = process.argv.slice(1);
const r = new Redis(url);
let cursor = '0', keys = 0, removed = 0;
do {
  const [next, batch] = await r.scan(cursor, 'MATCH', pattern, 'TYPE', 'stream', 'COUNT', 1000);
  cursor = next;
  if (batch.length === 0) continue;
  const p = r.pipeline();
  for (const key of batch) approximate === '1' ? p.xtrim(key, 'MAXLEN', '~', maxLen) : p.xtrim(key, 'MAXLEN', maxLen);
  for (const [err, n] of await p.exec()) { if (err) throw err; removed += n; }
  keys += batch.length;
} while (cursor !== '0');
r.disconnect();
console.log(JSON.stringify({ keys, removed }));
`;

/** Spawned under /usr/bin/time: wall seconds, peak RSS (KiB) and stdout. */
function timedSpawn(argv, label, cwd = ROOT) {
  const rssFile = path.join(os.tmpdir(), `shardctl-bench-stream-${process.pid}-${Date.now()}.time`);
  const t0 = process.hrtime.bigint();
  const r = spawnSync(TIME, ['-f', '%M', '-o', rssFile, ...argv], { cwd, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 * 1024 * 1024 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  let peakRssKiB = null;
  try { peakRssKiB = Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop()); } catch { /* reported as null */ }
  rmSync(rssFile, { force: true });
  if (r.status !== 0) throw new Error(`${label} exited ${r.status}: ${r.stderr.toString().slice(-2000)} ${r.stdout.toString().slice(-2000)}`);
  return { seconds, peakRssKiB, stdout: r.stdout.toString() };
}

/** The two groups of every stream: one caught up, one behind with 5 pending, both inside the kept window. */
async function addGroups(c, key, n, behindAt) {
  await c.call('XGROUP', 'CREATE', key, 'acked', idOf(n), 'ENTRIESREAD', String(n));
  await c.call('XGROUP', 'CREATE', key, 'behind', idOf(behindAt - 10));
  const read = await c.call('XREADGROUP', 'GROUP', 'behind', 'worker-1', 'COUNT', '10', 'STREAMS', key, '>');
  const ids = read[0][1].map((e) => e[0]);
  if (ids.length !== 10 || ids[9] !== idOf(behindAt)) throw new Error(`group setup of ${key}: read ${ids.join(',')}`);
  await c.call('XACK', key, 'behind', ...ids.slice(0, 5));
}

/** Builds one stream of n entries by pipelined XADDs with explicit ids, adds the groups, returns its DUMP. */
async function template(c, key, n, behindAt) {
  for (let from = 1; from <= n; from += 10_000) {
    const p = c.pipeline();
    for (let i = from; i < Math.min(from + 10_000, n + 1); i++) p.xadd(key, idOf(i), 'room', '42', 'body', `message ${i}`);
    for (const [err] of await p.exec()) if (err) throw err;
  }
  await addGroups(c, key, n, behindAt);
  const dump = await c.dumpBuffer(key);
  await c.del(key);
  return dump;
}

async function rebuild(c, keys, dump) {
  await c.flushall();
  for (let from = 0; from < keys.length; from += 1_000) {
    const p = c.pipeline();
    for (const key of keys.slice(from, from + 1_000)) p.restore(key, 0, dump);
    for (const [err] of await p.exec()) if (err) throw err;
  }
}

async function totalLength(c, keys) {
  let total = 0;
  for (let from = 0; from < keys.length; from += 1_000) {
    const p = c.pipeline();
    for (const key of keys.slice(from, from + 1_000)) p.xlen(key);
    for (const [err, n] of await p.exec()) { if (err) throw err; total += n; }
  }
  return total;
}

async function commandstats(c) {
  const stats = {};
  for (const line of (await c.info('commandstats')).split('\r\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line);
    if (m) stats[m[1]] = { calls: Number(m[2]), usec: Number(m[3]) };
  }
  return stats;
}
/** The private server's own CPU seconds (user + sys): less disturbed by other load on the box than wall time. */
async function serverCpu(c) {
  const info = await c.info('cpu');
  return Number(/used_cpu_user:([\d.]+)/.exec(info)[1]) + Number(/used_cpu_sys:([\d.]+)/.exec(info)[1]);
}
function statsDelta(before, after, own = {}) {
  const d = {};
  for (const [cmd, s] of Object.entries(after)) {
    const calls = s.calls - (before[cmd]?.calls ?? 0) - (own[cmd] ?? 0);
    if (calls > 0) d[cmd] = { calls, usec: s.usec - (before[cmd]?.usec ?? 0) };
  }
  return d;
}

function shardctlTrim(config, extra = []) {
  const r = timedSpawn(['node', BIN, '-c', config, '--json', 'stream', 'trim', ...extra], 'shardctl stream trim');
  const { totals } = JSON.parse(r.stdout).data;
  return { ...r, totals };
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const r3 = (x) => +x.toFixed(3);
const mib = (kib) => (kib === null ? null : +(kib / 1024).toFixed(1));

export async function benchStream() {
  const baseUrl = process.env.SHARDCTL_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const suffix = `${process.pid}_${Date.now().toString(36)}`;
  const urlOf = (db) => { const u = new URL(baseUrl); u.pathname = `/${db}`; return u.toString(); };
  const meta = `bench_smeta_${suffix}`;
  const prefix = `bench:stream:${suffix}:`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'shardctl-bench-stream-'));
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  let redis;
  try {
    redis = await startRedis(dir);
    const c = redis.client;
    const configOf = (name, streams) => {
      const file = path.join(dir, `${name}.yaml`);
      writeFileSync(file, JSON.stringify({ metadata: { url: urlOf(meta) }, redis: { url: redis.url, prefix }, shards: [], streams }));
      return file;
    };
    const roomPattern = `${prefix}room:*`;
    const bigKey = `${prefix}big`;
    const configs = {
      // One policy per file: every pattern of a config is scanned, so a second one would add a scan to (a).
      exact: configOf('exact', [{ match: roomPattern, maxLen: MAXLEN, approximate: false }]),
      approximate: configOf('approximate', [{ match: roomPattern, maxLen: MAXLEN, approximate: true }]),
      big: configOf('big', [{ match: bigKey, maxLen: BIG_MAXLEN, approximate: false }]),
    };
    // No shards: init only makes the metadata database (the lock, the audit) and leaves Redis alone.
    const init = spawnSync('node', [BIN, '-c', configs.exact, '-q', 'init'], { stdio: ['ignore', 'ignore', 'pipe'] });
    if (init.status !== 0) throw new Error(`shardctl init exited ${init.status}: ${init.stderr}`);
    const [, nodeMax] = await c.config('GET', 'stream-node-max-entries');

    // (a) many streams
    const keys = Array.from({ length: KEYS }, (_, i) => `${prefix}room:{${i}}`);
    const roomDump = await template(c, `${prefix}template`, ENTRIES, ENTRIES - 50);
    const expectRemoved = KEYS * (ENTRIES - MAXLEN);
    for (const approximate of [false, true]) {
      const samples = { naive: [], shardctl: [], fixed: [] };
      for (let round = 0; round < ROUNDS; round++) {
        // shardctl's fixed cost in this round: the same command on a pattern no key has (start-up, lock, audit, one SCAN).
        samples.fixed.push(shardctlTrim(approximate ? configs.approximate : configs.exact, ['--match', `${prefix}none:*`]).seconds);
        await rebuild(c, keys, roomDump);
        const naiveCpu0 = await serverCpu(c);
        const naive = timedSpawn(['node', '--input-type=module', '-e', NAIVE_LOOP, redis.url, roomPattern, String(MAXLEN), approximate ? '1' : '0'], 'naive loop');
        const naiveCpu = await serverCpu(c) - naiveCpu0;
        const out = JSON.parse(naive.stdout);
        const naiveAfter = await totalLength(c, keys);
        if (out.keys !== KEYS || naiveAfter !== KEYS * ENTRIES - out.removed) throw new Error(`naive loop: ${JSON.stringify(out)}, ${naiveAfter} entries left`);
        samples.naive.push({ ...naive, removed: out.removed, after: naiveAfter, redisCpu: naiveCpu });

        await rebuild(c, keys, roomDump);
        const before = await commandstats(c);
        const scCpu0 = await serverCpu(c);
        const sc = shardctlTrim(approximate ? configs.approximate : configs.exact);
        const scCpu = await serverCpu(c) - scCpu0;
        const delta = statsDelta(before, await commandstats(c), { info: 1 });
        const after = await totalLength(c, keys);
        if (sc.totals.streams !== KEYS || sc.totals.errors || sc.totals.heldBack || sc.totals.removed !== KEYS * ENTRIES - after) {
          throw new Error(`shardctl stream trim: totals ${JSON.stringify(sc.totals)}, ${after} entries left`);
        }
        if (after !== naiveAfter) throw new Error(`shardctl left ${after} entries, the naive loop ${naiveAfter}: not the same work`);
        if (!approximate && sc.totals.removed !== expectRemoved) throw new Error(`shardctl removed ${sc.totals.removed}, expected ${expectRemoved}`);
        samples.shardctl.push({ ...sc, removed: sc.totals.removed, after, delta, redisCpu: scCpu });
      }
      const naiveMedian = median(samples.naive.map((s) => s.seconds));
      const common = { bench: 'stream.trim.many', streams: KEYS, entriesPerStream: ENTRIES, groupsPerStream: 2, pendingPerStream: 5, maxLen: MAXLEN, approximate, streamNodeMaxEntries: Number(nodeMax), runs: ROUNDS };
      for (const [impl, xs] of [['naive loop (SCAN COUNT 1000 + pipelined XTRIM MAXLEN per batch, no safety)', samples.naive], ['shardctl stream trim', samples.shardctl]]) {
        const secs = xs.map((s) => s.seconds);
        const last = xs[xs.length - 1];
        console.log(JSON.stringify({
          ...common, impl, seconds: r3(median(secs)), samples: secs.map(r3), removed: last.removed, entriesLeft: last.after,
          peakRssMiB: mib(Math.max(...xs.map((s) => s.peakRssKiB ?? 0))),
          redisCpuSeconds: r3(median(xs.map((s) => s.redisCpu))),
          ...(impl === 'shardctl stream trim' ? {
            ratioVsNaive: +(median(secs) / naiveMedian).toFixed(2), goal: '<= 1.5x the naive loop',
            redisCpuRatioVsNaive: +(median(xs.map((s) => s.redisCpu)) / median(samples.naive.map((s) => s.redisCpu))).toFixed(2),
            redisCalls: Object.fromEntries(Object.entries(last.delta).map(([k, v]) => [k, v.calls])),
            // Redis's time per stream in each command (INFO commandstats, median over the rounds); evalsha holds the script's
            // commands, so evalsha minus the four is what running them from Lua costs besides their own work.
            redisUsecPerStream: Object.fromEntries(Object.keys(last.delta).filter((k) => !['info', 'eval'].includes(k)).map((k) => [k, +(median(xs.map((x) => x.delta[k]?.usec ?? 0)) / KEYS).toFixed(2)])),
            // The two parts run one after the other (Redis waits while the process starts and takes the lock), so their
            // sum bounds the wall time from below: the fixed cost (a run matching no stream) plus Redis's CPU.
            fixedCostSeconds: r3(median(samples.fixed)),
            floorSeconds: r3(median(samples.fixed) + median(xs.map((x) => x.redisCpu))),
            ratioFloor: +((median(samples.fixed) + median(xs.map((x) => x.redisCpu))) / naiveMedian).toFixed(2),
          } : {}),
        }));
      }
    }

    // (b) one big stream
    await c.flushall();
    const bigDump = await template(c, bigKey, BIG, BIG - 5_000);
    const bigRemoved = BIG - BIG_MAXLEN;
    const fresh = async () => { await c.flushall(); await c.restore(bigKey, 0, bigDump); };
    const runs = [];
    // bare XTRIM on this (connected) client: the command alone
    await fresh();
    {
      const t0 = process.hrtime.bigint();
      const n = await c.xtrim(bigKey, 'MAXLEN', BIG_MAXLEN);
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (n !== bigRemoved) throw new Error(`bare XTRIM removed ${n}`);
      runs.push({ impl: 'bare XTRIM MAXLEN 10000 (connected ioredis client)', seconds, removed: n, roundTrips: 1 });
    }
    // bare XTRIM by redis-cli: with a process start and a connection
    await fresh();
    {
      const r = timedSpawn(['redis-cli', '-p', String(redis.port), 'XTRIM', bigKey, 'MAXLEN', String(BIG_MAXLEN)], 'redis-cli XTRIM');
      if (Number(r.stdout.trim().replace(/^\(integer\) /, '')) !== bigRemoved) throw new Error(`redis-cli XTRIM: ${r.stdout}`);
      runs.push({ impl: 'redis-cli XTRIM MAXLEN 10000 (process start + connect)', seconds: r.seconds, removed: bigRemoved, peakRssMiB: mib(r.peakRssKiB), roundTrips: 1 });
    }
    // shardctl, timed (no MONITOR)
    await fresh();
    {
      const before = await commandstats(c);
      const sc = shardctlTrim(configs.big, ['--match', bigKey]);
      const delta = statsDelta(before, await commandstats(c), { info: 1 });
      const after = await c.xlen(bigKey);
      if (sc.totals.streams !== 1 || sc.totals.removed !== bigRemoved || after !== BIG_MAXLEN || sc.totals.heldBack) throw new Error(`shardctl --match: ${JSON.stringify(sc.totals)}, ${after} left`);
      runs.push({ impl: 'shardctl stream trim --match <key>', seconds: sc.seconds, removed: sc.totals.removed, peakRssMiB: mib(sc.peakRssKiB), commandstatsDelta: delta });
    }
    // shardctl again under MONITOR: the commands its client sent (Lua's own calls are tagged `lua`)
    await fresh();
    {
      const monitor = await c.monitor();
      const seen = [];
      let fence;
      const fenced = new Promise((resolve) => (fence = resolve));
      const own = `${c.stream.localAddress}:${c.stream.localPort}`;
      monitor.on('monitor', (_time, args, source) => {
        if (source === own) { if (String(args[0]).toLowerCase() === 'echo' && args[1] === 'bench-fence') fence(); return; }
        if (source !== 'lua') seen.push(String(args[0]).toLowerCase());
      });
      let sc;
      try {
        sc = shardctlTrim(configs.big, ['--match', bigKey]);
        await c.echo('bench-fence');
        await fenced;
      } finally {
        monitor.disconnect();
      }
      if (sc.totals.removed !== bigRemoved) throw new Error(`shardctl under MONITOR: ${JSON.stringify(sc.totals)}`);
      const setup = seen.filter((cmd) => ['info', 'client', 'hello', 'auth', 'select'].includes(cmd));
      const work = seen.filter((cmd) => !setup.includes(cmd));
      runs.push({
        impl: 'shardctl stream trim --match <key> (under MONITOR, commands counted)', seconds: sc.seconds, removed: sc.totals.removed,
        clientCommands: seen, connectionSetup: setup, roundTrips: work.length, extraRoundTripsOverBareXtrim: work.length - 1,
        goal: 'at most 1 extra round trip over bare XTRIM (beyond process start)',
      });
    }
    // shardctl's fixed cost: same command, a --match no stream has (process start, lock, audit, connect, one SCAN)
    await fresh();
    {
      const sc = shardctlTrim(configs.big, ['--match', `${prefix}none:*`]);
      if (sc.totals.streams !== 0) throw new Error(`shardctl on no streams: ${JSON.stringify(sc.totals)}`);
      runs.push({ impl: 'shardctl stream trim --match <no stream> (fixed cost)', seconds: sc.seconds, removed: 0, peakRssMiB: mib(sc.peakRssKiB) });
    }
    for (const run of runs) {
      console.log(JSON.stringify({ bench: 'stream.trim.big', entries: BIG, maxLen: BIG_MAXLEN, approximate: false, groups: 2, ...run, seconds: r3(run.seconds), ms: +(run.seconds * 1000).toFixed(2) }));
    }
  } finally {
    if (redis) {
      redis.client.disconnect();
      redis.child.kill('SIGTERM');
      await redis.exited;
    }
    await admin.query(`DROP DATABASE IF EXISTS "${meta}" WITH (FORCE)`);
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchStream();
