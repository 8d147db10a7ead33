import path from 'node:path';
import { shardIdOf, type SandboxShard } from './config-file.js';
import { postgresAnswers, postgresUrl, postmasterPid } from './postgres.js';
import { isRunning } from './process.js';
import { pingRedis, redisUrl } from './redis.js';
import { CONFIG_FILE, STATE_FILE, type SandboxState } from './state.js';

// What `status` and `up` report about a sandbox: its state file read against the live servers.

export interface SandboxComponent {
  name: 'postgres' | 'redis';
  status: 'up' | 'down' | 'unavailable';
  pid: number | null;
  port: number | null;
  url: string | null;
  detail: string | null;
}

/** Everything `sandbox status` and `up` render: the same shape under --json and as text. */
export interface SandboxView {
  dir: string;
  configPath: string;
  statePath: string;
  metadataUrl: string;
  redisUrl: string | null;
  shards: SandboxShard[];
  components: SandboxComponent[];
  dataDir: string;
  /** True when the data directory is outside DIR (the server's OS user cannot reach DIR). */
  dataDirRelocated: boolean;
  startedAt: string;
  notes: string[];
}

/** Each server's state now: a live pid that answers is up. */
export async function inspectComponents(state: SandboxState): Promise<SandboxComponent[]> {
  const pgPid = (await postmasterPid(state.postgres.dataDir)) ?? state.postgres.pid;
  const pgAlive = await isRunning(pgPid, 'postgres');
  const pgAnswers = pgAlive && (await postgresAnswers(postgresUrl(state.postgres.port, 'postgres')));
  const postgres: SandboxComponent = {
    name: 'postgres',
    status: pgAnswers ? 'up' : 'down',
    pid: pgAlive ? pgPid : null,
    port: state.postgres.port,
    url: postgresUrl(state.postgres.port, state.databases.metadata),
    detail: pgAnswers ? null : pgAlive ? 'the process is alive but does not answer' : 'not running',
  };
  let redis: SandboxComponent;
  if (!state.redis.available) {
    redis = { name: 'redis', status: 'unavailable', pid: null, port: null, url: null, detail: state.redis.reason };
  } else {
    const alive = await isRunning(state.redis.pid, 'redis');
    const answers = alive && (await pingRedis(state.redis.port));
    redis = {
      name: 'redis',
      status: answers ? 'up' : 'down',
      pid: alive ? state.redis.pid : null,
      port: state.redis.port,
      url: redisUrl(state.redis.port),
      detail: answers ? null : alive ? 'the process is alive but does not answer PING' : 'not running',
    };
  }
  return [postgres, redis];
}

export function shardsOf(state: SandboxState): SandboxShard[] {
  return state.databases.shards.map((database, i) => ({
    id: shardIdOf(i),
    database,
    url: postgresUrl(state.postgres.port, database),
  }));
}

export function configInput(state: SandboxState) {
  return {
    metadataUrl: postgresUrl(state.postgres.port, state.databases.metadata),
    redisUrl: state.redis.available ? redisUrl(state.redis.port) : null,
    shards: shardsOf(state),
  };
}

export function viewOf(dir: string, state: SandboxState, components: SandboxComponent[], extraNotes: string[] = []): SandboxView {
  const notes = [...extraNotes];
  if (state.postgres.relocated) {
    notes.push(
      `PostgreSQL's data directory is ${state.postgres.dataDir}, outside ${dir}: the "${state.postgres.runAs?.user}" OS user cannot reach ${dir}`,
    );
  }
  if (state.postgres.binariesCopied) {
    notes.push(
      `PostgreSQL runs from a copy of its binaries in ${state.postgres.nativeDir} (node_modules is out of the "${state.postgres.runAs?.user}" OS user's reach); the copy is kept for later sandboxes`,
    );
  }
  if (!state.redis.available) notes.push(state.redis.reason);
  const input = configInput(state);
  return {
    dir,
    configPath: path.join(dir, CONFIG_FILE),
    statePath: path.join(dir, STATE_FILE),
    metadataUrl: input.metadataUrl,
    redisUrl: input.redisUrl,
    shards: input.shards,
    components,
    dataDir: state.postgres.dataDir,
    dataDirRelocated: state.postgres.relocated,
    startedAt: state.startedAt,
    notes,
  };
}

