import { DEFAULT_VNODES } from '../core/ring.js';
import type { ShardctlConfig } from './schema.js';

/** The config as it acts: every default filled in, including those the schema leaves unset on purpose. */
export type EffectiveConfig = ShardctlConfig & { ring: { vnodes: number } };

/**
 * What `config show` prints. The parsed config keeps `ring.vnodes` undefined
 * when the file does not set it, because init and `rebalance --from-config`
 * treat only a chosen value as a request to change the ring; this rendering
 * shows the number such a ring is built with.
 */
export function effectiveConfig(config: ShardctlConfig): EffectiveConfig {
  return { ...config, ring: { ...config.ring, vnodes: config.ring.vnodes ?? DEFAULT_VNODES } };
}
