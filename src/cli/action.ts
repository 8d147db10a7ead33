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

function armSignals(): AbortController {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write(`\n${signal}: stopping at the next safe point (again to exit now)\n`);
    controller.abort(signal);
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
