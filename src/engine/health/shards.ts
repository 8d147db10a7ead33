import type { HealthContext, Measurement } from './types.js';

/** Scaffolding until the shards checks land. */
export async function collectShards(_ctx: HealthContext): Promise<Measurement[]> {
  return [];
}
