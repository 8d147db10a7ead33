import { InvalidArgumentError, type Command } from 'commander';
import { parseMergeOrder, type MergeKey } from '../../core/merge-order.js';
import { CheckFailed, ExitCode, InterruptedError, isShardctlError, UsageError } from '../../errors.js';
import { action, positiveInt } from '../action.js';
import type { CommandContext } from '../context.js';
import { collectShardId, durationFlag } from '../flags.js';
import { examples } from '../help.js';
import { readSql } from '../sql-source.js';

type QueryFormat = 'table' | 'json' | 'ndjson' | 'csv';
const FORMATS: QueryFormat[] = ['table', 'json', 'ndjson', 'csv'];

interface QueryFlags {
  file?: string;
  param: string[];
  shard: string[];
  key: string[];
  timeout?: number;
  parallel?: number;
  mergeOrder?: MergeKey[];
  limit?: number;
  format?: QueryFormat;
}

const collect = (value: string, previous: string[]) => [...previous, value];

const HELP = `
Each shard runs the statement in a READ ONLY transaction (a write fails with SQLSTATE 25006 and
writes nothing), one statement per run, values bound apart from the SQL (--param), with TimeZone
UTC and DateStyle ISO. Rows stream through a cursor per shard as they arrive; --merge-order
merges shards whose rows are each already in that order into one ordered stream (text keys
compare by code point: ORDER BY them COLLATE "C" on the shards). A shard that fails or times out
is reported on stderr (and in --json) while the others' rows still come.
${examples(
  "query 'SELECT count(*) FROM public.messages'",
  "query --key room-42 'SELECT * FROM public.messages WHERE room_id = $1' --param room-42",
  "query --merge-order created_at:desc --limit 50 \\\n      'SELECT id, room_id, created_at FROM public.messages WHERE body ILIKE $1 ORDER BY created_at DESC LIMIT 50' --param '%outage%'",
  "query -f report.sql --format csv > report.csv",
  "query --format ndjson - < export.sql | jq -c .",
)}
Exit codes: 0 every shard answered, 1 a shard failed or timed out (the others' rows were written),
2 usage or configuration error (nothing ran), 130 interrupted.
`;

/** query [SQL]: a read-only statement on every shard (or the selected ones), one merged result. */
export function registerQueryCommand(program: Command): void {
  program
    .command('query')
    .argument('[sql]', 'the statement ("-" or none with piped stdin: read it from stdin)')
    .description('run a read-only statement on every shard in parallel; one merged result with a leading shard column')
    .option('-f, --file <path>', 'read the SQL from this file')
    .option('--param <value>', 'bind $1, $2, … in order (repeatable); values are sent apart from the SQL, never pasted in', collect, [])
    .option('--shard <id>', 'only this shard (repeatable)', collectShardId, [])
    .option('--key <key>', 'only the shard that owns this key by the current ring (repeatable)', collect, [])
    .option('--timeout <duration>', "each shard's time, from its turn: connect, statement and streaming (default health.timeout)", positiveDuration)
    .option('--parallel <n>', 'shards read at once (default 8; with --merge-order every shard stays open, N bounds how many start at once)', positiveInt('--parallel'))
    .option('--merge-order <cols>', 'COL[:desc],…: merge shards whose rows are each ordered by these result columns into one ordered stream', mergeOrderFlag)
    .option('--limit <n>', 'stop every shard once N rows are out', positiveInt('--limit'))
    .option('--format <format>', `output: ${FORMATS.join(', ')} (--json = json; default table)`, formatFlag)
    .addHelpText('after', HELP)
    .action(action(async (ctx, cmd) => query(ctx, cmd.args[0], cmd.opts<QueryFlags>())));
}

async function query(ctx: CommandContext, argument: string | undefined, flags: QueryFlags): Promise<void> {
  const format: QueryFormat = flags.format ?? (ctx.global.json ? 'json' : 'table');
  const { sql } = await readSql(argument, flags.file);
  if (!sql.trim()) throw new UsageError('the SQL is empty');
  const { config } = await ctx.loadConfig();
  const [{ runQuery }, { createQueryWriter }, { failedShards, failureLines, slowestShard }] = await Promise.all([
    import('../../engine/query/run-query.js'),
    import('../render/query-writers.js'),
    import('../render/query-verdict.js'),
  ]);
  const writer = createQueryWriter(format, process.stdout, { command: ctx.name, color: ctx.out.colorEnabled });
  let started = false;
  const sink = {
    columns: (columns: Parameters<typeof writer.columns>[0]) => ((started = true), writer.columns(columns)),
    row: writer.row.bind(writer),
    end: writer.end.bind(writer),
    // The NDJSON writer turns COPY text into output bytes directly, with no value decoded in between.
    ...(writer.copyRows ? { copyRows: writer.copyRows.bind(writer) } : {}),
    get closed() {
      return writer.closed;
    },
  };
  let summary;
  try {
    summary = await runQuery(
      config,
      {
        sql,
        params: flags.param,
        ...(flags.shard.length ? { shards: flags.shard } : {}),
        ...(flags.key.length ? { keys: flags.key } : {}),
        ...(flags.timeout !== undefined ? { timeoutMs: flags.timeout } : {}),
        ...(flags.parallel !== undefined ? { parallel: flags.parallel } : {}),
        ...(flags.mergeOrder ? { mergeOrder: flags.mergeOrder } : {}),
        ...(flags.limit !== undefined ? { limit: flags.limit } : {}),
        signal: ctx.signal,
      },
      sink,
    );
  } catch (err) {
    // A document already begun is closed with the error, so stdout holds one whole document.
    if (started) await writer.abort(isShardctlError(err) ? err : { kind: 'internal', message: (err as Error).message, exitCode: ExitCode.failed });
    throw err;
  }

  const failed = failedShards(summary);
  const slowest = slowestShard(summary);
  ctx.out.info(
    `query: ${summary.shards.length} shard${summary.shards.length === 1 ? '' : 's'}, ${summary.rows} row${summary.rows === 1 ? '' : 's'}${summary.limited ? ` (stopped at --limit ${flags.limit})` : summary.outputClosed ? ' (stopped: the output was closed)' : ''} in ${seconds(summary.durationMs)}` +
      (slowest ? `; slowest ${slowest.shard} ${seconds(slowest.durationMs)}` : '') +
      (failed.length ? `; ${failed.length} failed` : ''),
  );
  for (const line of failureLines(failed)) ctx.out.log('error', line);
  if (ctx.signal.aborted) {
    if (format === 'json') throw new InterruptedAfterDocument();
    throw new InterruptedError('interrupted: the shards stopped; the rows written so far are on stdout');
  }
  if (summary.shards.length === 0) ctx.out.warn('no shard to run on (none registered, or --shard and --key select none)');
  if (failed.length) throw new CheckFailed(`${failed.length} of ${summary.shards.length} shards did not answer in full: ${failed.map((s) => s.shard).join(', ')}`);
}

/**
 * Interrupted under --json: the document on stdout is already whole (its shards say cancelled),
 * so no error envelope may follow it (CheckFailed prints none), and the exit code is still 130.
 */
class InterruptedAfterDocument extends CheckFailed {
  constructor() {
    super('interrupted: the shards stopped; the rows written so far are in the document on stdout');
    Object.defineProperty(this, 'exitCode', { value: ExitCode.interrupted });
  }
}

function mergeOrderFlag(value: string): MergeKey[] {
  try {
    return parseMergeOrder(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

function formatFlag(value: string): QueryFormat {
  if (!FORMATS.includes(value as QueryFormat)) throw new InvalidArgumentError(`--format takes ${FORMATS.join(', ')}, got "${value}"`);
  return value as QueryFormat;
}

function positiveDuration(value: string): number {
  const ms = durationFlag(value);
  if (ms <= 0) throw new InvalidArgumentError(`--timeout must be positive, got "${value}"`);
  return ms;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)}s`;
}
