import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { createSchema } from '../support/dataset.js';
import { createDeployment, type TestDeployment } from '../support/deployment.js';

/*
 * One query at a time on every pg client: pg deprecates queueing a query on a
 * client that is still executing one (an error in pg 9). runCli fails any
 * command whose stderr carries a deprecation warning; these are the paths
 * that used to send queries concurrently on the metadata session.
 */
describe('pg sessions', () => {
  let d: TestDeployment;
  beforeAll(async () => {
    d = await createDeployment({ shards: 3, redis: false, vnodes: 64 });
    await createSchema(d.shardUrls);
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('shard status with several plans, and parallel moves journaling on one metadata session, print no deprecation warning', async () => {
    expect((await runCli(['-c', d.configPath, 'init'])).exitCode).toBe(0);
    for (const weight of ['2', '1', '3']) {
      // --parallel 3: moves journal at once on the one metadata session.
      const r = await runCli(['-c', d.configPath, 'shard', 'rebalance', '--weight', `shard-0=${weight}`, '--parallel', '3']);
      expect(r.exitCode, r.stderr).toBe(0);
    }
    const status = await runCli(['-c', d.configPath, '--json', 'shard', 'status']);
    expect(status.exitCode, status.stderr).toBe(0);
    const plans = JSON.parse(status.stdout).data.plans;
    expect(plans).toHaveLength(3);
    // Machine output that scales: ranges as [start, end] pairs, each move's on one line.
    const ranges = plans.flatMap((p: { moves: Array<{ ranges: unknown[] }> }) => p.moves.flatMap((m) => m.ranges));
    expect(ranges.length).toBeGreaterThan(10);
    expect(ranges.every((r: unknown) => Array.isArray(r) && r.length === 2 && r.every((n) => Number.isInteger(n)))).toBe(true);
    expect(status.stdout).toMatch(/"ranges": \[\[\d+,\d+\](,\[\d+,\d+\])*\]/);
  });
});
