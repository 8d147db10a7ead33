import os from 'node:os';
import type { Command } from 'commander';
import type { LoadedConfig } from '../config/load.js';
import { parseDuration } from '../config/duration.js';
import { redactText } from '../config/redact.js';
import { UsageError } from '../errors.js';
import type { RunInfo } from '../metadata/run-info.js';
import { Output, type LogFormat } from './output.js';

/** The global flags of SPEC.md, as commander hands them to every subcommand. */
export interface GlobalOptions {
  config?: string;
  json: boolean;
  yes: boolean;
  color: boolean;
  quiet: boolean;
  verbose: boolean;
  logFormat: LogFormat;
  actor?: string;
  lockWait: string;
  breakStaleLock: boolean;
}

export interface CommandContext {
  readonly command: Command;
  /** "shard list": the name used in --json envelopes and the audit log. */
  readonly name: string;
  readonly global: GlobalOptions;
  readonly out: Output;
  /** Aborted on the first SIGINT/SIGTERM; long operations stop at a safe point. */
  readonly signal: AbortSignal;
  loadConfig(): Promise<LoadedConfig>;
  runInfo(): RunInfo;
}

export function createContext(command: Command, signal: AbortSignal): CommandContext {
  const global = command.optsWithGlobals() as GlobalOptions;
  const out = new Output({
    json: !!global.json,
    quiet: !!global.quiet,
    verbose: !!global.verbose,
    color: global.color !== false,
    yes: !!global.yes,
    logFormat: global.logFormat === 'json' ? 'json' : 'text',
  });
  let config: Promise<LoadedConfig> | undefined;
  return {
    command,
    name: commandPath(command),
    global,
    out,
    signal,
    loadConfig() {
      config ??= import('../config/load.js').then((m) =>
        m.loadConfig(global.config ? { explicitPath: global.config } : {}),
      );
      return config;
    },
    runInfo() {
      let lockWaitMs: number;
      try {
        lockWaitMs = parseDuration(global.lockWait);
      } catch (err) {
        throw new UsageError(`--lock-wait: ${(err as Error).message}`);
      }
      return {
        actor: global.actor ?? `${os.userInfo().username}@${os.hostname()}`,
        commandLine: redactCommandLine(process.argv.slice(2)),
        lockWaitMs,
        ...(global.breakStaleLock ? { breakStaleLock: true } : {}),
        signal,
        warn: (message: string) => out.warn(message),
      };
    },
  };
}

function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** `shardctl` plus its arguments, with URL passwords redacted (a `--url` carries one). */
export function redactCommandLine(args: string[]): string {
  return ['shardctl', ...args.map(redactText)].map(quoteArg).join(' ');
}

function quoteArg(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
