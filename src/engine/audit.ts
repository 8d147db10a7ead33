import type { ShardctlConfig } from '../config/schema.js';
import { OperationError } from '../errors.js';
import type { AuditRecord } from '../metadata/store.js';
import { withMetadata } from './metadata-session.js';

export async function listAudit(
  config: ShardctlConfig,
  options: { limit: number; command?: string; since?: Date },
): Promise<AuditRecord[]> {
  return withMetadata(config, async (store) => {
    if (!(await store.isInitialised())) throw new OperationError('no shardctl schema in the metadata database: run `shardctl init` first');
    return store.listAudit(options);
  });
}
