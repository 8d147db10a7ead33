import type { ShardctlConfig } from '../../config/schema.js';
import { parseDuration } from '../../config/duration.js';
import type { HealthReport } from '../../engine/health/types.js';
import { withMetadata } from '../../engine/metadata-session.js';
import { readHealthHistory, recordHealthSamples } from '../../metadata/health-samples.js';
import { OperationError } from '../../errors.js';
import type { CommandContext } from '../context.js';

/** --record: the run's results into shardctl.health_samples, older samples pruned. */
export async function recordReport(ctx: CommandContext, config: ShardctlConfig, report: HealthReport): Promise<void> {
  try {
    const { stored, pruned } = await withMetadata(config, (store) =>
      recordHealthSamples(store.client, new Date(report.at), report.results.map((r) => ({ check: r.check, target: r.target, status: r.status, value: r.value, message: r.message })), parseDuration(config.health.retention)),
      { applicationName: 'shardctl health --record' },
    );
    ctx.out.debug(`recorded ${stored} health sample(s), pruned ${pruned}`);
  } catch (err) {
    // The checks ran and their verdict stands; a sample that could not be stored is said, not hidden.
    ctx.out.warn(`could not record the health samples: ${(err as Error).message}`);
  }
}

export async function showHistory(ctx: CommandContext, config: ShardctlConfig, options: { sinceMs: number; check?: string }): Promise<void> {
  const since = new Date(Date.now() - options.sinceMs);
  const series = await withMetadata(config, (store) => readHealthHistory(store.client, { since, check: options.check })).catch((err: unknown) => {
    throw new OperationError(`cannot read the health history: ${(err as Error).message}`);
  });
  const { renderHealthHistory } = await import('../render/health.js');
  ctx.out.result(ctx.name, { since: since.toISOString(), series }, (h) => renderHealthHistory(h, { sparklines: ctx.out.decorated }));
}
