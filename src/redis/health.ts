import { isIP } from 'node:net';
import type { Redis, RedisOptions } from 'ioredis';
import { redactText } from '../config/redact.js';
import { describeRedisError } from './streams/nodes.js';

/**
 * Redis access for `health`: one connection per node (never the Cluster
 * client, whose slot refresh waits on every node, so one hanging master
 * would hold every result back), bounded by the run's deadline, and the few
 * commands the checks read: PING, INFO memory, CLUSTER NODES / INFO, and the
 * stream state of a batch of keys in one pipelined round trip.
 */

/** How to reach one node: host, port and the credentials and TLS of the config's URL. */
export interface RedisEndpoint {
  /** `host:port`, the `node` label and what messages name. */
  name: string;
  options: RedisOptions;
}

/** A config URL (`redis://user:pass@host:port/db`, `rediss://` for TLS) as ioredis options; the password stays in the options only. */
export function endpointOfUrl(url: string): RedisEndpoint {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
  const port = Number(u.port || 6379);
  const db = Number(u.pathname.replace(/^\//, '') || 0);
  const options: RedisOptions = {
    host,
    port,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(Number.isInteger(db) && db > 0 ? { db } : {}),
    ...(u.protocol === 'rediss:' ? { tls: tlsFor(host) } : {}),
  };
  return { name: `${host}:${port}`, options };
}

/** Another node of the same Cluster (found in CLUSTER NODES): the seed's user, password and TLS, its own address. */
export function endpointLike(seed: RedisEndpoint, host: string, port: number): RedisEndpoint {
  const { db: _db, tls, ...rest } = seed.options;
  return { name: `${host}:${port}`, options: { ...rest, host, port, ...(tls ? { tls: tlsFor(host) } : {}) } };
}

/** SNI names a host, never an IP address (Node refuses those). */
function tlsFor(host: string): { servername?: string } {
  return isIP(host) ? {} : { servername: host };
}

/** The deadline passed before the node answered. */
export class NoAnswerError extends Error {
  constructor(readonly waitedMs: number) {
    super(`no answer within ${(waitedMs / 1000).toFixed(1)}s (hanging, or packets dropped?)`);
  }
}

/**
 * An open connection to one node, every command of it bounded by the
 * deadline: `connectTimeout` and `commandTimeout` are the time left, no
 * retries, no offline queue (a command on a lost connection fails at once
 * instead of waiting for a reconnect that never comes), and `close()` always
 * disconnects.
 */
export class HealthConnection {
  readonly #redis: Redis;
  readonly #deadline: number;
  readonly #started = Date.now();
  #lastError: Error | undefined;
  /** XINFO STREAM … FULL works here: unknown until the first batch, false before Redis 6. */
  #full: boolean | undefined;

  private constructor(
    readonly endpoint: RedisEndpoint,
    redis: Redis,
    deadline: number,
  ) {
    this.#redis = redis;
    this.#deadline = deadline;
    redis.on('error', (err: Error) => (this.#lastError = err));
  }

  static async open(endpoint: RedisEndpoint, deadline: number, signal: AbortSignal): Promise<HealthConnection> {
    const { Redis } = await import('ioredis');
    const left = Math.max(1, deadline - Date.now());
    const redis = new Redis({
      ...endpoint.options,
      lazyConnect: true,
      connectTimeout: left,
      commandTimeout: left,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
      reconnectOnError: () => false,
      connectionName: 'shardctl-health',
    });
    const conn = new HealthConnection(endpoint, redis, deadline);
    if (signal.aborted) {
      redis.disconnect();
      throw new NoAnswerError(Date.now() - conn.#started);
    }
    signal.addEventListener('abort', () => redis.disconnect(), { once: true });
    try {
      await conn.bounded(redis.connect());
    } catch (err) {
      redis.disconnect();
      throw conn.explain(err);
    }
    return conn;
  }

  /** The standalone client of this node, for the streams adapter's SCAN. */
  get redis(): Redis {
    return this.#redis;
  }

  close(): void {
    this.#redis.disconnect();
  }

  /** `promise`, or a NoAnswerError once the deadline passes (ioredis's own timers are a backstop). */
  bounded<T>(promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new NoAnswerError(Date.now() - this.#started)), Math.max(0, this.#deadline - Date.now()));
    });
    return Promise.race([promise, late]).finally(() => clearTimeout(timer));
  }

  /**
   * One line naming why the node failed, password-free. ioredis reports a
   * refused AUTH as an 'error' event and then only "Connection is closed.",
   * and a command timeout as "Command timed out": say what they mean.
   */
  explain(err: unknown): Error {
    if (err instanceof NoAnswerError) return err;
    const message = (err as Error)?.message ?? String(err);
    if (/Command timed out|connect ETIMEDOUT/i.test(message)) return new NoAnswerError(Date.now() - this.#started);
    const event = this.#lastError && this.#lastError.message !== message ? `${this.#lastError.message} (${message})` : message;
    return new Error(redactText(describeRedisError(new Error(event))));
  }

  async ping(): Promise<number> {
    const start = process.hrtime.bigint();
    await this.bounded(this.#redis.ping());
    return Number(process.hrtime.bigint() - start) / 1e9;
  }

  /** INFO memory: used_memory, maxmemory (0: none) and the eviction policy. */
  async memory(): Promise<{ used: number; max: number; policy: string }> {
    const info = infoFields(await this.bounded(this.#redis.info('memory')));
    return { used: Number(info.used_memory ?? 0), max: Number(info.maxmemory ?? 0), policy: info.maxmemory_policy ?? 'unknown' };
  }

  /** CLUSTER NODES and CLUSTER INFO in one round trip. */
  async cluster(): Promise<{ nodes: ClusterNodeLine[]; state: string; slotsOk: number; slotsAssigned: number }> {
    const replies = await this.bounded(this.#redis.pipeline().call('CLUSTER', 'NODES').call('CLUSTER', 'INFO').exec());
    const [nodesReply, infoReply] = replies ?? [];
    const failed = nodesReply?.[0] ?? infoReply?.[0];
    if (!nodesReply || !infoReply || failed) throw failed ?? new Error('CLUSTER NODES returned nothing');
    const info = infoFields(String(infoReply[1]));
    return {
      nodes: parseClusterNodes(String(nodesReply[1])),
      state: info.cluster_state ?? 'unknown',
      slotsOk: Number(info.cluster_slots_ok ?? 0),
      slotsAssigned: Number(info.cluster_slots_assigned ?? 0),
    };
  }

  /**
   * The health of a batch of streams in one round trip however many keys:
   * `XINFO STREAM key FULL COUNT 1` of every key (length, the first entry,
   * and per group its lag, pending count, consumers and oldest pending entry
   * with its delivery time) and the server's TIME, in one pipeline: one
   * command per stream. The oldest pending entry's idle time is the server's
   * TIME minus its delivery time, as XPENDING computes it. A server without
   * XINFO … FULL (before Redis 6) is read the older way (streamsByParts).
   * A key deleted since the SCAN is left out; any other per-key failure is
   * returned for that key. A failure of the node itself throws.
   */
  async streams(keys: readonly string[]): Promise<Array<StreamHealth | StreamHealthError>> {
    if (this.#full === false) return this.streamsByParts(keys);
    const pipeline = this.#redis.pipeline();
    pipeline.time();
    for (const key of keys) pipeline.xinfo('STREAM', key, 'FULL', 'COUNT', 1);
    const replies = await this.#exec(pipeline, keys.length + 1);
    if (this.#full === undefined) {
      const refused = replies.slice(1).find(([err]) => err && !/no such key/i.test(err.message))?.[0];
      if (refused && /syntax error|unknown subcommand|wrong number of arguments/i.test(refused.message)) {
        this.#full = false;
        return this.streamsByParts(keys);
      }
      this.#full = true;
    }
    const [timeErr, time] = replies[0]!;
    if (timeErr) throw timeErr;
    const [seconds, micros] = time as [string, string];
    const nowMs = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    const out: Array<StreamHealth | StreamHealthError> = [];
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const [err, reply] = replies[i + 1]!;
      if (err) {
        if (!/no such key/i.test(err.message)) out.push({ key, error: redactText(err.message) });
        continue; // deleted since the scan
      }
      const info = fieldsOf(reply);
      const entries = info.entries as Array<[string, unknown]> | null | undefined;
      out.push({
        key,
        length: Number(info.length),
        firstId: entries?.length ? String(entries[0]![0]) : null,
        groups: ((info.groups as unknown[] | null) ?? []).map((raw) => {
          const g = fieldsOf(raw);
          const oldest = (g.pending as Array<[string, string, number, number]> | null)?.[0];
          return {
            name: String(g.name),
            consumers: ((g.consumers as unknown[] | null) ?? []).length,
            pending: Number(g['pel-count']),
            lastDeliveredId: String(g['last-delivered-id']),
            lagReported: 'lag' in g,
            lag: g.lag === null || g.lag === undefined ? null : Number(g.lag),
            oldestPending: oldest ? { id: String(oldest[0]), consumer: String(oldest[1]), idleMs: Math.max(0, nowMs - Number(oldest[2])) } : null,
          };
        }),
      });
    }
    return out;
  }

  /**
   * streams() in two round trips, for a server without XINFO STREAM … FULL:
   * XINFO STREAM and XINFO GROUPS of every key in one pipeline, then
   * `XPENDING key group - + 1` (the oldest pending entry, its consumer and
   * idle time) for every group with something pending in a second.
   */
  async streamsByParts(keys: readonly string[]): Promise<Array<StreamHealth | StreamHealthError>> {
    const first = this.#redis.pipeline();
    for (const key of keys) first.xinfo('STREAM', key).xinfo('GROUPS', key);
    const replies = await this.#exec(first, keys.length * 2);
    const out: Array<StreamHealth | StreamHealthError> = [];
    const wantPending: Array<{ stream: StreamHealth; group: StreamGroupHealth }> = [];
    keys.forEach((key, i) => {
      const [streamErr, streamReply] = replies[2 * i]!;
      const [groupsErr, groupsReply] = replies[2 * i + 1]!;
      const err = streamErr ?? groupsErr;
      if (err) {
        if (/no such key/i.test(err.message)) return; // deleted since the scan
        out.push({ key, error: redactText(err.message) });
        return;
      }
      const info = fieldsOf(streamReply);
      const firstEntry = info['first-entry'] as [string, unknown] | null | undefined;
      const stream: StreamHealth = {
        key,
        length: Number(info.length),
        firstId: firstEntry ? String(firstEntry[0]) : null,
        groups: (groupsReply as unknown[]).map((raw) => {
          const g = fieldsOf(raw);
          return {
            name: String(g.name),
            consumers: Number(g.consumers),
            pending: Number(g.pending),
            lastDeliveredId: String(g['last-delivered-id']),
            lagReported: 'lag' in g,
            lag: g.lag === null || g.lag === undefined ? null : Number(g.lag),
            oldestPending: null,
          };
        }),
      };
      for (const group of stream.groups) if (group.pending > 0) wantPending.push({ stream, group });
      out.push(stream);
    });
    if (wantPending.length === 0) return out;
    const second = this.#redis.pipeline();
    for (const { stream, group } of wantPending) second.xpending(stream.key, group.name, '-', '+', 1);
    const pendings = await this.#exec(second, wantPending.length);
    wantPending.forEach(({ group }, i) => {
      const [err, reply] = pendings[i]!;
      if (err) {
        group.pendingError = redactText(err.message);
        return;
      }
      const oldest = (reply as Array<[string, string, number, number]>)[0];
      if (oldest) group.oldestPending = { id: String(oldest[0]), consumer: String(oldest[1]), idleMs: Number(oldest[2]) };
    });
    return out;
  }

  async #exec(pipeline: ReturnType<Redis['pipeline']>, expected: number): Promise<Array<[Error | null, unknown]>> {
    const replies = (await this.bounded(pipeline.exec())) as Array<[Error | null, unknown]> | null;
    if (!replies || replies.length !== expected) throw new Error('the pipeline returned no replies (connection lost)');
    // A lost connection fails every command of the pipeline with the same error: that is the node's failure.
    const nodeLevel = replies.find(([err]) => err && /Connection is closed|Command timed out|NOAUTH|WRONGPASS|LOADING|CLUSTERDOWN/i.test(err.message));
    if (nodeLevel) throw nodeLevel[0];
    return replies;
  }
}

export interface StreamGroupHealth {
  name: string;
  consumers: number;
  pending: number;
  lastDeliveredId: string;
  /** XINFO GROUPS has a lag field (Redis 7 and later). */
  lagReported: boolean;
  /** Entries not yet delivered; null when Redis cannot tell (entries deleted past the group, or its position set by id). */
  lag: number | null;
  oldestPending: { id: string; consumer: string; idleMs: number } | null;
  /** XPENDING failed for this group alone (the entry was acknowledged and the group destroyed in between, a NOPERM). */
  pendingError?: string;
}

export interface StreamHealth {
  key: string;
  length: number;
  firstId: string | null;
  groups: StreamGroupHealth[];
}

export interface StreamHealthError {
  key: string;
  error: string;
}

export interface ClusterNodeLine {
  host: string;
  port: number;
  role: 'master' | 'replica';
  /** The flags as CLUSTER NODES prints them (`master,fail?`). */
  flags: string;
}

/**
 * CLUSTER NODES lines: `<id> <ip:port@cport[,hostname]> <flags> <master> …`.
 * Nodes without an address (`noaddr`, a handshake in progress) are left out:
 * there is nothing to connect to.
 */
export function parseClusterNodes(text: string): ClusterNodeLine[] {
  const out: ClusterNodeLine[] = [];
  for (const line of text.split('\n')) {
    const [, address = '', flags = ''] = line.trim().split(' ');
    if (!address || /noaddr|handshake/.test(flags)) continue;
    const hostPort = address.split('@')[0]!;
    const colon = hostPort.lastIndexOf(':');
    const host = hostPort.slice(0, colon);
    const port = Number(hostPort.slice(colon + 1));
    if (!host || !port) continue;
    out.push({ host, port, role: /\bmaster\b/.test(flags) ? 'master' : 'replica', flags });
  }
  return out;
}

function infoFields(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) out[line.slice(0, colon)] = line.slice(colon + 1).trim();
  }
  return out;
}

function fieldsOf(flat: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const list = flat as unknown[];
  for (let i = 0; i + 1 < list.length; i += 2) out[String(list[i])] = list[i + 1];
  return out;
}
