// Servers the benches start for themselves: a free port, and a private
// `redis-server --save "" --appendonly no` on it (the shared 6379 is never
// touched), answered before it is handed over. The caller stops it.
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { Redis } from 'ioredis';

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
