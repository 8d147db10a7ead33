import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { OperationError } from '../../src/errors.js';
import { freePort } from '../../src/sandbox/ports.js';
import {
  initCluster,
  postgresUrl,
  postmasterPid,
  preparePostgresLayout,
  startServer,
  stopServer,
  type PostgresLayout,
} from '../../src/sandbox/postgres.js';
import { isAlive, runCommand, waitForExit } from '../../src/sandbox/process.js';
import { resolveRunAs } from '../../src/sandbox/run-as.js';

/**
 * A PostgreSQL server of its own, beside the test server, for tests that take
 * a shard's server down mid-operation. It is the sandbox's embedded server
 * (same binaries, same detached start, run as the `postgres` OS user when the
 * tests run as root) in a temp directory that `cleanup()` removes.
 */
export interface SecondServer {
  port: number;
  /** A superuser URL of one of its databases (`postgres` by default). */
  url(database?: string): string;
  /** The postmaster's pid while it runs, else null. */
  pid(): Promise<number | null>;
  start(): Promise<void>;
  /**
   * `immediate`: `pg_ctl stop -m immediate`, the crash case: every backend
   * quits at once, no checkpoint, clients see their connections drop.
   * `fast`: a clean shutdown.
   */
  stop(options?: { mode?: 'immediate' | 'fast' }): Promise<void>;
  /** Starts it again on the same port and data directory (crash recovery runs on an immediate stop). */
  restart(): Promise<void>;
  /** Stops it if it runs, then removes its directory. Safe to call twice. */
  cleanup(): Promise<void>;
}

export async function startSecondServer(): Promise<SecondServer> {
  const baseDir = await mkdtemp(path.join(os.tmpdir(), 'shardctl-test-pg2-'));
  let layout: PostgresLayout | undefined;
  let port = 0;
  const server: SecondServer = {
    get port() {
      return port;
    },
    url: (database = 'postgres') => postgresUrl(port, database),
    pid: async () => {
      const pid = layout ? await postmasterPid(layout.dataDir) : null;
      return isAlive(pid) ? pid : null;
    },
    async start() {
      layout ??= await preparePostgresLayout(baseDir, await resolveRunAs());
      if (await initCluster(layout)) {
        // The sandbox trades durability for speed (synchronous_commit = off): an immediate stop then
        // loses the last commits it acknowledged (measured: the new shard's route_hash and first
        // batches), which a crash test must not confuse with the tool losing rows. With the default
        // (on) a server keeps every commit it acknowledged. fsync stays off: the OS does not crash here.
        await appendFile(path.join(layout.dataDir, 'postgresql.conf'), '\n# shardctl tests: a crash keeps what was acknowledged.\nsynchronous_commit = on\n');
      }
      port ||= await freePort();
      await startServer(layout, port);
    },
    async stop(options = {}) {
      if (!layout) return;
      const pid = await server.pid();
      if (pid === null) return;
      if (options.mode === 'fast') {
        await stopServer({ ...layout, pid });
        return;
      }
      const result = await runCommand(layout.binaries.pgCtl, ['stop', '-m', 'immediate', '-w', '-t', '30', '-D', layout.dataDir], {
        runAs: layout.runAs,
        cwd: baseDir,
        timeoutMs: 45_000,
      });
      if (!(await waitForExit(pid, 15_000))) {
        throw new OperationError(`the second PostgreSQL (pid ${pid}) did not stop: pg_ctl exit ${result.code ?? result.signal}`, {
          details: (result.stderr || result.stdout).trim().split('\n'),
        });
      }
    },
    async restart() {
      await server.stop({ mode: 'fast' });
      await server.start();
    },
    async cleanup() {
      try {
        await server.stop({ mode: 'immediate' });
      } finally {
        await rm(baseDir, { recursive: true, force: true });
      }
    },
  };
  try {
    await server.start();
  } catch (err) {
    await server.cleanup().catch(() => {});
    throw err;
  }
  return server;
}
