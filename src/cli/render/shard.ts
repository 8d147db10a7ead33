import chalk from 'chalk';
import type { LocateResult, ShardListResult, SimulateResult } from '../../engine/shards/info.js';
import { formatBytes, formatCount, formatPercent, renderTable, statusMark } from './table.js';

export function renderShardList(result: ShardListResult): string {
  const withStats = result.shards.some((s) => s.stats);
  const lines = [chalk.dim(`ring epoch ${result.epoch}, ${result.vnodes} points per unit of weight`)];
  lines.push(
    renderTable(
      ['shard', 'state', 'weight', 'points', 'owns', 'url'],
      result.shards.map((s) => [s.id, statusMark(s.state), s.weight, s.points, formatPercent(s.ownership), s.url]),
    ),
  );
  if (withStats) {
    const rows: Array<Array<string | number>> = [];
    for (const s of result.shards) {
      // The error itself goes to stderr with the exit status; the table only marks the shard.
      if (s.stats?.status === 'error') rows.push([s.id, chalk.red('✗ not read (see the error below)'), '-', '-']);
      for (const t of s.stats?.tables ?? []) {
        rows.push([s.id, t.table, t.exists ? formatCount(t.rows) : chalk.yellow('missing'), formatBytes(t.bytes)]);
      }
    }
    lines.push('', renderTable(['shard', 'table', 'rows', 'bytes'], rows));
  }
  return lines.join('\n');
}

export function renderLocate(result: LocateResult): string {
  return renderTable(
    ['key', 'hash', 'shard'],
    result.keys.map((k) => [k.key, k.hash, k.shard]),
  );
}

export function renderSimulation(sim: SimulateResult): string {
  const lines = [
    `${formatCount(sim.keys)} sample keys, ring ${sim.source === 'metadata' ? `epoch ${sim.epoch}` : 'from the config'}, ${sim.after.vnodes} points per unit of weight`,
    `moved: ${formatCount(sim.movedKeys)} keys = ${formatPercent(sim.movedFraction, 2)} (ideal ${formatPercent(sim.idealMovedFraction, 2)})`,
    `balance after: max/mean ${sim.maxOverMean.toFixed(3)}, coefficient of variation ${sim.coefficientOfVariation.toFixed(3)}`,
    '',
    renderTable(
      ['shard', 'keys before', 'keys after', 'share', 'ideal'],
      sim.perShard.map((s) => [s.id, formatCount(s.before), formatCount(s.after), formatPercent(s.share, 2), formatPercent(s.idealShare, 2)]),
    ),
  ];
  return lines.join('\n');
}

export function isShardListResult(value: unknown): value is ShardListResult {
  return typeof value === 'object' && value !== null && 'shards' in value && 'vnodes' in value && 'epoch' in value;
}
