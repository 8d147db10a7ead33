import type { HealthContext, Measurement } from './types.js';

/** Scaffolding until the streams checks land. */
export async function collectStreams(_ctx: HealthContext): Promise<Measurement[]> {
  return [];
}
