import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { action, positiveInt } from '../action.js';
import { examples } from '../help.js';

export function registerAuditCommand(program: Command): void {
  program
    .command('audit')
    .description('who ran which mutating command, when, and how it ended')
    .option('-n, --limit <n>', 'newest N entries', positiveInt('--limit'), 50)
    .option('--command <name>', 'only this command (e.g. "init", "shard")')
    .option('--since <duration>', 'only entries newer than this (e.g. 24h, 7d)')
    .addHelpText('after', examples('audit', 'audit --since 24h --command init', 'audit -n 10 --json'))
    .action(
      action(async (ctx, cmd) => {
        const opts = cmd.opts<{ limit: number; command?: string; since?: string }>();
        let since: Date | undefined;
        if (opts.since) {
          const { parseDuration } = await import('../../config/duration.js');
          try {
            since = new Date(Date.now() - parseDuration(opts.since));
          } catch (err) {
            throw new UsageError(`--since: ${(err as Error).message}`);
          }
        }
        const { config } = await ctx.loadConfig();
        const { listAudit } = await import('../../engine/audit.js');
        const entries = await listAudit(config, { limit: opts.limit, ...(opts.command ? { command: opts.command } : {}), ...(since ? { since } : {}) });
        const { renderAudit } = await import('../render/audit.js');
        ctx.out.result(ctx.name, { entries }, renderAudit);
      }),
    );
}
