import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import type { RingMember } from '../../core/ring.js';
import { UsageError } from '../../errors.js';
import { moveProgress } from '../move-progress.js';
import { action, positiveInt } from '../action.js';
import type { CommandContext } from '../context.js';
import type { ShardctlConfig } from '../../config/schema.js';
import type { RunInfo } from '../../metadata/run-info.js';
import { collectWeight, durationFlag, memberFlag, shardIdFlag, weightFlag } from '../flags.js';
import { examples } from '../help.js';

interface MoveFlags {
  parallel?: number;
  maxRowsPerSecond?: number;
  maxDuration?: number;
  maxRows?: number;
  offline?: boolean;
  fenceTimeout?: number;
  exact: boolean;
  dryRun: boolean;
  planOut?: string;
}

/** shard add / remove / rebalance / plan / apply / resume / abort / status / verify / index. */
export function registerShardMoveCommands(shard: Command): void {
  withMoveFlags(shard.command('add').argument('<id>', 'the new shard id'))
    .description('register a shard, bring it to the current migrations, and move its hash ranges to it')
    .option('--url <url>', 'its postgres:// URL (or list it in the config)')
    .option('--weight <w>', 'its weight (default 1)', weightFlag, 1)
    .addHelpText('after', examples('shard add shard-4 --url postgres://app@10.0.0.14/app', 'shard add shard-4 --dry-run', 'shard add shard-4 --plan-out add-shard-4.json', 'shard add shard-4 --max-duration 50m --json'))
    .action(
      action(async (ctx, cmd) => {
        const opts = cmd.opts<MoveFlags & { url?: string; weight: number }>();
        const id = shardIdFlag(cmd.args[0]!);
        await runChange(ctx, opts, async (engine, config, run, moveOptions) =>
          engine.shardAdd(config, run, { id, ...(opts.url ? { url: opts.url } : {}), weight: opts.weight, migrationsDir: await migrationsDir(ctx), ...moveOptions }),
        );
      }),
    );

  withMoveFlags(shard.command('remove').argument('<id>', 'the shard to drain and retire'))
    .description('drain a shard\'s hash ranges to the others, then retire it (refuses the last shard)')
    .option('--confirm <id>', 'the shard id again, to confirm without being asked (or the global --yes)')
    .addHelpText(
      'after',
      examples('shard remove shard-2 --confirm shard-2', 'shard remove shard-2 --yes', 'shard remove shard-2 --dry-run') +
        '\nAt a terminal it asks you to type the id. Without one, --confirm ID or --yes is required;\notherwise it exits 2 having touched nothing. --dry-run and --plan-out need neither.\n',
    )
    .action(
      action(async (ctx, cmd) => {
        const opts = cmd.opts<MoveFlags & { confirm?: string }>();
        const id = shardIdFlag(cmd.args[0]!);
        if (!opts.dryRun && !opts.planOut) await confirmTyped(ctx, id, opts.confirm, ctx.global.yes);
        await runChange(ctx, opts, (engine, config, run, moveOptions) => engine.shardRemove(config, run, { id, ...moveOptions }));
      }),
    );

  withMoveFlags(shard.command('rebalance'))
    .description('apply weight changes; with none, move misplaced rows home; with nothing to do, say so (exit 0)')
    .option('--weight <id=w>', 'a new weight (repeatable)', collectWeight, [])
    .option('--from-config', "also apply the config's shard weights and ring.vnodes where they differ from the ring", false)
    .addHelpText(
      'after',
      examples('shard rebalance', 'shard rebalance --weight shard-1=2', 'shard rebalance --max-duration 50m -q   # hourly from cron') +
        '\nWith nothing to do it says so and exits 0.\n',
    )
    .action(
      action(async (ctx, cmd) => {
        const opts = cmd.opts<MoveFlags & { weight: RingMember[]; fromConfig: boolean }>();
        await runChange(ctx, opts, (engine, config, run, moveOptions) => engine.shardRebalance(config, run, { weights: opts.weight, fromConfig: opts.fromConfig, ...moveOptions }));
      }),
    );

  shard
    .command('plan')
    .description('the moves a ring change would make, with estimates; changes nothing')
    .option('--add <id[:weight]>', 'a shard to add')
    .option('--url <url>', 'with --add: its URL when not in the config')
    .option('--remove <id>', 'a shard to remove')
    .option('--weight <id=w>', 'a weight change (repeatable)', collectWeight, [])
    .option('--exact', 'count rows instead of estimating from statistics', false)
    .option('--plan-out <file>', 'write the plan for review and `shard apply`')
    .addHelpText('after', examples('shard plan --add shard-4', 'shard plan --remove shard-0 --exact --json', 'shard plan --weight shard-1=2 --plan-out plan.json'))
    .action(
      action(async (ctx, cmd) => {
        const opts = cmd.opts<{ add?: string; url?: string; remove?: string; weight: RingMember[]; exact: boolean; planOut?: string }>();
        const chosen = [opts.add, opts.remove, opts.weight.length ? 'w' : undefined].filter(Boolean).length;
        if (chosen !== 1) throw new UsageError('give exactly one of --add, --remove, --weight');
        const flags: MoveFlags = { exact: opts.exact, dryRun: true, ...(opts.planOut ? { planOut: opts.planOut } : {}) };
        await runChange(ctx, flags, async (engine, config, run, moveOptions) => {
          if (opts.add) {
            const member = memberFlag(opts.add);
            return engine.shardAdd(config, run, { id: member.id, weight: member.weight, ...(opts.url ? { url: opts.url } : {}), migrationsDir: await migrationsDir(ctx), ...moveOptions });
          }
          if (opts.remove) return engine.shardRemove(config, run, { id: shardIdFlag(opts.remove), ...moveOptions });
          return engine.shardRebalance(config, run, { weights: opts.weight, ...moveOptions });
        });
      }),
    );

  withMoveFlags(shard.command('apply').argument('<file>', 'a plan written by --plan-out'), { planning: false })
    .description('run a reviewed plan; refused if the ring changed since it was made')
    .addHelpText('after', examples('shard apply plan.json', 'shard apply plan.json --max-duration 1h --json'))
    .action(
      action(async (ctx, cmd) => {
        const opts = cmd.opts<MoveFlags>();
        const file = cmd.args[0]!;
        let json;
        try {
          json = JSON.parse(await readFile(file, 'utf8'));
        } catch (err) {
          throw new UsageError(`cannot read the plan ${file}: ${(err as Error).message}`);
        }
        // Either format: [start, end] pairs, or the {start, end} objects of plan files from older versions.
        const { readPlanFile } = await import('../../engine/moves/plan.js');
        const doc = readPlanFile(json);
        await runChange(ctx, { ...opts, dryRun: false }, async (engine, config, run, moveOptions) =>
          engine.shardApply(config, run, doc, { ...moveOptions, migrationsDir: await migrationsDir(ctx) }),
        );
      }),
    );

  withMoveFlags(shard.command('resume'), { planning: false, starts: false })
    .description('continue the plan in progress from its journal (after a crash, a failure, a budget or Ctrl-C)')
    .addHelpText('after', examples('shard resume', 'shard resume --max-duration 50m --json'))
    .action(
      action(async (ctx, cmd) => {
        const opts = cmd.opts<MoveFlags>();
        const { config } = await ctx.loadConfig();
        const engine = await import('../../engine/shards/change.js');
        const { renderExecution } = await import('../render/moves.js');
        const progress = await moveProgress(ctx);
        const result = await engine.shardResume(config, ctx.runInfo(), { ...moveOptionsOf(opts), onEvent: progress.onEvent }).finally(progress.stop);
        ctx.out.result(ctx.name, result, (r) => (r.execution ? renderExecution(r.execution) : 'no plan in progress: nothing to resume'));
      }),
    );

  shard
    .command('abort')
    .argument('<plan>', 'the plan id (`shard status` lists them)')
    .description('undo a plan that has not switched the ring: its copies are removed from the targets')
    .addHelpText('after', examples('shard abort p3-20261121101500-1a2b --yes'))
    .action(
      action(async (ctx, cmd) => {
        const planId = cmd.args[0]!;
        await ctx.out.confirm(`Abort plan ${planId} and delete the rows it copied to its targets?`);
        const { config } = await ctx.loadConfig();
        const { shardAbort } = await import('../../engine/shards/change.js');
        const result = await shardAbort(config, ctx.runInfo(), planId);
        ctx.out.result(ctx.name, result, (r) => [`plan ${r.planId} aborted`, ...r.moves.map((m) => `  move ${m.moveNo} ${m.source} → ${m.target}: ${m.rowsRemoved} copied rows removed from ${m.target}`)].join('\n'));
      }),
    );

  shard
    .command('status')
    .argument('[plan]', 'one plan id')
    .description('plans and their moves, with state and progress')
    .option('-n, --limit <n>', 'newest N plans', positiveInt('--limit'), 5)
    .addHelpText('after', examples('shard status', 'shard status p3-20261121101500-1a2b --json'))
    .action(
      action(async (ctx, cmd) => {
        const { limit } = cmd.opts<{ limit: number }>();
        const { config } = await ctx.loadConfig();
        const { shardStatus } = await import('../../engine/shards/change.js');
        const result = await shardStatus(config, { limit, ...(cmd.args[0] ? { planId: cmd.args[0] } : {}) });
        const { renderStatus } = await import('../render/moves.js');
        if (!ctx.global.json) return ctx.out.result(ctx.name, result, renderStatus);
        // Ranges as [start, end] pairs, as in plan files: one line per move's ranges, not four per range.
        const plans = result.plans.map((p) => ({ ...p, moves: p.moves.map((m) => ({ ...m, ranges: m.ranges.map((r) => [r.start, r.end]) })) }));
        ctx.out.result(ctx.name, { plans }, () => '');
      }),
    );

  shard
    .command('verify')
    .description('find rows the ring places elsewhere and in-flight copies that differ from their source; changes nothing (exit 1 if any)')
    .addHelpText('after', examples('shard verify', 'shard verify --json'))
    .action(
      action(async (ctx) => {
        const { config } = await ctx.loadConfig();
        const { shardVerify } = await import('../../engine/shards/verify.js');
        const spin = await ctx.out.spinner('reading every shard');
        const report = await shardVerify(config).finally(() => spin.stop());
        const { renderVerify } = await import('../render/moves.js');
        ctx.out.result(ctx.name, report, renderVerify);
        if (!report.ok) {
          const { CheckFailed } = await import('../../errors.js');
          const found = [`${report.misplacedRows} misplaced row(s)`, `${report.mismatches.length} mismatching cop${report.mismatches.length === 1 ? 'y' : 'ies'}`];
          if (report.leftovers.length) found.push(`${report.leftovers.length} leftover online-move capture(s) on ${[...new Set(report.leftovers.map((l) => l.shard))].join(', ')}`);
          throw new CheckFailed(`shard verify found ${found.slice(0, -1).join(', ')} and ${found.at(-1)}`);
        }
      }),
    );

  shard
    .command('index')
    .description(
      'create (CONCURRENTLY, then ANALYZE) an index on shardctl.route_hash(key::text) for every sharded table on every shard: moves, `shard verify` and the hourly misplaced-row check then read only the rows in their hash ranges instead of hashing every row',
    )
    .option('--drop', 'drop those indexes instead', false)
    .addHelpText('after', examples('shard index', 'shard index --drop --json'))
    .action(
      action(async (ctx, cmd) => {
        const { drop } = cmd.opts<{ drop: boolean }>();
        const { config } = await ctx.loadConfig();
        const { shardIndex } = await import('../../engine/shards/hash-index.js');
        const spin = await ctx.out.spinner(drop ? 'dropping routing-hash indexes' : 'building routing-hash indexes (CONCURRENTLY)');
        const report = await shardIndex(config, ctx.runInfo(), { drop }).finally(() => spin.stop());
        const { renderIndex } = await import('../render/moves.js');
        ctx.out.result(ctx.name, report, renderIndex);
        const failed = report.shards.flatMap((s) => s.tables.filter((t) => t.status === 'error').map((t) => `${s.shard} ${t.table}: ${t.error}`));
        if (failed.length) {
          const { CheckFailed } = await import('../../errors.js');
          throw new CheckFailed('some indexes could not be built', { details: failed });
        }
      }),
    );
}

function withMoveFlags(cmd: Command, options: { planning?: boolean; starts?: boolean } = {}): Command {
  // A plan keeps the mode it started in: resume has no --offline.
  if (options.starts !== false) cmd.option('--offline', 'move offline: no change capture and no fence, for a maintenance window (default: online, migration.online)');
  cmd
    .option('--fence-timeout <duration>', 'online moves: longest the moving keys refuse writes at the switch before the fence lifts and is tried again (default: migration.fenceTimeout, 5s)', durationFlag)
    .option('--parallel <n>', 'moves at once (default: migration.parallel)', positiveInt('--parallel'))
    .option('--max-rows-per-second <n>', 'throttle (default: migration.maxRowsPerSecond)', positiveInt('--max-rows-per-second'))
    .option('--max-duration <duration>', 'stop at a batch boundary after this long (exit 0, status partial; run again to continue)', durationFlag)
    .option('--max-rows <n>', 'stop at a batch boundary after copying this many rows', positiveInt('--max-rows'));
  if (options.planning !== false) {
    cmd
      .option('--dry-run', 'print the plan and change nothing', false)
      .option('--plan-out <file>', 'write the plan for review and `shard apply`; change nothing')
      .option('--exact', 'count rows for the plan instead of estimating from statistics', false);
  }
  return cmd;
}

type Engine = typeof import('../../engine/shards/change.js');
type ChangeResult = Awaited<ReturnType<Engine['shardAdd']>>;
type MoveOptions = import('../../engine/moves/run-plan.js').MoveRunOptions & { dryRun?: boolean };

/** Loads the config and engine, wires progress, runs the change, renders plan or report (and writes --plan-out). */
async function runChange(
  ctx: CommandContext,
  opts: MoveFlags,
  run: (engine: Engine, config: ShardctlConfig, runInfo: RunInfo, moveOptions: MoveOptions) => Promise<ChangeResult>,
): Promise<void> {
  const { config } = await ctx.loadConfig();
  const engine = await import('../../engine/shards/change.js');
  const render = await import('../render/moves.js');
  const progress = await moveProgress(ctx);
  const dryRun = opts.dryRun || !!opts.planOut;
  try {
    const result = await run(engine, config, ctx.runInfo(), { ...moveOptionsOf(opts), dryRun, onEvent: progress.onEvent });
    progress.stop();
    if (opts.planOut) {
      const { planFileOf } = await import('../../engine/moves/plan.js');
      await writeFile(opts.planOut, render.formatJson(planFileOf(result.plan)) + '\n');
      ctx.out.info(`plan written to ${path.resolve(opts.planOut)}; review it, then: shardctl shard apply ${opts.planOut}`);
    }
    // On a terminal the plan was shown before the work started: the report follows it.
    // The documented envelope, laid out so that a move's ranges stay on one line each (Output.result would indent every pair).
    if (ctx.global.json) ctx.out.writeStdout(render.formatJson({ ok: true, command: ctx.name, data: render.changeJson(result) }) + '\n');
    else ctx.out.result(ctx.name, result, (r) => (progress.planShown && r.execution ? render.renderExecution(r.execution) : render.renderChange(r)));
  } catch (err) {
    ctx.out.partial(err, render.isExecutionReport, render.renderExecution);
    throw err;
  } finally {
    progress.stop();
  }
}

function moveOptionsOf(opts: MoveFlags): MoveOptions {
  const maxDurationMs = opts.maxDuration;
  return {
    ...(opts.parallel ? { parallel: opts.parallel } : {}),
    ...(opts.maxRowsPerSecond ? { maxRowsPerSecond: opts.maxRowsPerSecond } : {}),
    ...(maxDurationMs !== undefined ? { maxDurationMs } : {}),
    ...(opts.maxRows ? { maxRows: opts.maxRows } : {}),
    ...(opts.exact ? { exact: true } : {}),
    ...(opts.offline ? { offline: true } : {}),
    ...(opts.fenceTimeout !== undefined ? { fenceTimeoutMs: opts.fenceTimeout } : {}),
  };
}

async function migrationsDir(ctx: CommandContext): Promise<string> {
  const { config, filepath } = await ctx.loadConfig();
  return path.resolve(path.dirname(filepath), config.migrate.dir);
}

/**
 * `shard remove` is confirmed by the id given again (--confirm ID), by the
 * global --yes, or by typing the id at a terminal; without a terminal and
 * without either flag it is refused (exit 2) naming both.
 */
async function confirmTyped(ctx: CommandContext, id: string, given: string | undefined, yes: boolean): Promise<void> {
  if (given !== undefined) {
    if (given !== id) throw new UsageError(`--confirm ${given} does not match ${id}; nothing was done`);
    return;
  }
  if (yes) return;
  if (!ctx.out.interactive) {
    throw new UsageError(`removing ${id} drains and retires it; refusing without a terminal to ask on: pass --confirm ${id} or --yes`);
  }
  const { input } = await import('@inquirer/prompts');
  const typed = await input({ message: `Type ${id} to drain and retire it:` }, { output: process.stderr });
  if (typed.trim() !== id) throw new UsageError('not confirmed; nothing was done');
}
