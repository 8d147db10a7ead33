import { once } from 'node:events';
import { readdir, readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { execa } from 'execa';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withClient } from '../../src/postgres/connect.js';
import { BIN, runCli } from '../support/cli.js';
import { createDeployment, type TestDeployment } from '../support/deployment.js';

/**
 * `shardctl health` as cron, Nagios and Prometheus run it: exit codes by
 * status, the four formats, the textfile write, --record / --history,
 * --serve and SIGTERM, and no password anywhere.
 */
const PASSWORD = 'hc-s3cret-pw';

let d: TestDeployment;
const withPassword = (url: string) => {
  const u = new URL(url);
  u.password = PASSWORD; // trust auth: accepted and ignored by the server, so it must never be shown
  return u.toString();
};

beforeAll(async () => {
  d = await createDeployment({ shards: 2 });
  await d.rewrite((raw) => {
    raw.shards = (raw.shards as Array<{ id: string; url: string }>).map((s) => ({ ...s, url: withPassword(s.url) }));
    raw.health = { timeout: '5s', thresholds: CALM };
  });
  // The sharded tables exist on every shard, as in a real deployment (else the sharding checks say they cannot read them).
  for (const url of d.shardUrls) {
    await withClient(url, {}, (c) => c.query('CREATE TABLE public.messages (id bigint PRIMARY KEY, room_id text NOT NULL); CREATE TABLE public.reactions (id bigint PRIMARY KEY, room_id text NOT NULL)'));
  }
  const init = await runCli(['-c', d.configPath, '-q', 'init']);
  expect(init.exitCode, init.stderr).toBe(0);
});

afterAll(async () => {
  await d?.cleanup();
});

const healthWith = (args: string[]) => runCli(['-c', d.configPath, 'health', ...args]);

/** Latency is not what these tests are about: a busy CI machine must not turn their OK into WARNING. */
const CALM = { latency: { warning: '10s', critical: '1m' } };

async function setThresholds(thresholds: Record<string, unknown>): Promise<void> {
  await d.rewrite((raw) => {
    raw.health = { timeout: '5s', thresholds: { ...CALM, ...thresholds } };
  });
}

describe('exit codes follow the worst status (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)', () => {
  it('OK: exit 0, and --json carries every result with its documented fields', async () => {
    await setThresholds({});
    const r = await healthWith(['--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { ok: boolean; command: string; data: { status: string; results: Array<Record<string, unknown>> } };
    expect(doc).toMatchObject({ ok: true, command: 'health', data: { status: 'ok' } });
    const reachable = doc.data.results.filter((x) => x.check === 'reachable').map((x) => x.target).sort();
    expect(reachable).toEqual(['metadata', 'shard-0', 'shard-1']);
    for (const x of doc.data.results) {
      expect(Object.keys(x).sort()).toEqual(['check', 'group', 'labels', 'message', 'status', 'target', 'thresholds', 'unit', 'value']);
    }
  });

  it('WARNING: exit 1 when a threshold is reached, and the table names the result', async () => {
    await setThresholds({ latency: { warning: 0, critical: '1h' } });
    const r = await healthWith(['--check', 'latency']);
    expect(r.exitCode, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^WARNING\s+latency\s+shard-0/m);
    expect(r.stdout).toMatch(/^WARNING: 3 result\(s\)/m);
  });

  it('CRITICAL: exit 2', async () => {
    await setThresholds({ latency: { warning: 0, critical: 0 } });
    const r = await healthWith(['--check', 'latency', '--format', 'nagios']);
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toMatch(/^SHARDCTL HEALTH CRITICAL - /);
  });

  it('UNKNOWN: exit 3 for a config error, said on the Nagios line too', async () => {
    await setThresholds({ latency: { warning: 'soon' } });
    const r = await healthWith(['--format', 'nagios']);
    expect(r.exitCode).toBe(3);
    expect(r.stdout).toMatch(/^SHARDCTL HEALTH UNKNOWN - invalid health thresholds/);
    expect(r.stderr).toContain('health.thresholds.latency.warning');
    const unknownCheck = await healthWith(['--check', 'no_such_check']);
    expect(unknownCheck.exitCode).toBe(3);
    expect(unknownCheck.stderr).toContain('unknown check "no_such_check"');
    await setThresholds({});
  });
});

describe('formats', () => {
  it('Prometheus to a file, atomically: parses, has the shard label, and leaves no temp file', async () => {
    await setThresholds({});
    const file = path.join(d.dir, 'textfile', 'shardctl.prom');
    await execa('mkdir', ['-p', path.dirname(file)]);
    const r = await healthWith(['--only', 'shards', '--format', 'prometheus', '--output', file]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    const families = parsePrometheusTextFormat(await readFile(file, 'utf8'));
    const up = families.find((f) => f.name === 'shardctl_pg_up');
    expect(up?.metrics.map((m) => [m.labels?.shard, m.value]).sort()).toEqual([['metadata', '1'], ['shard-0', '1'], ['shard-1', '1']]);
    expect(await readdir(path.dirname(file))).toEqual(['shardctl.prom']);
  });

  it('no password appears in any format', async () => {
    for (const args of [[], ['--json'], ['--format', 'prometheus'], ['--format', 'nagios'], ['-v']]) {
      const r = await healthWith(args);
      expect(r.stdout + r.stderr).not.toContain(PASSWORD);
    }
  });
});

describe('history', () => {
  it('--record stores each run; --history shows min, max, last per check and target', async () => {
    for (let i = 0; i < 2; i++) {
      const r = await healthWith(['--check', 'reachable', '--record']);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr).not.toMatch(/could not record/);
    }
    const h = await healthWith(['--history', '--since', '1h', '--check', 'reachable', '--json']);
    expect(h.exitCode, h.stderr).toBe(0);
    const series = (JSON.parse(h.stdout) as { data: { series: Array<{ target: string; samples: number; min: number; max: number; last: { status: string } }> } }).data.series;
    expect(series.map((s) => [s.target, s.samples, s.min, s.max, s.last.status]).sort()).toEqual([
      ['metadata', 2, 1, 1, 'ok'],
      ['shard-0', 2, 1, 1, 'ok'],
      ['shard-1', 2, 1, 1, 'ok'],
    ]);
  });
});

describe('--serve', () => {
  it('answers /healthz and a scrape of /metrics, and stops cleanly on SIGTERM', async () => {
    const port = await freePort();
    const child = execa('node', [BIN, '-c', d.configPath, 'health', '--only', 'shards', '--serve', `127.0.0.1:${port}`], { reject: false, env: { ...process.env, NO_COLOR: '1' } });
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    while (!/serving http/.test(stderr)) {
      await once(child.stderr!, 'data');
    }
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    const scrape = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(scrape.status).toBe(200);
    const families = parsePrometheusTextFormat(await scrape.text());
    expect(families.find((f) => f.name === 'shardctl_pg_up')?.metrics).toHaveLength(3);
    child.kill('SIGTERM');
    const ended = await child;
    expect(ended.exitCode, stderr).toBe(0);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });
});

async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}
