import { randomBytes } from 'node:crypto';
import { open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

/**
 * Replaces `path` with `text` so that a reader sees the old content or the
 * new, never a part: written to a temp file in the same directory (rename is
 * atomic only within one file system), fsynced, then renamed over the target;
 * the directory is fsynced so the rename survives a crash. On failure the
 * temp file is removed and the target is left as it was.
 *
 * For `--output FILE` and node_exporter's textfile collector, which reads
 * only `*.prom`: the temp name (`.NAME.<pid>.<random>.tmp`) is one it skips.
 * The file keeps the mode of the one it replaces (0644 when new).
 */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const target = resolve(path);
  const dir = dirname(target);
  const temp = join(dir, `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const mode = await stat(target).then((s) => s.mode & 0o7777, () => 0o644);
  let created = false;
  try {
    const handle = await open(temp, 'wx', mode);
    created = true;
    try {
      await handle.writeFile(text, 'utf8');
      await handle.chmod(mode); // open's mode is filtered by the umask
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, target);
    created = false;
  } finally {
    if (created) await rm(temp, { force: true });
  }
  await syncDirectory(dir);
}

async function syncDirectory(dir: string): Promise<void> {
  // Not every platform lets a directory be opened for fsync (Windows); the data itself is already synced.
  const handle = await open(dir, 'r').catch(() => null);
  if (!handle) return;
  try {
    await handle.sync().catch(() => undefined);
  } finally {
    await handle.close();
  }
}
