import net from 'node:net';

/**
 * A port the OS says is free on 127.0.0.1 right now. Another process could take
 * it before the server binds it; a failed start then names the port.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('the OS gave no free port'))));
    });
  });
}

/** Whether `port` can be bound on 127.0.0.1 (used to reuse a restarted sandbox's old port). */
export function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** The recorded port when it is still free, otherwise a new one. */
export async function reusablePort(previous: number | null | undefined): Promise<number> {
  if (previous && (await isPortFree(previous))) return previous;
  return freePort();
}
