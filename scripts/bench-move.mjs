// shard add throughput: move >= BENCH_MOVE_ROWS rows (~250 bytes each) from two
// shards to a new third, end to end (plan + copy + verify + switch + cleanup),
// beside what the same move costs, in this run and on the same data:
//   (a) the raw limit: `psql \copy (SELECT … WHERE hash in ranges) TO STDOUT |
//       psql \copy … FROM STDIN` per source, then a DELETE of those rows on the
//       source (the two sources at once, and one after the other);
//   (b) the naive way: keyset-paginated SELECT and multi-row INSERTs from Node,
//       then batched DELETEs on the source (as the planner plans the pages, and
//       with the pages forced into primary-key index order; shardctl is
//       compared with the faster).
// The data is loaded once into template databases and every run gets fresh
// clones (CREATE DATABASE … TEMPLATE), so each run starts from the same bytes.
// Every run is checked (rows and checksum on the target, nothing left in the
// moved ranges on the sources) so none is faster by being wrong.
// And (c) the physical limit (`limit`, `limit-seq`): the pipe of exactly the
// moving keys' rows (`WHERE room_id = ANY(<the moving room ids>)`, the ids
// found once per data set, outside the timing, by the routing hash against the
// plan's ranges) plus a DELETE of the same rows: the reads and writes any tool
// must do once it knows which rows move, without hashing every row. Each
// shardctl mode is reported against it (ratioToLimit, the move.limit line).
// Then shardctl alone on BENCH_MOVE_RSS_ROWS rows, for peak RSS against row
// count, with the highest RSS in each quarter of a run (a plateau, or growth
// with the rows moved), with online idle and the limit on the same data for
// rows/s against the baseline row count. Prints JSON lines.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startPostgres } from './bench-servers.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = path.join(ROOT, 'bin/shardctl');
/** Rows to move (at least): the load holds about three times as many, the new shard takes about a third. */
const ROWS = Number(process.env.BENCH_MOVE_ROWS ?? 1_000_000);
/** Rows to move in the RSS comparison runs (offline, online idle, the limit: as selected by BENCH_MOVE_IMPLS, once each; 0 skips them). */
const RSS_ROWS = Number(process.env.BENCH_MOVE_RSS_ROWS ?? 4_000_000);
/** BENCH_MOVE_HASH_INDEX=1: build the routing-hash index (`shard index`'s) on the sources first. */
const HASH_INDEX = process.env.BENCH_MOVE_HASH_INDEX === '1';
const PER_ROOM = 20;
const NAIVE_PAGE = 10_000;
const NAIVE_INSERT_ROWS = 1_000;
const COLS = 'room_id, id, payload, created_at';
const SCHEMA_SQL = `CREATE TABLE public.events (
  room_id bigint NOT NULL, id bigint NOT NULL, payload text NOT NULL, created_at timestamptz NOT NULL,
  PRIMARY KEY (room_id, id))`;
const GNU_TIME = '/usr/bin/time';
/**
 * Which runs to make (comma list; default all): shardctl (`shard add --offline`), online (`shard add`,
 * no writes), online-load (`shard add` under BENCH_MOVE_LOAD_RATE writes/s), pipe, pipe-seq, naive, naive-index,
 * pipe-load (the concurrent pipe under the same load: what moving the bytes at all costs the writes),
 * limit, limit-seq (the physical limit: the moving keys' rows piped by key list, then deleted; sources at once, one by one).
 */
const IMPLS = new Set((process.env.BENCH_MOVE_IMPLS ?? 'shardctl,online,online-load,pipe-load,limit,limit-seq,pipe,pipe-seq,naive,naive-index').split(','));
/** Runs of each shardctl mode (offline, online idle, online under load) and of the limit, interleaved; medians reported. */
const REPEAT = Math.max(1, Number(process.env.BENCH_MOVE_REPEAT ?? 1));
/** migration.batchSize of the moves (rows per copy batch; cleanup takes five batches a transaction). */
const BATCH_SIZE = Number(process.env.BENCH_MOVE_BATCH ?? 10_000);
/**
 * BENCH_MOVE_PARALLEL (moves at once, migration.parallel; default 2) and BENCH_MOVE_MAX_RATE
 * (migration.maxRowsPerSecond; default 0, unpaced): a paced move, to see what the writes' latency
 * does when the move leaves the machine some room.
 */
const MIGRATION = { batchSize: BATCH_SIZE, parallel: Number(process.env.BENCH_MOVE_PARALLEL ?? 2), maxRowsPerSecond: Number(process.env.BENCH_MOVE_MAX_RATE ?? 0) };
/** The online run's write load: writes per second, from scripts/bench-move-load.mjs (a process of its own). */
const LOAD_RATE = Number(process.env.BENCH_MOVE_LOAD_RATE ?? 500);
/** How long the load runs before the move starts (its "before" latencies), and after the move ends. */
const LOAD_BEFORE_MS = 3_000;
const LOAD_AFTER_MS = 1_000;
const LOAD_SCRIPT = path.join(ROOT, 'scripts/bench-move-load.mjs');
/**
 * BENCH_MOVE_CACHE=FILE (for working on the mover): keep the loaded template databases after the run
 * and note them in FILE; a later run with the same FILE and row count reuses them instead of loading again.
 */
const CACHE = process.env.BENCH_MOVE_CACHE;

const baseUrl = process.env.SHARDCTL_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const urlOf = (db) => { const u = new URL(baseUrl); u.pathname = `/${db}`; return u.toString(); };
/**
 * BENCH_MOVE_SERVERS: `one` (default), every shard a database of the one server at SHARDCTL_BENCH_PG_URL,
 * so the new shard's copy writes into the WAL the sources' commits flush; or `separate`, shard-1 and the
 * new shard-2 each on a PostgreSQL server of the run's own (scripts/bench-servers.mjs: the same major
 * version and settings, the same disk and cores), as shards are deployed. The metadata database and
 * shard-0 stay on the reference server.
 */
const SERVERS = process.env.BENCH_MOVE_SERVERS ?? 'one';
if (SERVERS !== 'one' && SERVERS !== 'separate') throw new Error(`BENCH_MOVE_SERVERS must be one or separate, not ${SERVERS}`);
/** Per shard index (0, 1, 2), the server its databases live on: { url(db), admin }; set in benchMove. */
let shardServers = null;
const shardUrl = (i, db) => (shardServers ? shardServers[i].url(db) : urlOf(db));
/** Databases on the reference server, dropped at the end; those on the run's own servers go with them. */
const onReference = (i) => !shardServers || shardServers[i].reference;
async function createShardDb(admin, dbs, i, name, template) {
  if (onReference(i)) dbs.add(name);
  await (shardServers ? shardServers[i].admin : admin).query(`CREATE DATABASE "${name}"${template ? ` TEMPLATE "${template}" STRATEGY FILE_COPY` : ''}`);
}

async function withClient(url, fn, options = {}) {
  const c = new pg.Client({ connectionString: url, ...options });
  await c.connect();
  try { return await fn(c); } finally { await c.end(); }
}

/** Runs a command; resolves with its exit code and output (rejects on a non-zero exit unless allowed). */
function run(cmd, args, { env, allowFail = false, onSpawn } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    onSpawn?.(child);
    const out = [];
    const err = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) => {
      const r = { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
      if (code !== 0 && !allowFail) reject(new Error(`${cmd} ${args.slice(0, 6).join(' ')} … exited ${code}: ${r.stderr.slice(-2000)}`));
      else resolve(r);
    });
  });
}

async function shardctl(config, args) {
  const r = await run('node', [BIN, '-c', config, '--json', ...args]);
  return JSON.parse(r.stdout).data;
}

const seconds = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;
/** A multirange literal from ranges as {start, end} (the ring's) or as [start, end] pairs (plan files'). */
const multirange = (ranges) => `{${ranges.map((r) => (Array.isArray(r) ? `[${r[0]},${r[1]}]` : `[${r.start},${r.end}]`)).join(',')}}`;
const filterSql = (literal) => `'${literal}'::int8multirange @> shardctl.route_hash(room_id::text)`;
const CHECKSUM = `count(*)::bigint AS rows, coalesce(sum(('x' || left(md5(ROW(t.room_id, t.id, t.payload, t.created_at)::text), 15))::bit(60)::bigint), 0)::text AS sum`;

/**
 * One data set: template databases (two loaded shards, an empty third),
 * the plan shardctl makes for `shard add shard-2`, and what each run must end with.
 */
async function prepareDataset(admin, dbs, dir, rows, tag, suffix) {
  const name = (what) => `bench_mv${tag}_${what}_${suffix}`;
  const tmpl = [0, 1, 2].map((i) => name(`t${i}`));
  const meta = name('tmeta');
  for (const [i, db] of tmpl.entries()) await createShardDb(admin, dbs, i, db);
  dbs.add(meta);
  await admin.query(`CREATE DATABASE "${meta}"`);
  await Promise.all(tmpl.map((db, i) => withClient(shardUrl(i, db), (c) => c.query(SCHEMA_SQL))));
  const config = path.join(dir, `template-${tag}.yaml`);
  writeFileSync(config, JSON.stringify({
    metadata: { url: urlOf(meta) },
    shards: [{ id: 'shard-0', url: shardUrl(0, tmpl[0]) }, { id: 'shard-1', url: shardUrl(1, tmpl[1]) }],
    tables: [{ name: 'public.events', key: 'room_id' }],
    migration: MIGRATION,
  }));
  await run('node', [BIN, '-c', config, '-q', 'init']);

  // The ring init made, and the moves shardctl plans for adding shard-2 (ranges do not depend on the data).
  const { Ring } = await import(path.join(ROOT, 'dist/core/ring.js'));
  const exported = JSON.parse((await shardctl(config, ['shard', 'ring', '--format', 'json'])).text);
  const before = { vnodes: exported.vnodes, members: exported.shards.map((s) => ({ id: s.id, weight: s.weight })) };
  const after = { vnodes: before.vnodes, members: [...before.members, { id: 'shard-2', weight: 1 }] };
  const plan = (await shardctl(config, ['shard', 'plan', '--add', 'shard-2', '--url', shardUrl(2, tmpl[2])])).plan;
  const moves = plan.moves.map((m) => ({ source: m.source, target: m.target, literal: multirange(m.ranges), ranges: m.ranges.length }));
  if (moves.length !== 2 || moves.some((m) => m.target !== 'shard-2') || new Set(moves.map((m) => m.source)).size !== 2) {
    throw new Error(`unexpected plan: ${JSON.stringify(plan.moves.map((m) => [m.source, m.target]))}`);
  }

  // Rooms 1 … R, R the first count at which the rooms the new shard takes hold >= rows rows.
  const ringAfter = Ring.build(after);
  let rooms = 0;
  let movedRooms = 0;
  while (movedRooms * PER_ROOM < rows) {
    rooms++;
    if (ringAfter.locate(String(rooms)) === 'shard-2') movedRooms++;
  }
  const owned = new Map();
  for (const r of Ring.build(before).ranges()) owned.set(r.shardId, [...(owned.get(r.shardId) ?? []), r]);

  const t0 = process.hrtime.bigint();
  // Server-side, each shard its own rooms; rows of a room are stored together (kind to the naive keyset scan).
  await Promise.all(['shard-0', 'shard-1'].map((id, i) => withClient(shardUrl(i, tmpl[i]), async (c) => {
    await c.query(
      `INSERT INTO public.events (${COLS})
       SELECT r, i, left(repeat(md5(r::text || ':' || i::text), 8), 200 + ((r + i) % 41)::int),
              timestamptz '2026-01-01 00:00:00+00' + ((r * ${PER_ROOM} + i) * interval '1.000317 second')
         FROM (SELECT r FROM generate_series(1, $2::bigint) r WHERE $1::int8multirange @> shardctl.route_hash(r::text)) rooms
        CROSS JOIN LATERAL generate_series(1, ${PER_ROOM}) i`,
      [multirange(owned.get(id)), rooms],
    );
    if (HASH_INDEX) await c.query('CREATE INDEX events_shardctl_route_hash ON public.events (shardctl.route_hash((room_id)::text))');
    await c.query('VACUUM (FREEZE, ANALYZE) public.events');
  })));
  await withClient(shardUrl(2, tmpl[2]), (c) => c.query('VACUUM (FREEZE, ANALYZE) public.events'));
  const loadSeconds = seconds(t0);

  // What every run must end with: per source, its total and the moved rows' count, checksum and COPY-text bytes.
  const expect = { sources: {}, moved: 0, sum: 0n, bytes: 0 };
  await Promise.all(moves.map((m) => withClient(shardUrl(Number(m.source.slice(-1)), tmpl[Number(m.source.slice(-1))]), async (c) => {
    const { rows: [total] } = await c.query('SELECT count(*)::bigint AS n FROM public.events');
    const { rows: [moved] } = await c.query(
      `SELECT ${CHECKSUM}, coalesce(sum(octet_length(room_id::text) + octet_length(id::text) + octet_length(payload) + octet_length(created_at::text) + 4), 0)::bigint AS bytes
         FROM public.events t WHERE ${filterSql(m.literal)}`,
    );
    expect.sources[m.source] = { total: Number(total.n), moved: Number(moved.rows) };
    expect.moved += Number(moved.rows);
    expect.sum += BigInt(moved.sum);
    expect.bytes += Number(moved.bytes);
  })));
  // The SQL filter and the ring in Node must agree on what moves (the routing contract).
  if (expect.moved !== movedRooms * PER_ROOM) throw new Error(`moved rows by SQL filter ${expect.moved} != by ring ${movedRooms * PER_ROOM}`);
  await admin.query(`DROP DATABASE "${meta}" WITH (FORCE)`);
  dbs.delete(meta);
  const totalRows = Object.values(expect.sources).reduce((s, x) => s + x.total, 0);
  return { tag, tmpl, moves, expect, rooms, totalRows, loadSeconds };
}

/** Fresh clones of the templates (and, for shardctl, a fresh metadata database with `init` run). */
async function clone(admin, dbs, dir, ds, runTag, { init = false } = {}) {
  const names = ds.tmpl.map((t, i) => t.replace(/_t\d_/, `_${runTag}${i}_`));
  for (let i = 0; i < 3; i++) await createShardDb(admin, dbs, i, names[i], ds.tmpl[i]);
  const urls = { 'shard-0': shardUrl(0, names[0]), 'shard-1': shardUrl(1, names[1]), 'shard-2': shardUrl(2, names[2]) };
  let config;
  if (init) {
    const meta = ds.tmpl[0].replace(/_t\d_/, `_${runTag}m_`);
    names.push(meta);
    dbs.add(meta);
    await admin.query(`CREATE DATABASE "${meta}"`);
    config = path.join(dir, `${runTag}.yaml`);
    writeFileSync(config, JSON.stringify({
      metadata: { url: urlOf(meta) },
      shards: [{ id: 'shard-0', url: urls['shard-0'] }, { id: 'shard-1', url: urls['shard-1'] }],
      tables: [{ name: 'public.events', key: 'room_id' }],
      migration: MIGRATION,
    }));
    await run('node', [BIN, '-c', config, '-q', 'init']);
  }
  for (const server of new Set(shardServers ? shardServers.map((s) => s.admin) : [admin])) await server.query('CHECKPOINT');
  return { names, urls, config, metaUrl: init ? urlOf(names[3]) : null };
}

/** Drops a run's databases: names[0..2] shard-0..2's (each on its shard's server), names[3] the metadata database. */
async function dropClones(admin, dbs, names) {
  for (const [i, db] of names.entries()) {
    await (i < 3 && shardServers ? shardServers[i].admin : admin).query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
    dbs.delete(db);
  }
}

/** The target holds exactly the moved rows (count and checksum); the sources hold everything else and nothing in the moved ranges. */
async function verifyRun(impl, ds, urls) {
  const problems = [];
  await withClient(urls['shard-2'], async (c) => {
    const { rows: [t] } = await c.query(`SELECT ${CHECKSUM} FROM public.events t`);
    if (Number(t.rows) !== ds.expect.moved || BigInt(t.sum) !== ds.expect.sum) {
      problems.push(`target holds ${t.rows} rows (sum ${t.sum}), expected ${ds.expect.moved} (sum ${ds.expect.sum})`);
    }
  });
  await Promise.all(ds.moves.map((m) => withClient(urls[m.source], async (c) => {
    const { rows: [s] } = await c.query(`SELECT count(*)::bigint AS total, count(*) FILTER (WHERE ${filterSql(m.literal)})::bigint AS left FROM public.events`);
    const want = ds.expect.sources[m.source];
    if (Number(s.left) !== 0 || Number(s.total) !== want.total - want.moved) {
      problems.push(`${m.source} holds ${s.total} rows (${s.left} in moved ranges), expected ${want.total - want.moved} (0)`);
    }
  })));
  if (problems.length) throw new Error(`${impl}: wrong result: ${problems.join('; ')}`);
}

/** `shard add` as a user runs it: one process, timed end to end, its peak RSS from GNU time (or /proc VmHWM). */
async function runShardctl(cl, { offline = false } = {}) {
  const args = [BIN, '-c', cl.config, '--json', '--log-format', 'json', '-v', 'shard', 'add', 'shard-2', '--url', cl.urls['shard-2'], ...(offline ? ['--offline'] : [])];
  const useTime = existsSync(GNU_TIME);
  let hwmKb = 0;
  let poll;
  const startedMs = Date.now();
  const t0 = process.hrtime.bigint();
  // RSS over the run (Linux /proc), to tell a plateau from growth with the rows moved.
  const samples = [];
  let sampler;
  const r = await run(useTime ? GNU_TIME : 'node', useTime ? ['-f', 'BENCH_MAXRSS_KB=%M BENCH_CPU=%U+%S', 'node', ...args] : args, {
    allowFail: true,
    onSpawn: (child) => {
      const nodePid = () => {
        if (!useTime) return child.pid;
        try { return Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(' ')[0]) || null; } catch { return null; }
      };
      sampler = setInterval(() => {
        try {
          const pid = nodePid();
          if (!pid) return;
          const status = readFileSync(`/proc/${pid}/status`, 'utf8');
          const rss = /VmRSS:\s+(\d+) kB/.exec(status);
          if (rss) samples.push({ ms: Date.now() - startedMs, kb: Number(rss[1]) });
          const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
          if (hwm && !useTime) hwmKb = Math.max(hwmKb, Number(hwm[1]));
        } catch { /* not started, or exited */ }
      }, useTime ? 250 : 20);
    },
  });
  const wall = seconds(t0);
  const endedMs = Date.now();
  clearInterval(sampler);
  if (r.code !== 0) throw new Error(`shard add exited ${r.code}: ${r.stdout.slice(-2000)} ${r.stderr.slice(-3000)}`);
  const lines = r.stderr.split('\n');
  let cpuSeconds = null;
  if (useTime) {
    hwmKb = Number(/BENCH_MAXRSS_KB=(\d+)/.exec(r.stderr)?.[1] ?? NaN);
    const cpu = /BENCH_CPU=([\d.]+)\+([\d.]+)/.exec(r.stderr);
    if (cpu) cpuSeconds = +(Number(cpu[1]) + Number(cpu[2])).toFixed(2);
  }
  const execution = JSON.parse(r.stdout).data.execution;
  if (execution.status !== 'done') throw new Error(`shard add ended ${execution.status}`);
  if (execution.online !== !offline) throw new Error(`shard add${offline ? ' --offline' : ''} reports online: ${execution.online}`);
  // The highest RSS seen in each quarter of the run.
  const runMs = endedMs - startedMs;
  const rssByQuarterMb = [0, 1, 2, 3].map((q) => {
    const inQuarter = samples.filter((x) => x.ms >= (q * runMs) / 4 && x.ms < ((q + 1) * runMs) / 4);
    return inQuarter.length ? +(Math.max(...inQuarter.map((x) => x.kb)) / 1024).toFixed(1) : null;
  });
  return { wall, peakRssMb: +(hwmKb / 1024).toFixed(1), rssByQuarterMb, cpuSeconds, execution, phases: phasesOf(lines, startedMs, endedMs) };
}

/** No online-move object (trigger) left on public.events on any shard after a move. */
async function checkNoTriggers(impl, urls) {
  const left = [];
  await Promise.all(Object.entries(urls).map(([id, url]) => withClient(url, async (c) => {
    const { rows } = await c.query(`SELECT tgname FROM pg_trigger WHERE tgrelid = 'public.events'::regclass AND NOT tgisinternal`);
    if (rows.length) left.push(`${id}: ${rows.map((r) => r.tgname).join(', ')}`);
  })));
  if (left.length) throw new Error(`${impl}: triggers left after the move: ${left.join('; ')}`);
}

/**
 * The online move under load, checked: the rows changed, so instead of checksums every row must be on
 * the shard the final ring names (the routing hash in SQL), the total must be the loaded rows plus the
 * inserts the load committed, and every row the load wrote must hold its last committed payload on its owner.
 */
async function verifyLoaded(impl, ds, cl, load) {
  const { Ring } = await import(path.join(ROOT, 'dist/core/ring.js'));
  const ring = await withClient(cl.metaUrl, async (c) => (await c.query('SELECT epoch, vnodes, members FROM shardctl.ring_epochs ORDER BY epoch DESC LIMIT 1')).rows[0]);
  const ids = ring.members.map((m) => m.id).sort();
  const problems = [];
  if (ids.join(',') !== 'shard-0,shard-1,shard-2') problems.push(`final ring has ${ids.join(',')}`);
  const owned = new Map();
  for (const r of Ring.build({ vnodes: ring.vnodes, members: ring.members }).ranges()) owned.set(r.shardId, [...(owned.get(r.shardId) ?? []), r]);
  let total = 0;
  await Promise.all(Object.entries(cl.urls).map(([id, url]) => withClient(url, async (c) => {
    const { rows: [x] } = await c.query(
      `SELECT count(*)::bigint AS total,
              count(*) FILTER (WHERE NOT $1::int8multirange @> ('x' || left(md5(room_id::text), 8))::bit(32)::bigint)::bigint AS misplaced
         FROM public.events`,
      [multirange(owned.get(id) ?? [])],
    );
    total += Number(x.total);
    if (Number(x.misplaced) !== 0) problems.push(`${id} holds ${x.misplaced} row(s) the final ring places elsewhere`);
  })));
  const want = ds.totalRows + load.counts.insertsCommitted;
  if (total !== want) problems.push(`${total} rows in all, expected ${want} (${ds.totalRows} loaded + ${load.counts.insertsCommitted} inserted by the load)`);
  const v = load.verify;
  if (v.missing || v.stale) problems.push(`of ${v.rowsChecked} rows the load wrote, ${v.missing} missing and ${v.stale} stale on their owner (${v.samples.join('; ')})`);
  if (load.counts.undrained) problems.push(`${load.counts.undrained} write(s) of the load never finished`);
  if (problems.length) throw new Error(`${impl}: wrong result: ${problems.join('; ')}`);
}

/**
 * `shard add` (online) while scripts/bench-move-load.mjs writes at LOAD_RATE/s: the load starts first and
 * runs LOAD_BEFORE_MS alone (the latencies before the move), is told when the move starts and ends, and
 * stops LOAD_AFTER_MS after it. Resolves with the move's figures and the load's report.
 */
/**
 * The average number of the machine's cores busy while `fn` runs (every process: node, the PostgreSQL
 * backends, the load generator, the kernel), from /proc/stat: what the 2 cores were doing during a
 * phase, whoever did it.
 */
const TICKS = 100; // USER_HZ: /proc/stat counts in 1/100 s on Linux
function busyTicks() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f;
  return user + nice + system + irq + softirq + steal;
}
function busySince(mark) {
  const s = Number(process.hrtime.bigint() - mark.at) / 1e9;
  return +((busyTicks() - mark.ticks) / TICKS / s).toFixed(2);
}
const cpuMark = () => ({ at: process.hrtime.bigint(), ticks: busyTicks() });
async function busyDuring(fn) {
  const mark = cpuMark();
  const result = await fn();
  return { result, busyCores: busySince(mark) };
}

async function runLoaded(ds, cl) {
  const { result: { result: sc, busyCores }, load } = await underLoad(ds, cl, () => busyDuring(() => runShardctl(cl)), { afterMs: LOAD_AFTER_MS });
  return { sc: { ...sc, busyCores }, load: { ...load, busyCoresDuringMove: busyCores } };
}

/**
 * The raw pipe (runPsqlPipe, the sources at once) under the same load, started the same way: the peer of
 * the online move under load, for what moving the bytes at all costs the writes (the COPY streams and the
 * DELETE compete with them for the host), without triggers, catch-up or fence. The pipe changes no ring,
 * so the load routes by the initial ring throughout (writes to moving keys go to their old owner, and may
 * be lost to the pipe: it is not a consistent move) and classifies by the ring `shard add shard-2` would
 * make (`shard plan`'s targetRing, which changes nothing). The load stops as the pipe ends.
 */
async function runPipeLoaded(ds, cl) {
  const plan = (await shardctl(cl.config, ['shard', 'plan', '--add', 'shard-2', '--url', cl.urls['shard-2']])).plan;
  const finalRing = { vnodes: plan.targetRing.vnodes, members: plan.targetRing.members.map((m) => ({ id: m.id, weight: m.weight })) };
  // The plan on the clone must be the data set's (the same moves, so the same keys move).
  const literals = (moves) => JSON.stringify(moves.map((m) => [m.source, m.target, m.literal]).sort());
  const planMoves = plan.moves.map((m) => ({ source: m.source, target: m.target, literal: multirange(m.ranges) }));
  if (literals(planMoves) !== literals(ds.moves) || finalRing.members.map((m) => m.id).sort().join(',') !== 'shard-0,shard-1,shard-2') {
    throw new Error(`pipe under load: the clone's plan for shard add shard-2 differs from the data set's`);
  }
  const { result: secs, load } = await underLoad(ds, cl, () => runPsqlPipe(ds, cl.urls, true), { afterMs: 0, finalRing });
  return { secs, load, finalRing };
}

/**
 * The raw pipe under load, checked as far as a move that is not consistent can be: the pipe completed
 * (runPsqlPipe rejects on any psql failure), the target holds only rows of the moved ranges and at least
 * every loaded one of them, the sources every row outside them (loaded or inserted by the load) and in
 * them no more than the load inserted there, and every write to a non-moving key reads back.
 */
async function verifyPipeLoaded(impl, ds, cl, load) {
  const problems = [];
  const ins = load.counts.insertsCommittedByClass;
  // The target has no shardctl schema (the pipe installs nothing): the routing hash spelled out, as in verifyLoaded.
  const moved = `{${ds.moves.map((m) => m.literal.slice(1, -1)).join(',')}}`;
  await withClient(cl.urls['shard-2'], async (c) => {
    const { rows: [t] } = await c.query(
      `SELECT count(*)::bigint AS total,
              count(*) FILTER (WHERE NOT $1::int8multirange @> ('x' || left(md5(room_id::text), 8))::bit(32)::bigint)::bigint AS outside
         FROM public.events`,
      [moved],
    );
    const total = Number(t.total);
    if (Number(t.outside) !== 0) problems.push(`target holds ${t.outside} row(s) outside the moved ranges`);
    if (total < ds.expect.moved || total > ds.expect.moved + ins.moving) problems.push(`target holds ${total} rows, expected ${ds.expect.moved} … ${ds.expect.moved + ins.moving}`);
  });
  let kept = 0;
  let leftInMoved = 0;
  await Promise.all(ds.moves.map((m) => withClient(cl.urls[m.source], async (c) => {
    const { rows: [s] } = await c.query(`SELECT count(*)::bigint AS total, count(*) FILTER (WHERE ${filterSql(m.literal)})::bigint AS left FROM public.events`);
    kept += Number(s.total) - Number(s.left);
    leftInMoved += Number(s.left);
  })));
  const wantKept = ds.totalRows - ds.expect.moved + ins.nonMoving;
  if (kept !== wantKept) problems.push(`sources hold ${kept} rows outside the moved ranges, expected ${wantKept} (${ds.totalRows - ds.expect.moved} loaded + ${ins.nonMoving} inserted by the load)`);
  if (leftInMoved > ins.moving) problems.push(`sources hold ${leftInMoved} rows in the moved ranges, more than the ${ins.moving} the load inserted there`);
  const v = load.verify.byClass.nonMoving;
  if (v.missing || v.stale) problems.push(`of ${v.rowsChecked} non-moving rows the load wrote, ${v.missing} missing and ${v.stale} stale (${load.verify.samples.join('; ')})`);
  if (load.counts.undrained) problems.push(`${load.counts.undrained} write(s) of the load never finished`);
  if (problems.length) throw new Error(`${impl}: wrong result: ${problems.join('; ')}`);
}

/**
 * What the load's sessions (application_name bench-move-load) are waiting on, sampled from
 * pg_stat_activity every 20 ms until stopped: counts by wait event ("LWLock:WALWrite",
 * "Lock:relation", "CPU" for an active session waiting on nothing). Where a slow write's time goes.
 */
function sampleLoadWaits(urls) {
  const counts = {};
  let samples = 0;
  let stopped = false;
  // One session per server (pg_stat_activity shows its own server's sessions), read together each tick.
  const clients = urls.map((url) => new pg.Client({ connectionString: url, application_name: 'bench-move-sampler' }));
  const done = (async () => {
    await Promise.all(clients.map((c) => c.connect()));
    while (!stopped) {
      const replies = await Promise.all(clients.map((c) => c.query(`SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS w FROM pg_stat_activity WHERE application_name = 'bench-move-load' AND state = 'active'`)));
      samples++;
      for (const { rows } of replies) for (const { w } of rows) counts[w] = (counts[w] ?? 0) + 1;
      await new Promise((r) => setTimeout(r, 20));
    }
    await Promise.all(clients.map((c) => c.end()));
  })();
  return async () => {
    stopped = true;
    await done;
    return { samples, sessionsWaiting: Object.fromEntries(Object.entries(counts).sort((a, b) => b[1] - a[1])) };
  };
}

/**
 * `body` (a move) while scripts/bench-move-load.mjs writes at LOAD_RATE/s against the clone: LOAD_BEFORE_MS
 * of load alone, move-start and move-end marks around `body`, then `afterMs` more and stop.
 * Resolves with the body's result and the load's report.
 */
async function underLoad(ds, cl, body, { afterMs, finalRing } = {}) {
  const child = spawn('node', [
    LOAD_SCRIPT, '--shards', JSON.stringify(cl.urls), '--metadata', cl.metaUrl, '--rooms', String(ds.rooms), '--per-room', String(PER_ROOM), '--rate', String(LOAD_RATE),
    ...(finalRing ? ['--final-ring', JSON.stringify(finalRing)] : []),
  ], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out = [];
  let err = '';
  child.stdout.on('data', (d) => out.push(d));
  const exited = new Promise((resolve, reject) => { child.on('error', reject); child.on('close', (code) => resolve(code)); });
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`load generator not ready after 30 s: ${err.slice(-2000)}`)), 30_000);
      child.stderr.on('data', (d) => {
        err += d;
        if (err.includes('READY\n')) { clearTimeout(timer); resolve(); }
      });
      exited.then((code) => { clearTimeout(timer); reject(new Error(`load generator exited ${code}: ${err.slice(-2000)}`)); });
    });
    const before = cpuMark();
    const waitUrls = [cl.metaUrl, ...(shardServers ? [cl.urls['shard-1'], cl.urls['shard-2']] : [])];
    const stopBefore = sampleLoadWaits(waitUrls);
    await new Promise((r) => setTimeout(r, LOAD_BEFORE_MS));
    const busyCoresLoadAlone = busySince(before);
    const waitsBefore = await stopBefore();
    child.stdin.write(`move-start ${Date.now()}\n`);
    const stopDuring = sampleLoadWaits(waitUrls);
    const result = await body();
    child.stdin.write(`move-end ${Date.now()}\n`);
    const waitsDuring = await stopDuring();
    if (afterMs > 0) await new Promise((r) => setTimeout(r, afterMs));
    child.stdin.end('stop\n');
    const code = await exited;
    if (code !== 0) throw new Error(`load generator exited ${code}: ${err.slice(-2000)}`);
    return { result, load: { ...JSON.parse(Buffer.concat(out).toString()), busyCoresLoadAlone, waits: { before: waitsBefore, during: waitsDuring } } };
  } finally {
    if (child.exitCode === null) child.kill('SIGTERM');
  }
}

/** The highest RSS of a run's second half over its first half's (1.0: a plateau). */
function lateGrowth(quarters) {
  const [a, b, c, d] = quarters.map((q) => q ?? 0);
  const early = Math.max(a, b);
  return early > 0 ? +(Math.max(c, d) / early).toFixed(3) : null;
}

/** Where the time went, from the move-state debug lines (`-v --log-format json`). */
function phasesOf(lines, startedMs, endedMs) {
  const at = {};
  const byMove = {};
  for (const line of lines) {
    if (!line.startsWith('{')) continue;
    let e;
    try { e = JSON.parse(line); } catch { continue; }
    const m = /^move (\d+) \S+ → \S+: (\w+)$/.exec(e.msg ?? '');
    if (!m) continue;
    (at[m[2]] ??= []).push(Date.parse(e.ts));
    (byMove[m[1]] ??= {})[m[2]] = Date.parse(e.ts);
  }
  const first = (st) => (at[st] ? Math.min(...at[st]) : NaN);
  const last = (st) => (at[st] ? Math.max(...at[st]) : NaN);
  const s = (a, b) => +((b - a) / 1000).toFixed(2);
  const moves = Object.values(byMove);
  return {
    startupPrepareAndPlan: s(startedMs, first('copying')),
    copy: s(first('copying'), last('copied')),
    verifyAfterLastCopy: s(last('copied'), last('verified')),
    switchAndCleanup: s(last('verified'), last('cleaned')),
    exit: s(last('cleaned'), endedMs),
    // Online moves: from the last copy to the fence, and from the fence to the last verification.
    ...(at.fenced ? { catchUp: s(last('copied'), first('fenced')), fencedToVerified: s(first('fenced'), last('verified')) } : {}),
    perMove: {
      copy: moves.map((m) => s(m.copying, m.copied)),
      verify: moves.map((m) => s(m.copied, m.verified)),
      cleanup: moves.map((m) => s(last('verified'), m.cleaned)),
    },
  };
}

/** (a) per source: psql \copy out | psql \copy in, then DELETE on the source; the sources at once or one by one. */
async function runPsqlPipe(ds, urls, concurrent) {
  const one = async (m) => {
    const env = {
      SRC: urls[m.source],
      TGT: urls['shard-2'],
      OUT: `\\copy (SELECT ${COLS} FROM public.events WHERE ${filterSql(m.literal)}) to pstdout`,
      IN: `\\copy public.events (${COLS}) from pstdin`,
      DEL: `DELETE FROM public.events WHERE ${filterSql(m.literal)}`,
    };
    await run('bash', ['-c', 'set -eo pipefail; psql -X -q -v ON_ERROR_STOP=1 -d "$SRC" -c "$OUT" | psql -X -q -v ON_ERROR_STOP=1 -d "$TGT" -c "$IN"; psql -X -q -v ON_ERROR_STOP=1 -d "$SRC" -c "$DEL"'], { env });
  };
  const t0 = process.hrtime.bigint();
  if (concurrent) await Promise.all(ds.moves.map(one));
  else for (const m of ds.moves) await one(m);
  return seconds(t0);
}

/**
 * The physical limit's inputs, once per data set and outside any timing: per move, the moving room ids
 * (rooms 1 … ds.rooms whose routing hash, spelled out in SQL, falls in the move's ranges; checked against
 * the rows the move must move), written into two SQL files as an array literal: the source's
 * `\copy (SELECT … WHERE room_id = ANY('{…}'::bigint[])) to pstdout` and its `DELETE … WHERE room_id = ANY(…)`.
 * Files, because the list (about 25,000 ids per source at 1M rows, 100,000 at 4M: 150 to 700 kB) is
 * longer than one command-line argument or environment string may be (128 kB on Linux), and psql does
 * not interpolate variables into \copy; psql -f reads the statement from the file instead.
 */
async function limitInputs(admin, dir, ds) {
  const out = {};
  for (const m of ds.moves) {
    const { rows: [k] } = await admin.query(
      `SELECT count(*)::int AS n, coalesce(array_agg(r ORDER BY r), '{}')::text AS keys
         FROM generate_series(1, $2::bigint) r WHERE $1::int8multirange @> ('x' || left(md5(r::text), 8))::bit(32)::bigint`,
      [m.literal, ds.rooms],
    );
    if (k.n * PER_ROOM !== ds.expect.sources[m.source].moved) {
      throw new Error(`limit: ${k.n} moving rooms on ${m.source} hold ${k.n * PER_ROOM} rows, the move must move ${ds.expect.sources[m.source].moved}`);
    }
    const where = `room_id = ANY('${k.keys}'::bigint[])`;
    const base = path.join(dir, `limit-${ds.tag}-${m.source}`);
    writeFileSync(`${base}-out.sql`, `\\copy (SELECT ${COLS} FROM public.events WHERE ${where}) to pstdout\n`);
    writeFileSync(`${base}-delete.sql`, `DELETE FROM public.events WHERE ${where};\n`);
    out[m.source] = { keys: k.n, outFile: `${base}-out.sql`, deleteFile: `${base}-delete.sql`, literalBytes: k.keys.length };
  }
  return out;
}

/**
 * (c) the physical limit, per source: psql -f (the key-list \copy out) | psql \copy in, then psql -f (the
 * key-list DELETE) on the source; the sources at once or one by one. Each source's pipe and DELETE are
 * timed apart (seconds per source), to set beside shardctl's copy and cleanup phases.
 */
async function runLimit(ds, urls, concurrent) {
  const psql = 'psql -X -q -v ON_ERROR_STOP=1';
  const perSource = {};
  const one = async (m) => {
    const f = ds.limit[m.source];
    const env = { SRC: urls[m.source], TGT: urls['shard-2'], OUTF: f.outFile, DELF: f.deleteFile, IN: `\\copy public.events (${COLS}) from pstdin` };
    const t0 = process.hrtime.bigint();
    await run('bash', ['-c', `set -eo pipefail; ${psql} -d "$SRC" -f "$OUTF" | ${psql} -d "$TGT" -c "$IN"`], { env });
    const pipeSecs = seconds(t0);
    const t1 = process.hrtime.bigint();
    await run('bash', ['-c', `${psql} -d "$SRC" -f "$DELF"`], { env });
    perSource[m.source] = { pipe: +pipeSecs.toFixed(2), delete: +seconds(t1).toFixed(2) };
  };
  const t0 = process.hrtime.bigint();
  if (concurrent) await Promise.all(ds.moves.map(one));
  else for (const m of ds.moves) await one(m);
  return { secs: seconds(t0), perSource };
}

/**
 * (b) per source: keyset-paginated SELECT, multi-row INSERTs, then DELETE page by page; the sources at once.
 * The planner underestimates the hash filter (no statistics on the expression) and answers each page
 * with a full scan and sort; `indexOrdered` sets enable_sort = off so pages are read in primary-key
 * order by index, as keyset pagination intends (the variant a user who looked at the plan would run).
 */
async function runNaive(ds, urls, { indexOrdered = false } = {}) {
  // Exact values: bigint and timestamptz as text (a JS Date would drop the microseconds).
  const types = { getTypeParser: (oid, format) => (oid === 1184 || oid === 20 ? (v) => v : pg.types.getTypeParser(oid, format)) };
  const one = (m) => withClient(urls[m.source], (src) => withClient(urls['shard-2'], async (tgt) => {
    if (indexOrdered) await src.query('SET enable_sort = off');
    const pages = [];
    let after = null;
    for (;;) {
      const { rows } = after
        ? await src.query(`SELECT ${COLS} FROM public.events WHERE ${filterSql(m.literal)} AND (room_id, id) > ($1, $2) ORDER BY room_id, id LIMIT ${NAIVE_PAGE}`, after)
        : await src.query(`SELECT ${COLS} FROM public.events WHERE ${filterSql(m.literal)} ORDER BY room_id, id LIMIT ${NAIVE_PAGE}`);
      if (!rows.length) break;
      for (let i = 0; i < rows.length; i += NAIVE_INSERT_ROWS) {
        const chunk = rows.slice(i, i + NAIVE_INSERT_ROWS);
        const values = chunk.map((_, j) => `($${j * 4 + 1}, $${j * 4 + 2}, $${j * 4 + 3}, $${j * 4 + 4})`).join(', ');
        await tgt.query(`INSERT INTO public.events (${COLS}) VALUES ${values}`, chunk.flatMap((r) => [r.room_id, r.id, r.payload, r.created_at]));
      }
      const lastRow = rows[rows.length - 1];
      pages.push({ from: after, to: [lastRow.room_id, lastRow.id] });
      after = [lastRow.room_id, lastRow.id];
      if (rows.length < NAIVE_PAGE) break;
    }
    for (const p of pages) {
      if (p.from) await src.query(`DELETE FROM public.events WHERE ${filterSql(m.literal)} AND (room_id, id) > ($1, $2) AND (room_id, id) <= ($3, $4)`, [...p.from, ...p.to]);
      else await src.query(`DELETE FROM public.events WHERE ${filterSql(m.literal)} AND (room_id, id) <= ($1, $2)`, p.to);
    }
  }, { types }), { types });
  const t0 = process.hrtime.bigint();
  await Promise.all(ds.moves.map(one));
  return seconds(t0);
}

/** The loaded data set: from BENCH_MOVE_CACHE when it names databases that still exist, else loaded now. */
async function cachedDataset(admin, dbs, dir, suffix) {
  if (CACHE && shardServers) throw new Error('BENCH_MOVE_CACHE keeps databases of the reference server only: not with BENCH_MOVE_SERVERS=separate');
  if (CACHE && existsSync(CACHE)) {
    const ds = JSON.parse(readFileSync(CACHE, 'utf8'), (k, v) => (k === 'sum' && typeof v === 'string' ? BigInt(v) : v));
    const { rows } = await admin.query('SELECT count(*)::int AS n FROM pg_database WHERE datname = ANY($1)', [ds.tmpl]);
    if (ds.rows === ROWS && rows[0].n === ds.tmpl.length) return ds;
  }
  const ds = await prepareDataset(admin, dbs, dir, ROWS, 'a', suffix);
  if (CACHE) {
    for (const db of ds.tmpl) dbs.delete(db);
    writeFileSync(CACHE, JSON.stringify({ ...ds, rows: ROWS }, (k, v) => (typeof v === 'bigint' ? v.toString() : v)));
  }
  return ds;
}

export async function benchMove() {
  const suffix = `${process.pid}_${Date.now().toString(36)}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'shardctl-bench-move-'));
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  const dbs = new Set();
  const own = [];
  try {
    if (SERVERS === 'separate') {
      for (let i = 0; i < 2; i++) own.push(await startPostgres(baseUrl));
      shardServers = [{ url: urlOf, admin, reference: true }, ...own.map((s) => ({ url: s.url, admin: s.admin, reference: false }))];
    }
    const ds = await cachedDataset(admin, dbs, dir, suffix);
    const wantsLimit = IMPLS.has('limit') || IMPLS.has('limit-seq');
    // The moving keys, once per data set, before any run (not timed).
    if (wantsLimit) ds.limit = await limitInputs(admin, dir, ds);
    const { moved: rows, bytes } = ds.expect;
    const results = [];
    let runNo = 0;
    // The host's load while each run ran (other work on the machine skews the comparison).
    let loadBefore = os.loadavg()[0];
    const record = (impl, secs, extra = {}) => ({ impl, seconds: secs, loadAvg1m: +Math.max(loadBefore, os.loadavg()[0]).toFixed(2), ...extra });
    /** One run on fresh clones of a data set, checked (by verifyRun, or by the body itself when `check` is false). */
    const measureOn = async (d, key, impl, body, { init = false, check = true } = {}) => {
      if (!IMPLS.has(key)) return null;
      const cl = await clone(admin, dbs, dir, d, `r${++runNo}`, { init });
      loadBefore = os.loadavg()[0];
      const { secs, extra } = await body(cl);
      if (check) await verifyRun(impl, d, cl.urls);
      await dropClones(admin, dbs, cl.names);
      return record(impl, secs, extra);
    };
    const measure = (...args) => measureOn(ds, ...args);
    const copiedAll = (sc, what, want = rows) => {
      if (sc.execution.rowsCopied !== want) throw new Error(`${what} reports ${sc.execution.rowsCopied} rows copied, expected ${want}`);
    };
    const LIMIT_IMPL = 'psql limit: key-list pipe + DELETE (concurrent)';
    const LIMIT_SEQ_IMPL = 'psql limit: key-list pipe + DELETE (sequential)';
    const figures = (sc) => ({ peakRssMb: sc.peakRssMb, cpuSeconds: sc.cpuSeconds, sc });

    // shardctl in its three modes, interleaved REPEAT times (offline, online with no writes, online under
    // load), then the raw pipe (both ways), then the naive loop: fresh clones for each.
    const modes = { offline: [], online: [], loaded: [], pipeLoaded: [], limit: [], limitSeq: [] };
    for (let i = 0; i < REPEAT; i++) {
      const off = await measure('shardctl', 'shardctl shard add', async (cl) => {
        const sc = await runShardctl(cl, { offline: true });
        copiedAll(sc, 'shard add --offline');
        return { secs: sc.wall, extra: { mode: 'offline', ...figures(sc) } };
      }, { init: true });
      if (off) modes.offline.push(off);
      const on = await measure('online', 'shardctl shard add', async (cl) => {
        const { result: sc, busyCores } = await busyDuring(() => runShardctl(cl));
        sc.busyCores = busyCores;
        copiedAll(sc, 'shard add (online, no writes)');
        await checkNoTriggers('shard add (online, no writes)', cl.urls);
        return { secs: sc.wall, extra: { mode: 'online', ...figures(sc) } };
      }, { init: true });
      if (on) modes.online.push(on);
      const loaded = await measure('online-load', 'shardctl shard add', async (cl) => {
        const { sc, load } = await runLoaded(ds, cl);
        await verifyLoaded('shard add (online, under load)', ds, cl, load);
        await checkNoTriggers('shard add (online, under load)', cl.urls);
        return { secs: sc.wall, extra: { mode: 'online+load', ...figures(sc), load } };
      }, { init: true, check: false });
      if (loaded) modes.loaded.push(loaded);
      // The raw pipe under the same load (its peer for the writes' latency): checked by verifyPipeLoaded, not
      // by checksum (the load changes the data, and the pipe is not a consistent move).
      const pipeLoaded = await measure('pipe-load', 'psql pipe + DELETE (concurrent) under load', async (cl) => {
        const { secs, load } = await runPipeLoaded(ds, cl);
        await verifyPipeLoaded('psql pipe (concurrent, under load)', ds, cl, load);
        return { secs, extra: { mode: 'pipe+load', load } };
      }, { init: true, check: false });
      if (pipeLoaded) modes.pipeLoaded.push(pipeLoaded);
      // The physical limit on the same data (fresh clones, checked by verifyRun like the others).
      const lim = await measure('limit', LIMIT_IMPL, async (cl) => {
        const { secs, perSource } = await runLimit(ds, cl.urls, true);
        return { secs, extra: { mode: 'limit', perSource } };
      });
      if (lim) modes.limit.push(lim);
      const limSeq = await measure('limit-seq', LIMIT_SEQ_IMPL, async (cl) => {
        const { secs, perSource } = await runLimit(ds, cl.urls, false);
        return { secs, extra: { mode: 'limit-seq', perSource } };
      });
      if (limSeq) modes.limitSeq.push(limSeq);
    }
    /** The run of median wall time (the lower middle one of an even count). */
    const medianRun = (runs) => (runs.length ? [...runs].sort((a, b) => a.seconds - b.seconds)[Math.floor((runs.length - 1) / 2)] : null);
    const shardctlRun = medianRun(modes.offline);
    const onlineRun = medianRun(modes.online);
    const limitRun = medianRun(modes.limit);
    const limitSeqRun = medianRun(modes.limitSeq);
    for (const r of [shardctlRun, onlineRun, limitRun, limitSeqRun]) if (r) results.push(r);
    const runsOf = new Map([[shardctlRun, modes.offline], [onlineRun, modes.online], [limitRun, modes.limit], [limitSeqRun, modes.limitSeq]]);

    const keep = (r) => { if (r) results.push(r); return r; };
    const pipe = keep(await measure('pipe', 'psql pipe + DELETE (concurrent)', async (cl) => ({ secs: await runPsqlPipe(ds, cl.urls, true) })));
    const pipeSeq = keep(await measure('pipe-seq', 'psql pipe + DELETE (sequential)', async (cl) => ({ secs: await runPsqlPipe(ds, cl.urls, false) })));
    const naivePlanner = keep(await measure('naive', 'naive keyset SELECT + INSERT', async (cl) => ({ secs: await runNaive(ds, cl.urls) })));
    const naiveIndex = keep(await measure('naive-index', 'naive keyset SELECT + INSERT (index-ordered pages)', async (cl) => ({ secs: await runNaive(ds, cl.urls, { indexOrdered: true }) })));
    // Compared with the faster of the two naive runs.
    const naive = [naivePlanner, naiveIndex].filter(Boolean).sort((a, b) => a.seconds - b.seconds)[0] ?? null;

    const rate = (r) => rows / r.seconds;
    for (const r of results) {
      const runs = runsOf.get(r) ?? null;
      const line = {
        bench: 'move', impl: r.impl, ...(r.mode ? { mode: r.mode } : {}), servers: SERVERS, rows, bytes, totalRows: ds.totalRows, sources: 2,
        seconds: +r.seconds.toFixed(2), rowsPerSec: Math.round(rate(r)), mbPerSec: +(bytes / 1e6 / r.seconds).toFixed(2),
        ...(runs && runs.length > 1 ? { runs: runs.length, secondsAll: runs.map((x) => +x.seconds.toFixed(2)) } : {}),
        peakRssMb: r.peakRssMb ?? null, ...(r.sc ? { rssByQuarterMb: r.sc.rssByQuarterMb } : {}),
        ...(r.cpuSeconds != null ? { nodeCpuSeconds: r.cpuSeconds } : {}), loadAvg1m: r.loadAvg1m,
        ratioToRawPipe: pipe ? +(rate(r) / rate(pipe)).toFixed(2) : null,
        ratioToRawPipeSequential: pipeSeq ? +(rate(r) / rate(pipeSeq)).toFixed(2) : null,
        ratioToNaive: naive ? +(rate(r) / rate(naive)).toFixed(2) : null,
        // rows/s against the physical limit's (the key-list pipe + DELETE, both sources at once; and one by one).
        ratioToLimit: limitRun ? +(rate(r) / rate(limitRun)).toFixed(3) : null,
        ...(limitSeqRun ? { ratioToLimitSequential: +(rate(r) / rate(limitSeqRun)).toFixed(3) } : {}),
        ...(r.perSource ? { limitSecondsPerSource: r.perSource } : {}),
        ...(r.sc && naive ? { naiveComparedWith: naive.impl } : {}),
        hashIndex: HASH_INDEX,
      };
      if (r === shardctlRun) {
        Object.assign(line, {
          goal: '>= 0.7x psql pipe (concurrent) rows/s, >= 1.5x naive (the faster variant), peak RSS < 200 MB',
          meetsGoal: { rawPipe: pipe ? line.ratioToRawPipe >= 0.7 : null, naive: naive ? line.ratioToNaive >= 1.5 : null, rss: r.peakRssMb < 200 },
        });
      }
      if (r.sc) {
        Object.assign(line, {
          phases: r.sc.phases,
          reported: { seconds: +r.sc.execution.seconds.toFixed(2), rowsPerSecond: r.sc.execution.rowsPerSecond, mbPerSecond: r.sc.execution.mbPerSecond, phases: r.sc.execution.phases ?? null },
        });
      }
      console.log(JSON.stringify(line));
    }

    const med = (xs) => {
      const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
      if (!v.length) return null;
      const m = Math.floor(v.length / 2);
      return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
    };
    const r2 = (x, d = 2) => (x == null ? null : +x.toFixed(d));
    const ratio = (a, b) => (a != null && b != null && b > 0 ? +(a / b).toFixed(3) : null);
    const secs = (runs) => r2(med(runs.map((x) => x.seconds)));
    /** Median wall seconds of the limit (both sources at once), and a mode's rows/s against it (the limit's seconds over the mode's). */
    const limitSecs = secs(modes.limit);
    const toLimit = (modeSecs) => ratio(limitSecs, modeSecs);

    // Online against offline, and online under a write load against online with none.
    if (modes.online.length || modes.loaded.length || modes.pipeLoaded.length) {
      const fence = (runs) => med(runs.map((x) => x.sc.execution.longestFenceMs));
      const loads = modes.loaded.map((x) => x.load);
      const fromLoads = (f) => r2(med(loads.map(f)), 4);
      const t = { offline: secs(modes.offline), idle: secs(modes.online), loaded: secs(modes.loaded) };
      const longest = [...modes.online, ...modes.loaded].map((x) => x.sc.execution.longestFenceMs).filter((x) => x != null);
      const p99 = { before: fromLoads((l) => l.nonMovingLatency.before.p99Ms), during: fromLoads((l) => l.nonMovingLatency.during.p99Ms) };
      // The raw pipe under the same load: its own before window, and while the pipe ran.
      const pipeLoads = modes.pipeLoaded.map((x) => x.load);
      const fromPipeLoads = (f) => r2(med(pipeLoads.map(f)), 4);
      const pipeP99 = { before: fromPipeLoads((l) => l.nonMovingLatency.before.p99Ms), during: fromPipeLoads((l) => l.nonMovingLatency.during.p99Ms) };
      const line = {
        bench: 'move.online', impl: 'shardctl shard add', servers: SERVERS, rows, totalRows: ds.totalRows, runsPerMode: REPEAT,
        seconds: t,
        rawPipeUnderLoadSeconds: secs(modes.pipeLoaded),
        // The physical limit (key-list pipe + DELETE, both sources at once) on the same data, median seconds.
        limitSeconds: limitSecs,
        ratios: {
          loadedToIdle: ratio(t.loaded, t.idle), idleOnlineToOffline: ratio(t.idle, t.offline),
          // rows/s of each mode over the limit's (the limit's seconds over the mode's; 1.0: as fast as the limit).
          idleToLimit: toLimit(t.idle), offlineToLimit: toLimit(t.offline), loadedToLimit: toLimit(t.loaded),
        },
        longestFenceMs: { idle: fence(modes.online), loaded: fence(modes.loaded), maxOfAllRuns: longest.length ? Math.max(...longest) : null },
        // The whole machine's average busy cores (every process, /proc/stat) in each phase, of os.cpus().length.
        // loadedToIdleCpuFloor: the idle move's work (its seconds × busy cores) on the cores the load alone
        // leaves free, over the idle move's seconds: the least loadedToIdle can be on this machine before the
        // move's own extra work under load (capture, catch-up, the comparison of replayed keys).
        machineCpu: (() => {
          const cores = os.cpus().length;
          const idleMove = modes.online.length ? r2(med(modes.online.map((x) => x.sc.busyCores))) : null;
          const loadAlone = loads.length ? fromLoads((l) => l.busyCoresLoadAlone) : null;
          return {
            cores, idleMove, loadAlone,
            loadedMove: loads.length ? fromLoads((l) => l.busyCoresDuringMove) : null,
            pipeLoadAlone: pipeLoads.length ? fromPipeLoads((l) => l.busyCoresLoadAlone) : null,
            loadedToIdleCpuFloor: idleMove !== null && loadAlone !== null ? r2(idleMove / (cores - loadAlone), 3) : null,
          };
        })(),
        load: loads.length ? {
          rate: LOAD_RATE, achievedRate: fromLoads((l) => l.achievedRate), insertShare: loads[0].insertShare, poolPerShard: loads[0].pool,
          writes: fromLoads((l) => l.counts.writes), movingKeyWrites: fromLoads((l) => l.counts.movingKeyWrites), movingKeyWritesDuringMove: fromLoads((l) => l.counts.movingKeyWritesDuringMove),
          generatorDispatchLagP99Ms: fromLoads((l) => l.dispatchLagMs.p99),
        } : null,
        fencedWrites: loads.length ? {
          count: fromLoads((l) => l.counts.fencedWrites),
          errorsByCode: { SH001: fromLoads((l) => l.counts.fenceErrors.SH001), SH002: fromLoads((l) => l.counts.fenceErrors.SH002) },
          shareOfMovingKeyWritesDuringMove: fromLoads((l) => l.fencedShareOfMovingKeyWritesDuringMove),
          shareOfAllMovingKeyWrites: fromLoads((l) => l.fencedShareOfMovingKeyWrites),
          nonMovingKeyWritesFenced: fromLoads((l) => l.counts.fencedNonMovingKeyWrites),
          gaveUp: fromLoads((l) => l.counts.gaveUp), otherErrors: fromLoads((l) => l.counts.otherErrors),
          otherErrorSamples: [...new Set(loads.flatMap((l) => l.otherErrorSamples))].slice(0, 5),
          updatesFoundNoRow: fromLoads((l) => l.counts.updateNoRow),
        } : null,
        // Due-to-commit latency of the writes to keys that do not move, before the move and while it ran.
        nonMovingLatencyMs: loads.length || pipeLoads.length ? {
          before: { p50: fromLoads((l) => l.nonMovingLatency.before.p50Ms), p99: p99.before, writes: fromLoads((l) => l.nonMovingLatency.before.committed) },
          during: { p50: fromLoads((l) => l.nonMovingLatency.during.p50Ms), p99: p99.during, writes: fromLoads((l) => l.nonMovingLatency.during.committed) },
          p99DuringToBefore: ratio(p99.during, p99.before),
          // The raw pipe (psql \copy out | in + DELETE, both sources at once) under the same load, on fresh
          // clones: the latency cost of moving the bytes at all. Its before window is its own run's.
          ...(pipeLoads.length ? {
            beforeRawPipe: { p50: fromPipeLoads((l) => l.nonMovingLatency.before.p50Ms), p99: pipeP99.before, writes: fromPipeLoads((l) => l.nonMovingLatency.before.committed) },
            duringRawPipe: { p50: fromPipeLoads((l) => l.nonMovingLatency.during.p50Ms), p99: pipeP99.during, writes: fromPipeLoads((l) => l.nonMovingLatency.during.committed) },
            p99DuringPipeToBefore: ratio(pipeP99.during, pipeP99.before),
            p99DuringMoveToDuringPipe: ratio(p99.during, pipeP99.during),
            // Those writes' last attempt from holding a pooled connection to commit: tells the database's
            // part from waiting for one of the pool's connections (shared with writes to moving keys).
            queryOnlyRawPipe: {
              before: { p50: fromPipeLoads((l) => l.nonMovingLatency.before.queryP50Ms), p99: fromPipeLoads((l) => l.nonMovingLatency.before.queryP99Ms) },
              during: { p50: fromPipeLoads((l) => l.nonMovingLatency.during.queryP50Ms), p99: fromPipeLoads((l) => l.nonMovingLatency.during.queryP99Ms) },
            },
          } : {}),
          // The same writes' last attempt from holding a pooled connection to commit (without the wait for one).
          queryOnly: {
            before: { p50: fromLoads((l) => l.nonMovingLatency.before.queryP50Ms), p99: fromLoads((l) => l.nonMovingLatency.before.queryP99Ms) },
            during: { p50: fromLoads((l) => l.nonMovingLatency.during.queryP50Ms), p99: fromLoads((l) => l.nonMovingLatency.during.queryP99Ms) },
          },
        } : null,
        movingLatencyDuringMs: loads.length ? { p50: fromLoads((l) => l.movingLatency.during.p50Ms), p99: fromLoads((l) => l.movingLatency.during.p99Ms), max: fromLoads((l) => l.movingLatency.during.maxMs) } : null,
        goal: 'longest fence <= 1 s; move under 500 writes/s <= 1.3x the idle online move; p99 of non-moving writes during the move <= 2x before; idle online move <= 1.15x --offline',
        meetsGoal: {
          longestFence: longest.length ? Math.max(...longest) <= 1000 : null,
          loadedToIdle: t.loaded != null && t.idle != null ? t.loaded <= 1.3 * t.idle : null,
          nonMovingP99: p99.before != null && p99.during != null ? p99.during <= 2 * p99.before : null,
          idleOnlineToOffline: t.idle != null && t.offline != null ? t.idle <= 1.15 * t.offline : null,
        },
        loadAvg1m: +Math.max(...[...modes.offline, ...modes.online, ...modes.loaded, ...modes.pipeLoaded].map((x) => x.loadAvg1m)).toFixed(2),
        // Each run: wall seconds, the host's load, and what shardctl reported of each move's online phase.
        runs: [...modes.offline, ...modes.online, ...modes.loaded].map((x) => ({
          mode: x.mode, seconds: r2(x.seconds), loadAvg1m: x.loadAvg1m, longestFenceMs: x.sc.execution.longestFenceMs, phases: x.sc.phases,
          ...(x.load ? {
            nonMovingP99Ms: { before: x.load.nonMovingLatency.before.p99Ms, during: x.load.nonMovingLatency.during.p99Ms },
            fencedWrites: x.load.counts.fencedWrites, achievedRate: x.load.achievedRate, rowsVerified: x.load.verify.rowsChecked, ring: x.load.ring,
            // Per second of the move: the non-moving writes' p99 and max, and how many took over 50 ms.
            nonMovingTimeline: x.load.nonMovingTimeline,
            // What the load's sessions waited on, sampled every 20 ms, before and during the move.
            loadWaits: x.load.waits,
          } : {}),
          moves: x.sc.execution.moves.map((m) => ({ source: m.source, target: m.target, seconds: m.seconds, online: m.online })),
        })),
        // Each raw pipe under load: wall seconds, the host's load, the non-moving p99s, and what the pipe
        // lost of the writes to moving keys (it is not a consistent move; the count is for information).
        rawPipeRuns: modes.pipeLoaded.map((x) => ({
          mode: x.mode, seconds: r2(x.seconds), loadAvg1m: x.loadAvg1m,
          nonMovingP99Ms: { before: x.load.nonMovingLatency.before.p99Ms, during: x.load.nonMovingLatency.during.p99Ms },
          achievedRate: x.load.achievedRate, writes: x.load.counts.writes, movingKeyWritesDuringPipe: x.load.counts.movingKeyWritesDuringMove,
          movingLatencyDuringMs: { p50: x.load.movingLatency.during.p50Ms, p99: x.load.movingLatency.during.p99Ms, max: x.load.movingLatency.during.maxMs },
          nonMovingMaxDuringMs: x.load.nonMovingLatency.during.maxMs, maxInFlight: x.load.maxInFlight,
          otherErrors: x.load.counts.otherErrors, updatesFoundNoRow: x.load.counts.updateNoRow, verifyByClass: x.load.verify.byClass,
          loadWaits: x.load.waits,
        })),
      };
      console.log(JSON.stringify(line));
    }

    // The same modes at RSS_ROWS rows (once each, fresh clones of the bigger data set): peak RSS of the
    // shardctl runs, and rows/s of each against the baseline's (the goal: within 10%).
    const big4 = { offline: null, online: null, limit: null };
    let big = null;
    if (RSS_ROWS > 0 && (shardctlRun || onlineRun || limitRun)) {
      // Free the first data set's disk before loading the bigger one.
      if (!CACHE) await dropClones(admin, dbs, ds.tmpl);
      big = await prepareDataset(admin, dbs, dir, RSS_ROWS, 'b', suffix);
      if (limitRun) big.limit = await limitInputs(admin, dir, big);
      const bigRows = big.expect.moved;
      if (shardctlRun) {
        big4.offline = await measureOn(big, 'shardctl', 'shardctl shard add', async (cl) => {
          const bsc = await runShardctl(cl, { offline: true });
          copiedAll(bsc, 'shard add --offline (RSS run)', bigRows);
          return { secs: bsc.wall, extra: { mode: 'offline', ...figures(bsc) } };
        }, { init: true });
      }
      if (onlineRun) {
        big4.online = await measureOn(big, 'online', 'shardctl shard add', async (cl) => {
          const bsc = await runShardctl(cl);
          copiedAll(bsc, 'shard add (online, no writes; RSS run)', bigRows);
          await checkNoTriggers('shard add (online, no writes; RSS run)', cl.urls);
          return { secs: bsc.wall, extra: { mode: 'online', ...figures(bsc) } };
        }, { init: true });
      }
      if (limitRun) {
        big4.limit = await measureOn(big, 'limit', LIMIT_IMPL, async (cl) => {
          const { secs: s, perSource } = await runLimit(big, cl.urls, true);
          return { secs: s, extra: { mode: 'limit', perSource } };
        });
      }
      const baselineOf = { offline: shardctlRun, online: onlineRun, limit: limitRun };
      for (const [mode, r] of Object.entries(big4)) {
        if (!r) continue;
        const base = baselineOf[mode];
        const bigRate = bigRows / r.seconds;
        const scale = ratio(bigRate, rate(base));
        const line = {
          bench: 'move.rss', impl: r.impl, mode, rows: bigRows, bytes: big.expect.bytes, totalRows: big.totalRows,
          seconds: r2(r.seconds), rowsPerSec: Math.round(bigRate), mbPerSec: +(big.expect.bytes / 1e6 / r.seconds).toFixed(2),
          ...(r.sc ? { peakRssMb: r.peakRssMb, rssByQuarterMb: r.sc.rssByQuarterMb, nodeCpuSeconds: r.cpuSeconds } : { limitSecondsPerSource: r.perSource }),
          loadAvg1m: r.loadAvg1m,
          baseline: { rows, rowsPerSec: Math.round(rate(base)), ...(base.sc ? { peakRssMb: base.peakRssMb, rssByQuarterMb: base.sc.rssByQuarterMb } : {}) },
          rowsPerSecRatio4Mto1M: scale,
          ...(mode !== 'limit' && big4.limit ? { ratioToLimit: ratio(bigRate, bigRows / big4.limit.seconds) } : {}),
          goal: r.sc
            ? 'peak RSS < 200 MB, and no higher than at the baseline row count (5% tolerance for GC timing); rows/s within 10% of the baseline\'s (ratio >= 0.9)'
            : 'rows/s within 10% of the baseline\'s (ratio >= 0.9)',
          meetsGoal: r.sc
            ? { rss: r.peakRssMb < 200 && r.peakRssMb <= base.peakRssMb * 1.05, rowsPerSec: scale != null ? scale >= 0.9 : null }
            : { rowsPerSec: scale != null ? scale >= 0.9 : null },
          ...(r.sc ? {
            // Within the long run: does RSS keep growing as rows move (last half against first half)?
            growthInRun: lateGrowth(r.sc.rssByQuarterMb),
            phases: r.sc.phases,
            reported: { seconds: +r.sc.execution.seconds.toFixed(2), phases: r.sc.execution.phases ?? null },
          } : {}),
        };
        console.log(JSON.stringify(line));
      }
    }

    // The physical limit beside the whole move, and where each mode's time goes (shardctl's phases).
    if (modes.limit.length || modes.limitSeq.length) {
      const { MOVE_PHASES } = await import(path.join(ROOT, 'dist/core/move-phases.js'));
      /** Per phase, the median of the runs' reported seconds (execution.phases; moves overlap, so phases add up to more than the wall time). */
      const phaseMedians = (runs) => {
        if (!runs.length) return null;
        const out = {};
        for (const ph of MOVE_PHASES) {
          const v = med(runs.map((x) => x.sc.execution.phases?.[ph]?.seconds));
          if (v != null) out[ph] = r2(v, 3);
        }
        return out;
      };
      /** Per source, the median of the limit runs' pipe and DELETE seconds. */
      const limitParts = (runs) => {
        if (!runs.length) return null;
        const out = {};
        for (const m of ds.moves) out[m.source] = { pipe: r2(med(runs.map((x) => x.perSource[m.source].pipe))), delete: r2(med(runs.map((x) => x.perSource[m.source].delete))) };
        return out;
      };
      const t = { offline: secs(modes.offline), idle: secs(modes.online), loaded: secs(modes.loaded) };
      const all = (runs) => (runs.length ? runs.map((x) => r2(x.seconds)) : null);
      const rps = (sec, n = rows) => (sec ? Math.round(n / sec) : null);
      const shardctlBig = [big4.offline, big4.online].filter(Boolean);
      const rss4M = shardctlBig.length ? Math.max(...shardctlBig.map((x) => x.peakRssMb)) : null;
      const bigToLimit = (r) => (r && big4.limit ? ratio(big4.limit.seconds, r.seconds) : null);
      const ratios = { offline: toLimit(t.offline), idle: toLimit(t.idle), loaded: toLimit(t.loaded) };
      const line = {
        bench: 'move.limit', impl: LIMIT_IMPL, rows, bytes, totalRows: ds.totalRows, sources: 2, runsPerMode: REPEAT,
        method: 'per source (both at once): psql -f <file: \\copy (SELECT cols FROM public.events WHERE room_id = ANY(\'{…}\'::bigint[])) to pstdout> | psql -c "\\copy public.events (cols) from pstdin", then psql -f <file: DELETE … WHERE room_id = ANY(…)> on the source; the moving room ids found once per data set, untimed, by the routing hash against the plan\'s ranges, and written into the files as array literals (too long for one command-line argument)',
        movingKeys: Object.fromEntries(Object.entries(ds.limit).map(([id, f]) => [id, f.keys])),
        seconds: { limit: limitSecs, limitSequential: secs(modes.limitSeq), ...t },
        secondsAll: { limit: all(modes.limit), limitSequential: all(modes.limitSeq), offline: all(modes.offline), idle: all(modes.online), loaded: all(modes.loaded) },
        rowsPerSec: { limit: rps(limitSecs), limitSequential: rps(secs(modes.limitSeq)), offline: rps(t.offline), idle: rps(t.idle), loaded: rps(t.loaded) },
        // Each mode's rows/s over the limit's (the limit's median seconds over the mode's).
        toLimit: ratios,
        gapSeconds: { offline: t.offline != null && limitSecs != null ? r2(t.offline - limitSecs) : null, idle: t.idle != null && limitSecs != null ? r2(t.idle - limitSecs) : null, loaded: t.loaded != null && limitSecs != null ? r2(t.loaded - limitSecs) : null },
        goal: 'whole offline move >= 0.85x the physical limit; online idle >= 0.8x; peak RSS < 200 MB at 4M rows',
        meetsGoal: {
          offline: ratios.offline != null ? ratios.offline >= 0.85 : null,
          idle: ratios.idle != null ? ratios.idle >= 0.8 : null,
          rssAt4M: rss4M != null ? rss4M < 200 : null,
        },
        // Where the time goes: the limit's pipe and DELETE per source, and each shardctl mode's reported phases (medians).
        limitPartsSeconds: limitParts(modes.limit),
        limitSequentialPartsSeconds: limitParts(modes.limitSeq),
        phasesMedianSeconds: { offline: phaseMedians(modes.offline), idle: phaseMedians(modes.online), loaded: phaseMedians(modes.loaded) },
        phasesAre: 'shardctl\'s reported seconds summed over its two moves (which run at once), so set them beside limitPartsSeconds summed over the two sources: copy against pipe, cleanup against delete',
        at4M: big ? {
          rows: big.expect.moved, totalRows: big.totalRows,
          movingKeys: big.limit ? Object.fromEntries(Object.entries(big.limit).map(([id, f]) => [id, f.keys])) : null,
          seconds: { limit: r2(big4.limit?.seconds), offline: r2(big4.offline?.seconds), idle: r2(big4.online?.seconds) },
          rowsPerSec: { limit: rps(big4.limit?.seconds, big.expect.moved), offline: rps(big4.offline?.seconds, big.expect.moved), idle: rps(big4.online?.seconds, big.expect.moved) },
          peakRssMb: { offline: big4.offline?.peakRssMb ?? null, idle: big4.online?.peakRssMb ?? null },
          toLimit: { offline: bigToLimit(big4.offline), idle: bigToLimit(big4.online) },
          rowsPerSecRatio4Mto1M: {
            limit: big4.limit && limitRun ? ratio(big.expect.moved / big4.limit.seconds, rate(limitRun)) : null,
            offline: big4.offline && shardctlRun ? ratio(big.expect.moved / big4.offline.seconds, rate(shardctlRun)) : null,
            idle: big4.online && onlineRun ? ratio(big.expect.moved / big4.online.seconds, rate(onlineRun)) : null,
          },
          // The goal at RSS_ROWS: rows/s within 10% of the baseline row count's (ratio >= 0.9), per mode.
          rowsPerSecGoalMet: Object.fromEntries(['limit', 'offline', 'idle'].map((k) => [k, null])),
          limitPartsSeconds: big4.limit ? big4.limit.perSource : null,
          phasesSeconds: { offline: big4.offline ? phaseMedians([big4.offline]) : null, idle: big4.online ? phaseMedians([big4.online]) : null },
        } : null,
        loadAvg1m: +Math.max(...[...modes.offline, ...modes.online, ...modes.loaded, ...modes.limit, ...modes.limitSeq, ...Object.values(big4).filter(Boolean)].map((x) => x.loadAvg1m)).toFixed(2),
      };
      if (line.at4M) for (const [k, v] of Object.entries(line.at4M.rowsPerSecRatio4Mto1M)) line.at4M.rowsPerSecGoalMet[k] = v != null ? v >= 0.9 : null;
      console.log(JSON.stringify(line));
    }
  } finally {
    for (const db of dbs) await admin.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`).catch((e) => console.error(`drop ${db}: ${e.message}`));
    for (const server of own) await server.stop();
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchMove();
