import { Option, type Command } from 'commander';
import type { RingMember } from '../../core/ring.js';
import { UsageError } from '../../errors.js';
import { action, positiveInt } from '../action.js';
import { collectMember, collectShardId, collectWeight } from '../flags.js';
import { examples } from '../help.js';
import { registerShardMoveCommands } from './shard-moves.js';

export function registerShardCommands(program: Command): void {
  const shard = program
    .command('shard')
    .description('the shard registry and the consistent-hash ring')
    .addHelpText('after', examples('shard list --stats', 'shard locate room-1', 'shard simulate --add shard-4'));

  shard
    .command('list')
    .description('shards with state, weight and ring points; --stats adds rows and bytes per sharded table')
    .option('--stats', 'rows and bytes of every sharded table on every shard', false)
    .option('--exact', 'with --stats: count(*) instead of the planner estimate', false)
    .addHelpText(
      'after',
      examples('shard list', 'shard list --stats', 'shard list --stats --exact --json') +
        '\nWith --stats, a shard that cannot be read is marked in the table, its error goes to stderr, and the exit code is 1.\n',
    )
    .action(
      action(async (ctx, cmd) => {
        const opts = cmd.opts<{ stats: boolean; exact: boolean }>();
        const { config } = await ctx.loadConfig();
        const { listShards } = await import('../../engine/shards/info.js');
        const spin = opts.stats ? await ctx.out.spinner('reading table statistics on every shard') : undefined;
        const { renderShardList, isShardListResult } = await import('../render/shard.js');
        try {
          const result = await listShards(config, opts).finally(() => spin?.stop());
          ctx.out.result(ctx.name, result, renderShardList);
        } catch (err) {
          // A shard that could not be read: the listing still shows (stdout), the error follows on stderr, exit 1.
          ctx.out.partial(err, isShardListResult, renderShardList);
          throw err;
        }
      }),
    );

  shard
    .command('locate')
    .description("the owner shard of each key (a key's string form is PostgreSQL's key::text)")
    .argument('<keys...>', 'keys to locate')
    .addHelpText('after', examples('shard locate room-1 room-42', 'shard locate 42 --json'))
    .action(
      action(async (ctx, cmd) => {
        const { config } = await ctx.loadConfig();
        const { locateKeys } = await import('../../engine/shards/info.js');
        const result = await locateKeys(config, cmd.args);
        const { renderLocate } = await import('../render/shard.js');
        ctx.out.result(ctx.name, result, renderLocate);
      }),
    );

  shard
    .command('ring')
    .description('export the current ring for applications (routing contract of the README)')
    .addOption(new Option('--format <format>', 'output format').choices(['json', 'csv', 'sql']).default('json'))
    .addHelpText(
      'after',
      examples('shard ring --format csv > ring.csv', 'shard ring --format sql | psql "$APP_DATABASE_URL"'),
    )
    .action(
      action(async (ctx, cmd) => {
        const { format } = cmd.opts<{ format: 'json' | 'csv' | 'sql' }>();
        const { config } = await ctx.loadConfig();
        const { exportCurrentRing } = await import('../../engine/shards/info.js');
        const result = await exportCurrentRing(config, format);
        // The export is the result itself: under --json it is wrapped like every other result.
        ctx.out.result(ctx.name, { epoch: result.epoch, format, text: result.text }, (r) => r.text);
      }),
    );

  shard
    .command('simulate')
    .description('what a ring change would move, and how balanced the result is; writes nothing')
    .option('--add <id[:weight]>', 'a shard to add (repeatable)', collectMember, [])
    .option('--remove <id>', 'a shard to remove (repeatable)', collectShardId, [])
    .option('--weight <id=weight>', 'a weight change (repeatable)', collectWeight, [])
    .option('--keys <n>', 'random sample keys', positiveInt('--keys'), 1_000_000)
    .option('--seed <n>', 'seed of the sample keys', positiveInt('--seed'), 1)
    .option('--from-config', "start from the config's shards instead of the metadata store's ring", false)
    .addHelpText(
      'after',
      examples('shard simulate --add shard-4', 'shard simulate --add shard-4:2 --remove shard-0 --keys 200000', 'shard simulate --weight shard-1=0.5 --json'),
    )
    .action(
      action(async (ctx, cmd) => {
        const opts = cmd.opts<{ add: RingMember[]; remove: string[]; weight: RingMember[]; keys: number; seed: number; fromConfig: boolean }>();
        if (!opts.add.length && !opts.remove.length && !opts.weight.length) {
          throw new UsageError('give at least one of --add, --remove, --weight');
        }
        const { config } = await ctx.loadConfig();
        const { simulateChange } = await import('../../engine/shards/info.js');
        const result = await simulateChange(config, { add: opts.add, remove: opts.remove, weights: opts.weight, keys: opts.keys, seed: opts.seed, fromConfig: opts.fromConfig });
        const { renderSimulation } = await import('../render/shard.js');
        ctx.out.result(ctx.name, result, renderSimulation);
      }),
    );

  registerShardMoveCommands(shard);
}
