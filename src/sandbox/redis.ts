import { constants } from 'node:fs';
import { access, mkdir, readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { OperationError } from '../errors.js';
import { isRunning, runCommand, tailFile, terminate } from './process.js';

export interface RedisServer {
  binary: string;
  dir: string;
  port: number;
  pid: number;
  pidFile: string;
  logFile: string;
}

/** The absolute path of `redis-server` on PATH, or null when it is not installed. */
export async function findRedisServer(env: NodeJS.ProcessEnv = process.env): Promise<string | null> {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, 'redis-server');
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      /* not here */
    }
  }
  return null;
}

/**
 * Starts a daemonized, memory-only redis-server on 127.0.0.1:`port` (no RDB, no
 * AOF) and waits until it answers PING. It outlives this process.
 */
export async function startRedis(options: { binary: string; dir: string; port: number }): Promise<RedisServer> {
  const dir = path.resolve(options.dir);
  await mkdir(dir, { recursive: true });
  const pidFile = path.join(dir, 'redis.pid');
  const logFile = path.join(dir, 'redis.log');
  const args = [
    '--daemonize', 'yes',
    '--save', '',
    '--appendonly', 'no',
    '--port', String(options.port),
    '--bind', '127.0.0.1',
    '--pidfile', pidFile,
    '--logfile', logFile,
    '--dir', dir,
  ];
  const result = await runCommand(options.binary, args, { cwd: dir, timeoutMs: 30_000, detached: true });
  const failure = (why: string) =>
    new OperationError(`redis-server did not start on 127.0.0.1:${options.port}: ${why}`, {
      details: [(result.stderr || result.stdout).trim()].filter(Boolean),
    });
  if (result.code !== 0) throw failure(`exit ${result.code ?? result.signal}`);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const pid = await readPid(pidFile);
    if (pid !== null && (await pingRedis(options.port))) {
      return { binary: options.binary, dir, port: options.port, pid, pidFile, logFile };
    }
    await sleep(50);
  }
  const err = failure('it did not answer PING within 10s');
  err.details.push(...(await tailFile(logFile)));
  throw err;
}

/** SIGTERM (redis-server shuts down cleanly, saving nothing here) and wait until it is gone. */
export async function stopRedis(server: { pid: number | null; pidFile?: string }): Promise<'stopped' | 'not-running'> {
  const pid = (server.pidFile ? await readPid(server.pidFile) : null) ?? server.pid;
  if (!(await isRunning(pid, 'redis'))) return 'not-running';
  if (await terminate(pid!, 'SIGTERM', 10_000)) return 'stopped';
  throw new OperationError(`could not stop redis-server (pid ${pid})`);
}

export function redisUrl(port: number): string {
  return `redis://127.0.0.1:${port}`;
}

/** Whether a Redis answers PING on 127.0.0.1:`port` (a raw RESP round trip, no client library). */
export function pingRedis(port: number, host = '127.0.0.1', timeoutMs = 2_000): Promise<boolean> {
  return new Promise((resolve) => {
    let reply = '';
    const socket = net.connect({ port, host });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('utf8');
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

/** Host and port of a redis:// URL, for pingRedis. */
export function redisEndpoint(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname || '127.0.0.1', port: Number(u.port || 6379) };
}

export async function readPid(pidFile: string): Promise<number | null> {
  try {
    const pid = Number.parseInt((await readFile(pidFile, 'utf8')).trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}
