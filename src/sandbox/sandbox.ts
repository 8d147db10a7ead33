import { mkdir, readdir, rm, rmdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { isShardctlError, OperationError, UsageError } from '../errors.js';
import { METADATA_DATABASE, shardDatabaseOf, writeSandboxConfig } from './config-file.js';
import { withSandboxLock } from './lock.js';
import { freePort, reusablePort } from './ports.js';
import {
  chooseBaseDir,
  ensureDatabases,
  initCluster,
  postmasterPid,
  preparePostgresLayout,
  startServer,
  stopServer,
  type PostgresLayout,
  type PostgresServer,
} from './postgres.js';
import { locatePostgresBinaries } from './postgres-binaries.js';
import { isRunning, terminate } from './process.js';
import { applySandboxMigrations, writeSandboxMigrations, type SandboxMigrationOutcome } from './migrations.js';
import { findRedisServer, startRedis, stopRedis } from './redis.js';
import { resolveRunAs } from './run-as.js';
import { CONFIG_FILE, MIGRATIONS_DIR, readState, STATE_FILE, writeState, type SandboxState } from './state.js';
import { configInput, inspectComponents, shardsOf, viewOf, type SandboxView } from './view.js';

export { type SandboxShard } from './config-file.js';
export type { SandboxMigrationOutcome } from './migrations.js';
export type { SandboxComponent, SandboxView } from './view.js';

export const DEFAULT_SANDBOX_DIR = '.shardctl/sandbox';
export const DEFAULT_SANDBOX_SHARDS = 4;
export const MAX_SANDBOX_SHARDS = 64;

export interface SandboxUpResult extends SandboxView {
  /** started: made now; restarted: an existing sandbox's stopped servers were started; already-running: nothing to do. */
  outcome: 'started' | 'restarted' | 'already-running';
  createdDatabases: string[];
  /** The config's migrate.dir (absolute): the sandbox's own, throwaway migration set that creates its tables. */
  migrationsDir: string;
  /** Per sandbox shard: what this `up` applied of that set (nothing when already at it). */
  migrations: SandboxMigrationOutcome[];
  /** `export SHARDCTL_CONFIG=<absolute config path>`: every later command then finds the sandbox's config. */
  exportCommand: string;
  /** The command to run next: `shardctl -c <config> init`. */
  nextCommand: string;
}

export type SandboxStatusResult =
  | { dir: string; state: 'absent'; components: [] }
  | (SandboxView & { state: 'up' | 'partial' | 'down' });

export interface SandboxDownResult {
  dir: string;
  /** False when DIR held no sandbox: nothing was stopped or removed. */
  found: boolean;
  stopped: Array<{ name: 'postgres' | 'redis'; pid: number | null; outcome: 'stopped' | 'not-running' }>;
  removed: string[];
  /** Entries of DIR that the sandbox did not make, left in place (so DIR was kept too). */
  kept: string[];
}

export interface SandboxUpOptions {
  dir: string;
  shards: number;
  /** Recorded as applied_by of the sandbox's migrations (the CLI passes its actor). */
  actor?: string;
  onProgress?: (message: string) => void;
}

/**
 * Starts (or finds running) a local PostgreSQL with `shardctl_meta` and
 * `shard_0 … shard_{N-1}`, plus a redis-server when one is installed; both
 * outlive this process. Writes DIR/shardctl.config.yaml and DIR/state.json.
 * A fresh start that fails half-way removes what it made.
 */
export async function sandboxUp(options: SandboxUpOptions): Promise<SandboxUpResult> {
  if (!Number.isInteger(options.shards) || options.shards < 0 || options.shards > MAX_SANDBOX_SHARDS) {
    throw new UsageError(`--shards must be a whole number from 0 to ${MAX_SANDBOX_SHARDS}, got ${options.shards}`);
  }
  const dir = path.resolve(options.dir);
  const progress = options.onProgress ?? (() => {});
  await fsStep(`cannot create ${dir}`, () => mkdir(dir, { recursive: true }));
  try {
    return await withSandboxLock(dir, async () => {
      const previous = await readState(dir);
      const actor = options.actor ?? 'shardctl sandbox up';
      return previous ? resumeSandbox(dir, previous, options.shards, actor, progress) : startSandbox(dir, options.shards, actor, progress);
    });
  } catch (err) {
    // A failed first start leaves no empty DIR behind.
    if ((await readdir(dir).catch(() => ['?'])).length === 0) await rmdir(dir).catch(() => {});
    throw err;
  }
}

export async function sandboxStatus(options: { dir: string }): Promise<SandboxStatusResult> {
  const dir = path.resolve(options.dir);
  const state = await readState(dir);
  if (!state) return { dir, state: 'absent', components: [] };
  const components = await inspectComponents(state);
  const pg = components[0]!;
  const redis = components[1]!;
  const redisFine = redis.status !== 'down';
  const overall = pg.status === 'up' && redisFine ? 'up' : pg.status === 'down' && redis.status !== 'up' ? 'down' : 'partial';
  return { ...viewOf(dir, state, components), state: overall };
}

/** Stops both servers and removes everything the sandbox made; DIR itself goes when nothing else is in it. */
export async function sandboxDown(options: { dir: string }): Promise<SandboxDownResult> {
  const dir = path.resolve(options.dir);
  const empty: SandboxDownResult = { dir, found: false, stopped: [], removed: [], kept: [] };
  if (!(await readState(dir))) return empty;
  const result = await withSandboxLock(dir, async () => {
    const state = await readState(dir);
    if (!state) return empty;
    const stopped: SandboxDownResult['stopped'] = [];
    stopped.push({ name: 'postgres', pid: state.postgres.pid, outcome: await stopPostgresOf(state) });
    if (state.redis.available) {
      stopped.push({ name: 'redis', pid: state.redis.pid, outcome: await stopRedis(state.redis) });
    }
    const removed: string[] = [];
    for (const target of madePaths(dir, state)) {
      if (!(await exists(target))) continue;
      await fsStep(`cannot remove ${target}`, () => rm(target, { recursive: true, force: true }));
      removed.push(target);
    }
    return { dir, found: true, stopped, removed, kept: [] };
  });
  // After the lock file is gone: DIR is removed only if nothing foreign is left in it.
  const left = await readdir(dir).catch(() => [] as string[]);
  if (left.length === 0) {
    await rmdir(dir).catch(() => {});
    result.removed.push(dir);
  } else {
    result.kept = left.map((name) => path.join(dir, name));
  }
  return result;
}

async function startSandbox(dir: string, shards: number, actor: string, progress: (m: string) => void): Promise<SandboxUpResult> {
  // migrations/ too: `down` deletes the sandbox's set, so it must never be a project's own folder.
  const foreign = (await readdir(dir)).filter((n) => ['postgres', 'redis', CONFIG_FILE, MIGRATIONS_DIR].includes(n));
  if (foreign.length > 0) {
    throw new UsageError(`${dir} already holds ${foreign.join(', ')} but no ${STATE_FILE}: not a sandbox this tool made`, {
      details: ['choose another --dir, or remove those files'],
    });
  }
  const runAs = await resolveRunAs();
  const { baseDir, relocated } = await chooseBaseDir(path.join(dir, 'postgres'), runAs);
  if (relocated) progress(`the "${runAs?.user}" OS user cannot reach ${dir}; PostgreSQL's data goes in ${baseDir}`);
  let server: PostgresServer | undefined;
  let redis: SandboxState['redis'] | undefined;
  try {
    const layout = await preparePostgresLayout(baseDir, runAs);
    progress(`initialising a PostgreSQL cluster in ${layout.dataDir}`);
    await initCluster(layout);
    const port = await freePort();
    progress(`starting PostgreSQL on 127.0.0.1:${port}`);
    server = await startServer(layout, port);
    const databases = databaseNames(shards);
    progress(`creating databases ${[databases.metadata, ...databases.shards].join(', ')}`);
    const created = await ensureDatabases(port, [databases.metadata, ...databases.shards]);
    redis = await launchRedis(dir, null, progress);
    const state = stateOf(dir, server, relocated, databases, redis);
    const migrations = await migrateSandbox(dir, state, actor, progress);
    await writeSandboxConfig(dir, configInput(state));
    await writeState(dir, state);
    return upResult(dir, state, 'started', created, migrations, []);
  } catch (err) {
    progress('start failed; removing what was made');
    if (server) await stopServer(server).catch(() => {});
    if (redis?.available) await stopRedis(redis).catch(() => {});
    for (const target of [baseDir, path.join(dir, 'redis'), path.join(dir, CONFIG_FILE), path.join(dir, MIGRATIONS_DIR)]) {
      await rm(target, { recursive: true, force: true }).catch(() => {});
    }
    throw err;
  }
}

/** Starts whichever of an existing sandbox's servers is not running; its data is kept. */
async function resumeSandbox(
  dir: string,
  previous: SandboxState,
  shards: number,
  actor: string,
  progress: (m: string) => void,
): Promise<SandboxUpResult> {
  const state: SandboxState = structuredClone(previous);
  const notes: string[] = [];
  const restarted: string[] = [];
  const [pg, redisComponent] = await inspectComponents(state);
  if (pg!.status !== 'up') {
    if (await isRunning(pg!.pid, 'postgres')) {
      throw new OperationError(`PostgreSQL (pid ${pg!.pid}) is running but does not answer on port ${state.postgres.port}`, {
        details: [`see ${state.postgres.logFile}`, 'stop it with `shardctl sandbox down` and start again'],
      });
    }
    const layout = await layoutOf(state);
    if (await initCluster(layout)) notes.push(`the data directory ${layout.dataDir} was missing; made a new, empty one`);
    const port = await reusablePort(state.postgres.port);
    progress(`restarting PostgreSQL on 127.0.0.1:${port}`);
    const server = await startServer(layout, port);
    state.postgres = { ...state.postgres, port, pid: server.pid, socketDir: server.socketDir, nativeDir: layout.binaries.nativeDir, binariesCopied: layout.binaries.copied };
    state.startedAt = new Date().toISOString();
    restarted.push('postgres');
  }
  const created = await ensureDatabases(state.postgres.port, [state.databases.metadata, ...state.databases.shards]);
  if (redisComponent!.status !== 'up') {
    const redis = await launchRedis(dir, state.redis.available ? state.redis.port : null, progress);
    if (redis.available) restarted.push('redis');
    state.redis = redis;
  }
  if (shards !== state.databases.shards.length) {
    notes.push(
      `the sandbox has ${state.databases.shards.length} shards; --shards ${shards} applies only to a new one (run \`shardctl sandbox down\` first)`,
    );
  }
  const portsMoved =
    state.postgres.port !== previous.postgres.port ||
    (state.redis.available ? state.redis.port : null) !== (previous.redis.available ? previous.redis.port : null);
  if (portsMoved || !(await exists(path.join(dir, CONFIG_FILE)))) {
    await writeSandboxConfig(dir, configInput(state));
    if (portsMoved) notes.push(`ports changed: ${CONFIG_FILE} was rewritten`);
  }
  await writeState(dir, state);
  // After the state is saved: a failing file leaves a running sandbox that `status` and `down` know.
  const migrations = await migrateSandbox(dir, state, actor, progress);
  return upResult(dir, state, restarted.length ? 'restarted' : 'already-running', created, migrations, notes);
}

/** Writes the sandbox's migration set (when absent) and brings every sandbox shard to it. */
async function migrateSandbox(dir: string, state: SandboxState, actor: string, progress: (m: string) => void): Promise<SandboxMigrationOutcome[]> {
  const migrationsDir = await fsStep(`cannot write the sandbox's migrations in ${dir}`, () => writeSandboxMigrations(dir));
  const shards = shardsOf(state);
  if (shards.length) progress(`applying ${migrationsDir} to ${shards.map((s) => s.id).join(', ')}`);
  return applySandboxMigrations(migrationsDir, shards, { appliedBy: actor });
}

async function launchRedis(dir: string, previousPort: number | null, progress: (m: string) => void): Promise<SandboxState['redis']> {
  const binary = await findRedisServer();
  if (!binary) return { available: false, reason: 'redis-server is not on PATH: streams are unavailable' };
  const port = await reusablePort(previousPort);
  progress(`starting redis-server on 127.0.0.1:${port}`);
  try {
    const server = await startRedis({ binary, dir: path.join(dir, 'redis'), port });
    return { available: true, ...server };
  } catch (err) {
    // PostgreSQL alone is still a useful sandbox; the reason is shown by up and status.
    return { available: false, reason: `redis-server failed to start: ${(err as Error).message}` };
  }
}

async function stopPostgresOf(state: SandboxState): Promise<'stopped' | 'not-running'> {
  try {
    return await stopServer(await layoutOf(state));
  } catch (err) {
    // Without the binaries (node_modules moved), a fast-shutdown signal still works.
    const pid = (await postmasterPid(state.postgres.dataDir)) ?? state.postgres.pid;
    if (!(await isRunning(pid, 'postgres'))) return 'not-running';
    if (await terminate(pid, 'SIGINT', 30_000)) return 'stopped';
    throw err;
  }
}

async function layoutOf(state: SandboxState): Promise<PostgresLayout> {
  const p = state.postgres;
  // Found afresh each time: node_modules may have moved since the sandbox was made.
  const binaries = await locatePostgresBinaries(p.runAs);
  return { binaries, baseDir: p.baseDir, dataDir: p.dataDir, logFile: p.logFile, runAs: p.runAs };
}

function databaseNames(shards: number): SandboxState['databases'] {
  return { metadata: METADATA_DATABASE, shards: Array.from({ length: shards }, (_, i) => shardDatabaseOf(i)) };
}

function stateOf(
  dir: string,
  server: PostgresServer,
  relocated: boolean,
  databases: SandboxState['databases'],
  redis: SandboxState['redis'],
): SandboxState {
  return {
    version: 1,
    dir,
    startedAt: new Date().toISOString(),
    postgres: {
      port: server.port,
      pid: server.pid,
      baseDir: server.baseDir,
      dataDir: server.dataDir,
      logFile: server.logFile,
      socketDir: server.socketDir,
      relocated,
      nativeDir: server.binaries.nativeDir,
      binariesCopied: server.binaries.copied,
      runAs: server.runAs,
    },
    databases,
    redis,
  };
}

async function upResult(
  dir: string,
  state: SandboxState,
  outcome: SandboxUpResult['outcome'],
  createdDatabases: string[],
  migrations: SandboxMigrationOutcome[],
  notes: string[],
): Promise<SandboxUpResult> {
  const view = viewOf(dir, state, await inspectComponents(state), notes);
  return {
    ...view,
    outcome,
    createdDatabases,
    migrationsDir: path.join(dir, MIGRATIONS_DIR),
    migrations,
    // Absolute: the variable is read from whatever directory the next commands run in.
    exportCommand: `export SHARDCTL_CONFIG=${shellArg(view.configPath)}`,
    nextCommand: `shardctl -c ${shellArg(displayPath(view.configPath))} init`,
  };
}

/** Every path `up` made: the relocated data directory too, wherever it is. */
function madePaths(dir: string, state: SandboxState): string[] {
  const paths = [
    path.join(dir, 'postgres'),
    path.join(dir, 'redis'),
    path.join(dir, MIGRATIONS_DIR),
    path.join(dir, CONFIG_FILE),
    path.join(dir, STATE_FILE),
  ];
  if (state.postgres.relocated) paths.unshift(state.postgres.baseDir);
  return paths;
}

/** Relative to the working directory when it lies below it, absolute otherwise. */
function displayPath(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file;
}

function shellArg(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

/** File-system failures (EACCES, ENOSPC…) as operation errors naming the path, not as bugs. */
async function fsStep<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (isShardctlError(err)) throw err;
    throw new OperationError(`${what}: ${(err as Error).message}`, { cause: err });
  }
}
