import chalk from 'chalk';
import { formatDuration } from '../../config/duration.js';
import type { ExecResult } from '../../engine/query/exec.js';
import { formatCount, renderTable, statusMark } from './table.js';

export function isExecResult(value: unknown): value is ExecResult {
  return typeof value === 'object' && value !== null && 'results' in value && 'summary' in value && 'statement' in value;
}

/** exec's report: per shard its status, rows, command tag, time and error; then a summary line. */
export function renderExec(r: ExecResult): string {
  const lines: string[] = [];
  if (r.keys.length) lines.push(`keys: ${r.keys.map((k) => `${k.key} → ${k.shard}`).join(', ')} (ring epoch ${r.epoch})`);
  if (r.dryRun) {
    lines.push(`dry run (nothing ran, no lock taken): would run on ${r.results.length} shard(s)${r.transaction ? ', each in a transaction of its own' : ', outside a transaction (--no-transaction)'}${r.params ? `, with ${r.params} bound parameter(s)` : ''}:`);
    lines.push(renderTable(['shard', 'url'], r.shards.map((s) => [s.shard, s.url])));
    lines.push('statement:', ...r.statement.split('\n').map((l) => `  ${l}`));
    return lines.join('\n');
  }
  lines.push(
    renderTable(
      ['shard', 'status', 'rows', 'result', 'time', 'error'],
      r.results.map((s) => [
        s.shard,
        statusMark(s.status),
        formatCount(s.rows),
        s.tags.join('; ') || (s.reason ?? ''),
        s.status === 'skipped' && !s.attempts ? '-' : formatDuration(s.durationMs),
        s.error ? chalk.red(`${s.code ? `${s.code} ` : ''}${s.error}${s.attempts > 1 ? ` (after ${s.attempts} attempts)` : ''}`) + (s.hint ? chalk.yellow(` — ${s.hint}`) : '') : '',
      ]),
    ),
  );
  const s = r.summary;
  const parts = [`${s.ok} ok`, s.failed ? chalk.red(`${s.failed} failed (rolled back there)`) : '0 failed', ...(s.skipped ? [chalk.yellow(`${s.skipped} skipped`)] : [])];
  lines.push(`exec on ${s.shards} shard(s): ${parts.join(', ')}; ${formatCount(s.rows)} row(s) affected; slowest ${formatDuration(s.durationMs)}`);
  return lines.join('\n');
}
