import type { ShardctlConfig } from '../../config/schema.js';
import { OperationError, UsageError } from '../../errors.js';
import { runMutation } from '../../metadata/mutation.js';
import type { RunInfo } from '../../metadata/run-info.js';
import { compareStreamIds, scanStreams, trimStreamBatches, type StreamKeyBatch, type StreamTrimResult, type TrimCutoff } from '../../redis/streams.js';
import { withMetadata } from '../metadata-session.js';
import { cutoffOf, policyOf, redisOf, type StreamPolicyConfig } from './policies.js';

export interface TrimOptions {
  dryRun?: boolean;
  /** Trim to the policy even where a consumer group still needs the entries (SPEC invariant 6 waived). */
  force?: boolean;
  /** Only streams matching this pattern (and a policy). */
  match?: string;
  /** The clock of maxAge (tests and rehearsal). */
  nowMs?: number;
  /** Streams in flight at once (in scripts of up to 100). */
  concurrency?: number;
}

export interface TrimReport {
  dryRun: boolean;
  force: boolean;
  now: string;
  /**
   * The streams worth a look, each with its full result: those that failed,
   * those whose policy a group held back (the floor was older than the
   * cut-off), and with --force those trimmed past what a group still needed.
   * Streams trimmed (or, in a dry run, to be trimmed) plainly to their policy,
   * and those already within it, are only counted in `totals`: the report
   * grows with the streams that need a look, not with every stream trimmed.
   */
  streams: StreamTrimResult[];
  totals: { streams: number; trimmed: number; unchanged: number; heldBack: number; errors: number; removed: number; lengthBefore: number; lengthAfter: number };
  /** One line per stream whose policy could not be met because of a group: the stuck consumer to look at. */
  warnings: string[];
}

/** How often (in streams) the run confirms its lease: a run that lost its lock stops within this many. */
const LEASE_CHECK_EVERY = 500;

/**
 * `stream trim`: every stream a policy matches (first match wins), on every
 * master of a Cluster, trimmed to min(policy cut-off, safe floor) by one
 * atomic script per stream (src/redis/streams), so no entry pending or
 * undelivered for any group is removed unless `force`. Streams are scanned,
 * not collected: memory holds only the streams in flight and the ones worth
 * reporting. Mutating: the metadata lock and an audit row; --dry-run reads only.
 */
export async function streamTrim(config: ShardctlConfig, run: RunInfo, options: TrimOptions = {}): Promise<TrimReport> {
  if (!config.streams.length) throw new UsageError('no `streams` policies in the config: add one (match, maxLen and/or maxAge)');
  const nowMs = options.nowMs ?? Date.now();
  // Redis is connected while the metadata lock is taken (loading ioredis is CPU, the lock
  // round trips to PostgreSQL are waiting): nothing is sent to it before the lock is held.
  const connecting = redisOf(config);
  connecting.catch(() => {}); // awaited in the body; a run refused the lock drops it below
  const body = async (active: RunInfo): Promise<TrimReport> => {
    const client = await connecting;
    try {
      const report: TrimReport = {
        dryRun: !!options.dryRun,
        force: !!options.force,
        now: new Date(nowMs).toISOString(),
        streams: [],
        totals: { streams: 0, trimmed: 0, unchanged: 0, heldBack: 0, errors: 0, removed: 0, lengthBefore: 0, lengthAfter: 0 },
        warnings: [],
      };
      const patterns = options.match ? [options.match] : [...new Set(config.streams.map((p) => p.match))];
      // One cut-off per policy for the whole run (one clock), and each key's policy looked up once.
      const cutoffs = new Map(config.streams.map((policy) => [policy, cutoffOf(policy, nowMs)]));
      const due = new Map<string, TrimCutoff>();
      for (const pattern of patterns) {
        const keys = keysOf(scanStreams(client, pattern), pattern, config, options.match !== undefined, (key, policy) => due.set(key, cutoffs.get(policy)!));
        const batches = trimStreamBatches(client, keys, (key) => {
          const cutoff = due.get(key) ?? null;
          due.delete(key);
          return cutoff;
        }, {
          countsOnly: true, // the report lists only the streams worth a look, and those come in full
          ...(options.force ? { force: true } : {}),
          ...(options.dryRun ? { dryRun: true } : {}),
          ...(options.concurrency ? { concurrency: options.concurrency } : {}),
        });
        for await (const results of batches) {
          for (const r of results) {
            account(report, r);
            if (report.totals.streams % LEASE_CHECK_EVERY === 0) await active.lease?.check();
          }
          if (active.signal?.aborted) break;
        }
      }
      if (report.totals.errors) {
        throw new OperationError(`stream trim failed on ${report.totals.errors} stream(s); nothing of theirs is reported as done`, {
          details: report.streams.filter((s) => s.status === 'error').slice(0, 20).map((s) => `${s.key}: ${s.error?.message}`),
          data: report,
        });
      }
      return report;
    } finally {
      client.disconnect();
    }
  };
  if (options.dryRun) return body(run);
  try {
    return await withMetadata(config, (store) => runMutation({ store, run, command: 'stream trim', summarize: (r: TrimReport) => r.totals }, body));
  } finally {
    // The body disconnects the client it used; one it never reached (the lock refused) goes here.
    connecting.then((client) => client.disconnect(), () => {});
  }
}

/**
 * The keys of one pattern's scan that it owns, a SCAN reply at a time: a key
 * matched by an earlier policy's pattern belongs to that policy and is
 * trimmed under it (once).
 */
async function* keysOf(
  scan: AsyncIterable<StreamKeyBatch>,
  pattern: string,
  config: ShardctlConfig,
  explicit: boolean,
  onKey: (key: string, policy: StreamPolicyConfig) => void,
): AsyncGenerator<string[]> {
  for await (const { keys } of scan) {
    const owned: string[] = [];
    for (const key of keys) {
      const policy = policyOf(config, key);
      if (!policy) continue;
      if (!explicit && policy.match !== pattern) continue;
      onKey(key, policy);
      owned.push(key);
    }
    if (owned.length) yield owned;
  }
}

function account(report: TrimReport, r: StreamTrimResult): void {
  const t = report.totals;
  t.streams++;
  if (r.status === 'error') t.errors++;
  else if (r.status === 'trimmed' || (r.status === 'dry-run' && (r.removed ?? 0) > 0)) t.trimmed++;
  else t.unchanged++;
  if (r.heldBack) {
    t.heldBack++;
    const f = r.floor;
    if (f) report.warnings.push(`${r.key}: policy not met because of group ${f.group} (${f.reason === 'pending' ? `oldest pending ${f.id}${f.consumer ? ` held by ${f.consumer}` : ''}${f.idleMs !== null ? `, idle ${Math.round(f.idleMs / 1000)}s` : ''}` : `not yet delivered from ${f.id}`})`);
  }
  t.removed += r.removed ?? 0;
  t.lengthBefore += r.lengthBefore ?? 0;
  t.lengthAfter += r.lengthAfter ?? 0;
  if (r.status === 'error' || r.heldBack || (report.force && forcedPastFloor(r))) report.streams.push(r);
}

/** With --force: the trim went past the oldest entry a group still needed. */
function forcedPastFloor(r: StreamTrimResult): boolean {
  return r.floor !== null && r.trimmedToId !== null && compareStreamIds(r.floor.id, r.trimmedToId) < 0;
}
