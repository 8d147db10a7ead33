import chalk from 'chalk';
import type { MoveEvent, ExecutionReport } from '../../engine/moves/execute.js';
import { planFileOf, type PlanDocument, type PlanFile } from '../../engine/moves/plan.js';
import type { ShardChangeResult } from '../../engine/shards/change.js';
import type { ShardReadiness } from '../../engine/shards/prepare.js';
import type { IndexReport } from '../../engine/shards/hash-index.js';
import type { VerifyReport } from '../../engine/shards/verify.js';
import type { OnlineStats, PlanRecord } from '../../metadata/journal.js';
import { formatBytes, formatCount, formatPercent, renderTable, statusMark } from './table.js';
import { MOVE_PHASES, type PhaseCosts } from '../../core/move-phases.js';

export function renderPlan(plan: PlanDocument): string {
  const head = `${plan.kind} plan from ring epoch ${plan.fromEpoch}: ${plan.moves.length} move(s), estimates from ${plan.estimate}`;
  if (!plan.moves.length) return `${head}\nnothing to move`;
  const table = renderTable(
    ['#', 'source', 'target', 'mode', 'ranges', 'hash share', 'est. rows', 'est. bytes'],
    plan.moves.map((m, i) => [i + 1, m.source, m.target, m.mode, m.ranges.length, formatPercent(m.fraction, 2), formatCount(m.estRows), formatBytes(m.estBytes)]),
  );
  const totalRows = plan.moves.reduce((s, m) => s + m.estRows, 0);
  const totalBytes = plan.moves.reduce((s, m) => s + m.estBytes, 0);
  return `${head}\n${table}\ntotal: ${formatCount(totalRows)} rows, ${formatBytes(totalBytes)}`;
}

/** A change's result as --json prints it: the plan with its ranges as `[start, end]` pairs. */
export function changeJson(r: ShardChangeResult): Omit<ShardChangeResult, 'plan'> & { plan: PlanFile } {
  return { ...r, plan: planFileOf(r.plan) };
}

export { formatJson } from './json.js';

export function renderChange(r: ShardChangeResult): string {
  if (r.nothingToDo) return 'nothing to do: no plan in progress, no weight change, and every row is where the ring says';
  const parts = [r.resumed ? `continuing plan ${r.resumed}, which was in progress` : renderPlan(r.plan)];
  if (r.readiness) parts.push(renderReadiness(r.readiness));
  if (r.dryRun) parts.push(chalk.dim('dry run: nothing was changed'));
  if (r.execution) parts.push('', renderExecution(r.execution));
  return parts.join('\n');
}

/** What `shard add` would do to the new shard before moving rows (the checks passed, or the plan would not be shown). */
export function renderReadiness(r: ShardReadiness): string {
  if (!r.pendingMigrations.length) return `${r.shard} answers and has every sharded table with the same columns and a primary key`;
  const files = r.pendingMigrations.length === 1 ? r.pendingMigrations[0] : `${r.pendingMigrations.length} files, ${r.pendingMigrations[0]} … ${r.pendingMigrations.at(-1)}`;
  const creates = r.createdByMigrations.length ? `; it is expected to create ${r.createdByMigrations.join(', ')} (the tables are checked again after it)` : '';
  return chalk.yellow(`${r.shard}: the migration set will be applied first (${files} from ${r.migrationsDir})${creates}`);
}

export function isExecutionReport(value: unknown): value is ExecutionReport {
  return typeof value === 'object' && value !== null && 'planId' in value && 'moves' in value && 'status' in value;
}

export function renderExecution(r: ExecutionReport): string {
  const rows = r.moves.map((m) => [
    m.moveNo,
    `${m.source} → ${m.target}`,
    statusMark(m.state === 'cleaned' ? 'ok' : m.state),
    formatCount(m.rowsCopied),
    formatBytes(m.bytesCopied),
    formatCount(m.rowsDeleted),
    m.rowsLeft ? chalk.yellow(formatCount(m.rowsLeft)) : '0',
    m.seconds === null ? '-' : m.seconds.toFixed(1),
    m.error ?? '',
  ]);
  const lines = [renderTable(['#', 'move', 'state', 'copied', 'bytes', 'deleted', 'left', 'seconds', 'error'], rows)];
  const status = r.status === 'done' ? chalk.green('done') : r.status === 'partial' ? chalk.yellow(`partial (${r.stoppedBy})`) : chalk.red(r.status);
  lines.push(
    `plan ${r.planId}: ${status}; ring epoch ${r.epoch}; ${formatCount(r.rowsCopied)} rows in ${r.seconds.toFixed(1)}s = ${formatCount(r.rowsPerSecond)} rows/s, ${r.mbPerSecond} MB/s (copy, verify, switch, cleanup)`,
  );
  const phases = formatPhases(r.phases);
  if (phases) lines.push(`time by phase (moves overlap, so their seconds add up to more than the run's): ${phases}`);
  if (r.online) {
    const replayed = r.moves.reduce((s, m) => s + (m.online?.replayedRows ?? 0), 0);
    const fence = r.longestFenceMs === null ? 'no fence held yet' : `longest fenced interval ${formatCount(Math.round(r.longestFenceMs))} ms`;
    lines.push(`online: ${fence}; ${formatCount(replayed)} captured row(s) replayed in catch-up`);
  }
  const left = r.moves.reduce((s, m) => s + m.rowsLeft, 0);
  if (left) lines.push(chalk.yellow(`${left} row(s) changed on a source after the copy were left in place: \`shard verify\` lists them (the next \`shard rebalance\` moves home those whose key the owner lacks)`));
  if (r.status === 'partial') lines.push('run the same command again, or `shard resume`, to continue');
  if (r.published?.status === 'error') lines.push(chalk.yellow(`the ring could not be published to Redis: ${r.published.reason}`));
  return lines.join('\n');
}

/** "plan 0.1s, copy 3.5s (250 MB read, 250 MB written), …": the phases that took any time, in order. */
export function formatPhases(phases: PhaseCosts | undefined): string {
  if (!phases) return '';
  return MOVE_PHASES.flatMap((p) => {
    const c = phases[p];
    if (!c) return [];
    const bytes = [c.bytesRead ? `${formatBytes(c.bytesRead)} read` : '', c.bytesWritten ? `${formatBytes(c.bytesWritten)} written` : ''].filter(Boolean).join(', ');
    return [`${p} ${c.seconds.toFixed(2)}s${bytes ? ` (${bytes})` : ''}`];
  }).join(', ');
}

export function formatProgress(e: Extract<MoveEvent, { type: 'progress' }>): string {
  const eta = e.etaSeconds === null ? '' : ` ETA ${e.etaSeconds}s`;
  return `move ${e.moveNo} ${e.source} → ${e.target} ${e.phase} ${e.table}: ${formatCount(e.rows)}/${formatCount(e.estRows)} rows, ${formatCount(e.rowsPerSecond)} rows/s${eta}`;
}

/** An online move's fence figures: the longest interval it held and how many fences were raised. */
function fenceCell(o: OnlineStats | null): string {
  if (!o || (o.longestFenceMs === undefined && !o.fenceAttempts)) return '-';
  const longest = o.longestFenceMs === undefined ? '-' : `${formatCount(Math.round(o.longestFenceMs))} ms`;
  const attempts = o.fenceAttempts ?? 0;
  const up = o.fencedUntil ? chalk.yellow(', up') : '';
  return `${longest} (${attempts} attempt${attempts === 1 ? '' : 's'})${up}`;
}

export function renderStatus(r: { plans: PlanRecord[] }): string {
  if (!r.plans.length) return 'no plans yet';
  const out: string[] = [];
  for (const p of r.plans) {
    const online = p.options.online === true;
    out.push(
      `${chalk.bold(p.id)}  ${p.kind}  ${online ? 'online' : 'offline'}  ${statusMark(p.state === 'done' ? 'ok' : p.state)}  epoch ${p.fromEpoch}${p.switchedEpoch !== null ? ` → ${p.switchedEpoch}` : ''}  by ${p.createdBy} at ${p.createdAt.toISOString().slice(0, 19).replace('T', ' ')}`,
    );
    if (p.moves.length) {
      const head = ['#', 'move', 'state', 'copied / est.', 'deleted', 'left', ...(online ? ['backlog', 'catch-up rows/s', 'fence (longest)'] : []), 'error'];
      out.push(
        renderTable(
          head,
          p.moves.map((m) => {
            const copied = m.tables.reduce((s, t) => s + t.rowsCopied, 0);
            const figures = online ? [formatCount(m.online?.backlog), formatCount(m.online?.rowsPerSecond), fenceCell(m.online)] : [];
            return [
              m.moveNo,
              `${m.source} → ${m.target}`,
              statusMark(m.state),
              `${formatCount(copied)} / ${formatCount(m.estRows)}`,
              formatCount(m.tables.reduce((s, t) => s + t.rowsDeleted, 0)),
              formatCount(m.tables.reduce((s, t) => s + (t.rowsLeft ?? 0), 0)),
              ...figures,
              m.error ?? '',
            ];
          }),
        ).split('\n').map((l) => `  ${l}`).join('\n'),
      );
    }
  }
  return out.join('\n');
}

const IN_PROGRESS = new Set(['running', 'switched', 'failed']);

export function renderVerify(r: VerifyReport): string {
  const rows: Array<Array<string | number>> = [];
  for (const s of r.shards) {
    if (s.error) rows.push([s.shard, '-', chalk.red('error'), s.error]);
    for (const t of s.tables) {
      const misplaced = Object.entries(t.misplaced).map(([owner, n]) => `${n} → ${owner}`).join(', ');
      rows.push([s.shard, t.table, misplaced ? chalk.red(misplaced) : chalk.green('0'), t.inFlightCopies ? `${t.inFlightCopies} in-flight copies` : '']);
    }
  }
  const lines = [`ring epoch ${r.epoch}`, renderTable(['shard', 'table', 'misplaced (rows → owner)', 'note'], rows)];
  for (const m of r.mismatches) {
    lines.push(chalk.red(`plan ${m.plan} move ${m.moveNo} ${m.source} → ${m.target} ${m.table}: source ${m.source_.rows} rows / ${m.source_.sum}, target ${m.target_.rows} rows / ${m.target_.sum}`));
  }
  const leftovers = r.leftovers ?? [];
  for (const l of leftovers) {
    const owner = l.planId === null ? 'no registry row' : `plan ${l.planId} move ${l.moveNo}${l.planState ? ` (${l.planState})` : ' (not in the journal)'}`;
    lines.push(chalk.red(`${l.shard}: online-move objects ${l.tag}, ${owner}:`));
    for (const o of l.objects) lines.push(`  ${o}`);
    // A move's own objects on its source, while it is in progress, are not leftovers (verify.ts): so
    // neither `shard resume` nor `shard abort` (which act on each move's source) removes these.
    const inProgress = l.planId !== null && l.planState !== null && IN_PROGRESS.has(l.planState);
    const state = l.planId === null ? 'unknown' : (l.planState ?? 'unknown');
    lines.push(
      chalk.yellow(
        `  left by an interrupted online move whose plan is ${state}${inProgress ? ' (they are not its moves\' own: another shard, or a move already cleaned)' : ''}: no command removes them; drop them by hand on ${l.shard} (the triggers first, then the functions, the table and the sequence${l.planId === null ? '' : ', and the registry row in shardctl.move_captures'})`,
      ),
    );
  }
  if (r.ok) lines.push(chalk.green('every row is where the ring says'));
  else {
    const problems = [`${r.misplacedRows} misplaced row(s)`, `${r.mismatches.length} mismatching in-flight cop${r.mismatches.length === 1 ? 'y' : 'ies'}`];
    if (leftovers.length) problems.push(`${leftovers.length} leftover online-move capture(s) (see above)`);
    lines.push(chalk.red(`${problems.join(', ')}${r.misplacedRows ? ': `shard rebalance` moves misplaced rows home' : ''}`));
  }
  return lines.join('\n');
}

export function renderIndex(r: IndexReport): string {
  return renderTable(
    ['shard', 'table', 'index', 'status'],
    r.shards.flatMap((s) => s.tables.map((t) => [s.shard, t.table, t.index, t.status === 'error' ? chalk.red(`error: ${t.error}`) : statusMark(t.status === 'created' || t.status === 'exists' ? 'ok' : t.status)])),
  );
}
