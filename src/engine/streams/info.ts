import type { ShardctlConfig } from '../../config/schema.js';
import { scanStreams, streamInfo, type StreamInfo } from '../../redis/streams.js';
import { mapWithConcurrency } from '../concurrency.js';
import { policyOf, redisOf } from './policies.js';

export interface StreamInfoReport {
  pattern: string;
  now: string;
  streams: Array<StreamInfo & { policy: string | null }>;
  totals: { streams: number; entries: number; memoryBytes: number; pending: number; maxLag: number | null };
}

/**
 * `stream info [PATTERN]`: per stream, length, first and last ids and their
 * age, memory, and per group consumers, pending, lag, last-delivered id and
 * the oldest pending entry's idle time and consumer. Read-only.
 */
export async function streamInfoReport(config: ShardctlConfig, options: { pattern?: string; nowMs?: number; concurrency?: number } = {}): Promise<StreamInfoReport> {
  const pattern = options.pattern ?? '*';
  const nowMs = options.nowMs ?? Date.now();
  const client = await redisOf(config);
  try {
    const streams: StreamInfoReport['streams'] = [];
    for await (const batch of scanStreams(client, pattern)) {
      const infos = await mapWithConcurrency(batch.keys, options.concurrency ?? 32, (key) => streamInfo(client, key, nowMs));
      for (const info of infos) if (info) streams.push({ ...info, policy: policyOf(config, info.key)?.match ?? null });
    }
    streams.sort((a, b) => a.key.localeCompare(b.key));
    const lags = streams.flatMap((s) => s.groups.map((g) => g.lag).filter((l): l is number => l !== null));
    return {
      pattern,
      now: new Date(nowMs).toISOString(),
      streams,
      totals: {
        streams: streams.length,
        entries: streams.reduce((n, s) => n + s.length, 0),
        memoryBytes: streams.reduce((n, s) => n + (s.memoryBytes ?? 0), 0),
        pending: streams.reduce((n, s) => n + s.groups.reduce((m, g) => m + g.pending, 0), 0),
        maxLag: lags.length ? Math.max(...lags) : null,
      },
    };
  } finally {
    client.disconnect();
  }
}
