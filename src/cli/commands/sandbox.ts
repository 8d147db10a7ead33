import path from 'node:path';
import chalk from 'chalk';
import { InvalidArgumentError, type Command } from 'commander';
import type { SandboxComponent, SandboxDownResult, SandboxStatusResult, SandboxUpResult, SandboxView } from '../../sandbox/sandbox.js';
import { action } from '../action.js';
import type { CommandContext } from '../context.js';
import { examples } from '../help.js';

// Literals rather than imports from the engine, so `--help` does not load it.
const DEFAULT_DIR = '.shardctl/sandbox';
const DEFAULT_SHARDS = 4;
const MAX_SHARDS = 64;
// src/config/load.ts's CONFIG_ENV_VAR; not imported, since that module loads zod.
const CONFIG_ENV_VAR = 'SHARDCTL_CONFIG';

export function registerSandboxCommands(program: Command): void {
  const sandbox = program
    .command('sandbox')
    .description('a local embedded PostgreSQL (and Redis when installed) to rehearse on')
    .addHelpText('after', examples('sandbox up --shards 4', 'sandbox status', 'sandbox down --yes'));

  sandbox
    .command('up')
    .description('start the sandbox (or report it running) and write a ready config file in DIR')
    .option('--shards <n>', `shard databases to create (0-${MAX_SHARDS})`, shardCount, DEFAULT_SHARDS)
    .option('--dir <dir>', 'where the config, state and (when reachable) data live', DEFAULT_DIR)
    .addHelpText(
      'after',
      examples('sandbox up --shards 4', 'sandbox up --dir /tmp/rehearsal --json') +
        '\nThe servers keep running after this command exits; `sandbox down` stops them.\nRunning up again reports the running sandbox, or restarts whichever server stopped.\n' +
          'The tables the config lists come from the sandbox\'s own migration set, DIR/migrations (its migrate.dir),\n' +
          'applied to every sandbox shard by up and to a shard added later by `shard add`; `sandbox down` deletes it.\n',
    )
    .action(
      action(async (ctx, cmd) => {
        const opts = cmd.opts<{ shards: number; dir: string }>();
        const { sandboxUp } = await import('../../sandbox/sandbox.js');
        const spin = await ctx.out.spinner(`starting the sandbox in ${opts.dir}`);
        const { actor } = ctx.runInfo();
        const result = await sandboxUp({ dir: opts.dir, shards: opts.shards, actor, onProgress: progressTo(ctx, spin) }).then(
          (r) => (spin.succeed(r.outcome === 'already-running' ? 'sandbox already running' : `sandbox ${r.outcome}`), r),
          (err: unknown) => {
            spin.fail('sandbox up failed');
            throw err;
          },
        );
        ctx.out.result(ctx.name, result, renderUp);
      }),
    );

  sandbox
    .command('status')
    .description('whether the sandbox servers are up, with their ports, pids and URLs')
    .option('--dir <dir>', `the sandbox directory (default: the directory of the -c or $${CONFIG_ENV_VAR} config, else ${DEFAULT_DIR})`)
    .addHelpText('after', examples('sandbox status', 'sandbox status --dir /tmp/rehearsal --json', '-c .shardctl/sandbox/shardctl.config.yaml sandbox status'))
    .action(
      action(async (ctx, cmd) => {
        const dir = sandboxDir(ctx, cmd);
        const { sandboxStatus } = await import('../../sandbox/sandbox.js');
        ctx.out.result(ctx.name, await sandboxStatus({ dir }), renderStatus);
      }),
    );

  sandbox
    .command('down')
    .description('stop the sandbox servers and delete everything the sandbox made (its data too)')
    .option('--dir <dir>', `the sandbox directory (default: the directory of the -c or $${CONFIG_ENV_VAR} config, else ${DEFAULT_DIR})`)
    .addHelpText('after', examples('sandbox down', '--yes sandbox down --dir /tmp/rehearsal', '--yes -c .shardctl/sandbox/shardctl.config.yaml sandbox down'))
    .action(
      action(async (ctx, cmd) => {
        const dir = sandboxDir(ctx, cmd);
        // Asked before anything is looked at: a script behaves the same whether or not a sandbox is there.
        await ctx.out.confirm(`Stop the sandbox and delete ${dir}?`);
        const { sandboxDown } = await import('../../sandbox/sandbox.js');
        const spin = await ctx.out.spinner('stopping the sandbox');
        const result = await sandboxDown({ dir }).finally(() => spin.stop());
        ctx.out.result(ctx.name, result, renderDown);
      }),
    );
}

/**
 * --dir, else the directory of the -c config (`sandbox up` writes its config
 * there), else that of the config $SHARDCTL_CONFIG names (the line `up`
 * prints), else the default. Never the default when a config is named: that
 * would stop some other sandbox than the one the config describes.
 */
function sandboxDir(ctx: CommandContext, cmd: Command): string {
  const { dir } = cmd.opts<{ dir?: string }>();
  if (dir) return dir;
  // An empty variable is unset, as in load.ts.
  const config = ctx.global.config || process.env[CONFIG_ENV_VAR];
  return config ? path.dirname(path.resolve(config)) : DEFAULT_DIR;
}

function shardCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > MAX_SHARDS) {
    throw new InvalidArgumentError(`--shards must be a whole number from 0 to ${MAX_SHARDS}, got "${value}"`);
  }
  return n;
}

/** Engine progress: the spinner's text on a terminal, info lines elsewhere. */
function progressTo(ctx: CommandContext, spin: { update(text: string): void }): (message: string) => void {
  return (message) => (ctx.out.decorated ? spin.update(message) : ctx.out.info(message));
}

function renderUp(r: SandboxUpResult): string {
  const headline = {
    started: chalk.green(`sandbox started in ${displayPath(r.dir)}`),
    restarted: chalk.green(`sandbox restarted in ${displayPath(r.dir)}`),
    'already-running': `sandbox already running in ${displayPath(r.dir)}`,
  }[r.outcome];
  return [
    headline,
    '',
    ...renderView(r),
    `tables    ${tablesLine(r)}`,
    '',
    `config: ${displayPath(r.configPath)}`,
    `next:   ${chalk.bold(r.nextCommand)}`,
    '',
    '# or, for every later command in this shell:',
    r.exportCommand,
  ].join('\n');
}

/** Which sandbox shards the migration set reached, and where the set lives (absolute: it is throwaway, and may be outside any repository). */
function tablesLine(r: SandboxUpResult): string {
  const applied = r.migrations.filter((m) => m.applied.length > 0).map((m) => m.shard);
  const reached = r.migrations.length === 0 ? 'no shards yet' : applied.length ? `applied to ${applied.join(', ')}` : 'every shard up to date';
  return `${reached}; migration set ${r.migrationsDir} ${chalk.dim('(throwaway: `sandbox down` deletes it)')}`;
}

function renderStatus(r: SandboxStatusResult): string {
  if (r.state === 'absent') return `no sandbox in ${displayPath(r.dir)} (start one with: shardctl sandbox up)`;
  const state = { up: chalk.green('up'), partial: chalk.yellow('partly up'), down: chalk.red('down') }[r.state];
  return [
    `sandbox in ${displayPath(r.dir)}: ${state} (started ${r.startedAt})`,
    '',
    ...renderView(r),
    '',
    `config: ${displayPath(r.configPath)}`,
  ].join('\n');
}

function renderDown(r: SandboxDownResult): string {
  if (!r.found) return `no sandbox in ${displayPath(r.dir)}; nothing to do`;
  const lines = r.stopped.map((s) =>
    s.outcome === 'stopped' ? `stopped ${s.name}${s.pid ? ` (pid ${s.pid})` : ''}` : `${s.name} was not running`,
  );
  lines.push(`removed ${r.removed.map(displayPath).join(', ')}`);
  if (r.kept.length) lines.push(chalk.yellow(`kept ${displayPath(r.dir)}: it also holds ${r.kept.map((k) => path.basename(k)).join(', ')}`));
  return lines.join('\n');
}

function renderView(v: SandboxView): string[] {
  const pg = v.components.find((c) => c.name === 'postgres');
  const redis = v.components.find((c) => c.name === 'redis');
  const lines = [`postgres  ${componentLine(pg)}`];
  lines.push(`  ${'metadata'.padEnd(10)} ${v.metadataUrl}`);
  for (const s of v.shards) lines.push(`  ${s.id.padEnd(10)} ${s.url}`);
  lines.push(`  ${'data'.padEnd(10)} ${displayPath(v.dataDir)}`);
  lines.push(`redis     ${componentLine(redis)}${redis?.url ? `  ${redis.url}` : ''}`);
  for (const note of v.notes) lines.push(chalk.yellow(`note: ${note}`));
  return lines;
}

function componentLine(c: SandboxComponent | undefined): string {
  if (!c) return '-';
  const status = c.status === 'up' ? chalk.green('up') : c.status === 'down' ? chalk.red('down') : chalk.yellow('unavailable');
  const where = c.port ? ` 127.0.0.1:${c.port}` : '';
  const pid = c.pid ? ` (pid ${c.pid})` : '';
  const detail = c.detail && c.status !== 'unavailable' ? chalk.dim(` ${c.detail}`) : '';
  return `${status}${where}${pid}${detail}`;
}

function displayPath(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file;
}
