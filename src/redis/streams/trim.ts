import type { RedisClient } from '../connect.js';
import { isCluster, isNodeLevelError, keySlot, nodeError, nodeOfKey } from './nodes.js';
import { SAFE_TRIM_LUA } from './safe-trim-script.js';
import { normalizeStreamId } from '../../core/stream-id.js';

/** What a policy asks for, already turned into server terms (maxAge → minId by the caller's clock). */
export interface TrimCutoff {
  /** Entries with a smaller id may go (from `maxAge`: see minIdForMaxAge). */
  minId?: string;
  /** Keep the newest N entries; with minId too, the stricter of the two applies. */
  maxLen?: number;
  /** `XTRIM … ~`: whole radix-tree nodes only, so up to one node (stream-node-max-entries) more is kept. */
  approximate?: boolean;
}

export interface SafeTrimOptions {
  /** Trim to the policy even where a group still needs the entries. */
  force?: boolean;
  /** Compute cut-off and floor, trim nothing. */
  dryRun?: boolean;
  /**
   * Only counts (lengths, removed) for a stream trimmed plainly to its policy:
   * its ids and floor come back null. Streams a group held back, or that
   * `force` trimmed past what a group needed, still come in full. For a run
   * that lists only those (stream trim): less for Redis to send and node to read.
   */
  countsOnly?: boolean;
  /**
   * Entries one script may remove before it stops at a stream boundary and
   * the rest of its batch is sent again (default 100,000, ~1 ms of the
   * server's time): a batch of long streams is never one long block.
   */
  entriesPerScript?: number;
}

/** See SafeTrimOptions.entriesPerScript. */
const ENTRIES_PER_SCRIPT = 100_000;

/** The entry that holds the floor: a group's oldest pending entry, or the first it has not been delivered. */
export interface TrimFloor {
  id: string;
  group: string;
  reason: 'pending' | 'undelivered';
  /** For `pending`: the consumer that holds it and how long since it was delivered to it. */
  consumer: string | null;
  idleMs: number | null;
}

export type StreamTrimStatus = 'trimmed' | 'unchanged' | 'dry-run' | 'missing' | 'error';

export interface StreamTrimResult {
  key: string;
  /** `host:port` of the master that holds the stream. */
  node: string | null;
  status: StreamTrimStatus;
  lengthBefore: number | null;
  lengthAfter: number | null;
  /**
   * Entries removed; in a dry run the count that would go when it is known
   * without reading the stream (exact mode, cut-off from maxLen), else null.
   */
  removed: number | null;
  /** Id of the first entry the policy keeps; null when the policy removes nothing. */
  cutoffId: string | null;
  floor: TrimFloor | null;
  /** The MINID actually given to XTRIM (the cut-off, or the floor when it held the trim back). */
  trimmedToId: string | null;
  /** The floor is older than the cut-off: the policy is not met because of `floor.group`. */
  heldBack: boolean;
  firstIdAfter: string | null;
  durationMs: number;
  error?: { message: string };
}

type StreamReply =
  | 'missing'
  | ['error', string]
  | [number, number, number] // countsOnly: before, after, dry-run count (-1: unknown)
  | [number, number, string | null, string | null, string | null, string | null, string | null, number | null,
     string | null, number, string | null, number | null];

interface WithSafeTrim {
  /** EVALSHA with the number of keys first: `(keys.length, ...keys, ...argv)`. */
  shardctlSafeTrim(...numKeysKeysArgv: Array<string | number>): Promise<StreamReply[]>;
}

const defined = new WeakSet<object>();

/**
 * ioredis' defineCommand sends EVALSHA and falls back to EVAL on NOSCRIPT (a
 * restarted or failed-over node); on a Cluster it routes by the first key, so
 * each batch's script runs on the master that owns its slot.
 */
function withSafeTrim(client: RedisClient): WithSafeTrim {
  if (!defined.has(client)) {
    client.defineCommand('shardctlSafeTrim', { lua: SAFE_TRIM_LUA });
    defined.add(client);
  }
  return client as unknown as WithSafeTrim;
}

function cutoffArgs(cutoff: TrimCutoff, options: SafeTrimOptions): string[] {
  if (cutoff.minId === undefined && cutoff.maxLen === undefined) {
    throw new RangeError('a trim needs a minId or a maxLen');
  }
  if (cutoff.maxLen !== undefined && !(Number.isSafeInteger(cutoff.maxLen) && cutoff.maxLen >= 0)) {
    throw new RangeError(`maxLen must be a whole number ≥ 0, not ${cutoff.maxLen}`);
  }
  return [
    cutoff.minId === undefined ? '' : normalizeStreamId(cutoff.minId),
    cutoff.maxLen === undefined ? '' : String(cutoff.maxLen),
    cutoff.approximate ? '1' : '0',
    options.force ? '1' : '0',
    options.dryRun ? '1' : '0',
    options.countsOnly ? '1' : '0',
    String(options.entriesPerScript ?? ENTRIES_PER_SCRIPT),
  ];
}

/**
 * Trims one stream to min(policy cut-off, safe floor) in one atomic script
 * (see safe-trim-script.ts). Throws a RedisNodeError naming the node when the
 * server fails or refuses; a missing key is a `missing` result, not an error,
 * and a failure of this stream alone (WRONGTYPE) an `error` result.
 */
export async function safeTrimStream(
  client: RedisClient,
  key: string,
  cutoff: TrimCutoff,
  options: SafeTrimOptions = {},
): Promise<StreamTrimResult> {
  const [result] = await trimBatch(client, withSafeTrim(client), [key], cutoffArgs(cutoff, options), cutoff, options, (k) => nodeOfKey(client, k));
  return result!;
}

/**
 * One script over a batch of streams (one policy; on a Cluster, one slot) and
 * their results, in key order; `args` and `nodeOf` come ready made
 * (trimStreams makes them once per run). `durationMs` is the script's.
 */
async function trimBatch(
  client: RedisClient,
  script: WithSafeTrim,
  keys: string[],
  args: string[],
  cutoff: TrimCutoff,
  options: SafeTrimOptions,
  nodeOf: (key: string) => string | null,
): Promise<StreamTrimResult[]> {
  const results: StreamTrimResult[] = [];
  // A script that reached its budget of removed entries answers for fewer keys: the rest go again.
  while (results.length < keys.length) {
    const rest = results.length === 0 ? keys : keys.slice(results.length);
    const started = performance.now();
    let replies: StreamReply[];
    try {
      replies = await script.shardctlSafeTrim(rest.length, ...rest, ...args);
    } catch (err) {
      throw nodeError(nodeOfKey(client, rest[0]!), err);
    }
    if (replies.length === 0) throw nodeError(nodeOfKey(client, rest[0]!), new Error('the trim script answered for no stream'));
    const durationMs = performance.now() - started;
    for (let i = 0; i < replies.length; i++) results.push(resultOf(rest[i]!, nodeOf(rest[i]!), replies[i]!, cutoff, options, durationMs));
  }
  return results;
}

function resultOf(key: string, node: string | null, reply: StreamReply, cutoff: TrimCutoff, options: SafeTrimOptions, durationMs: number): StreamTrimResult {
  if (reply === 'missing') {
    return {
      key, node, status: 'missing', lengthBefore: null, lengthAfter: null, removed: null, cutoffId: null,
      floor: null, trimmedToId: null, heldBack: false, firstIdAfter: null, durationMs,
    };
  }
  if (reply[0] === 'error') return failedResult(key, node, reply[1], durationMs);
  if (reply.length === 3) {
    const [before, after, dryCount] = reply;
    return {
      key, node, status: statusOf(before, after, options),
      lengthBefore: before, lengthAfter: after,
      removed: options.dryRun ? (cutoff.approximate || dryCount < 0 ? null : dryCount) : before - after,
      cutoffId: null, floor: null, trimmedToId: null, heldBack: false, firstIdAfter: null, durationMs,
    };
  }
  const [before, after, cutoffId, floorId, group, reason, consumer, idle, trimmedToId, heldBack, firstIdAfter, beforeCutoff] = reply;
  const removed = options.dryRun ? (cutoff.approximate ? null : (beforeCutoff ?? (trimmedToId ? null : 0))) : before - after;
  return {
    key,
    node,
    status: statusOf(before, after, options),
    lengthBefore: before,
    lengthAfter: after,
    removed,
    cutoffId,
    floor: floorId
      ? { id: floorId, group: group!, reason: reason as TrimFloor['reason'], consumer, idleMs: idle }
      : null,
    trimmedToId,
    heldBack: heldBack === 1,
    firstIdAfter,
    durationMs,
  };
}

function statusOf(before: number, after: number, options: SafeTrimOptions): StreamTrimStatus {
  return options.dryRun ? 'dry-run' : before === after ? 'unchanged' : 'trimmed';
}

export interface TrimStreamsOptions extends SafeTrimOptions {
  /** Streams in flight at once, across the scripts that carry them. Default 1,000. */
  concurrency?: number;
  /** Streams per script (standalone; on a Cluster a script's streams share a slot). Default 100. */
  batchSize?: number;
}

/**
 * Trims many streams with at most `concurrency` of them in flight, in
 * scripts of up to `batchSize` streams that share a cut-off (and on a
 * Cluster a slot: a script's keys must), yielding each result as its script
 * completes (not in input order), so neither keys nor results pile up: feed
 * it scanStreamKeys() and count as you go. `cutoffFor` gives a key's
 * cut-off, or null to leave it alone (no policy matches). A failure of one
 * stream (WRONGTYPE) is an `error` result for that stream; a failure of the
 * server (down, NOAUTH, CLUSTERDOWN) throws a RedisNodeError once the
 * scripts in flight settle; a script that fails as a whole fails its streams.
 */
export async function* trimStreams(
  client: RedisClient,
  keys: AsyncIterable<string | { key: string }> | Iterable<string | { key: string }>,
  cutoffFor: (key: string) => TrimCutoff | null,
  options: TrimStreamsOptions = {},
): AsyncGenerator<StreamTrimResult> {
  for await (const results of trimStreamBatches(client, oneByOne(keys), cutoffFor, options)) yield* results;
}

async function* oneByOne<T>(items: AsyncIterable<T> | Iterable<T>): AsyncGenerator<T[]> {
  for await (const item of items) yield [item];
}

/**
 * trimStreams for keys that come in batches (a SCAN reply's streams), with
 * each script's results yielded together: per stream, no promise of its own
 * between the scan, the scripts and the caller (10,000 streams: ~50 ms less
 * of node's time, which on 2 cores is time taken from Redis).
 */
export async function* trimStreamBatches(
  client: RedisClient,
  keyBatches: AsyncIterable<Iterable<string | { key: string }>> | Iterable<Iterable<string | { key: string }>>,
  cutoffFor: (key: string) => TrimCutoff | null,
  options: TrimStreamsOptions = {},
): AsyncGenerator<StreamTrimResult[]> {
  const concurrency = Math.max(1, options.concurrency ?? 1_000);
  const batchSize = Math.max(1, Math.min(options.batchSize ?? 100, concurrency));
  // Settled batches queue here; one waiter is woken per settlement (no Promise.race over
  // every script in flight, which would attach a handler per script per result).
  const settled: Array<{ results?: StreamTrimResult[]; fatal?: unknown }> = [];
  let wake: (() => void) | null = null;
  let inFlight = 0; // streams
  let fatal: unknown;

  const corkTick = writeBatcher(client);
  // Per run, not per stream: the script, each cut-off's arguments, and (standalone) the node's name.
  const script = withSafeTrim(client);
  const argsOf = new Map<string, string[]>(); // by value: a caller may make a cut-off per key
  const cluster = isCluster(client);
  const standalone = cluster ? null : nodeOfKey(client, '');
  const nodeOf = standalone === null ? (key: string) => nodeOfKey(client, key) : () => standalone;
  const settle = (size: number, outcome: { results?: StreamTrimResult[]; fatal?: unknown }) => {
    inFlight -= size;
    settled.push(outcome);
    wake?.();
  };
  const argsFor = (cutoff: TrimCutoff) => {
    const id = `${cutoff.minId ?? ''}|${cutoff.maxLen ?? ''}|${cutoff.approximate ? 1 : 0}`;
    let args = argsOf.get(id);
    if (!args) argsOf.set(id, (args = cutoffArgs(cutoff, options)));
    return args;
  };
  const start = (batch: string[], cutoff: TrimCutoff, args: string[] | Error) => {
    inFlight += batch.length;
    corkTick();
    const started = performance.now();
    // A cut-off Redis cannot take is those streams' error, as before.
    const run = args instanceof Error ? Promise.reject(args) : trimBatch(client, script, batch, args, cutoff, options, nodeOf);
    run.then(
      (results) => settle(batch.length, { results }),
      (err: unknown) => {
        const cause = (err as { cause?: unknown }).cause ?? err;
        if (isNodeLevelError(cause)) return settle(batch.length, { fatal: err });
        const ms = performance.now() - started;
        settle(batch.length, { results: batch.map((key) => failedResult(key, nodeOfKey(client, key), (err as Error).message, ms)) });
      },
    );
  };
  const next = async () => {
    while (settled.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    wake = null;
    const outcome = settled.shift()!;
    if (outcome.fatal) fatal ??= outcome.fatal;
    return outcome.results ?? [];
  };

  // The batch being filled: one cut-off (the same arguments), and on a Cluster one slot.
  let batch: string[] = [];
  let batchCutoff: TrimCutoff | null = null;
  let batchArgs: string[] | Error | null = null;
  let batchSlot = -1;
  const flush = () => {
    if (batch.length > 0) start(batch, batchCutoff!, batchArgs!);
    batch = [];
  };
  scan: for await (const items of keyBatches) {
    for (const item of items) {
      const key = typeof item === 'string' ? item : item.key;
      const cutoff = cutoffFor(key);
      if (!cutoff) continue;
      let args: string[] | Error;
      try {
        args = argsFor(cutoff);
      } catch (err) {
        args = err as Error;
      }
      const slot = cluster ? keySlot(key) : 0;
      if (batch.length > 0 && (args !== batchArgs || slot !== batchSlot)) flush();
      batch.push(key);
      batchCutoff = cutoff;
      batchArgs = args;
      batchSlot = slot;
      if (batch.length >= batchSize) flush();
      while (inFlight + batch.length >= concurrency || settled.length > 0) {
        if (inFlight === 0 && settled.length === 0) flush(); // the batch alone fills the window
        const results = await next();
        if (results.length) yield results;
      }
      if (fatal) break scan;
    }
  }
  if (!fatal) flush();
  while (inFlight > 0 || settled.length > 0) {
    const results = await next();
    if (results.length) yield results;
  }
  if (fatal) throw fatal;
}

/**
 * Holds the writes of the scripts started in one tick and sends them as one
 * (socket cork until the next tick): ioredis writes every command to its
 * socket at once, so each script was a write of its own for node and a read
 * of its own for Redis. Replies still come back one by one as they are
 * ready; only the sending waits, never for a reply.
 */
function writeBatcher(client: RedisClient): () => void {
  let corked: Array<{ cork(): void; uncork(): void }> | null = null;
  const uncork = () => {
    for (const socket of corked ?? []) socket.uncork();
    corked = null;
  };
  return () => {
    if (corked) return;
    corked = (isCluster(client) ? client.nodes('master') : [client]).flatMap((node) => (node.stream ? [node.stream] : []));
    for (const socket of corked) socket.cork();
    process.nextTick(uncork);
  };
}

function failedResult(key: string, node: string | null, message: string, durationMs: number): StreamTrimResult {
  return {
    key, node, status: 'error', lengthBefore: null, lengthAfter: null, removed: null,
    cutoffId: null, floor: null, trimmedToId: null, heldBack: false, firstIdAfter: null, durationMs,
    error: { message },
  };
}
