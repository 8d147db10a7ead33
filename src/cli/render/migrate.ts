import chalk from 'chalk';
import type { MigrationState } from '../../core/migration-plan.js';
import type { MigrateUpResult, StatusMatrix, TargetOutcome } from '../../engine/migrate/migrate.js';
import { renderTable } from './table.js';

const STATUS_COLOUR: Record<TargetOutcome['status'], (s: string) => string> = {
  migrated: chalk.green,
  'up-to-date': chalk.green,
  pending: chalk.yellow,
  failed: chalk.red,
  locked: chalk.yellow,
  skipped: chalk.yellow,
  unreachable: chalk.red,
};

export function isMigrateUpResult(value: unknown): value is MigrateUpResult {
  return typeof value === 'object' && value !== null && 'targets' in value && 'summary' in value && 'dryRun' in value;
}

export function renderMigrateUp(r: MigrateUpResult): string {
  const rows = r.targets.map((t) => [
    t.target,
    STATUS_COLOUR[t.status](t.status),
    r.dryRun ? t.pending.length : t.applied.length,
    t.version ?? '-',
    t.durationMs,
    r.dryRun ? t.pending.join(' ') : t.error ? firstLine(t) : t.applied.map((a) => a.file).join(' '),
  ]);
  const lines = [renderTable(['target', 'status', r.dryRun ? 'would apply' : 'applied', 'version', 'ms', r.dryRun ? 'files' : 'files / error'], rows)];
  for (const t of r.targets) {
    if (t.error?.failure) lines.push('', chalk.red(`${t.target}:`), ...t.error.failure.lines.map((l) => `  ${l}`));
  }
  const counts = Object.entries(r.summary).filter(([, n]) => n > 0).map(([k, n]) => `${n} ${k}`);
  lines.push('', `${r.files} files, ${r.targets.length} targets: ${counts.join(', ')}`);
  return lines.join('\n');
}

function firstLine(t: TargetOutcome): string {
  return t.error?.failure ? `${t.error.failure.file}: ${t.error.failure.message}` : (t.error?.message ?? '');
}

const MARK: Record<MigrationState, string> = {
  applied: chalk.green('✓'),
  pending: chalk.yellow('·'),
  failed: chalk.red('✗'),
  changed: chalk.red('~'),
  missing: chalk.red('?'),
};

/**
 * Targets × versions. Versions every target has applied collapse into one
 * count, so dozens of old files do not push the interesting columns away.
 */
export function renderStatus(s: StatusMatrix): string {
  const versions = [...new Set(s.targets.flatMap((t) => t.states.map((e) => e.version)))].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
  const everywhere = versions.filter((v) => s.targets.every((t) => t.error === undefined && t.states.find((e) => e.version === v)?.state === 'applied'));
  const open = versions.filter((v) => !everywhere.includes(v));
  const rows = s.targets.map((t) => [
    t.target,
    t.version ?? '-',
    t.error ? chalk.red('unreachable') : `${t.states.filter((e) => e.state === 'applied').length}/${s.files.length}`,
    ...open.map((v) => (t.error ? ' ' : MARK[t.states.find((e) => e.version === v)?.state ?? 'pending'])),
  ]);
  const lines = [renderTable(['target', 'version', 'applied', ...open], rows)];
  if (open.length) lines.push('', chalk.dim(`✓ applied  · pending  ✗ failed  ~ changed since applied  ? applied, file missing`));
  if (everywhere.length) lines.push(chalk.dim(`${everywhere.length} version(s) applied on every target are not shown as columns`));
  for (const t of s.targets) if (t.error) lines.push(chalk.red(`${t.target}: ${t.error}`));
  if (s.shardsFrom === 'config') lines.push(chalk.yellow('shards from the config only: the metadata database is not reachable or not initialised'));
  lines.push(s.clean ? chalk.green('every target is up to date') : chalk.yellow('not every target is up to date'));
  return lines.join('\n');
}
