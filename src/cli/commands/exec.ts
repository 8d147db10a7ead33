import { InvalidArgumentError, type Command } from 'commander';
import { action, positiveInt } from '../action.js';
import { redactCommandLine } from '../context.js';
import { collectShardId, durationFlag } from '../flags.js';
import { examples } from '../help.js';
import { readSql } from '../sql-source.js';

const collect = (value: string, previous: string[]) => [...previous, value];

function retriesFlag(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 10) throw new InvalidArgumentError(`--lock-retries must be a whole number from 0 to 10, got "${value}"`);
  return n;
}

interface ExecFlags {
  file?: string;
  param: string[];
  shard: string[];
  key: string[];
  dryRun: boolean;
  parallel?: number;
  lockTimeout?: number;
  lockRetries?: number;
  timeout?: number;
  transaction: boolean;
}

const HELP = `
exec does not route rows: an INSERT lands on the shard it runs on, whatever its key. A statement
that writes a row where the ring does not place it (an INSERT on every shard, an UPDATE of a
shard-key column) leaves it misplaced; \`shardctl shard verify\` finds such rows.

Each shard runs the SQL in a transaction of its own with lock_timeout (--lock-timeout, default
migrate.lockTimeout; retried --lock-retries times), so DDL never queues behind a long transaction
while blocking the application. A shard that fails rolls back alone; the others commit. Several
statements without --param run in that one transaction. VACUUM, CREATE INDEX CONCURRENTLY and the
like need --no-transaction (one statement, autocommit). No statement_timeout unless --timeout.
The audit log records the statement (passwords redacted) and how many parameters, not their values.
${examples(
  "exec 'ANALYZE public.messages'",
  "exec 'UPDATE public.messages SET body = $1 WHERE id = $2' --param '[removed]' --param 1042",
  "exec --key room-42 'DELETE FROM public.messages WHERE room_id = $1' --param room-42",
  "exec --dry-run -f fix.sql",
  "exec --no-transaction 'CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_at ON public.messages (created_at)'",
  "--yes --json exec 'VACUUM (ANALYZE) public.messages' --no-transaction",
)}
Exit codes: 0 committed on every shard, 1 a shard failed (the others committed), 2 usage (nothing ran),
75 another run holds the lock (nothing ran).
`;

/** exec [SQL]: a statement that may write, on every shard or the selected ones. */
export function registerExecCommand(program: Command): void {
  program
    .command('exec')
    .argument('[sql]', 'the statement (or -f FILE, or stdin)')
    .description('run a statement that may write (DML, DDL) on every shard, each in its own transaction, with a per-shard report')
    .option('-f, --file <path>', 'read the SQL from this file')
    .option('--param <value>', 'bind $1, $2, … in order (repeatable); values are sent apart from the SQL, never pasted in', collect, [])
    .option('--shard <id>', 'only this shard (repeatable)', collectShardId, [])
    .option('--key <key>', 'only the shard that owns this key by the current ring (repeatable)', collect, [])
    .option('--dry-run', 'take no lock and run nothing: show where it would run', false)
    .option('--parallel <n>', 'shards at once (default migrate.parallel)', positiveInt('--parallel'))
    .option('--lock-timeout <duration>', 'lock_timeout on each shard (default migrate.lockTimeout)', durationFlag)
    .option('--lock-retries <n>', 'extra attempts of a shard that gave up on a lock (default 2; not with --no-transaction)', retriesFlag)
    .option('--timeout <duration>', 'statement_timeout on each shard (default: none)', durationFlag)
    .option('--no-transaction', 'run outside a transaction (autocommit), for VACUUM, CREATE INDEX CONCURRENTLY and the like; one statement')
    .addHelpText('after', HELP)
    .action(
      action(async (ctx, cmd) => {
        const opts = cmd.opts<ExecFlags>();
        const { sql, source } = await readSql(cmd.args[0], opts.file);
        const { config } = await ctx.loadConfig();
        const { execOnShards } = await import('../../engine/query/exec.js');
        const { maskedArguments } = await import('../../engine/query/exec-text.js');
        const { renderExec, isExecResult } = await import('../render/exec.js');
        const run = { ...ctx.runInfo(), commandLine: redactCommandLine(maskedArguments(process.argv.slice(2))) };
        try {
          const result = await execOnShards(config, run, {
            sql,
            params: opts.param,
            ...(opts.shard.length ? { shards: opts.shard } : {}),
            ...(opts.key.length ? { keys: opts.key } : {}),
            dryRun: opts.dryRun,
            transaction: opts.transaction,
            ...(opts.parallel ? { parallel: opts.parallel } : {}),
            ...(opts.lockTimeout !== undefined ? { lockTimeoutMs: opts.lockTimeout } : {}),
            ...(opts.lockRetries !== undefined ? { lockRetries: opts.lockRetries } : {}),
            ...(opts.timeout !== undefined ? { timeoutMs: opts.timeout } : {}),
            signal: ctx.signal,
            confirm: async (plan) => {
              const statement = plan.statement.replace(/\s+/g, ' ');
              const shown = statement.length > 200 ? `${statement.slice(0, 200)}…` : statement;
              await ctx.out.confirm(`Run "${shown}" on ${plan.shards.length} shard(s) (${plan.shards.map((s) => s.shard).join(', ')})${source === 'argument' ? '' : ` from ${source}`}?`);
            },
          });
          ctx.out.result(ctx.name, result, renderExec);
        } catch (err) {
          ctx.out.partial(err, isExecResult, renderExec);
          throw err;
        }
      }),
    );
}
