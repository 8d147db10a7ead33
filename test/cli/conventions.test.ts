import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ANSI, runCli, runCliInTty } from '../support/cli.js';

const COMMANDS = [
  ['init'],
  ['config'],
  ['shard'],
  ['sandbox'],
  ['config', 'show'],
  ['config', 'validate'],
  ['shard', 'list'],
  ['shard', 'locate'],
  ['shard', 'ring'],
  ['shard', 'simulate'],
  ['audit'],
  ['sandbox', 'up'],
  ['sandbox', 'status'],
  ['sandbox', 'down'],
  ['partition'],
  ['partition', 'rotate'],
  ['partition', 'list'],
  ['partition', 'setup'],
];

/** The temp dirs these tests make, removed after them. */
const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'shardctl-cli-'));
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function configFile(text: string): Promise<string> {
  const dir = await tempDir();
  const file = path.join(dir, 'shardctl.config.yaml');
  await writeFile(file, text);
  return file;
}

describe('CLI conventions', () => {
  it('--help prints usage with examples on stdout and exits 0', async () => {
    const r = await runCli(['--help']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/Usage: shardctl/);
    expect(r.stdout).toMatch(/Examples:/);
    expect(r.stderr).toBe('');
  });

  it.each(COMMANDS)('%s %s --help has at least one example', async (...cmd) => {
    const r = await runCli([...cmd.filter(Boolean), '--help']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/Examples:\n\s+\$ shardctl /);
  });

  it('an unknown command exits 2 and points at --help, on stderr', async () => {
    const r = await runCli(['frobnicate']);
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/unknown command 'frobnicate'/);
    expect(r.stderr).toMatch(/--help/);
  });

  it('a bad flag exits 2 and points at --help', async () => {
    const r = await runCli(['shard', 'list', '--bogus']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/unknown option '--bogus'/);
    expect(r.stderr).toMatch(/--help/);
  });

  it('every error line starts with the same prefix, usage errors of the parser included', async () => {
    for (const args of [['frobnicate'], ['shard', 'list', '--bogus'], ['-c', '/nonexistent/shardctl.yaml', 'config', 'show']]) {
      const r = await runCli(args);
      expect(r.exitCode).toBe(2);
      expect(r.stderr.split('\n')[0], args.join(' ')).toMatch(/^shardctl: /);
      expect(r.stderr).not.toMatch(/^error: /m);
    }
  });

  it('the --json error envelope names the command, also when parsing failed', async () => {
    const bad = await runCli(['--json', 'shard', 'list', '--bogus']);
    expect(JSON.parse(bad.stdout)).toMatchObject({ ok: false, command: 'shard list', error: { kind: 'usage', exitCode: 2 } });
    const missing = await runCli(['-c', '/nonexistent/shardctl.yaml', '--json', 'config', 'show']);
    expect(JSON.parse(missing.stdout)).toMatchObject({ ok: false, command: 'config show', error: { kind: 'config' } });
  });

  it('a bad flag value exits 2', async () => {
    const r = await runCli(['shard', 'simulate', '--keys', 'many', '--add', 'x']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--keys must be a positive whole number/);
  });

  it('an invalid config exits 2 listing every problem by path; --json puts the same on stdout', async () => {
    const file = await configFile(
      ['metadata: { url: "mysql://x" }', 'shards:', '  - { id: "a b", url: "postgres://h/a" }', '  - { id: c, url: "http://h/c" }', 'migrate: { targets: nowhere }'].join('\n'),
    );
    const r = await runCli(['-c', file, 'shard', 'list']);
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('metadata.url: expected a postgres:// URL');
    expect(r.stderr).toMatch(/shards\[0\]\.id: expected a shard id/);
    expect(r.stderr).toContain('shards[1].url: expected a postgres:// URL');
    expect(r.stderr).toMatch(/migrate\.targets: /);

    const j = await runCli(['-c', file, 'shard', 'list', '--json']);
    expect(j.exitCode).toBe(2);
    const body = JSON.parse(j.stdout);
    expect(body).toMatchObject({ ok: false, command: 'shard list', error: { kind: 'config', exitCode: 2 } });
    expect(body.error.details).toHaveLength(4);
  });

  it('a missing config file exits 2', async () => {
    const r = await runCli(['-c', '/nonexistent/shardctl.yaml', 'config', 'show']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/config file not found/);
  });

  it('config show prints the effective config with passwords redacted, and expands ${VAR}', async () => {
    const file = await configFile(
      'metadata: { url: "postgres://admin:${META_PW}@db:5432/meta" }\nshards:\n  - { id: s0, url: "postgres://app:${S0_PW:-fallback}@db/s0" }\n',
    );
    const r = await runCli(['-c', file, 'config', 'show', '--json'], { env: { META_PW: 'topsecret' } });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).not.toContain('topsecret');
    expect(r.stdout).not.toContain('fallback');
    const body = JSON.parse(r.stdout);
    expect(body).toMatchObject({ ok: true, command: 'config show' });
    expect(body.data.config.metadata.url).toBe('postgres://admin:***@db:5432/meta');
    expect(body.data.config.migration.batchSize).toBe(10000);
  });

  it('a destructive command without a TTY and without --yes exits 2 and names the flag', async () => {
    const dir = await tempDir();
    const r = await runCli(['sandbox', 'down', '--dir', dir]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--yes/);
  });

  it('colours a TTY, and not with NO_COLOR, --no-color or CI', async () => {
    const file = await configFile('metadata: { url: "postgres://u:p@h/m" }\n');
    const plainArgs = ['-c', file, 'config', 'validate'];
    const coloured = await runCliInTty(['--help']);
    expect(coloured.exitCode).toBe(0);
    const tty = await runCliInTty(plainArgs);
    expect(tty.output).toMatch(ANSI);
    for (const [args, env] of [
      [plainArgs, { NO_COLOR: '1' }],
      [['--no-color', ...plainArgs], {}],
      [plainArgs, { CI: 'true' }],
    ] as const) {
      const r = await runCliInTty([...args], env);
      expect(r.exitCode).toBe(0);
      expect(r.output).toMatch(/valid/);
      expect(r.output).not.toMatch(ANSI);
    }
  });
});
