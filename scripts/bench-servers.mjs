// Servers the benches start for themselves: a free port, and a private
// `redis-server --save "" --appendonly no` on it (the shared 6379 is never
// touched), or a PostgreSQL server of its own, answered before it is handed
// over. The caller stops it.
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

/** { url, port, child, exited, client }: `client` is connected; kill `child` and disconnect `client` when done. */
export async function startRedis(dir) {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', path.join(dir, 'redis.log')], { stdio: 'ignore' });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    const c = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    c.on('error', () => {});
    try {
      await c.connect();
      await c.ping();
      return { url, port, child, exited, client: c };
    } catch (err) {
      c.disconnect();
      if (i > 100 || child.exitCode !== null) throw new Error(`redis-server on port ${port} did not start: ${err.message}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * The settings a bench's own PostgreSQL server copies from the reference server
 * (the machine's, at `referenceUrl`), so that a shard on it pays for memory,
 * WAL and durability what a shard on the reference server pays.
 */
const COPIED_SETTINGS = [
  'shared_buffers', 'wal_buffers', 'max_wal_size', 'min_wal_size', 'checkpoint_timeout', 'checkpoint_completion_target',
  'fsync', 'synchronous_commit', 'full_page_writes', 'wal_compression', 'wal_level', 'wal_writer_delay', 'commit_delay',
  'work_mem', 'maintenance_work_mem', 'effective_io_concurrency', 'max_connections', 'random_page_cost', 'jit',
];

/**
 * A PostgreSQL server of the bench's own: the sandbox's initdb and start (src/sandbox/postgres.ts:
 * its OS user when run as root, trust on 127.0.0.1, pg_ctl), but with the binaries of the reference
 * server's major version (`pg_config --bindir`, or BENCH_PG_BINDIR) instead of the embedded ones, and
 * the reference server's settings (COPIED_SETTINGS) written after the sandbox's speed-over-durability
 * lines, which they override. In a fresh directory under the temp dir (the same disk here).
 * { url(db), admin (connected to its `postgres` database), stop() }; stop() stops it and deletes its directory.
 */
export async function startPostgres(referenceUrl) {
  const { preparePostgresLayout, initCluster, startServer, stopServer, postgresUrl } = await import('../dist/sandbox/postgres.js');
  const ref = new pg.Client({ connectionString: referenceUrl });
  await ref.connect();
  let settings;
  let version;
  try {
    ({ rows: settings } = await ref.query('SELECT name, setting FROM pg_settings WHERE name = ANY($1)', [COPIED_SETTINGS]));
    version = Number((await ref.query('SHOW server_version_num')).rows[0].server_version_num);
  } finally {
    await ref.end();
  }
  const bindir = process.env.BENCH_PG_BINDIR ?? execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
  const binVersion = execFileSync(path.join(bindir, 'postgres'), ['--version'], { encoding: 'utf8' });
  const major = /(\d+)(?:\.\d+)?/.exec(binVersion.replace(/^\D+/, ''))?.[1];
  if (Number(major) !== Math.floor(version / 10000)) {
    throw new Error(`the binaries in ${bindir} are ${binVersion.trim()}, the reference server is ${version}: set BENCH_PG_BINDIR to its version's bin directory`);
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'shardctl-bench-pg-'));
  const layout = {
    ...(await preparePostgresLayout(dir)),
    binaries: { initdb: path.join(bindir, 'initdb'), pgCtl: path.join(bindir, 'pg_ctl'), postgres: path.join(bindir, 'postgres'), nativeDir: path.dirname(bindir), copied: false },
  };
  let admin;
  const stop = async () => {
    await admin?.end().catch(() => {});
    await stopServer(layout).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await initCluster(layout);
    // pg_settings' `setting` is in the parameter's base unit, which is also how a bare number in the file is read.
    const value = (s) => `'${s.setting.replaceAll("'", "''")}'`;
    appendFileSync(layout.dataDir + '/postgresql.conf', `\n# as the reference server (${referenceUrl.replace(/:[^:@/]*@/, ':***@')})\n${settings.map((s) => `${s.name} = ${value(s)}`).join('\n')}\n`);
    const server = await startServer(layout, await freePort());
    const url = (db) => postgresUrl(server.port, db);
    admin = new pg.Client({ connectionString: url('postgres') });
    await admin.connect();
    return { port: server.port, url, admin, stop };
  } catch (err) {
    // Nothing of a server that did not come up is left behind.
    await stop();
    throw err;
  }
}
