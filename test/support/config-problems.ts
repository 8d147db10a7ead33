import { expect } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

/** A metadata section every test config can start from. */
export const METADATA = { url: 'postgres://postgres@127.0.0.1:5432/meta' };

/** The problems a config is rejected with (each by its path); fails if it is accepted. */
export function problemsOf(raw: unknown): string[] {
  try {
    parseConfig(raw, 'test.yaml', {});
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected the config to be rejected');
}
