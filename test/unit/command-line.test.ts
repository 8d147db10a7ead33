import { describe, expect, it } from 'vitest';
import { redactCommandLine } from '../../src/cli/context.js';

describe('the audited command line', () => {
  it('redacts URL passwords wherever they appear and quotes arguments for a shell', () => {
    expect(redactCommandLine(['shard', 'add', 'shard-9', '--url', 'postgres://app:s3cret@10.0.0.9/app'])).toBe(
      "shardctl shard add shard-9 --url 'postgres://app:***@10.0.0.9/app'",
    );
    expect(redactCommandLine(['--url=postgres://a:b@h/d', 'x y'])).toBe("shardctl '--url=postgres://a:***@h/d' 'x y'");
  });
});
