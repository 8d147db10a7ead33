import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** The unprivileged OS user a server runs as when shardctl itself runs as root. */
export interface RunAs {
  user: string;
  uid: number;
  gid: number;
}

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  runAs?: RunAs | null;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /**
   * Its own process group: a Ctrl-C at the terminal must not reach a server
   * that is meant to outlive this process while it is still starting.
   */
  detached?: boolean;
}

/** Runs a program to completion (no shell) and collects its output; never throws on a non-zero exit. */
export function runCommand(file: string, args: string[], options: RunOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: options.detached ?? false,
      ...(options.runAs ? { uid: options.runAs.uid, gid: options.runAs.gid } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => child.kill('SIGKILL'), options.timeoutMs).unref();
    let settled = false;
    const finish = (code: number | null, signal: NodeJS.Signals | null) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    };
    child.once('error', (err) => {
      if (timer) clearTimeout(timer);
      if (!settled) reject(err);
      settled = true;
    });
    child.once('close', finish);
    // A daemon it forked may keep the pipes open; the exit status is what counts.
    child.once('exit', (code, signal) => {
      setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        finish(code, signal);
      }, 300).unref();
    });
  });
}

/** Whether a process with this pid exists (EPERM: it exists but belongs to someone else). */
export function isAlive(pid: number | null | undefined): pid is number {
  if (!pid || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether `pid` is alive and, where /proc can tell, still runs `program`: a pid
 * recorded days ago may since belong to something else, which must not be signalled.
 */
export async function isRunning(pid: number | null | undefined, program: string): Promise<boolean> {
  if (!isAlive(pid)) return false;
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes(program);
  } catch {
    return true;
  }
}

/** Polls until the process is gone; false when it is still there after `timeoutMs`. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

/** Sends `signal`, waits, then SIGKILL as a last resort. Returns whether it is gone. */
export async function terminate(pid: number, signal: NodeJS.Signals, timeoutMs: number): Promise<boolean> {
  try {
    process.kill(pid, signal);
  } catch {
    return !isAlive(pid);
  }
  if (await waitForExit(pid, timeoutMs)) return true;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
  return waitForExit(pid, 5_000);
}

/** The last lines of a log file, for an error message; empty when it cannot be read. */
export async function tailFile(file: string, lines = 15): Promise<string[]> {
  try {
    const text = await readFile(file, 'utf8');
    return text.trimEnd().split('\n').slice(-lines);
  } catch {
    return [];
  }
}
