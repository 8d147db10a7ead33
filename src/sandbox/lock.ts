import { open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LockHeldError } from '../errors.js';
import { isAlive } from './process.js';

export const LOCK_FILE = 'sandbox.lock';

/**
 * One `sandbox up` or `down` per directory at a time: a lock file holding the
 * owner's pid. A lock whose owner is dead (a crash, kill -9) is taken over.
 */
export async function withSandboxLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const file = path.join(dir, LOCK_FILE);
  for (let attempt = 0; ; attempt++) {
    try {
      const handle = await open(file, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let holder = await readHolder(file);
      // The owner may have created the file and not yet written its pid.
      if (holder === null) holder = await sleep(200).then(() => readHolder(file));
      if (attempt > 0 || (isAlive(holder) && holder !== process.pid)) {
        throw new LockHeldError('sandbox', holder !== null ? `pid ${holder}` : undefined);
      }
      await rm(file, { force: true });
    }
  }
  try {
    return await fn();
  } finally {
    await rm(file, { force: true });
  }
}

async function readHolder(file: string): Promise<number | null> {
  const pid = Number.parseInt(await readFile(file, 'utf8').catch(() => ''), 10);
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}
