import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

export const BIN = fileURLToPath(new URL('../../bin/shardctl', import.meta.url));

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs the built binary the way CI would: no TTY, no stdin, plain environment plus `env`. */
export async function runCli(args: string[], options: { env?: Record<string, string | undefined>; cwd?: string } = {}): Promise<CliResult> {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: undefined, FORCE_COLOR: undefined, CI: undefined, ...options.env };
  const result = await execa('node', [BIN, ...args], {
    reject: false,
    env,
    extendEnv: false,
    stdin: 'ignore',
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  const stderr = String(result.stderr);
  // pg's deprecation of concurrent queries on one client (an error in the next major), or any other.
  if (/DeprecationWarning/.test(stderr)) throw new Error(`shardctl ${args.join(' ')} printed a deprecation warning:\n${stderr}`);
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr };
}

/**
 * Runs the binary under a pseudo-terminal (util-linux `script`), so stdout,
 * stderr and stdin are TTYs as at a DBA's shell. Output is the terminal's
 * combined stream.
 */
export async function runCliInTty(args: string[], env: Record<string, string | undefined> = {}): Promise<{ exitCode: number; output: string }> {
  const command = ['node', BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const result = await execa('script', ['-qec', command, '/dev/null'], {
    reject: false,
    env: { ...process.env, NO_COLOR: undefined, FORCE_COLOR: undefined, CI: undefined, TERM: 'xterm-256color', ...env },
    extendEnv: false,
    stdin: 'ignore',
  });
  return { exitCode: result.exitCode ?? -1, output: String(result.stdout) };
}

export const ANSI = /\u001b\[[0-9;]*m/;
