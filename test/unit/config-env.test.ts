import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

let dir: string;
const file = (name: string) => path.join(dir, name);
const configOf = (db: string) => `metadata:\n  url: postgres://postgres@127.0.0.1:5432/${db}\n`;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'shardctl-config-env-'));
  await writeFile(file('shardctl.config.yaml'), configOf('discovered'));
  await writeFile(file('from-env.yaml'), configOf('from_env'));
  await writeFile(file('from-flag.yaml'), configOf('from_flag'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('config file selection', () => {
  it('SHARDCTL_CONFIG names the config file instead of discovery', async () => {
    const loaded = await loadConfig({ cwd: dir, env: { SHARDCTL_CONFIG: file('from-env.yaml') } });
    expect(loaded.filepath).toBe(file('from-env.yaml'));
    expect(loaded.config.metadata.url).toMatch(/\/from_env$/);
  });

  it('a relative SHARDCTL_CONFIG is read from the working directory', async () => {
    const loaded = await loadConfig({ cwd: dir, env: { SHARDCTL_CONFIG: 'from-env.yaml' } });
    expect(loaded.filepath).toBe(file('from-env.yaml'));
  });

  it('-c wins over SHARDCTL_CONFIG', async () => {
    const loaded = await loadConfig({ cwd: dir, explicitPath: 'from-flag.yaml', env: { SHARDCTL_CONFIG: file('from-env.yaml') } });
    expect(loaded.filepath).toBe(file('from-flag.yaml'));
  });

  it('an empty SHARDCTL_CONFIG is as if unset: discovery finds shardctl.config.yaml', async () => {
    const loaded = await loadConfig({ cwd: dir, env: { SHARDCTL_CONFIG: '' } });
    expect(loaded.filepath).toBe(file('shardctl.config.yaml'));
  });

  it('a SHARDCTL_CONFIG naming no file is a config error that names the variable', async () => {
    const err = await loadConfig({ cwd: dir, env: { SHARDCTL_CONFIG: 'missing.yaml' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe('config file not found: missing.yaml (from SHARDCTL_CONFIG)');
  });
});
