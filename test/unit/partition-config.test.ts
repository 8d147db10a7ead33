import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { METADATA, problemsOf } from '../support/config-problems.js';

const metadata = METADATA;
const messages = { table: 'public.messages', column: 'created_at', interval: 'daily' };


describe('config: partitions', () => {
  it('a file written before timezone, lockTimeout, maxRows and maxBytes existed still loads, with their defaults', () => {
    const cfg = parseConfig({ metadata, partitions: [{ ...messages, premake: 3, retention: '90d', retentionMode: 'drop' }] }, 'x', {});
    expect(cfg.partitions[0]).toEqual({ ...messages, premake: 3, retention: '90d', retentionMode: 'drop', archiveSchema: 'archive', timezone: 'UTC', lockTimeout: '1s' });
  });

  it('takes an IANA zone, a lock timeout and both thresholds, maxBytes as bytes or a size', () => {
    const cfg = parseConfig(
      { metadata, partitions: [{ ...messages, timezone: 'Europe/Berlin', lockTimeout: '250ms', maxRows: 1000, maxBytes: '10GB' }, { ...messages, table: 'public.events', maxBytes: 1024 }] },
      'x',
      {},
    );
    expect(cfg.partitions[0]).toMatchObject({ timezone: 'Europe/Berlin', lockTimeout: '250ms', maxRows: 1000, maxBytes: '10GB' });
    expect(cfg.partitions[1]).toMatchObject({ maxBytes: 1024 });
  });

  it('an unknown time zone is a config error at its path, reported with the other problems', () => {
    const problems = problemsOf({
      metadata,
      partitions: [messages, { ...messages, timezone: 'Mars/Olympus', lockTimeout: 'soon', maxRows: 0, maxBytes: '10 gigs' }],
    });
    expect(problems).toEqual([
      'partitions[1].timezone: unknown time zone "Mars/Olympus" (expected an IANA name such as UTC or Europe/Berlin)',
      'partitions[1].lockTimeout: expected a duration such as 500ms, 5s, 10m, 12h, 90d',
      expect.stringMatching(/^partitions\[1\]\.maxRows: /),
      expect.stringMatching(/^partitions\[1\]\.maxBytes: /),
    ]);
  });

  it('an offset is not a zone: bounds need the zone’s DST rules', () => {
    expect(problemsOf({ metadata, partitions: [{ ...messages, timezone: '+01:00' }] })).toEqual([
      'partitions[0].timezone: unknown time zone "+01:00" (expected an IANA name such as UTC or Europe/Berlin)',
    ]);
  });

  it('stays strict: a misspelt new key is named', () => {
    expect(problemsOf({ metadata, partitions: [{ ...messages, timeZone: 'UTC' }] })).toEqual(['partitions[0].timeZone: unknown key (did you mean "timezone"?)']);
  });
});
