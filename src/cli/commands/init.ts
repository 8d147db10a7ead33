import type { Command } from 'commander';
import { action } from '../action.js';
import { examples } from '../help.js';

export function registerInitCommand(program: Command): void {
  program
    .command('init')
    .description('create or upgrade the metadata schema, register the config\'s shards, install shardctl.route_hash() everywhere, publish the ring')
    .addHelpText(
      'after',
      examples('-c shardctl.config.yaml init', 'init --json --lock-wait 30s') +
        '\nRunning init again changes nothing. Shards added to the config later are registered as pending;\n`shard add` moves their ranges to them.\n',
    )
    .action(
      action(async (ctx) => {
        const { config } = await ctx.loadConfig();
        const run = ctx.runInfo();
        const { init } = await import('../../engine/init.js');
        const spin = await ctx.out.spinner('initialising the metadata store and shards');
        const result = await init(config, run).then(
          (r) => (spin.succeed('initialised'), r),
          (e) => {
            spin.fail('init failed');
            throw e;
          },
        );
        for (const w of result.warnings) ctx.out.warn(w);
        const { renderInit } = await import('../render/init.js');
        ctx.out.result(ctx.name, result, renderInit);
      }),
    );
}
