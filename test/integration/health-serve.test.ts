import { connect } from 'node:net';
import { request } from 'node:http';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { renderPrometheus } from '../../src/cli/render/health-prometheus.js';
import { parseConfig } from '../../src/config/load.js';
import { runHealth } from '../../src/engine/health/run.js';
import { serveHealth, type HealthServer, type ServeHealthOptions } from '../../src/engine/health/serve.js';
import type { HealthReport } from '../../src/engine/health/types.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';

const PASSWORD = 's3cretpw-health-serve';

/** A report with one result, tagged so that two runs give two different bodies. */
function fakeReport(tag: string): HealthReport {
  return {
    at: new Date().toISOString(),
    status: 'warning',
    durationMs: 12,
    timeoutMs: 5000,
    results: [
      { check: 'latency', group: 'shards', target: tag, labels: { shard: tag }, status: 'warning', value: 0.07, unit: 'seconds', thresholds: { warning: 0.05, critical: 0.5 }, message: 'slow' },
    ],
    summary: { ok: 0, warning: 1, critical: 0, unknown: 0 },
  };
}

function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** The server's log lines, and a way to await one (already logged or still to come) instead of sleeping. */
function logRecorder() {
  const lines: string[] = [];
  const waiting: Array<{ pattern: RegExp; count: number; resolve: () => void }> = [];
  const matches = (pattern: RegExp) => lines.filter((l) => pattern.test(l)).length;
  return {
    lines,
    log: (level: string, message: string) => {
      lines.push(`${level} ${message}`);
      for (const w of [...waiting]) if (matches(w.pattern) >= w.count) waiting.splice(waiting.indexOf(w), 1), w.resolve();
    },
    /** Resolves once `count` lines have matched. */
    until(pattern: RegExp, count = 1): Promise<void> {
      if (matches(pattern) >= count) return Promise.resolve();
      return new Promise((resolve) => waiting.push({ pattern, count, resolve }));
    },
  };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request on its own connection (no keep-alive pool between tests). */
function get(url: string, path: string, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function connectionRefused(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.on('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

const started: Array<{ controller: AbortController; server: HealthServer }> = [];

async function serve(over: Partial<ServeHealthOptions> & Pick<ServeHealthOptions, 'run'>) {
  const controller = new AbortController();
  const logs = logRecorder();
  const server = await serveHealth({ port: 0, render: renderPrometheus, signal: controller.signal, log: logs.log, ...over });
  started.push({ controller, server });
  return { controller, server, logs };
}

afterEach(async () => {
  for (const { controller, server } of started.splice(0)) {
    controller.abort();
    await server.closed;
  }
});

describe('serveHealth with a run that counts its calls', () => {
  it('binds 127.0.0.1 by default, on the real port when asked for port 0', async () => {
    const { server } = await serve({ run: async () => fakeReport('a') });
    expect(server.host).toBe('127.0.0.1');
    expect(server.port).toBeGreaterThan(0);
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
  });

  it('answers /metrics with the rendering, parseable, under prom-client\'s content type', async () => {
    let runs = 0;
    const { server } = await serve({ run: async () => (runs++, fakeReport('shard-1')) });
    const answer = await get(server.url, '/metrics?debug=1');
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toBe(Registry.PROMETHEUS_CONTENT_TYPE);
    const parsed = parsePrometheusTextFormat(answer.body);
    expect(parsed.find((f) => f.name === 'shardctl_pg_latency_seconds')!.metrics).toEqual([{ value: '0.07', labels: { shard: 'shard-1' } }]);
    expect(parsed.find((f) => f.name === 'shardctl_health_status')!.metrics).toEqual([{ value: '1' }]);
    expect(runs).toBe(1);
  });

  it('lets two concurrent scrapes share one run, and starts a new run for the next scrape', async () => {
    let runs = 0;
    const release = deferred<void>();
    const { server, logs } = await serve({
      run: async () => {
        runs++;
        const tag = `run-${runs}`;
        if (runs === 1) await release.promise;
        return fakeReport(tag);
      },
    });
    const first = get(server.url, '/metrics');
    await logs.until(/starting a health run/);
    const second = get(server.url, '/metrics');
    // Were it not shared, the second scrape would run on its own (runs 2, no wait) and answer first: fail fast rather than hang.
    await Promise.race([
      logs.until(/joining the health run in flight/),
      second.then(() => {
        throw new Error(`the second scrape was answered before the first run ended (runs: ${runs})`);
      }),
    ]);
    release.resolve();
    const [a, b] = await Promise.all([first, second]);
    expect(runs).toBe(1);
    expect(a.status).toBe(200);
    expect(b.body).toBe(a.body);
    expect(a.body).toContain('shard="run-1"');
    const third = await get(server.url, '/metrics');
    expect(runs).toBe(2);
    expect(third.body).toContain('shard="run-2"');
  });

  it('answers /healthz without running the checks, 404 elsewhere, 405 for other methods', async () => {
    let runs = 0;
    const { server } = await serve({ run: async () => (runs++, fakeReport('a')) });
    expect(await get(server.url, '/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
    expect((await get(server.url, '/')).status).toBe(404);
    expect((await get(server.url, '/metrics/extra')).status).toBe(404);
    const post = await get(server.url, '/metrics', 'POST');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
    expect(runs).toBe(0);
  });

  it('answers a failed run with a 500 and one line: no stack, no password', async () => {
    const { server, logs } = await serve({
      run: async () => {
        throw new Error(`cannot reach postgres://app:${PASSWORD}@10.0.0.9/app\n    at somewhere (file.ts:1:1)`);
      },
    });
    const answer = await get(server.url, '/metrics');
    expect(answer.status).toBe(500);
    expect(answer.body).toBe('health run failed: cannot reach postgres://app:***@10.0.0.9/app\n');
    expect(logs.lines.join('\n')).not.toContain(PASSWORD);
    // the failure is not cached: the next scrape runs again
    expect((await get(server.url, '/metrics')).status).toBe(500);
    expect(logs.lines.filter((l) => /starting a health run/.test(l))).toHaveLength(2);
  });

  it('on abort stops accepting, answers the scrape in flight, then closes: the port refuses connections', async () => {
    const release = deferred<void>();
    const { server, controller, logs } = await serve({ run: async () => (await release.promise, fakeReport('last')) });
    const inFlight = get(server.url, '/metrics');
    await logs.until(/starting a health run/);
    let closed = false;
    void server.closed.then(() => (closed = true));
    controller.abort();
    await logs.until(/stopping: answering the scrape in flight first/);
    expect(await connectionRefused(server.port)).toBe('ECONNREFUSED');
    expect(closed).toBe(false);
    release.resolve();
    const answer = await inFlight;
    expect(answer.status).toBe(200);
    expect(answer.body).toContain('shard="last"');
    expect(answer.headers.connection).toBe('close');
    await server.closed;
    expect(await connectionRefused(server.port)).toBe('ECONNREFUSED');
  });

  it('cuts a scrape that outlives the drain bound, and still closes', async () => {
    const never = deferred<HealthReport>();
    const { server, controller, logs } = await serve({ run: () => never.promise, drainTimeoutMs: 300 });
    const inFlight = get(server.url, '/metrics').then(
      () => 'answered',
      (err: NodeJS.ErrnoException) => err.code ?? err.message,
    );
    await logs.until(/starting a health run/);
    const t0 = Date.now();
    controller.abort();
    await server.closed;
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(await inFlight).toBe('ECONNRESET');
  });

  it('rejects with the address when the port is taken', async () => {
    const { server } = await serve({ run: async () => fakeReport('a') });
    await expect(serveHealth({ port: server.port, run: async () => fakeReport('b'), render: renderPrometheus, signal: new AbortController().signal })).rejects.toThrow(
      `cannot serve on 127.0.0.1:${server.port}: EADDRINUSE`,
    );
  });
});

describe('serveHealth over runHealth on a real deployment', () => {
  let metadata: TestDatabase;
  let shard: TestDatabase;
  beforeAll(async () => {
    metadata = await createTestDatabase('health_serve_meta');
    shard = await createTestDatabase('health_serve_shard');
  });
  afterAll(async () => {
    await shard?.drop();
    await metadata?.drop();
  });

  it('each scrape runs the checks: the answer parses, has no duplicate series and no password', async () => {
    const withPassword = shard.url.replace('postgres://postgres@', `postgres://postgres:${PASSWORD}@`);
    expect(withPassword).toContain(PASSWORD);
    const config = parseConfig({ metadata: { url: metadata.url }, shards: [{ id: 'shard-1', url: withPassword }], health: { timeout: '5s' } }, 'test.yaml', {});
    let runs = 0;
    const reports: HealthReport[] = [];
    const { server } = await serve({
      run: async () => {
        runs++;
        const report = await runHealth(config);
        reports.push(report);
        return report;
      },
    });
    const answer = await get(server.url, '/metrics');
    expect(answer.status).toBe(200);
    expect(runs).toBe(1);
    expect(answer.body).not.toContain(PASSWORD);
    const parsed = parsePrometheusTextFormat(answer.body);
    const worst = Number(parsed.find((f) => f.name === 'shardctl_health_status')!.metrics[0]!.value);
    expect(worst).toBe({ ok: 0, warning: 1, critical: 2, unknown: 3 }[reports[0]!.status]);
    expect(Number(parsed.find((f) => f.name === 'shardctl_health_duration_seconds')!.metrics[0]!.value)).toBe(reports[0]!.durationMs / 1000);
    const statuses = parsed.find((f) => f.name === 'shardctl_health_check_status')?.metrics ?? [];
    expect(statuses.length).toBe(new Set(reports[0]!.results.map((r) => `${r.check}\u0000${r.target}`)).size);
    const keys = parsed.flatMap((f) => f.metrics.map((m) => `${f.name}${JSON.stringify(Object.entries(m.labels ?? {}).sort())}`));
    expect(new Set(keys).size).toBe(keys.length);
    for (const f of parsed) expect(answer.body).toContain(`# TYPE ${f.name} gauge`);
    await get(server.url, '/metrics');
    expect(runs).toBe(2);
  });
});
