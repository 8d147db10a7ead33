// The write load of `npm run bench move`'s online run: an application writing
// to public.events at a steady rate while shardctl moves ranges under it.
//
//   node scripts/bench-move-load.mjs --shards '{"shard-0":URL,…}' --metadata URL \
//     --rooms R [--per-room 20] [--rate 500] [--insert-share 0.2] [--pool 8] [--duration S]
//     [--final-ring '{"vnodes":N,"members":[{"id":…,"weight":…},…]}']
//
// Open loop: write k is due at start + k / rate (a timer dispatches every due
// write, however many are still in flight), so a slow write delays no other
// write's start and its latency counts from when it was due (no coordinated
// omission). Each write is, at random, an UPDATE of one existing row's payload
// (room uniform in 1 … R, id in 1 … per-room) or an INSERT of a new row (a fresh
// id), on the shard the router names (shardctl/router, ring from the metadata
// database); SH001/SH002 refusals are counted per code and retried with
// withFencedRetry (which reloads the ring). No two writes to one row are in
// flight at once, so the last committed payload of every row written is known,
// and at the end it is read back from the row's owner in the final ring
// (nothing lost, nothing stale, nothing on the wrong shard).
//
// Control, one line each on stdin: `move-start <epoch ms>`, `move-end <epoch ms>`,
// `stop` (also: SIGTERM, end of stdin, --duration). Prints `READY` on stderr once
// writing, and one JSON object on stdout at exit. A "moving key" is one whose
// owner in the final ring differs from its owner in the ring read at start.
// The final ring is the metadata database's at exit, or --final-ring when given
// (a move that changes no ring in the metadata database, such as the raw psql
// pipe of `npm run bench move`: writes are routed by the initial ring throughout,
// and classified and read back by the given one). The read-back is also reported
// per class (verify.byClass), since such a move may lose writes to moving keys.
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { createRouter, withFencedRetry, fencedWrite } = await import(path.join(ROOT, 'dist/router/index.js'));
const { Ring } = await import(path.join(ROOT, 'dist/core/ring.js'));

const { values: opt } = parseArgs({
  options: {
    shards: { type: 'string' },
    metadata: { type: 'string' },
    rooms: { type: 'string' },
    'per-room': { type: 'string', default: '20' },
    rate: { type: 'string', default: '500' },
    'insert-share': { type: 'string', default: '0.2' },
    pool: { type: 'string', default: '8' },
    duration: { type: 'string' },
    'warmup-ms': { type: 'string', default: '500' },
    'final-ring': { type: 'string' },
  },
});
const shardUrls = JSON.parse(opt.shards ?? '{}');
const ROOMS = Number(opt.rooms);
const PER_ROOM = Number(opt['per-room']);
const RATE = Number(opt.rate);
const INSERT_SHARE = Number(opt['insert-share']);
const POOL = Number(opt.pool);
const WARMUP_MS = Number(opt['warmup-ms']);
if (!opt.metadata || !Object.keys(shardUrls).length || !(ROOMS > 0) || !(RATE > 0)) {
  console.error('usage: bench-move-load.mjs --shards JSON --metadata URL --rooms N [--rate 500] [--per-room 20] [--insert-share 0.2] [--pool 8] [--duration S]');
  process.exit(2);
}
/** New rows' ids start here (the loaded rows have ids 1 … per-room). */
const INSERT_ID_BASE = 1_000_000_000;
const RETRY = { attempts: 60, baseDelayMs: 20, maxDelayMs: 500 };

const now = () => performance.timeOrigin + performance.now();

const pools = Object.fromEntries(Object.entries(shardUrls).map(([id, url]) => {
  const p = new pg.Pool({ connectionString: url, max: POOL, application_name: 'bench-move-load' });
  p.on('error', () => {}); // an idle client's error; queries report their own
  return [id, p];
}));
const router = await createRouter({ metadataUrl: opt.metadata });
const ringOf = (info) => Ring.build({ vnodes: info.vnodes, members: info.members.map((m) => ({ id: m.id, weight: m.weight })) });
const initialRing = ringOf(router.ring);
const initialEpoch = router.epoch;
// Connect every pool's clients before the clock starts, so the first writes do not pay for it.
await Promise.all(Object.values(pools).map((p) => Promise.all(Array.from({ length: POOL }, () => p.connect().then((c) => c)))
  .then((clients) => clients.forEach((c) => c.release()))));

// The log, one entry per write: when it was due, started, finished (epoch ms); its room; outcome.
const log = [];
const counts = { writes: 0, updates: 0, inserts: 0, committed: 0, insertsCommitted: 0, fenceErrors: { SH001: 0, SH002: 0 }, fencedWrites: 0, gaveUp: 0, otherErrors: 0, updateNoRow: 0 };
const otherErrorSamples = [];
/** Rows with a write in flight, so none gets two at once. */
const inFlightRows = new Set();
/** Per row written: the payload it must hold at the end (null: unknown, a write to it failed). */
const expected = new Map();
let inFlight = 0;
let maxInFlight = 0;
let insertSeq = 0;
let moveStart = null;
let moveEnd = null;

class NoRow extends Error {}

function payloadOf(k) {
  const head = `load:${k}:${Math.random().toString(36).slice(2, 10)}:`;
  return (head + 'x'.repeat(240)).slice(0, 200 + (k % 41));
}

async function write(k, dueAt) {
  const insert = Math.random() < INSERT_SHARE;
  const room = 1 + Math.floor(Math.random() * ROOMS);
  let id;
  if (insert) id = INSERT_ID_BASE + insertSeq++;
  else {
    id = 1 + Math.floor(Math.random() * PER_ROOM);
    for (let i = 0; i < 20 && inFlightRows.has(`${room}:${id}`); i++) id = 1 + Math.floor(Math.random() * PER_ROOM);
    if (inFlightRows.has(`${room}:${id}`)) return; // vanishingly rare: skip rather than write a row twice at once
  }
  const row = `${room}:${id}`;
  inFlightRows.add(row);
  const payload = payloadOf(k);
  counts.writes++;
  counts[insert ? 'inserts' : 'updates']++;
  inFlight++;
  maxInFlight = Math.max(maxInFlight, inFlight);
  const entry = { due: dueAt, start: now(), acquired: 0, end: 0, room, ok: false, fenced: 0 };
  log.push(entry);
  try {
    await withFencedRetry(router, async () => {
      for (;;) {
        // Routed afresh on every attempt, and again once a connection is free (a write that waited in the
        // pool's queue across a ring change would otherwise reach the old owner).
        const shard = router.shardFor(String(room));
        const client = await pools[shard].connect();
        entry.acquired = now();
        let r;
        const epochUsed = router.epoch;
        try {
          if (router.shardFor(String(room)) !== shard) continue;
          r = insert
            ? await client.query('INSERT INTO public.events (room_id, id, payload, created_at) VALUES ($1, $2, $3, now())', [room, id, payload])
            : await client.query('UPDATE public.events SET payload = $3 WHERE room_id = $1 AND id = $2', [room, id, payload]);
        } catch (err) {
          const f = fencedWrite(err);
          if (f) { counts.fenceErrors[f.code]++; entry.fenced++; }
          throw err;
        } finally {
          client.release();
        }
        if (insert || r.rowCount === 1) return;
        // No row where the router said: an UPDATE routed with the old ring that met the source's cleanup
        // (a row deleted under it is skipped without firing the fence trigger). Retry if the ring moved on.
        counts.updateNoRow++;
        if ((await router.reload().catch(() => router.epoch)) === epochUsed) throw new NoRow(`no row ${row} on ${shard} (epoch ${epochUsed})`);
      }
    }, RETRY);
    entry.ok = true;
    counts.committed++;
    if (insert) counts.insertsCommitted++;
    expected.set(row, payload);
  } catch (err) {
    if (fencedWrite(err)) counts.gaveUp++;
    else {
      counts.otherErrors++;
      if (otherErrorSamples.length < 5) otherErrorSamples.push(`${err.code ?? ''} ${err.message}`.trim());
    }
    expected.set(row, null);
  } finally {
    entry.end = now();
    if (entry.fenced) counts.fencedWrites++;
    inFlight--;
    inFlightRows.delete(row);
  }
}

// The schedule.
const t0 = now();
const interval = 1000 / RATE;
let next = 0;
let stopping = false;
let timer = null;
let lastDue = t0;
function tick() {
  const t = now();
  while (!stopping && t0 + next * interval <= t) {
    lastDue = t0 + next * interval;
    write(next, lastDue);
    next++;
  }
  if (!stopping) timer = setTimeout(tick, Math.max(0, t0 + next * interval - now()));
}
tick();
process.stderr.write('READY\n');

let resolveStop;
const stopped = new Promise((r) => (resolveStop = r));
const stop = () => { if (!stopping) { stopping = true; clearTimeout(timer); resolveStop(); } };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (opt.duration) setTimeout(stop, Number(opt.duration) * 1000).unref();
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [cmd, at] = line.trim().split(/\s+/);
  if (cmd === 'move-start') moveStart = Number(at) || now();
  else if (cmd === 'move-end') moveEnd = Number(at) || now();
  else if (cmd === 'stop') stop();
});
rl.on('close', stop);

await stopped;
const stoppedAt = now();
// Let the writes in flight finish (a fenced one may be backing off).
while (inFlight > 0 && now() - stoppedAt < 30_000) await new Promise((r) => setTimeout(r, 20));
const undrained = inFlight;
rl.close();

// The final ring, and every write classified by it.
await router.reload().catch(() => {});
const finalRing = opt['final-ring'] ? ringOf(JSON.parse(opt['final-ring'])) : ringOf(router.ring);
const moving = new Map();
const isMoving = (room) => {
  let m = moving.get(room);
  if (m === undefined) { const k = String(room); m = initialRing.locate(k) !== finalRing.locate(k); moving.set(room, m); }
  return m;
};

const pct = (xs, p) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return +s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))].toFixed(2);
};
const stats = (entries) => {
  const ok = entries.filter((e) => e.ok);
  const lat = ok.map((e) => e.end - e.due);
  // The last attempt alone, from holding a connection to commit (the database's part, without the pool's queue).
  const query = ok.map((e) => e.end - e.acquired);
  return {
    writes: entries.length, committed: lat.length, p50Ms: pct(lat, 50), p99Ms: pct(lat, 99), maxMs: lat.length ? +Math.max(...lat).toFixed(2) : null,
    queryP50Ms: pct(query, 50), queryP99Ms: pct(query, 99),
  };
};
const done = log.filter((e) => e.end > 0);
const windowOf = (e) => (moveStart === null || e.due < moveStart ? 'before' : moveEnd === null || e.due <= moveEnd ? 'during' : 'after');
const byWindow = (entries) => {
  const w = { before: [], during: [], after: [] };
  for (const e of entries) if (!(windowOf(e) === 'before' && e.due < t0 + WARMUP_MS)) w[windowOf(e)].push(e);
  return w;
};
const nonMoving = byWindow(done.filter((e) => !isMoving(e.room)));
const movingW = byWindow(done.filter((e) => isMoving(e.room)));
const movingWrites = done.filter((e) => isMoving(e.room));
const movingFenced = movingWrites.filter((e) => e.fenced > 0).length;
const nonMovingFenced = done.filter((e) => !isMoving(e.room) && e.fenced > 0).length;

// Read back every row written from its owner in the final ring.
const verify = { rowsChecked: 0, missing: 0, stale: 0, unknown: 0, samples: [] };
const byClass = { moving: { rowsChecked: 0, missing: 0, stale: 0, unknown: 0 }, nonMoving: { rowsChecked: 0, missing: 0, stale: 0, unknown: 0 } };
const classOf = (room) => byClass[isMoving(room) ? 'moving' : 'nonMoving'];
const insertsCommittedByClass = { moving: 0, nonMoving: 0 };
const wanted = new Map();
for (const [row, payload] of expected) {
  const [room, id] = row.split(':').map(Number);
  if (payload === null) { verify.unknown++; classOf(room).unknown++; continue; }
  if (id >= INSERT_ID_BASE) insertsCommittedByClass[isMoving(room) ? 'moving' : 'nonMoving']++;
  const owner = finalRing.locate(String(room));
  (wanted.get(owner) ?? wanted.set(owner, []).get(owner)).push([room, id, payload]);
}
for (const [owner, rows] of wanted) {
  for (let i = 0; i < rows.length; i += 5000) {
    const chunk = rows.slice(i, i + 5000);
    const { rows: found } = await pools[owner].query(
      'SELECT e.room_id::text AS room, e.id::text AS id, e.payload FROM public.events e JOIN unnest($1::bigint[], $2::bigint[]) AS w(room_id, id) USING (room_id, id)',
      [chunk.map((r) => r[0]), chunk.map((r) => r[1])],
    );
    const got = new Map(found.map((f) => [`${f.room}:${f.id}`, f.payload]));
    for (const [room, id, payload] of chunk) {
      verify.rowsChecked++;
      const cls = classOf(room);
      cls.rowsChecked++;
      const have = got.get(`${room}:${id}`);
      if (have === undefined) { verify.missing++; cls.missing++; if (verify.samples.length < 5) verify.samples.push(`missing ${room}:${id} on ${owner}`); }
      else if (have !== payload) { verify.stale++; cls.stale++; if (verify.samples.length < 5) verify.samples.push(`stale ${room}:${id} on ${owner}`); }
    }
  }
}

const runSeconds = (Math.min(stoppedAt, lastDue + interval) - t0) / 1000;
const lag = done.map((e) => e.start - e.due);
const out = {
  rate: RATE,
  achievedRate: +(counts.committed / runSeconds).toFixed(1),
  seconds: +runSeconds.toFixed(2),
  pool: POOL,
  insertShare: INSERT_SHARE,
  ring: { initialEpoch, finalEpoch: router.epoch },
  moveWindowMs: moveStart !== null && moveEnd !== null ? Math.round(moveEnd - moveStart) : null,
  counts: {
    ...counts,
    movingKeyWrites: movingWrites.length,
    movingKeyWritesDuringMove: movingW.during.length,
    fencedMovingKeyWrites: movingFenced,
    fencedNonMovingKeyWrites: nonMovingFenced,
    undrained,
    insertsCommittedByClass,
  },
  fencedShareOfMovingKeyWrites: movingWrites.length ? +(movingFenced / movingWrites.length).toFixed(4) : null,
  fencedShareOfMovingKeyWritesDuringMove: movingW.during.length ? +(movingW.during.filter((e) => e.fenced > 0).length / movingW.during.length).toFixed(4) : null,
  // Latency from when the write was due to its commit (retries included), in ms.
  nonMovingLatency: { before: stats(nonMoving.before), during: stats(nonMoving.during), after: stats(nonMoving.after) },
  movingLatency: { before: stats(movingW.before), during: stats(movingW.during), after: stats(movingW.after) },
  // Non-moving writes during the move, per second from its start (by when each was due; epoch ms of the
  // start given): when the slow ones came, to hold against the move's phases.
  nonMovingTimeline: moveStart === null ? [] : (() => {
    const buckets = [];
    for (const e of nonMoving.during) (buckets[Math.floor((e.due - moveStart) / 1000)] ??= []).push(e);
    return Array.from(buckets, (b, second) => {
      const ok = (b ?? []).filter((e) => e.ok);
      const lat = ok.map((e) => e.end - e.due);
      return { second, writes: (b ?? []).length, p50Ms: pct(lat, 50), p99Ms: pct(lat, 99), maxMs: lat.length ? +Math.max(...lat).toFixed(1) : null, over50Ms: lat.filter((x) => x > 50).length };
    });
  })(),
  moveStartEpochMs: moveStart,
  // How late the generator itself started writes (its own event loop): large values mean it could not keep the rate.
  dispatchLagMs: { p99: pct(lag, 99), max: lag.length ? +Math.max(...lag).toFixed(2) : null },
  maxInFlight,
  otherErrorSamples,
  verify: { ...verify, byClass },
};
process.stdout.write(JSON.stringify(out) + '\n');
await router.close();
await Promise.all(Object.values(pools).map((p) => p.end()));
