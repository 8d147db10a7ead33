import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DEFAULT_VNODES } from '../../src/core/ring.js';
import { runCli } from '../support/cli.js';

let dir: string;
const file = (name: string) => path.join(dir, name);
const metadataOf = (db: string) => `metadata:\n  url: postgres://postgres@127.0.0.1:5432/${db}\n`;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'shardctl-cli-config-'));
  await writeFile(file('minimal.yaml'), metadataOf('minimal'));
  await writeFile(file('from-env.yaml'), metadataOf('from_env'));
  await writeFile(
    file('typos.yaml'),
    [
      metadataOf('typos').trimEnd(),
      'redis: { uri: "redis://127.0.0.1:6379" }',
      'shards:',
      '  - { id: s0, url: "postgres://h/s0", wieght: 2 }',
      'tables:',
      '  - { name: public.messages, kee: room_id }',
      'migrate: { dri: ./db }',
      'health: { timout: 5s }',
    ].join('\n'),
  );
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('shardctl config', () => {
  it('config validate exits 2 naming every unknown nested key with the key it resembles', async () => {
    const r = await runCli(['-c', file('typos.yaml'), 'config', 'validate']);
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe('');
    for (const line of [
      'redis.uri: unknown key (did you mean "url"?)',
      'shards[0].wieght: unknown key (did you mean "weight"?)',
      'tables[0].kee: unknown key (did you mean "key"?)',
      'migrate.dri: unknown key (did you mean "dir"?)',
      'health.timout: unknown key (did you mean "timeout"?)',
    ]) expect(r.stderr).toContain(line);
    // tables[0].key is missing too: the typo does not hide the problem it causes.
    expect(r.stderr).toMatch(/tables\[0\]\.key: /);

    const j = await runCli(['-c', file('typos.yaml'), '--json', 'config', 'validate']);
    expect(j.exitCode).toBe(2);
    expect(JSON.parse(j.stdout).error.details).toHaveLength(6);
  });

  it('config show prints the ring size an unset ring.vnodes means, in text and --json', async () => {
    const text = await runCli(['-c', file('minimal.yaml'), 'config', 'show']);
    expect(text.exitCode).toBe(0);
    const shown = parse(text.stdout);
    expect(shown.ring).toEqual({ vnodes: DEFAULT_VNODES });
    expect(shown.metadata.lockStaleAfter).toBe('2m');
    expect(shown.health).toEqual({ timeout: '5s', thresholds: {}, retention: '30d' });

    const json = await runCli(['-c', file('minimal.yaml'), '--json', 'config', 'show']);
    expect(JSON.parse(json.stdout).data.config.ring).toEqual({ vnodes: DEFAULT_VNODES });
  });

  it('SHARDCTL_CONFIG names the config file; -c wins over it', async () => {
    const byEnv = await runCli(['--json', 'config', 'show'], { cwd: dir, env: { SHARDCTL_CONFIG: file('from-env.yaml') } });
    expect(byEnv.exitCode).toBe(0);
    expect(JSON.parse(byEnv.stdout).data.file).toBe(file('from-env.yaml'));

    const byFlag = await runCli(['-c', file('minimal.yaml'), '--json', 'config', 'show'], { cwd: dir, env: { SHARDCTL_CONFIG: file('from-env.yaml') } });
    expect(JSON.parse(byFlag.stdout).data.file).toBe(file('minimal.yaml'));
  });

  it('a SHARDCTL_CONFIG naming no file exits 2 and says where the name came from', async () => {
    const r = await runCli(['config', 'validate'], { cwd: dir, env: { SHARDCTL_CONFIG: file('nope.yaml') } });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(`config file not found: ${file('nope.yaml')} (from SHARDCTL_CONFIG)`);
  });
});
