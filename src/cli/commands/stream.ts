import type { Command } from 'commander';
import { action, positiveInt } from '../action.js';
import { examples } from '../help.js';

/** stream info / trim: Redis Streams by the config's policies, standalone or Cluster. */
export function registerStreamCommands(program: Command): void {
  const stream = program
    .command('stream')
    .description('Redis Streams: length, groups, lag; consumer-group-safe trimming by policy')
    .addHelpText('after', examples('stream info "messages:*"', 'stream trim --dry-run', 'stream trim'));

  stream
    .command('info')
    .argument('[pattern]', 'a SCAN MATCH pattern (default: every stream)')
    .description('per stream: length, first/last ids and age, memory, groups with consumers, pending, lag, oldest pending')
    .addHelpText('after', examples('stream info', 'stream info "messages:*" --json'))
    .action(
      action(async (ctx, cmd) => {
        const { config } = await ctx.loadConfig();
        const { streamInfoReport } = await import('../../engine/streams/info.js');
        const { renderStreamInfo } = await import('../render/stream.js');
        const report = await streamInfoReport(config, cmd.args[0] ? { pattern: cmd.args[0] } : {});
        ctx.out.result(ctx.name, report, renderStreamInfo);
      }),
    );

  stream
    .command('trim')
    .description('trim every stream a policy matches to min(policy cut-off, safe floor): nothing pending or undelivered for a group goes')
    .option('--dry-run', 'report what would go, trim nothing', false)
    .option('--force', 'trim to the policy even where a consumer group still needs the entries (asks first; --yes without a terminal)', false)
    .option('--match <pattern>', 'only streams matching this SCAN pattern (still under their policy)')
    .option('--concurrency <n>', 'streams in flight at once, in scripts of up to 100 (default 1000)', positiveInt('--concurrency'))
    .addHelpText(
      'after',
      examples('stream trim --dry-run', 'stream trim', 'stream trim --match "messages:{room-42}" --json', '--yes stream trim --force --match "messages:archival"') +
        '\nExit codes: 0 done, 1 a stream or a Redis node failed (named), 2 usage, 75 another run holds the lock.\n',
    )
    .action(
      action(async (ctx, cmd) => {
        const opts = cmd.opts<{ dryRun: boolean; force: boolean; match?: string; concurrency?: number }>();
        if (opts.force && !opts.dryRun) await ctx.out.confirm('--force trims entries that consumer groups have not acknowledged or not yet been delivered.');
        const { config } = await ctx.loadConfig();
        const { streamTrim } = await import('../../engine/streams/trim.js');
        // --json renders no table: the renderer (and cli-table3 under it) loads only for text.
        const renderer = () => import('../render/stream.js');
        try {
          const report = await streamTrim(config, ctx.runInfo(), {
            dryRun: opts.dryRun,
            force: opts.force,
            ...(opts.match ? { match: opts.match } : {}),
            ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
          });
          if (ctx.global.json) ctx.out.result(ctx.name, report, () => '');
          else ctx.out.result(ctx.name, report, (await renderer()).renderTrim);
        } catch (err) {
          if (!ctx.global.json) {
            const { renderTrim, isTrimReport } = await renderer();
            ctx.out.partial(err, isTrimReport, renderTrim);
          }
          throw err;
        }
      }),
    );
}
