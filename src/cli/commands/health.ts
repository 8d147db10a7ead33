import { InvalidArgumentError, type Command } from 'commander';
import { HEALTH_CHECKS, HEALTH_GROUPS, type HealthGroup } from '../../core/health-checks.js';
import { exitCodeOfStatus } from '../../core/thresholds.js';
import { HealthNotOk, HealthUnknown, isShardctlError, UsageError } from '../../errors.js';
import { action } from '../action.js';
import type { CommandContext } from '../context.js';
import { examples } from '../help.js';

type HealthFormat = 'table' | 'json' | 'prometheus' | 'nagios';

interface HealthFlags {
  timeout?: string;
  only?: HealthGroup[];
  shard?: string[];
  check?: string;
  format?: HealthFormat;
  output?: string;
  watch?: number;
  serve?: string;
  record: boolean;
  history: boolean;
  since: string;
}

const FORMATS: HealthFormat[] = ['table', 'json', 'prometheus', 'nagios'];

/** health: one command for shards, sharding, partitions and streams; exit code = the worst status. */
export function registerHealthCommand(program: Command): void {
  program
    .command('health')
    .description('check shards, sharding, partitions and streams against thresholds; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN')
    .option('--timeout <duration>', 'per-run deadline: a server that has not answered by then is CRITICAL (default health.timeout)')
    .option('--only <groups>', `only these groups, comma-separated: ${HEALTH_GROUPS.join(', ')}`, groupList)
    .option('--shard <id...>', 'only these shards (and the metadata database)')
    .option('--check <name>', 'one check (names: README, or the JSON output)')
    .option('--format <format>', `output: ${FORMATS.join(', ')} (--json = json)`, formatOf)
    .option('--output <file>', 'write the result to FILE atomically (temp file + rename: for the node_exporter textfile collector)')
    .option('--watch <seconds>', 'refresh every SECONDS on a terminal until Ctrl-C', positiveNumber('--watch'))
    .option('--serve <host:port>', 'serve /metrics (Prometheus) and /healthz; binds 127.0.0.1 unless a host is given')
    .option('--record', 'store this run\'s results in the metadata database (pruned after health.retention)', false)
    .option('--history', 'show the recorded trend per check instead of checking', false)
    .option('--since <duration>', 'with --history: how far back', '24h')
    .addHelpText(
      'after',
      examples(
        'health',
        'health --only shards --timeout 2s',
        'health --check longest_transaction --shard shard-2',
        'health --format nagios',
        'health --format prometheus --output /var/lib/node_exporter/textfile/shardctl.prom --record',
        'health --serve 127.0.0.1:9187',
        'health --history --since 7d',
      ) + '\nExit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also: a config error), the worst over all checks.\n',
    )
    .action(
      action(async (ctx, cmd) => {
        const flags = cmd.opts<HealthFlags>();
        try {
          await health(ctx, flags);
        } catch (err) {
          if (err instanceof HealthNotOk || !isShardctlError(err) || (err.exitCode !== 1 && err.exitCode !== 2)) throw err;
          // A usage or config error, or a failure before any check (the --serve port taken), means
          // nothing could be checked: UNKNOWN, as a Nagios plugin says it (1 would read as WARNING).
          if ((flags.format ?? (ctx.global.json ? 'json' : 'table')) === 'nagios') ctx.out.writeStdout(`SHARDCTL HEALTH UNKNOWN - ${oneLine(err.message)}\n`);
          throw new HealthUnknown(err);
        }
      }),
    );
}

async function health(ctx: CommandContext, flags: HealthFlags): Promise<void> {
  const format: HealthFormat = flags.format ?? (ctx.global.json ? 'json' : 'table');
  if (flags.watch !== undefined && flags.serve) throw new UsageError('--watch and --serve do not go together');
  if (flags.history && (flags.serve || flags.watch !== undefined || flags.record)) throw new UsageError('--history only reads; it does not go with --serve, --watch or --record');
  if (flags.check && !HEALTH_CHECKS.some((c) => c.name === flags.check)) {
    throw new UsageError(`unknown check "${flags.check}"`, { details: [`known checks: ${HEALTH_CHECKS.map((c) => c.name).join(', ')}`] });
  }
  const { parseDuration } = await import('../../config/duration.js');
  const timeoutMs = flags.timeout === undefined ? undefined : durationFlag('--timeout', flags.timeout, parseDuration);
  const { config } = await ctx.loadConfig();
  const { runHealth, configuredThresholds } = await import('../../engine/health/run.js');
  configuredThresholds(config);

  if (flags.history) {
    const { showHistory } = await import('./health-history.js');
    return showHistory(ctx, config, { sinceMs: durationFlag('--since', flags.since, parseDuration), check: flags.check });
  }
  const options = { timeoutMs, only: flags.only, shards: flags.shard, check: flags.check, signal: ctx.signal };
  const { renderReport } = await import('./health-output.js');

  if (flags.serve) {
    const { serveHealth } = await import('../../engine/health/serve.js');
    const { renderPrometheus } = await import('../render/health-prometheus.js');
    const { host, port } = hostPort(flags.serve);
    const server = await serveHealth({
      host,
      port,
      signal: ctx.signal,
      run: () => runHealth(config, { ...options, signal: undefined }),
      render: renderPrometheus,
      log: (level, message) => (level === 'debug' ? ctx.out.debug(message) : level === 'info' ? ctx.out.info(message) : ctx.out.warn(message)),
    });
    await server.closed;
    return;
  }

  if (flags.watch !== undefined) {
    if (!process.stdout.isTTY) throw new UsageError('--watch refreshes a terminal; without one, run health from cron (or --serve)');
    while (!ctx.signal.aborted) {
      const report = await runHealth(config, options);
      process.stdout.write('\x1b[2J\x1b[H' + (await renderReport(ctx, report, format)) + `\n(every ${flags.watch}s; Ctrl-C to stop)\n`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, flags.watch! * 1000);
        ctx.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
      });
    }
    return;
  }

  // The sessions close while the report is rendered and written (33 of them for 32 shards: ~60 ms).
  let closing: Promise<void> | undefined;
  const report = await runHealth(config, { ...options, deferClose: (c) => (closing = c) });
  if (flags.record) {
    const { recordReport } = await import('./health-history.js');
    await recordReport(ctx, config, report);
  }
  const text = await renderReport(ctx, report, format);
  if (flags.output) {
    const { writeFileAtomic } = await import('../atomic-file.js');
    await writeFileAtomic(flags.output, text.endsWith('\n') ? text : text + '\n');
  } else {
    ctx.out.writeStdout(text.endsWith('\n') ? text : text + '\n');
  }
  await closing;
  const code = exitCodeOfStatus(report.status);
  if (code !== 0) throw new HealthNotOk(code, `health ${report.status.toUpperCase()}`);
}

function groupList(value: string): HealthGroup[] {
  const groups = value.split(',').map((g) => g.trim()).filter(Boolean);
  const bad = groups.filter((g) => !HEALTH_GROUPS.includes(g as HealthGroup));
  if (bad.length || !groups.length) throw new InvalidArgumentError(`--only takes ${HEALTH_GROUPS.join(', ')} (comma-separated), got "${value}"`);
  return groups as HealthGroup[];
}

function formatOf(value: string): HealthFormat {
  if (!FORMATS.includes(value as HealthFormat)) throw new InvalidArgumentError(`--format takes ${FORMATS.join(', ')}, got "${value}"`);
  return value as HealthFormat;
}

function positiveNumber(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number of seconds, got "${value}"`);
    return n;
  };
}

function durationFlag(name: string, value: string, parse: (v: string) => number): number {
  try {
    const ms = parse(value);
    if (ms <= 0) throw new Error('must be positive');
    return ms;
  } catch (err) {
    throw new UsageError(`${name}: ${(err as Error).message}`);
  }
}

/** "127.0.0.1:9187", ":9187" or "9187" (127.0.0.1), "[::1]:9187", "0.0.0.0:9187". */
export function hostPort(value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*))?:?(\d+)$/.exec(value.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--serve takes HOST:PORT (e.g. 127.0.0.1:9187), got "${value}"`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
