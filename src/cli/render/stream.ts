import chalk from 'chalk';
import type { StreamInfoReport } from '../../engine/streams/info.js';
import type { TrimReport } from '../../engine/streams/trim.js';
import { formatBytes, formatCount, renderTable } from './table.js';

function age(ms: number | null): string {
  if (ms === null) return '-';
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

export function renderStreamInfo(r: StreamInfoReport): string {
  if (!r.streams.length) return `no streams match ${r.pattern}`;
  const rows: Array<Array<string | number>> = [];
  for (const s of r.streams) {
    rows.push([s.key, formatCount(s.length), s.firstId ?? '-', age(s.firstAgeMs), s.lastId ?? '-', age(s.lastAgeMs), formatBytes(s.memoryBytes), s.policy ?? chalk.dim('none'), '', '', '', '']);
    for (const g of s.groups) {
      const oldest = g.oldestPending ? `${g.oldestPending.id} idle ${age(g.oldestPending.idleMs)} (${g.oldestPending.consumer})` : '-';
      rows.push([`  group ${g.name}`, '', '', '', '', '', '', '', g.consumers, formatCount(g.pending), g.lag === null ? '?' : formatCount(g.lag), `${g.lastDeliveredId}; oldest pending ${oldest}`]);
    }
  }
  const t = r.totals;
  return [
    renderTable(['stream', 'length', 'first id', 'age', 'last id', 'age', 'memory', 'policy', 'consumers', 'pending', 'lag', 'last delivered; oldest pending'], rows),
    `${t.streams} stream(s), ${formatCount(t.entries)} entries, ${formatBytes(t.memoryBytes)}, ${formatCount(t.pending)} pending${t.maxLag !== null ? `, max lag ${formatCount(t.maxLag)}` : ''}`,
  ].join('\n');
}

/** Rows of the text report; --json has them all. */
const TABLE_ROWS = 20;

export function isTrimReport(value: unknown): value is TrimReport {
  return typeof value === 'object' && value !== null && 'totals' in value && 'warnings' in value && 'force' in value;
}

export function renderTrim(r: TrimReport): string {
  const lines: string[] = [];
  if (r.streams.length) {
    lines.push(
      renderTable(
        ['stream', 'before', 'after', 'removed', 'cut-off', 'floor', 'held by', 'status'],
        r.streams.slice(0, TABLE_ROWS).map((s) => [
          s.key,
          formatCount(s.lengthBefore),
          r.dryRun ? '-' : formatCount(s.lengthAfter),
          s.removed === null ? '?' : formatCount(s.removed),
          s.cutoffId ?? '-',
          s.floor?.id ?? '-',
          s.floor ? `${s.floor.group} (${s.floor.reason}${s.floor.consumer ? `, ${s.floor.consumer}` : ''}${s.floor.idleMs !== null ? `, idle ${age(s.floor.idleMs)}` : ''})` : '-',
          s.status === 'error' ? chalk.red(s.error?.message ?? 'error') : s.heldBack ? chalk.yellow(`${s.status}, held back`) : s.status,
        ]),
      ),
    );
  }
  if (r.streams.length > TABLE_ROWS) lines.push(chalk.dim(`… and ${r.streams.length - TABLE_ROWS} more stream(s) (--json lists every one)`));
  for (const w of r.warnings.slice(0, TABLE_ROWS)) lines.push(chalk.yellow(`warning: ${w}`));
  if (r.warnings.length > TABLE_ROWS) lines.push(chalk.yellow(`warning: … and ${r.warnings.length - TABLE_ROWS} more stream(s) held back by a group`));
  const t = r.totals;
  lines.push(
    `${r.dryRun ? 'dry run (nothing trimmed): ' : ''}${t.streams} stream(s): ${t.trimmed} ${r.dryRun ? 'to trim' : 'trimmed'}, ${t.unchanged} within policy, ${t.heldBack} held back by a group, ${t.errors} failed; ${formatCount(t.removed)} entries ${r.dryRun ? 'to remove' : 'removed'}${r.force ? chalk.red(' (--force: consumer groups ignored)') : ''}`,
  );
  return lines.join('\n');
}
