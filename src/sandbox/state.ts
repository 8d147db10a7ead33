import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { RunAs } from './process.js';

/**
 * What `sandbox up` made, kept in DIR/state.json so that `status` and `down`
 * (in later processes) find the servers and every path to remove.
 */
export interface SandboxState {
  version: 1;
  dir: string;
  startedAt: string;
  postgres: {
    port: number;
    pid: number;
    /** The base directory (owned by the server's OS user): data/, postgres.log, the socket. */
    baseDir: string;
    dataDir: string;
    logFile: string;
    socketDir: string | null;
    /** True when the base directory is outside DIR because the server's OS user cannot reach DIR. */
    relocated: boolean;
    /** Where bin/, lib/, share/ are (a copy under the temp dir when node_modules was out of reach). */
    nativeDir: string;
    /** True when nativeDir is that copy: it stays, shared by later sandboxes. */
    binariesCopied: boolean;
    runAs: RunAs | null;
  };
  databases: { metadata: string; shards: string[] };
  redis:
    | { available: true; port: number; pid: number; dir: string; pidFile: string; logFile: string; binary: string }
    | { available: false; reason: string };
}

export const STATE_FILE = 'state.json';
export const CONFIG_FILE = 'shardctl.config.yaml';
/** The sandbox's migration set (the config's migrate.dir): see migrations.ts. */
export const MIGRATIONS_DIR = 'migrations';

export async function readState(dir: string): Promise<SandboxState | null> {
  let text: string;
  try {
    text = await readFile(path.join(dir, STATE_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return JSON.parse(text) as SandboxState;
}

/** Written to a temp file and renamed: a crash never leaves half a state file. */
export async function writeState(dir: string, state: SandboxState): Promise<string> {
  const file = path.join(dir, STATE_FILE);
  await writeFile(`${file}.tmp`, JSON.stringify(state, null, 2) + '\n');
  await rename(`${file}.tmp`, file);
  return file;
}

/**
 * The sandbox directory whose migration set `dir` is (DIR/migrations beside a
 * DIR/state.json that `sandbox up` wrote for DIR), else null: `migrate create`
 * says so, since `sandbox down` deletes that set.
 */
export async function sandboxOfMigrationsDir(dir: string): Promise<string | null> {
  const resolved = path.resolve(dir);
  if (path.basename(resolved) !== MIGRATIONS_DIR) return null;
  const sandboxDir = path.dirname(resolved);
  const state = await readState(sandboxDir).catch(() => null);
  return state && path.resolve(state.dir) === sandboxDir ? sandboxDir : null;
}
