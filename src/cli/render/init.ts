import chalk from 'chalk';
import type { InitResult } from '../../engine/init.js';
import { renderTable, statusMark } from './table.js';

export function renderInit(r: InitResult): string {
  const lines: string[] = [];
  lines.push(
    r.schema.applied.length
      ? `metadata schema: applied ${r.schema.applied.join(', ')}`
      : `metadata schema: up to date (${r.schema.files} file${r.schema.files === 1 ? '' : 's'})`,
  );
  if (r.ring) {
    lines.push(`ring: epoch ${r.ring.epoch}${r.ring.created ? ' (created)' : ''}, ${r.ring.members} shards, ${r.ring.vnodes} points per unit of weight`);
  } else {
    lines.push(chalk.yellow('ring: none (no shards with weight > 0 in the config)'));
  }
  const p = r.published;
  lines.push(
    p.status === 'published'
      ? `redis: ring epoch ${p.epoch} published to ${p.key}, announced on ${p.channel}`
      : p.status === 'skipped'
        ? `redis: not published (${p.reason})`
        : chalk.red(`redis: publish failed (${p.reason})`),
  );
  if (r.shards.length) {
    lines.push(
      '',
      renderTable(
        ['shard', 'state', 'registered', 'route_hash()', 'ms', 'url'],
        r.shards.map((s) => [s.shard, s.state, s.registered, statusMark(s.status) + (s.error ? ` ${s.error}` : ''), s.durationMs, s.url]),
      ),
    );
  }
  return lines.join('\n');
}
