import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { effectiveConfig } from '../../src/config/effective.js';
import { parseConfig } from '../../src/config/load.js';
import { DEFAULT_VNODES } from '../../src/core/ring.js';

const EXAMPLE = readFileSync(new URL('../../config.example.yaml', import.meta.url), 'utf8');

/**
 * The convention of config.example.yaml: a key whose value has a default says
 * so at the end of its own line, `key: value   # …; default X`, X being one
 * YAML scalar. Returns `path → X` with array items written `shards[].weight`.
 */
function statedDefaults(text: string): Record<string, unknown> {
  const stated: Record<string, unknown> = {};
  const stack: { indent: number; segment: string }[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\s*)(-\s+)?([A-Za-z]\w*):(.*)$/.exec(line);
    if (!m) continue;
    const [, spaces, dash, key, rest] = m as unknown as [string, string, string | undefined, string, string];
    const at = (indent: number) => {
      while (stack.length && stack[stack.length - 1]!.indent >= indent) stack.pop();
    };
    at(spaces.length);
    if (dash) stack.push({ indent: spaces.length, segment: '[]' });
    const indent = spaces.length + (dash?.length ?? 0);
    at(indent);
    stack.push({ indent, segment: key });
    const comment = /\s#\s?(.*)$/.exec(rest)?.[1];
    const stating = comment && /\bdefault ([^\s;,]+)/.exec(comment);
    if (stating) stated[stack.map((s) => s.segment).join('.').replace(/\.\[\]/g, '[]')] = parse(stating[1]!);
  }
  return stated;
}

/** Every leaf of `value` (an empty object counts as one) by the same kind of path. */
function leaves(value: unknown, path = ''): Record<string, unknown> {
  if (Array.isArray(value)) return Object.assign({}, ...value.map((v) => leaves(v, `${path}[]`)));
  if (value !== null && typeof value === 'object' && Object.keys(value).length > 0) {
    return Object.assign({}, ...Object.entries(value).map(([k, v]) => leaves(v, path ? `${path}.${k}` : k)));
  }
  return { [path]: value };
}

/** Only what the schema requires, one item in each list. */
const required = {
  metadata: { url: 'postgres://postgres@127.0.0.1:5432/meta' },
  redis: { url: 'redis://127.0.0.1:6379' },
  shards: [{ id: 'shard-0', url: 'postgres://h/s0' }],
  tables: [{ name: 'public.messages', key: 'room_id' }],
  partitions: [{ table: 'public.messages', column: 'created_at', interval: 'daily' }],
  streams: [{ match: 'messages:*', maxAge: '7d' }],
};

function defaultsOfTheSchema(): Record<string, unknown> {
  const given = leaves(required);
  const all = leaves(effectiveConfig(parseConfig(required, 'required', {})));
  return Object.fromEntries(Object.entries(all).filter(([path]) => !(path in given)));
}

describe('config defaults', () => {
  it('config.example.yaml states every default, each equal to what the schema fills in', () => {
    const stated = statedDefaults(EXAMPLE);
    expect(stated['ring.vnodes']).toBe(DEFAULT_VNODES);
    expect(stated).toEqual(defaultsOfTheSchema());
  });

  it('the convention reader finds defaults on nested keys and list items', () => {
    const text = ['a:', '  b: 1   # what b is; default 1', 'list:', '  - id: x', '    w: 2   # default 2, or more', '  - id: y', 'c: {}   # default {}'].join('\n');
    expect(statedDefaults(text)).toEqual({ 'a.b': 1, 'list[].w': 2, c: {} });
  });

  it('the effective config shows the ring size that an unset ring.vnodes means', () => {
    const cfg = parseConfig({ metadata: required.metadata }, 'x', {});
    expect(cfg.ring.vnodes).toBeUndefined(); // "not configured": init and rebalance rely on it
    expect(effectiveConfig(cfg).ring).toEqual({ vnodes: DEFAULT_VNODES });
    expect(effectiveConfig(parseConfig({ metadata: required.metadata, ring: { vnodes: 64 } }, 'x', {})).ring).toEqual({ vnodes: 64 });
  });

  it('a section given with some keys gets the defaults of the others', () => {
    const cfg = parseConfig({ metadata: required.metadata, migration: { batchSize: 5 }, health: {}, migrate: { parallel: 1 } }, 'x', {});
    expect(cfg.migration).toEqual({ batchSize: 5, parallel: 2, maxRowsPerSecond: 0, workMem: '256MB', online: true, fenceTimeout: '5s', lockTimeout: '1s' });
    expect(cfg.health).toEqual({ timeout: '5s', thresholds: {}, retention: '30d' });
    expect(cfg.migrate).toEqual({ dir: './db/migrations', targets: 'shards', parallel: 1, lockTimeout: '5s' });
  });

  it('an absent section gets the same defaults as an empty one', () => {
    const absent = parseConfig({ metadata: required.metadata }, 'x', {});
    const empty = parseConfig({ metadata: required.metadata, ring: {}, migration: {}, health: {}, migrate: {} }, 'x', {});
    expect(absent).toEqual(empty);
  });
});
