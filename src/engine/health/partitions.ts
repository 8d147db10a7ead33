import type { HealthContext, Measurement } from './types.js';

/** Scaffolding until the partitions checks land. */
export async function collectPartitions(_ctx: HealthContext): Promise<Measurement[]> {
  return [];
}
