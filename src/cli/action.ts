import { InvalidArgumentError, type Command } from 'commander';
import { createContext, type CommandContext } from './context.js';

let interrupt: AbortController | undefined;

/**
 * Wraps a command handler: builds its context and arms SIGINT/SIGTERM so the
 * first one asks the engine to stop at a safe point and the second exits 130.
 */
export function action(handler: (ctx: CommandContext, cmd: Command) => Promise<void>) {
  return async (...args: unknown[]): Promise<void> => {
    const cmd = args[args.length - 1] as Command;
    interrupt ??= armSignals();
    await handler(createContext(cmd, interrupt.signal), cmd);
  };
}

let received: NodeJS.Signals | undefined;

/** The signal that stopped the run, if one did: SIGTERM exits 143, SIGINT 130 (the shell's 128 + signal number). */
export function stoppedBy(): NodeJS.Signals | undefined {
  return received;
}

export function exitCodeForSignal(signal: NodeJS.Signals | undefined): number {
  return signal === 'SIGTERM' ? 143 : 130;
}

/** How long after the first signal a run may take to reach its safe point before it exits anyway. */
const GRACE_MS = 10_000;

function armSignals(): AbortController {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(exitCodeForSignal(received));
    received = signal;
    process.stderr.write(`\n${signal}: stopping at the next safe point (again to exit now)\n`);
    controller.abort(signal);
    // cron, systemd and timeout(1) send SIGTERM and wait a little before SIGKILL: a step that
    // is not at a safe point in time (one long statement) is left as a crash would leave it,
    // which every step is built to survive (the journal says where to resume).
    setTimeout(() => {
      process.stderr.write(`shardctl: no safe point within ${GRACE_MS / 1000}s of ${signal}; exiting now (the journal is consistent: run the command again, or \`shard resume\`)\n`);
      process.exit(exitCodeForSignal(signal));
    }, GRACE_MS).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return controller;
}

/** commander's variadic/optional helpers for numbers, with a clear usage error. */
export function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive whole number, got "${value}"`);
    return n;
  };
}
