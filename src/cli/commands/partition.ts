import { InvalidArgumentError, type Command } from 'commander';
import { action, positiveInt } from '../action.js';
import { collectShardId } from '../flags.js';
import { examples } from '../help.js';

/** --now: an ISO timestamp (with or without offset; without one it is UTC). */
function instantFlag(value: string): Date {
  const text = /[zZ]|[+-]\d\d:?\d\d$/.test(value) || !/\d\d:\d\d/.test(value) ? value : `${value}Z`;
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new InvalidArgumentError(`"${value}" is not a timestamp (e.g. 2026-12-01T00:00:00Z)`);
  return new Date(ms);
}

const collect = (value: string, previous: string[]) => [...previous, value];

interface Selection {
  shard: string[];
  table: string[];
  now?: Date;
}

function selection(opts: Selection) {
  return { ...(opts.shard.length ? { shards: opts.shard } : {}), ...(opts.table.length ? { tables: opts.table } : {}), ...(opts.now ? { now: opts.now } : {}) };
}

/** partition list / rotate / setup: time-range partition maintenance on every shard. */
export function registerPartitionCommands(program: Command): void {
  const partition = program
    .command('partition')
    .description('time-range partitions of the configured tables, on every shard')
    .addHelpText('after', examples('partition list', 'partition rotate --dry-run', 'partition setup public.messages'));

  const selectable = (cmd: Command) =>
    cmd
      .option('--shard <id>', 'only this shard (repeatable)', collectShardId, [])
      .option('--table <name>', 'only this configured table (repeatable)', collect, [])
      .option('--now <timestamp>', 'run the calendar as of this instant (rehearsal), e.g. 2027-01-01T00:00:00Z', instantFlag);

  selectable(partition.command('list'))
    .description('partitions with bounds, rows and bytes; rows in the default partition; runway; size warnings and the growth trend')
    .option('--exact', 'count(*) instead of the planner estimate', false)
    .option('--retired', 'also list the partitions rotate detached, archived or dropped (from the metadata database)', false)
    .addHelpText('after', examples('partition list', 'partition list --table public.messages --exact', 'partition list --retired --json'))
    .action(
      action(async (ctx, cmd) => {
        const opts = cmd.opts<Selection & { exact: boolean; retired: boolean }>();
        const { config } = await ctx.loadConfig();
        const { partitionList } = await import('../../engine/partitions/list.js');
        const { renderList } = await import('../render/partition.js');
        const result = await partitionList(config, { ...selection(opts), exact: opts.exact, retired: opts.retired });
        ctx.out.result(ctx.name, result, renderList);
        const broken = result.shards.flatMap((s) => s.tables.filter((t) => t.status === 'error').map((t) => `${s.shard} ${t.table}: ${t.error}`));
        if (broken.length) {
          const { CheckFailed } = await import('../../errors.js');
          throw new CheckFailed(`partition list could not read ${broken.length} table(s)`, { details: broken });
        }
      }),
    );

  selectable(partition.command('rotate'))
    .description('create the coming partitions (premake ahead) and retire those past retention, on every shard in parallel')
    .option('--dry-run', 'print, per shard, the SQL that would run and its impact; change nothing', false)
    .option('--exact', 'count the rows of partitions to retire instead of estimating', false)
    .option('--parallel <n>', 'shards at once (default migrate.parallel)', positiveInt('--parallel'))
    .addHelpText(
      'after',
      examples('partition rotate --dry-run', 'partition rotate', 'partition rotate --shard shard-3 --table public.messages', 'partition rotate --now 2027-01-01T00:00:00Z --dry-run --json') +
        '\nExit codes: 0 done (or nothing to do), 1 a shard failed (the others completed), 75 another run holds the lock.\n',
    )
    .action(
      action(async (ctx, cmd) => {
        const opts = cmd.opts<Selection & { dryRun: boolean; exact: boolean; parallel?: number }>();
        const { config } = await ctx.loadConfig();
        const { partitionRotate } = await import('../../engine/partitions/rotate.js');
        const { renderRotate, isRotateResult } = await import('../render/partition.js');
        try {
          const result = await partitionRotate(config, ctx.runInfo(), { ...selection(opts), dryRun: opts.dryRun, exact: opts.exact, ...(opts.parallel ? { parallel: opts.parallel } : {}) });
          ctx.out.result(ctx.name, result, renderRotate);
        } catch (err) {
          ctx.out.partial(err, isRotateResult, renderRotate);
          throw err;
        }
      }),
    );

  partition
    .command('setup')
    .argument('<table>', 'a configured table, e.g. public.messages')
    .description('check (changing nothing) that the table is range-partitioned on its column on every shard; print the SQL to fix what is missing')
    .option('--shard <id>', 'only this shard (repeatable)', collectShardId, [])
    .addHelpText('after', examples('partition setup public.messages', 'partition setup public.messages --json'))
    .action(
      action(async (ctx, cmd) => {
        const opts = cmd.opts<{ shard: string[] }>();
        const { config } = await ctx.loadConfig();
        const { partitionSetup } = await import('../../engine/partitions/setup.js');
        const { renderSetup } = await import('../render/partition.js');
        const result = await partitionSetup(config, cmd.args[0]!, opts.shard.length ? { shards: opts.shard } : {});
        ctx.out.result(ctx.name, result, renderSetup);
        if (!result.ready) {
          const { CheckFailed } = await import('../../errors.js');
          throw new CheckFailed(`${result.table} is not ready for partition maintenance on every shard`);
        }
      }),
    );
}
