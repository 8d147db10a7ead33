import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseDuration } from '../../src/config/duration.js';
import { interpolateEnv } from '../../src/config/interpolate.js';
import { parseConfig } from '../../src/config/load.js';
import { redactDeep, redactUrl, stripPassword } from '../../src/config/redact.js';
import { ConfigError } from '../../src/errors.js';

const minimal = { metadata: { url: 'postgres://postgres@127.0.0.1:5432/meta' } };

function problemsOf(raw: unknown, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(raw, 'test.yaml', env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected the config to be rejected');
}

describe('config', () => {
  it('config.example.yaml is valid and documents every top-level key of the schema', () => {
    const text = readFileSync(new URL('../../config.example.yaml', import.meta.url), 'utf8');
    const cfg = parseConfig(parse(text), 'config.example.yaml', {});
    expect(cfg.shards.map((s) => s.id)).toEqual(['shard-0', 'shard-1']);
    for (const key of ['metadata', 'redis', 'ring', 'shards', 'tables', 'migration', 'partitions', 'streams', 'health', 'migrate']) {
      expect(text).toMatch(new RegExp(`^${key}:`, 'm'));
    }
  });

  it('fills in defaults for a minimal file', () => {
    const cfg = parseConfig(minimal, 'x', {});
    expect(cfg.migration).toEqual({ batchSize: 10_000, parallel: 2, maxRowsPerSecond: 0, workMem: '256MB', online: true, fenceTimeout: '5s', lockTimeout: '1s' });
    expect(cfg.migrate.targets).toBe('shards');
    expect(cfg.shards).toEqual([]);
  });

  it('lists every problem with its path, not just the first', () => {
    const problems = problemsOf({
      metadata: { url: 'mysql://nope' },
      shards: [
        { id: 'a', url: 'postgres://h/a' },
        { id: 'bad id!', url: 'postgres://h/b' },
        { id: 'c', url: 'http://h/c' },
        { id: 'a', url: 'postgres://h/d' },
      ],
      migrate: { targets: 'everywhere' },
      bogus: 1,
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        'metadata.url: expected a postgres:// URL',
        expect.stringMatching(/^shards\[1\]\.id: /),
        'shards[2].url: expected a postgres:// URL',
        expect.stringMatching(/^shards\[3\]\.id: duplicate shard id "a"/),
        expect.stringMatching(/^migrate\.targets: /),
        "bogus: unknown key",
      ]),
    );
    expect(problems.length).toBeGreaterThanOrEqual(6);
  });

  it('refuses two shards in the same database', () => {
    const problems = problemsOf({
      ...minimal,
      shards: [
        { id: 'a', url: 'postgres://u@localhost/app' },
        { id: 'b', url: 'postgres://v:pw@127.0.0.1:5432/app' },
        { id: 'c', url: 'postgres://u@127.0.0.1:5433/app' },
      ],
    });
    expect(problems).toEqual(['shards[1].url: the same database as shards[0]']);
  });

  it('expands ${VAR} and ${VAR:-default}, and reports unset variables by path', () => {
    const raw = { metadata: { url: 'postgres://app:${PW}@${HOST:-localhost}/meta' }, shards: [{ id: 's', url: 'postgres://${NOPE}@h/db' }] };
    expect(problemsOf(raw, { PW: 'x' })).toContain('shards[0].url: environment variable NOPE is not set');
    const ok = parseConfig({ metadata: raw.metadata }, 'x', { PW: 's3cret' });
    expect(ok.metadata.url).toBe('postgres://app:s3cret@localhost/meta');
  });

  it('keeps $${VAR} literal', () => {
    expect(interpolateEnv('a$${B}c', { B: 'no' }).value).toBe('a${B}c');
  });

  it('redacts passwords in URLs and text, and strips them for storage', () => {
    expect(redactUrl('postgres://app:s3cret@h:5432/db')).toBe('postgres://app:***@h:5432/db');
    expect(redactUrl('see postgres://u:p@h/db and redis://:pw@r:6379')).toBe('see postgres://u:***@h/db and redis://:***@r:6379');
    expect(stripPassword('postgres://app:s3cret@h:5432/db')).toBe('postgres://app@h:5432/db');
    expect(JSON.stringify(redactDeep({ shards: [{ url: 'postgres://a:b@c/d' }] }))).not.toContain(':b@');
  });

  it('parses durations', () => {
    expect(parseDuration('5s')).toBe(5000);
    expect(parseDuration('90d')).toBe(90 * 86_400_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(() => parseDuration('soon')).toThrow(/not a duration/);
  });
});
