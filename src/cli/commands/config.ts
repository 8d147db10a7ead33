import chalk from 'chalk';
import type { Command } from 'commander';
import { action } from '../action.js';
import { examples } from '../help.js';

export function registerConfigCommands(program: Command): void {
  const config = program
    .command('config')
    .description('the effective configuration')
    .addHelpText('after', examples('config show', 'config validate'));

  config
    .command('show')
    .description('print the effective config (defaults filled in, ${VAR} expanded) with passwords redacted')
    .addHelpText('after', examples('config show', '-c prod.yaml config show --json'))
    .action(
      action(async (ctx) => {
        const { config: cfg, filepath } = await ctx.loadConfig();
        const { redactDeep } = await import('../../config/redact.js');
        const { effectiveConfig } = await import('../../config/effective.js');
        const { stringify } = await import('yaml');
        const shown = redactDeep(effectiveConfig(cfg));
        ctx.out.result(ctx.name, { file: filepath, config: shown }, (r) => `# ${r.file}\n${stringify(r.config)}`);
      }),
    );

  config
    .command('validate')
    .description('check the config file; exit 2 listing every problem')
    .addHelpText('after', examples('config validate', '-c prod.yaml config validate --json'))
    .action(
      action(async (ctx) => {
        const { config: cfg, filepath } = await ctx.loadConfig();
        ctx.out.result(ctx.name, { file: filepath, valid: true, shards: cfg.shards.length }, (r) => `${r.file}: ${chalk.green('valid')} (${r.shards} shards)`);
      }),
    );
}
