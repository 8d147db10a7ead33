import path from 'node:path';
import { ConfigError } from '../errors.js';
import { formatPath, interpolateEnv } from './interpolate.js';
import { configSchema, duplicateProblems, type ShardctlConfig } from './schema.js';
import { knownKeysAt, unknownKeyMessage } from './unknown-keys.js';

export interface LoadedConfig {
  config: ShardctlConfig;
  /** The file it came from (absolute), for messages and relative paths. */
  filepath: string;
}

/**
 * Finds (cosmiconfig, name `shardctl`) or reads `explicitPath`, expands
 * `${VAR}`, validates, and throws one ConfigError listing every problem.
 */
export async function loadConfig(
  options: { explicitPath?: string; cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<LoadedConfig> {
  const { cosmiconfig } = await import('cosmiconfig');
  // cosmiconfig's defaults do not include shardctl.config.yaml; the search walks up from the working directory.
  const explorer = cosmiconfig('shardctl', {
    searchStrategy: 'global',
    searchPlaces: [
      'shardctl.config.yaml',
      'shardctl.config.yml',
      'shardctl.config.json',
      '.shardctlrc',
      '.shardctlrc.yaml',
      '.shardctlrc.yml',
      '.shardctlrc.json',
      'package.json',
    ],
  });
  let found: { config: unknown; filepath: string; isEmpty?: boolean } | null;
  try {
    found = options.explicitPath
      ? await explorer.load(path.resolve(options.cwd ?? process.cwd(), options.explicitPath))
      : await explorer.search(options.cwd ?? process.cwd());
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ConfigError(`config file not found: ${options.explicitPath}`);
    throw new ConfigError(`cannot read the config file: ${(err as Error).message}`);
  }
  if (!found) {
    throw new ConfigError(
      'no shardctl config found (looked for shardctl.config.yaml, .shardctlrc.yaml, .shardctlrc.json, a "shardctl" key in package.json, …); pass -c PATH',
    );
  }
  return { config: parseConfig(found.config ?? {}, found.filepath, options.env ?? process.env), filepath: found.filepath };
}

export function parseConfig(raw: unknown, filepath: string, env: NodeJS.ProcessEnv): ShardctlConfig {
  const { value, missing } = interpolateEnv(raw, env);
  const result = configSchema.safeParse(value);
  const problems = [...missing];
  if (!result.success) {
    for (const issue of result.error.issues) {
      if (issue.code === 'unrecognized_keys') {
        const known = knownKeysAt(configSchema, issue.path);
        for (const key of issue.keys) problems.push(`${formatPath([...issue.path, key])}: ${unknownKeyMessage(key, known)}`);
      } else {
        problems.push(`${formatPath(issue.path)}: ${issue.message}`);
      }
    }
  }
  problems.push(...duplicateProblems(value));
  if (problems.length > 0 || !result.success) {
    throw new ConfigError(`invalid config ${filepath} (${problems.length} problem${problems.length === 1 ? '' : 's'})`, problems);
  }
  return result.data;
}
