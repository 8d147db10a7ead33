import type { Cluster, Redis } from 'ioredis';
import { OperationError } from '../../errors.js';
import type { RedisClient } from '../connect.js';

/** A Redis server that failed, by its `host:port`: what the DBA needs to go and look at. */
export class RedisNodeError extends OperationError {
  constructor(
    readonly node: string,
    why: string,
    options?: { cause?: unknown; details?: string[] },
  ) {
    super(`Redis at ${node}: ${why}`, options);
  }
}

export function isCluster(client: RedisClient): client is Cluster {
  return (client as Cluster).isCluster === true;
}

export function nodeName(node: Redis): string {
  return `${node.options.host ?? '127.0.0.1'}:${node.options.port ?? 6379}`;
}

/**
 * The master serving `key`: the standalone server, or the node the client's
 * slot table points to (null before the table is loaded).
 */
export function nodeOfKey(client: RedisClient, key: string): string | null {
  if (!isCluster(client)) return nodeName(client);
  return client.slots[keySlot(key)]?.[0] ?? null;
}

/**
 * Errors that say the server (not this one stream) cannot be used: the run
 * stops on them instead of reporting the same failure for every stream.
 */
export function isNodeLevelError(err: unknown): boolean {
  const e = err as { code?: string; message?: string; name?: string };
  const text = `${e?.code ?? ''} ${e?.message ?? ''} ${e?.name ?? ''}`;
  return /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|NOAUTH|WRONGPASS|NOPERM|CLUSTERDOWN|Connection is closed|MaxRetriesPerRequest|ClusterAllFailedError|Failed to refresh slots|LOADING|MASTERDOWN|READONLY|unauthenticated (multi)?bulk length/i.test(
    text,
  );
}

/** A sentence for the usual ways a server refuses, with the server's own words after it. */
export function describeRedisError(err: unknown): string {
  const message = (err as Error)?.message ?? String(err);
  // Redis 7 answers a command of more than 10 arguments from an unauthenticated client with
  // 'Protocol error: unauthenticated multibulk length' instead of NOAUTH.
  if (/NOAUTH|unauthenticated (multi)?bulk length/.test(message)) return `it requires a password (NOAUTH); give one in the redis URL: ${message}`;
  if (/WRONGPASS/.test(message)) return `it refused the user or password (WRONGPASS): ${message}`;
  if (/NOPERM/.test(message)) return `the user lacks a permission this needs (NOPERM): ${message}`;
  if (/CLUSTERDOWN/.test(message)) return `the cluster is down: a slot range has no reachable master (${message})`;
  if (/ECONNREFUSED|Connection is closed|MaxRetriesPerRequest/.test(message)) {
    return `cannot reach it (is it running?): ${message}`;
  }
  return message;
}

export function nodeError(node: string | null, err: unknown): RedisNodeError {
  if (err instanceof RedisNodeError) return err;
  return new RedisNodeError(node ?? 'unknown node', describeRedisError(err), { cause: err });
}

/**
 * Refuses a Cluster whose slots are not all served (`cluster_state:fail`):
 * names every master flagged failed and every slot range without a master,
 * so a partial scan is never mistaken for the whole keyspace.
 */
export async function assertClusterServesAllSlots(cluster: Cluster): Promise<void> {
  const masters = cluster.nodes('master');
  if (masters.length === 0) throw new RedisNodeError('cluster', 'the client knows no master (slots not loaded)');
  let lastError: unknown;
  for (const master of masters) {
    let info: string;
    let nodesText: string;
    try {
      info = String(await master.call('CLUSTER', 'INFO'));
      if (/cluster_state:ok/.test(info)) return;
      nodesText = String(await master.call('CLUSTER', 'NODES'));
    } catch (err) {
      lastError = nodeError(nodeName(master), err);
      continue; // ask the next master: this one may be the failed one
    }
    const failed: string[] = [];
    const covered = new Uint8Array(16_384);
    for (const line of nodesText.split('\n').filter(Boolean)) {
      const [, address = '', flags = '', , , , , , ...slots] = line.split(' ');
      if (!flags.includes('master')) continue;
      const hostPort = address.split('@')[0]!;
      const ranges = slots.filter((s) => !s.startsWith('['));
      if (/\bfail\??\b/.test(flags)) {
        failed.push(`${hostPort} (${flags}; slots ${ranges.join(' ') || 'none'})`);
        continue;
      }
      for (const range of ranges) {
        const [from, to] = range.split('-');
        covered.fill(1, Number(from), Number(to ?? from) + 1);
      }
    }
    const uncovered = uncoveredRanges(covered);
    const details = [
      ...failed.map((f) => `failed master: ${f}`),
      ...(uncovered.length ? [`slots without a working master: ${uncovered.join(', ')}`] : []),
    ];
    throw new RedisNodeError(failed.length ? failed.map((f) => f.split(' ')[0]).join(', ') : nodeName(master),
      'the cluster does not serve every slot (cluster_state:fail)', { details });
  }
  throw lastError;
}

function uncoveredRanges(covered: Uint8Array): string[] {
  const out: string[] = [];
  for (let i = 0; i < covered.length; i++) {
    if (covered[i]) continue;
    let j = i;
    while (j + 1 < covered.length && !covered[j + 1]) j++;
    out.push(i === j ? String(i) : `${i}-${j}`);
    i = j;
  }
  return out;
}

/** Redis Cluster's slot of a key: CRC16 (XMODEM) of the key, or of its `{hash tag}`, mod 16384. */
export function keySlot(key: string): number {
  let bytes = Buffer.from(key);
  const open = bytes.indexOf(0x7b);
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16_384;
}
