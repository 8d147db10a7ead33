import path from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { SHARD_ID_PATTERN } from '../../config/patterns.js';
import { UsageError } from '../../errors.js';
import { action, positiveInt } from '../action.js';
import type { CommandContext } from '../context.js';
import { examples } from '../help.js';

interface SelectionFlags {
  dir?: string;
  targets?: 'shards' | 'metadata' | 'all';
  shard: string[];
}

export function registerMigrateCommands(program: Command): void {
  const migrate = program
    .command('migrate')
    .description('one SQL migration set applied to every shard: tracked, locked, checksummed, in parallel')
    .addHelpText('after', examples('migrate create add_users', 'migrate validate', 'migrate up --parallel 8', 'migrate status --check'));

  withSelection(migrate.command('up'))
    .description('apply pending files to every target (in parallel; each file in its own transaction)')
    .option('--parallel <n>', 'targets migrated at once (default: migrate.parallel)', positiveInt('--parallel'))
    .option('--continue-on-error', 'keep migrating other targets after one fails', false)
    .option('--dry-run', 'print, per target, the files that would be applied; change nothing', false)
    .option('--allow-changed', 'proceed even if applied files changed or disappeared', false)
    .option('--lock-timeout <duration>', 'lock_timeout of every statement (default: migrate.lockTimeout)')
    .addHelpText(
      'after',
      examples('migrate up', 'migrate up --dry-run', 'migrate up --shard shard-3 --shard shard-4', 'migrate up --json --lock-wait 5m --parallel 8') +
        '\nA failing file rolls back on its target; by default no new target is started after a failure\n(--continue-on-error keeps going). Exit 1 when any target failed, 75 when all were locked.\n',
    )
    .action(
      action(async (ctx, cmd) => {
        const opts = cmd.opts<SelectionFlags & { parallel?: number; continueOnError: boolean; dryRun: boolean; allowChanged: boolean; lockTimeout?: string }>();
        const { config, dir, selection } = await loadSelection(ctx, opts);
        const { migrateUp } = await import('../../engine/migrate/migrate.js');
        const { parseDuration } = await import('../../config/duration.js');
        const run = ctx.runInfo();
        const render = await import('../render/migrate.js');
        try {
          const result = await migrateUp(config, run, {
            ...selection,
            dir,
            continueOnError: opts.continueOnError,
            dryRun: opts.dryRun,
            allowChanged: opts.allowChanged,
            ...(opts.parallel ? { parallel: opts.parallel } : {}),
            ...(opts.lockTimeout ? { lockTimeoutMs: parseDurationFlag('--lock-timeout', opts.lockTimeout, parseDuration) } : {}),
            onEvent: (e) => {
              if (e.type === 'file-applied') ctx.out.info(`${e.target}: applied ${e.file}`, { ms: e.durationMs });
              else if (e.type === 'target-done') ctx.out.debug(`${e.target}: ${e.status}`);
            },
          });
          ctx.out.result(ctx.name, result, render.renderMigrateUp);
        } catch (err) {
          // A partial run still shows its per-target table (the error itself follows on stderr).
          const data = (err as { data?: unknown }).data;
          if (!ctx.global.json && render.isMigrateUpResult(data)) ctx.out.writeStdout(render.renderMigrateUp(data) + '\n');
          throw err;
        }
      }),
    );

  withSelection(migrate.command('status'))
    .description('a matrix of targets × versions: applied, pending, failed, changed, missing')
    .option('--check', 'exit 1 when anything is pending, failed, changed or missing (a CI gate)', false)
    .addHelpText('after', examples('migrate status', 'migrate status --check', 'migrate status --json'))
    .action(
      action(async (ctx, cmd) => {
        const opts = cmd.opts<SelectionFlags & { check: boolean }>();
        const { config, dir, selection } = await loadSelection(ctx, opts);
        const { migrateStatus } = await import('../../engine/migrate/migrate.js');
        const status = await migrateStatus(config, { ...selection, dir });
        const { renderStatus } = await import('../render/migrate.js');
        ctx.out.result(ctx.name, status, renderStatus);
        if (opts.check && !status.clean) {
          const { CheckFailed } = await import('../../errors.js');
          throw new CheckFailed('migrate status --check: not every target is up to date');
        }
      }),
    );

  withSelection(migrate.command('validate'))
    .description('refuse (exit 1) when an applied file changed or disappeared, naming file and target')
    .addHelpText('after', examples('migrate validate', 'migrate validate --targets all --json'))
    .action(
      action(async (ctx, cmd) => {
        const opts = cmd.opts<SelectionFlags>();
        const { config, dir, selection } = await loadSelection(ctx, opts);
        const { migrateValidate } = await import('../../engine/migrate/migrate.js');
        const status = await migrateValidate(config, { ...selection, dir });
        ctx.out.result(ctx.name, status, (s) => `${s.files.length} files match what ${s.targets.length} target(s) applied`);
      }),
    );

  migrate
    .command('create')
    .description('create the next migration file')
    .argument('<name>', 'what it does, e.g. add_users_email_index')
    .option('--dir <dir>', 'migration directory (default: migrate.dir, relative to the config file)')
    .option('--no-transaction', 'for CREATE INDEX CONCURRENTLY and the like: run statement by statement, outside a transaction')
    .option('--timestamp', 'a UTC timestamp version instead of the next number', false)
    .addHelpText('after', examples('migrate create add_users', 'migrate create add_email_index --no-transaction'))
    .action(
      action(async (ctx, cmd) => {
        const opts = cmd.opts<{ dir?: string; transaction: boolean; timestamp: boolean }>();
        const dir = await migrationDir(ctx, opts.dir);
        const { migrateCreate } = await import('../../engine/migrate/create.js');
        const created = await migrateCreate(dir, cmd.args[0]!, { noTransaction: !opts.transaction, timestamp: opts.timestamp });
        const notes = await whereTheFileGoes(created.path);
        for (const note of notes) ctx.out.warn(note);
        // The absolute path: the file may be somewhere no one looks (a sandbox's folder, an ignored one).
        ctx.out.result(ctx.name, { ...created, notes }, (c) => `created ${c.path}`);
      }),
    );
}

/**
 * What the author of a new file should know about where it went: into a
 * sandbox's throwaway set (`sandbox down` deletes it), or into a folder git
 * ignores (it would never be committed). Said, never refused: both can be
 * what the author wants.
 */
async function whereTheFileGoes(file: string): Promise<string[]> {
  const { sandboxOfMigrationsDir } = await import('../../sandbox/state.js');
  if (await sandboxOfMigrationsDir(path.dirname(file))) {
    // Its default place, .shardctl/, is git-ignored too; this says what matters more.
    return [
      `${path.dirname(file)} is the sandbox's migration set: \`shardctl sandbox down\` deletes it; copy the file into your project's migrate.dir to keep it`,
    ];
  }
  if (await ignoredByGit(file)) {
    return [`${file} is ignored by git (\`git check-ignore -v ${file}\` says which rule): it will not be committed`];
  }
  return [];
}

/** `git check-ignore` exits 0 for an ignored path, 1 for one that is not, 128 outside a repository; no git at all is "not ignored". */
async function ignoredByGit(file: string): Promise<boolean> {
  const { execFile } = await import('node:child_process');
  return new Promise((resolve) => {
    execFile('git', ['check-ignore', '-q', '--', file], { cwd: path.dirname(file), timeout: 5_000 }, (err) => resolve(err === null));
  });
}

function withSelection(cmd: Command): Command {
  return cmd
    .option('--dir <dir>', 'migration directory (default: migrate.dir, relative to the config file)')
    .addOption(new Option('--targets <which>', 'which databases (default: migrate.targets)').choices(['shards', 'metadata', 'all']))
    .option('--shard <id>', 'only this shard (repeatable)', (v: string, prev: string[]) => {
      if (!SHARD_ID_PATTERN.test(v)) throw new InvalidArgumentError(`"${v}" is not a shard id`);
      return [...prev, v];
    }, []);
}

/** --dir is relative to the working directory; migrate.dir to the config file, so cron can run from anywhere. */
async function migrationDir(ctx: CommandContext, flag: string | undefined): Promise<string> {
  if (flag) return path.resolve(flag);
  const { config, filepath } = await ctx.loadConfig();
  return path.resolve(path.dirname(filepath), config.migrate.dir);
}

async function loadSelection(ctx: CommandContext, opts: SelectionFlags) {
  const { config } = await ctx.loadConfig();
  const dir = await migrationDir(ctx, opts.dir);
  const selection = { ...(opts.targets ? { targets: opts.targets } : {}), ...(opts.shard.length ? { shards: opts.shard } : {}) };
  return { config, dir, selection };
}

function parseDurationFlag(flag: string, text: string, parse: (t: string) => number): number {
  try {
    return parse(text);
  } catch (err) {
    throw new UsageError(`${flag}: ${(err as Error).message}`);
  }
}
