// The hash ring beside the `hashring` npm package (ketama), measured in the same
// run on the same keys: lookups per second, balance, and keys moved by adding a
// shard. Prints JSON lines. Needs the build (npm run build).
import { createRequire } from 'node:module';
import { DEFAULT_VNODES, Ring } from '../dist/core/ring.js';
import { randomKeys } from '../dist/core/simulate.js';

const require = createRequire(import.meta.url);
const HashRing = require('hashring');

const KEYS = Number(process.env.BENCH_RING_KEYS ?? 1_000_000);
const RUNS = 3;
const SEED = 20240601;

const shardIds = (n) => Array.from({ length: n }, (_, i) => `shard-${i}`);

function ourRing(n) {
  return Ring.build({ vnodes: DEFAULT_VNODES, members: shardIds(n).map((id) => ({ id, weight: 1 })) });
}

// hashring places `vnode count` hashes per server and takes `replicas` (4, as
// ketama) points from each 16-byte md5 digest, so a server owns vnode count ×
// replicas points. Match our points per shard exactly, ketama-style when it divides.
const HASHRING_OPTIONS =
  DEFAULT_VNODES % 4 === 0 ? { 'vnode count': DEFAULT_VNODES / 4, replicas: 4 } : { 'vnode count': DEFAULT_VNODES, replicas: 1 };

function peerRing(n) {
  const ring = new HashRing(shardIds(n), 'md5', HASHRING_OPTIONS);
  if (ring.ring.length !== n * DEFAULT_VNODES) {
    throw new Error(`hashring built ${ring.ring.length} points for ${n} servers, not ${n * DEFAULT_VNODES}`);
  }
  return ring;
}

/** Best of RUNS timed passes over every key, after one untimed warm-up pass. */
function lookupsPerSecond(lookup, keys) {
  let sink = 0;
  const pass = () => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < keys.length; i++) sink += lookup(keys[i]).length;
    return Number(process.hrtime.bigint() - t0) / 1e9;
  };
  pass();
  let best = Infinity;
  for (let r = 0; r < RUNS; r++) best = Math.min(best, pass());
  if (sink === 0) throw new Error('lookups returned nothing');
  return Math.round(keys.length / best);
}

function balance(lookup, n, keys) {
  const counts = new Map(shardIds(n).map((id) => [id, 0]));
  for (const k of keys) {
    const owner = lookup(k);
    counts.set(owner, counts.get(owner) + 1);
  }
  const loads = [...counts.values()];
  const mean = keys.length / n;
  const sd = Math.sqrt(loads.reduce((a, x) => a + (x - mean) ** 2, 0) / n);
  return { maxOverMean: round(Math.max(...loads) / mean), coefficientOfVariation: round(sd / mean) };
}

function moves(lookupBefore, lookupAfter, newId, keys) {
  let moved = 0;
  let movedElsewhere = 0;
  for (const k of keys) {
    const after = lookupAfter(k);
    if (lookupBefore(k) !== after) {
      moved++;
      if (after !== newId) movedElsewhere++;
    }
  }
  return { movedFraction: round(moved / keys.length), movedNotToNewShard: movedElsewhere };
}

const round = (x) => Math.round(x * 1e4) / 1e4;

export async function benchRing() {
  const keys = randomKeys(KEYS, SEED);
  const matched = `${DEFAULT_VNODES} points per shard on both: shardctl vnodes ${DEFAULT_VNODES}; hashring 'vnode count' ${HASHRING_OPTIONS['vnode count']} × replicas ${HASHRING_OPTIONS.replicas}`;

  const lookupShards = 16;
  const ours = ourRing(lookupShards);
  const peer = peerRing(lookupShards);
  const ourOps = lookupsPerSecond((k) => ours.locate(k), keys);
  // get() is hashring's API: md5 of the key, binary search, plus its LRU cache
  // (5000 entries by default), which never hits on distinct keys but is paid for.
  const peerOps = lookupsPerSecond((k) => peer.get(k), keys);
  // The same lookup without the cache: its hash and search alone.
  const peerRawOps = lookupsPerSecond((k) => peer.ring[peer.find(peer.hashValue(k))].server, keys);
  const common = { shards: lookupShards, points: ours.points.length, keys: KEYS, distinctKeys: true, runs: RUNS, measure: 'best of runs after a warm-up pass' };
  console.log(JSON.stringify({ bench: 'ring.lookup', impl: 'shardctl', api: 'Ring.locate', ...common, opsPerSec: ourOps }));
  console.log(JSON.stringify({ bench: 'ring.lookup', impl: 'hashring', api: 'HashRing.get', ...common, points: peer.ring.length, matched, opsPerSec: peerOps, shardctlSpeedup: round(ourOps / peerOps) }));
  console.log(JSON.stringify({ bench: 'ring.lookup', impl: 'hashring', api: 'find(hashValue) without the LRU cache', ...common, points: peer.ring.length, matched, opsPerSec: peerRawOps, shardctlSpeedup: round(ourOps / peerRawOps) }));

  for (const n of [8, 16]) {
    const a = ourRing(n);
    const b = peerRing(n);
    const base = { bench: 'ring.balance', shards: n, pointsPerShard: DEFAULT_VNODES, keys: KEYS };
    console.log(JSON.stringify({ ...base, impl: 'shardctl', ...balance((k) => a.locate(k), n, keys) }));
    console.log(JSON.stringify({ ...base, impl: 'hashring', ...balance((k) => b.get(k), n, keys) }));
  }

  const [from, to] = [8, 9];
  const newId = `shard-${from}`;
  const ourBefore = ourRing(from);
  const ourAfter = ourRing(to);
  const peerBefore = peerRing(from);
  const peerAfter = peerRing(to);
  const base = { bench: 'ring.move', change: `${from} -> ${to} equal shards`, pointsPerShard: DEFAULT_VNODES, keys: KEYS, idealMovedFraction: round(1 / to) };
  console.log(JSON.stringify({ ...base, impl: 'shardctl', ...moves((k) => ourBefore.locate(k), (k) => ourAfter.locate(k), newId, keys) }));
  console.log(JSON.stringify({ ...base, impl: 'hashring', ...moves((k) => peerBefore.get(k), (k) => peerAfter.get(k), newId, keys) }));
}

if (import.meta.url === `file://${process.argv[1]}`) await benchRing();
