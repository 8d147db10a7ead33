import chalk from 'chalk';
import type { ListResult } from '../../engine/partitions/list.js';
import type { RotateResult } from '../../engine/partitions/rotate.js';
import type { SetupResult } from '../../engine/partitions/setup.js';
import { formatBytes, formatCount, renderTable, statusMark } from './table.js';

export function isRotateResult(value: unknown): value is RotateResult {
  return typeof value === 'object' && value !== null && 'shards' in value && 'summary' in value && 'dryRun' in value;
}

export function renderRotate(r: RotateResult): string {
  const lines: string[] = [];
  for (const s of r.shards) {
    for (const t of s.tables) {
      const head = `${s.shard} ${t.table}: ${t.status === 'failed' ? chalk.red(`failed: ${t.error}`) : t.status === 'unchanged' ? 'nothing to do' : r.dryRun ? 'would change' : 'changed'}`;
      lines.push(head);
      for (const c of t.created) lines.push(`  ${r.dryRun ? 'create' : 'created'} ${c.name} [${c.from}, ${c.to})${c.movedFromDefault ? `, ${formatCount(c.movedFromDefault)} row(s) ${r.dryRun ? 'to move' : 'moved'} from the default partition` : ''}`);
      for (const x of t.retired) lines.push(`  ${r.dryRun ? 'retire' : 'retired'} ${x.name} (${x.mode}${x.method ? `, ${x.method}` : ''}): ${formatCount(x.rows)} rows, ${formatBytes(x.bytes)}${x.nowAt ? ` → ${x.nowAt}` : ''}`);
      for (const k of t.kept) lines.push(chalk.yellow(`  kept ${k.name}: ${k.reason}`));
      for (const f of t.finalized) lines.push(`  finalized the interrupted detach of ${f}`);
      if (t.unmanaged.length) lines.push(chalk.dim(`  left alone (not shardctl's naming or bounds): ${t.unmanaged.join(', ')}`));
      if (r.dryRun && t.sql.length) lines.push(chalk.dim(t.sql.map((q) => `    ${q.replace(/\s+/g, ' ')};`).join('\n')));
    }
  }
  const s = r.summary;
  lines.push(
    `${r.dryRun ? 'dry run (nothing changed): would create' : 'created'} ${s.created}, ${r.dryRun ? 'retire' : 'retired'} ${s.retired}, kept ${s.kept}, ${formatCount(s.movedFromDefault)} row(s) ${r.dryRun ? 'to move' : 'moved'} out of default partitions${s.failedShards ? chalk.red(`; ${s.failedShards} shard(s) failed`) : ''}${!s.changed && !s.failedShards ? ' — nothing to do' : ''}`,
  );
  return lines.join('\n');
}

export function renderList(r: ListResult): string {
  const lines: string[] = [];
  for (const s of r.shards) {
    for (const t of s.tables) {
      if (t.status === 'error') {
        lines.push(`${s.shard} ${t.table}: ${chalk.red(t.error ?? 'error')}`);
        continue;
      }
      lines.push(`${chalk.bold(`${s.shard} ${t.table}`)}: runway until ${t.runway.until ?? 'now (none)'} (${t.runway.intervals} interval(s) ahead, premake ${t.runway.premake})${t.defaultRows !== null ? `, default partition ${formatCount(t.defaultRows)} row(s)` : ''}`);
      lines.push(
        renderTable(
          ['partition', 'from', 'to', 'rows', 'bytes', ''],
          t.partitions.map((p) => [p.name, p.isDefault ? 'DEFAULT' : (p.from ?? 'MINVALUE'), p.isDefault ? '' : (p.to ?? 'MAXVALUE'), formatCount(p.rows), formatBytes(p.bytes), p.over.length ? chalk.yellow(p.over.join(', ')) : '']),
        ),
      );
      for (const w of t.warnings) lines.push(chalk.yellow(`  warning: ${w}`));
    }
  }
  if (r.retired) {
    lines.push('', chalk.bold('retired partitions'));
    lines.push(
      r.retired.length
        ? renderTable(['retired at', 'shard', 'parent', 'partition', 'mode', 'now at', 'rows', 'bytes'], r.retired.map((x) => [x.retiredAt?.toISOString().slice(0, 19).replace('T', ' ') ?? '', x.shard, x.parent, x.partition, x.mode, x.nowAt ?? '(dropped)', formatCount(x.rows), formatBytes(x.bytes)]))
        : 'none',
    );
  }
  return lines.join('\n');
}

export function renderSetup(r: SetupResult): string {
  const lines = [`${r.table} partitioned by RANGE (${r.column}) on every shard: ${r.ready ? statusMark('ok') : chalk.red('not yet')}`];
  for (const s of r.shards) {
    if (s.error) {
      lines.push(`${s.shard}: ${chalk.red(s.error)}`);
      continue;
    }
    const rep = s.report!;
    lines.push(`${s.shard}: ${rep.problems.length ? `${rep.problems.length} problem(s)` : 'ok'}; default partition: ${rep.hasDefaultPartition ? 'yes' : 'no'}`);
    for (const p of rep.problems) {
      lines.push(`  ${p.severity === 'error' ? chalk.red('error') : chalk.yellow('warning')} ${p.message}`);
      for (const q of p.fixSql) lines.push(chalk.dim(`    ${q}`));
    }
  }
  return lines.join('\n');
}
