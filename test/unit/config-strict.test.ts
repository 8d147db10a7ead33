import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { METADATA, problemsOf } from '../support/config-problems.js';

const metadata = METADATA;


describe('config: unknown keys', () => {
  it('rejects a typo in every nested section, each by its path with the key it resembles, all at once', () => {
    const problems = problemsOf({
      metadata: { ...metadata, ulr: 'postgres://h/x' },
      redis: { uri: 'redis://127.0.0.1:6379' },
      ring: { vnode: 100 },
      shards: [{ id: 's0', url: 'postgres://h/s0' }, { id: 's1', url: 'postgres://h/s1', wieght: 2 }],
      tables: [{ name: 'public.messages', key: 'room_id', kee: 'x' }],
      migration: { batchsize: 10 },
      partitions: [{ table: 'public.messages', column: 'created_at', interval: 'daily', premke: 3 }],
      streams: [{ match: 'messages:*', maxlen: 10 }],
      health: { timout: '5s', thresholds: { lag: { warning: 1, critcal: 2 } } },
      migrate: { dri: './db' },
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        'metadata.ulr: unknown key (did you mean "url"?)',
        'redis.uri: unknown key (did you mean "url"?)',
        'ring.vnode: unknown key (did you mean "vnodes"?)',
        'shards[1].wieght: unknown key (did you mean "weight"?)',
        'tables[0].kee: unknown key (did you mean "key"?)',
        'migration.batchsize: unknown key (did you mean "batchSize"?)',
        'partitions[0].premke: unknown key (did you mean "premake"?)',
        'streams[0].maxlen: unknown key (did you mean "maxLen"?)',
        'health.timout: unknown key (did you mean "timeout"?)',
        'health.thresholds.lag.critcal: unknown key (did you mean "critical"?)',
        'migrate.dri: unknown key (did you mean "dir"?)',
      ]),
    );
    expect(problems).toHaveLength(11);
  });

  it('names an unknown key without a suggestion when no known key is close', () => {
    expect(problemsOf({ metadata, migrate: { flavour: 'x' }, colour: true })).toEqual([
      'migrate.flavour: unknown key',
      'colour: unknown key',
    ]);
  });

  it('suggests a top-level key for a misspelt section', () => {
    expect(problemsOf({ metadata, shard: [] })).toEqual(['shard: unknown key (did you mean "shards"?)']);
  });

  it('reports unknown keys together with the other problems of the same file', () => {
    const problems = problemsOf({ metadata: { url: 'mysql://x' }, migration: { parallel: 0, batchsize: 10 } });
    expect(problems).toEqual(
      expect.arrayContaining([
        'metadata.url: expected a postgres:// URL',
        expect.stringMatching(/^migration\.parallel: /),
        'migration.batchsize: unknown key (did you mean "batchSize"?)',
      ]),
    );
    expect(problems).toHaveLength(3);
  });

  it('still accepts every key of the contract, in every section', () => {
    expect(() =>
      parseConfig(
        {
          metadata: { ...metadata, lockStaleAfter: '2m' },
          redis: { nodes: ['redis://10.0.0.1:7000'], prefix: 'x:' },
          ring: { vnodes: 256 },
          shards: [{ id: 's0', url: 'postgres://h/s0', weight: 1 }],
          tables: [{ name: 'public.messages', key: 'room_id' }],
          migration: { batchSize: 1, parallel: 1, maxRowsPerSecond: 0, workMem: '64MB' },
          partitions: [{ table: 'public.messages', column: 'created_at', interval: 'daily', premake: 7, retention: '90d', retentionMode: 'archive', archiveSchema: 'archive' }],
          streams: [{ match: 'm:*', maxLen: 10, maxAge: '7d', approximate: false }],
          health: { timeout: '5s', thresholds: { lag: { warning: 1, critical: '2' } } },
          migrate: { dir: './db', targets: 'all', parallel: 2, lockTimeout: '1s' },
        },
        'x',
        {},
      ),
    ).not.toThrow();
  });
});
