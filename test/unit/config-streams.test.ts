import { describe, expect, it } from 'vitest';
import { effectiveConfig } from '../../src/config/effective.js';
import { parseConfig } from '../../src/config/load.js';
import { redactDeep } from '../../src/config/redact.js';
import { METADATA, problemsOf } from '../support/config-problems.js';

const metadata = METADATA;


/** What `config show` prints (src/cli/commands/config.ts renders this value). */
const shown = (cfg: ReturnType<typeof parseConfig>) => JSON.stringify(redactDeep(effectiveConfig(cfg)));

describe('config: stream policies', () => {
  it('a policy keeps match, maxLen, maxAge and approximate (~ unless said otherwise)', () => {
    const cfg = parseConfig({ metadata, streams: [{ match: 'messages:{*}', maxLen: 1000, maxAge: '7d' }, { match: 'audit:*', maxAge: '90d', approximate: false }] }, 'x', {});
    expect(cfg.streams).toEqual([
      { match: 'messages:{*}', maxLen: 1000, maxAge: '7d', approximate: true },
      { match: 'audit:*', maxAge: '90d', approximate: false },
    ]);
  });

  it('a policy with neither maxLen nor maxAge is a problem at its path, reported with the others', () => {
    expect(problemsOf({ metadata, streams: [{ match: 'a:*', maxLen: 5 }, { match: 'b:*' }, { match: '', maxAge: 'a week' }] })).toEqual([
      'streams[1]: a stream policy needs maxLen or maxAge',
      'streams[2].match: expected a key pattern such as messages:*',
      'streams[2].maxAge: expected a duration such as 500ms, 5s, 10m, 12h, 90d',
    ]);
  });

  it('a misspelt maxlen is named once, as the unknown key it is', () => {
    expect(problemsOf({ metadata, streams: [{ match: 'a:*', maxlen: 5 }] })).toEqual(['streams[0].maxlen: unknown key (did you mean "maxLen"?)']);
  });
});

describe('config: redis over TLS', () => {
  it('a rediss:// URL with a user and password validates, and config show prints it with the password redacted', () => {
    const cfg = parseConfig({ metadata, redis: { url: 'rediss://user:pass@host:6380' } }, 'x', {});
    expect(cfg.redis?.url).toBe('rediss://user:pass@host:6380');
    expect(shown(cfg)).toContain('"url":"rediss://user:***@host:6380"');
    expect(shown(cfg)).not.toContain('pass@');
  });

  it('so do Cluster nodes, a password-only URL and a password from ${VAR}', () => {
    const cfg = parseConfig(
      { metadata, redis: { nodes: ['rediss://:s3cret@10.0.0.1:7000', 'rediss://default:${REDIS_PASSWORD}@10.0.0.2:7000'] } },
      'x',
      { REDIS_PASSWORD: 'from-env' },
    );
    expect(cfg.redis?.nodes).toEqual(['rediss://:s3cret@10.0.0.1:7000', 'rediss://default:from-env@10.0.0.2:7000']);
    expect(shown(cfg)).toContain('"nodes":["rediss://:***@10.0.0.1:7000","rediss://default:***@10.0.0.2:7000"]');
    expect(shown(cfg)).not.toMatch(/s3cret|from-env/);
  });

  it('anything but redis:// or rediss:// is refused', () => {
    expect(problemsOf({ metadata, redis: { url: 'https://host:6380' } })).toEqual(['redis.url: expected a redis:// or rediss:// (TLS) URL']);
  });
});
