import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../../src/sandbox/ports.js';
import { runCommand, tailFile } from '../../src/sandbox/process.js';
import { findRedisServer, pingRedis, readPid, stopRedis } from '../../src/sandbox/redis.js';

export interface RedisClusterNode {
  port: number;
  pidFile: string;
  /** `127.0.0.1:<port>`, as errors name it. */
  address: string;
}

/**
 * A 3-master Redis Cluster (no replicas) of its own, on free ports in a temp
 * directory: for tests of SCAN over every master and of a failed slot range.
 * `cluster-node-timeout` is 1 s so a stopped master is flagged failed quickly.
 */
export interface TestRedisCluster {
  nodes: RedisClusterNode[];
  /** `redis://127.0.0.1:<port>` of every node, for the Cluster client. */
  urls: string[];
  /** Stops one node (SIGTERM) and, with `waitForFail`, waits until every other node flags the cluster failed. */
  stopNode(index: number, options?: { waitForFail?: boolean }): Promise<void>;
  /** Stops every node it started and removes the directory. Safe to call twice. */
  cleanup(): Promise<void>;
}

export async function startRedisCluster(size = 3): Promise<TestRedisCluster> {
  const binary = await findRedisServer();
  if (!binary) throw new Error('redis-server is not installed: the Cluster tests need it');
  const cli = path.join(path.dirname(binary), 'redis-cli');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'shardctl-test-rcluster-'));
  const nodes: RedisClusterNode[] = [];
  const cleanup = async () => {
    for (const node of nodes) await stopRedis({ pid: null, pidFile: node.pidFile }).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < size; i++) {
      const port = await freePort();
      const pidFile = path.join(dir, `redis-${port}.pid`);
      const result = await runCommand(binary, [
        '--daemonize', 'yes', '--port', String(port), '--bind', '127.0.0.1',
        '--save', '', '--appendonly', 'no',
        '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '1000',
        '--pidfile', pidFile, '--logfile', path.join(dir, `redis-${port}.log`), '--dir', dir,
      ], { cwd: dir, timeoutMs: 30_000, detached: true });
      if (result.code !== 0) throw new Error(`redis-server on ${port} did not start: ${result.stderr || result.stdout}`);
      nodes.push({ port, pidFile, address: `127.0.0.1:${port}` });
    }
    for (const node of nodes) await waitFor(() => pingRedis(node.port), `127.0.0.1:${node.port} to answer PING`);
    const created = await runCommand(
      cli,
      ['--cluster', 'create', ...nodes.map((n) => n.address), '--cluster-replicas', '0', '--cluster-yes'],
      { cwd: dir, timeoutMs: 60_000 },
    );
    if (created.code !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`);
    for (const node of nodes) {
      await waitFor(async () => (await clusterState(cli, node.port)) === 'ok', `${node.address} to report cluster_state:ok`);
    }
  } catch (err) {
    const logs = (await Promise.all(nodes.map((n) => tailFile(path.join(dir, `redis-${n.port}.log`), 5)))).flat();
    await cleanup();
    throw new Error(`${(err as Error).message}\n${logs.join('\n')}`);
  }
  return {
    nodes,
    urls: nodes.map((n) => `redis://${n.address}`),
    async stopNode(index, options = {}) {
      const node = nodes[index]!;
      await stopRedis({ pid: await readPid(node.pidFile), pidFile: node.pidFile });
      if (options.waitForFail) {
        // Every other node, not just one: each marks the cluster failed on its own, a moment apart.
        for (const other of nodes.filter((n) => n !== node)) {
          await waitFor(async () => (await clusterState(cli, other.port)) === 'fail', `${other.address} to flag the cluster failed`);
        }
      }
    },
    cleanup,
  };
}

async function clusterState(cli: string, port: number): Promise<string | null> {
  const r = await runCommand(cli, ['-p', String(port), 'CLUSTER', 'INFO'], { timeoutMs: 5_000 });
  return /cluster_state:(\w+)/.exec(r.stdout)?.[1] ?? null;
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}
