import type { HealthContext, Measurement } from './types.js';

/** Scaffolding until the sharding checks land. */
export async function collectSharding(_ctx: HealthContext): Promise<Measurement[]> {
  return [];
}
