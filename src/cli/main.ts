import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { Command, CommanderError, Option } from 'commander';
import { CheckFailed, ExitCode, HealthNotOk, isShardctlError, ShardctlError } from '../errors.js';
import { redactText } from '../config/redact.js';
import { ProcessExit } from './exit.js';
import { exitCodeForSignal, stoppedBy } from './action.js';

const ISSUES_URL = 'https://github.com/shardctl/shardctl/issues';

type Register = (program: Command) => void;

/**
 * Every top-level command by the name it registers, in the order --help lists them,
 * each loaded only when needed: a run registers the one command it names (its
 * modules, and what they import, are all it loads), --help and anything else
 * (no command, an unknown name, `help …`) every one of them.
 */
const COMMANDS: ReadonlyArray<readonly [string, () => Promise<Register>]> = [
  ['init', async () => (await import('./commands/init.js')).registerInitCommand],
  ['config', async () => (await import('./commands/config.js')).registerConfigCommands],
  ['shard', async () => (await import('./commands/shard.js')).registerShardCommands],
  ['migrate', async () => (await import('./commands/migrate.js')).registerMigrateCommands],
  ['partition', async () => (await import('./commands/partition.js')).registerPartitionCommands],
  ['query', async () => (await import('./commands/query.js')).registerQueryCommand],
  ['exec', async () => (await import('./commands/exec.js')).registerExecCommand],
  ['stream', async () => (await import('./commands/stream.js')).registerStreamCommands],
  ['health', async () => (await import('./commands/health.js')).registerHealthCommand],
  ['audit', async () => (await import('./commands/audit.js')).registerAuditCommand],
  ['sandbox', async () => (await import('./commands/sandbox.js')).registerSandboxCommands],
];

/**
 * The program with every command (`args` omitted), or with only the top-level
 * command `args` names: the first operand after the global options, when it is
 * one of COMMANDS and no --help/-h comes before it. Should that module not
 * register the name after all, every other command is registered too, so
 * parsing ends as it would with all of them.
 */
export async function buildProgram(args?: string[]): Promise<Command> {
  const program = baseProgram();
  const name = args === undefined ? undefined : namedCommand(program, args);
  sizeYoungGeneration(name);
  const only = COMMANDS.find(([n]) => n === name);
  if (only) {
    (await only[1]())(program);
    if (program.commands.some((c) => c.name() === name)) return program;
  }
  const registers = await Promise.all(COMMANDS.filter((c) => c !== only).map(([, load]) => load()));
  for (const register of registers) register(program);
  return program;
}

/**
 * V8 grows the young generation (up to 16 MiB semi-spaces) while what it
 * allocates survives, as while modules load, and a grown one does not shrink.
 * `query` keeps it at its initial 1 MiB semi-spaces: its garbage is
 * short-lived (rows, chunks), and a young generation that grows while rows
 * stream into a slower pipe is memory that grows with the rows (2M rows into
 * `wc -l`: peak RSS 70-72 MiB, as at 200k, against 75-79 MiB). The other
 * commands keep V8's default: pinned, their modules load ~20 ms slower (more
 * scavenges) and a 500k-row `shard add` took ~13% more node CPU. Set before
 * the command's modules load: V8 reads the factor each time it would grow.
 */
function sizeYoungGeneration(command: string | undefined): void {
  if (command === 'query') setFlagsFromString('--semi-space-growth-factor=1');
}

/** The first operand of `args` for `program` (global options and their values skipped); undefined after --help, -h or `--`. */
function namedCommand(program: Command, args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--' || arg === '--help' || arg === '-h') return undefined;
    if (arg.startsWith('-')) {
      const option = program.options.find((o) => o.long === arg.split('=')[0] || o.short === arg);
      if (option && (option.required || option.optional) && !arg.includes('=')) i++;
      continue;
    }
    return arg;
  }
  return undefined;
}

function baseProgram(): Command {
  const program = new Command('shardctl')
    .description('Administer sharded PostgreSQL and the Redis Streams beside it.')
    .version(packageVersion(), '-V, --version')
    .option('-c, --config <path>', 'config file (default: discovered, e.g. ./shardctl.config.yaml)')
    .option('--json', 'print the result as JSON on stdout; logs stay on stderr', false)
    .option('-y, --yes', 'confirm destructive actions without asking', false)
    .option('--no-color', 'no colour (also NO_COLOR, CI, or output that is not a terminal)')
    .option('-q, --quiet', 'only warnings and errors on stderr', false)
    .option('-v, --verbose', 'debug logs on stderr', false)
    .addOption(new Option('--log-format <format>', 'stderr log format').choices(['text', 'json']).default('text'))
    .option('--actor <name>', 'who to record in the audit log (default: OS user@host)')
    .option('--lock-wait <duration>', 'how long a mutating command waits for the metadata lock before exiting 75', '0s')
    .option('--break-stale-lock', 'if the lock holder is stale (no heartbeat for metadata.lockStaleAfter), end its sessions and take over', false)
    .exitOverride()
    .showHelpAfterError("(run with --help for usage)")
    // One prefix for every error, commander's usage errors included.
    .configureOutput({ outputError: (text, write) => write(text.replace(/^error: /, 'shardctl: ')) })
    .addHelpText(
      'after',
      `
Examples:
  $ shardctl sandbox up --shards 4      # a local PostgreSQL to rehearse on
  $ shardctl -c .shardctl/sandbox/shardctl.config.yaml init
  $ shardctl shard list --stats
  $ shardctl shard locate room-1 room-42 --json

Exit codes: 0 ok, 1 failed (also: the metadata lock was lost mid-run), 2 usage/config error, 75 lock held, 130 interrupted (SIGINT), 143 (SIGTERM).`,
    );

  return program;
}

/** The single top-level handler: every error becomes an exit code of SPEC.md. */
export async function main(argv: string[]): Promise<void> {
  const ending = new ProcessExit();
  const program = await buildProgram(argv.slice(2));
  const wantsJson = argv.slice(2).some((a) => a === '--json');
  let code: number = ExitCode.ok;
  // Node exits on its own, with code 0, once nothing is left to wait on. A command still
  // running then is waiting on a promise that can never settle (a connection that closed
  // without an answer): that must never pass for success.
  let settled = false;
  const onStall = () => {
    if (settled) return;
    settled = true;
    const message = 'the run ended without finishing: it was waiting on a database connection that closed without an answer (this is a bug; please report it). Whatever it journaled is consistent: run the command again, or `shard resume` for a move';
    process.stderr.write(`shardctl: ${message}\n`);
    if (wantsJson) printJsonError(commandNameOf(program, argv.slice(2)), 'internal', message, ExitCode.failed, []);
    process.exit(ExitCode.failed);
  };
  process.once('beforeExit', onStall);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    code = reportError(err, wantsJson, commandNameOf(program, argv.slice(2)));
  }
  settled = true;
  if (code === ExitCode.interrupted) code = exitCodeForSignal(stoppedBy());
  // Leave even if a driver left a socket open, once the result has reached the reader.
  process.exitCode = code;
  await ending.exit(code);
}

/**
 * "shard add", for the --json error envelope: the subcommands named on the
 * command line (options and their values skipped), even when parsing failed
 * before any action ran.
 */
export function commandNameOf(program: Command, args: string[]): string {
  const names: string[] = [];
  let current: Command = program;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') break;
    if (arg.startsWith('-')) {
      const option = [...current.options, ...program.options].find((o) => o.long === arg.split('=')[0] || o.short === arg);
      if (option && (option.required || option.optional) && !arg.includes('=')) i++;
      continue;
    }
    const sub = current.commands.find((c) => c.name() === arg || c.aliases().includes(arg));
    if (!sub) break;
    names.push(sub.name());
    current = sub;
  }
  return names.join(' ');
}

function reportError(err: unknown, json: boolean, command: string): number {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
      return ExitCode.ok;
    }
    // commander already printed the message and the --help hint on stderr.
    if (json) printJsonError(command, 'usage', err.message.replace(/^error: /, ''), ExitCode.usage, []);
    return ExitCode.usage;
  }
  if (isShardctlError(err)) {
    // A health status other than OK is the report's own verdict: its result document says it all.
    if (!(err instanceof HealthNotOk)) printHumanError(err.message, err.details);
    // A failed check has already printed its report as the result document.
    if (json && !(err instanceof CheckFailed) && !(err instanceof HealthNotOk)) printJsonError(command, err.kind, err.message, err.exitCode, err.details, extraFields(err));
    return err.exitCode;
  }
  const message = redactText(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.stderr.write(`shardctl: internal error (this is a bug; please report it at ${ISSUES_URL}):\n${message}\n`);
  if (json) printJsonError(command, 'internal', redactText(err instanceof Error ? err.message : String(err)), ExitCode.failed, []);
  return ExitCode.failed;
}

function printHumanError(message: string, details: string[]): void {
  process.stderr.write(`shardctl: ${redactText(message)}\n`);
  for (const line of details) process.stderr.write(`  - ${redactText(line)}\n`);
}

function printJsonError(
  command: string,
  kind: string,
  message: string,
  exitCode: number,
  details: string[],
  extra: Record<string, unknown> = {},
): void {
  const error = { kind, message: redactText(message), exitCode, details: details.map(redactText), ...extra };
  process.stdout.write(JSON.stringify({ ok: false, command, error }, null, 2) + '\n');
}

function extraFields(err: ShardctlError): Record<string, unknown> {
  const extra: Record<string, unknown> = {};
  if ('holder' in err && err.holder !== undefined) extra.holder = err.holder;
  if (err.data !== undefined) extra.data = err.data;
  return extra;
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    return pkg.version;
  } catch {
    return '0.0.0';
  }
}
