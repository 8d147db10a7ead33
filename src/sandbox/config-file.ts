import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { CONFIG_FILE, MIGRATIONS_DIR } from './state.js';

export interface SandboxShard {
  id: string;
  database: string;
  url: string;
}

/** The demo's co-located tables: a room's messages and their reactions live on the room's shard. */
export const SANDBOX_TABLES = [
  { name: 'public.messages', key: 'room_id' },
  { name: 'public.reactions', key: 'room_id' },
] as const;

export const METADATA_DATABASE = 'shardctl_meta';

export function shardIdOf(index: number): string {
  return `shard-${index}`;
}

export function shardDatabaseOf(index: number): string {
  return `shard_${index}`;
}

/**
 * DIR/shardctl.config.yaml in the schema of src/config/schema.ts, ready for
 * `shardctl -c DIR/shardctl.config.yaml init`.
 */
export async function writeSandboxConfig(
  dir: string,
  input: { metadataUrl: string; redisUrl: string | null; shards: SandboxShard[] },
): Promise<string> {
  const config = {
    metadata: { url: input.metadataUrl },
    ...(input.redisUrl ? { redis: { url: input.redisUrl } } : {}),
    shards: input.shards.map((s) => ({ id: s.id, url: s.url, weight: 1 })),
    tables: SANDBOX_TABLES.map((t) => ({ ...t })),
    // Relative to this file; DIR/migrations/0001_sandbox_tables.sql creates the tables above.
    migrate: { dir: `./${MIGRATIONS_DIR}` },
  };
  const header = [
    '# A local sandbox written by `shardctl sandbox up`; `shardctl sandbox down` removes it.',
    '# Trust authentication on 127.0.0.1: no passwords here. See config.example.yaml for every key.',
    `# migrate.dir is the sandbox's own, throwaway migration set: \`sandbox down\` deletes it too.`,
    ...(input.redisUrl ? [] : ['# redis-server was not found on PATH, so there is no redis section: streams are unavailable.']),
    '',
  ].join('\n');
  const file = path.join(dir, CONFIG_FILE);
  await writeFile(file, header + YAML.stringify(config));
  return file;
}
