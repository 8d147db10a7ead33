import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { redactText } from '../../config/redact.js';
import { OperationError } from '../../errors.js';
import type { HealthReport } from './types.js';

export interface ServeHealthOptions {
  /** Default 127.0.0.1: an exporter is reachable from elsewhere only when asked. */
  host?: string;
  /** 0: any free port (the bound one is returned). */
  port: number;
  /** One health run (the CLI's runHealth with its timeout). */
  run: () => Promise<HealthReport>;
  /** The body of /metrics (renderPrometheus). */
  render: (report: HealthReport) => Promise<string>;
  /** Aborted on SIGTERM / SIGINT: stop accepting, let the scrape in flight finish, close. */
  signal: AbortSignal;
  /** info: listening, stopping; error: a failed run; debug: each scrape, and whether it joined the run in flight. */
  log?: (level: 'debug' | 'info' | 'warn' | 'error', message: string) => void;
  /** Default prom-client's Registry.PROMETHEUS_CONTENT_TYPE (text format 0.0.4). */
  contentType?: string;
  /** How long a scrape in flight may take to finish after the abort before its connection is cut (default 10 s). */
  drainTimeoutMs?: number;
}

export interface HealthServer {
  host: string;
  port: number;
  /** http://host:port, for a log line and for tests. */
  url: string;
  /** Resolves once the server is closed and every connection is gone, after the abort. */
  closed: Promise<void>;
}

const DEFAULT_DRAIN_MS = 10_000;

/**
 * `health --serve HOST:PORT`: an exporter for Prometheus to scrape.
 *
 * GET /metrics runs the checks and answers with the rendering. Scrapes that
 * arrive while a run is in flight wait for that run instead of starting their
 * own, so two Prometheus servers (or a retry) never double the load on the
 * shards. GET /healthz answers "ok" without running anything (a liveness
 * probe must not cost a health run). Anything else is 404.
 *
 * A failed run is a 500 with one line of text (no stack; passwords redacted),
 * so Prometheus marks the target down (`up` 0) rather than reading stale data.
 *
 * Resolves once listening, with the bound address; `closed` resolves after
 * the abort, once the scrape in flight is answered (at most drainTimeoutMs).
 */
export async function serveHealth(options: ServeHealthOptions): Promise<HealthServer> {
  const host = options.host ?? '127.0.0.1';
  const contentType = options.contentType ?? Registry.PROMETHEUS_CONTENT_TYPE;
  const log = options.log ?? (() => {});
  let stopping = false;
  let inflight: Promise<string> | null = null;

  const scrape = (): Promise<string> => {
    if (inflight) {
      log('debug', 'scrape: joining the health run in flight');
      return inflight;
    }
    log('debug', 'scrape: starting a health run');
    inflight = (async () => options.render(await options.run()))().finally(() => {
      inflight = null;
    });
    return inflight;
  };

  const answer = (res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8') => {
    // During shutdown, no keep-alive: the connection must end so that close() can finish.
    if (stopping) res.setHeader('Connection', 'close');
    res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://exporter').pathname;
    if (path !== '/metrics' && path !== '/healthz') return answer(res, 404, 'not found: try /metrics or /healthz\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return answer(res, 405, 'method not allowed\n');
    }
    if (stopping) return answer(res, 503, 'shutting down\n');
    if (path === '/healthz') return answer(res, 200, 'ok\n');
    try {
      answer(res, 200, await scrape(), contentType);
    } catch (err) {
      const message = redactText(firstLine(err));
      log('error', `health run for a scrape failed: ${message}`);
      answer(res, 500, `health run failed: ${message}\n`);
    }
  };

  const server = createServer((req, res) => {
    void handle(req, res);
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(new OperationError(`cannot serve on ${hostPort(host, options.port)}: ${err.code ?? err.message}`, { cause: err }));
    server.once('error', onError);
    server.listen(options.port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const url = `http://${hostPort(host, bound.port)}`;
  log('info', `serving ${url}/metrics and ${url}/healthz`);

  const closed = new Promise<void>((resolve) => {
    const stop = () => {
      stopping = true;
      log('info', inflight ? 'stopping: answering the scrape in flight first' : 'stopping');
      // close() stops accepting and ends idle keep-alive connections; its callback waits for the busy ones.
      const drain = setTimeout(() => server.closeAllConnections(), options.drainTimeoutMs ?? DEFAULT_DRAIN_MS);
      server.close(() => {
        clearTimeout(drain);
        resolve();
      });
      server.closeIdleConnections();
    };
    if (options.signal.aborted) stop();
    else options.signal.addEventListener('abort', stop, { once: true });
  });

  return { host, port: bound.port, url, closed };
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0]!.trim() || 'unknown error';
}
