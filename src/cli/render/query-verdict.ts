import type { QuerySummary, ShardOutcome } from '../../engine/query/types.js';

/**
 * Whether a query's result is whole: every shard answered. A shard cancelled
 * because `--limit` was reached, or because the reader closed the output
 * (`| head`: it has what it wanted), did its part; one cancelled otherwise
 * (the run was interrupted), failed or timed out did not, and the command
 * exits 1.
 */
export function failedShards(summary: QuerySummary): ShardOutcome[] {
  const stoppedForGood = summary.limited || summary.outputClosed === true;
  return summary.shards.filter((s) => !(s.status === 'ok' || (s.status === 'cancelled' && stoppedForGood)));
}

/** The slowest shard, for the summary line and the JSON summary; null with no shard. */
export function slowestShard(summary: QuerySummary): ShardOutcome | null {
  let slowest: ShardOutcome | null = null;
  for (const s of summary.shards) if (!slowest || s.durationMs > slowest.durationMs) slowest = s;
  return slowest;
}

/** "s3: timeout: no answer within 5s", one line per failed shard. */
export function failureLines(failed: readonly ShardOutcome[]): string[] {
  return failed.map((s) => `${s.shard}: ${s.status}${s.error ? `: ${s.error}` : ''}${s.code ? ` (${s.code})` : ''}`);
}
