import path from 'node:path';
import { ConfigError } from '../errors.js';
import { formatPath, interpolateEnv } from './interpolate.js';
import { configSchema, duplicateProblems, UNLESS_UNKNOWN_KEYS, type ShardctlConfig } from './schema.js';
import { knownKeysAt, unknownKeyMessage } from './unknown-keys.js';

export interface LoadedConfig {
  config: ShardctlConfig;
  /** The file it came from (absolute), for messages and relative paths. */
  filepath: string;
}

/** The environment variable that names the config file when `-c` does not. */
export const CONFIG_ENV_VAR = 'SHARDCTL_CONFIG';

/**
 * Reads `explicitPath` (`-c`), else the file `$SHARDCTL_CONFIG` names, else
 * finds one (cosmiconfig, name `shardctl`); expands `${VAR}`, validates, and
 * throws one ConfigError listing every problem.
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
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  // An empty variable is unset, as a shell's `SHARDCTL_CONFIG= shardctl …` means.
  const named = options.explicitPath
    ? { file: options.explicitPath, from: '' }
    : env[CONFIG_ENV_VAR]
      ? { file: env[CONFIG_ENV_VAR], from: ` (from ${CONFIG_ENV_VAR})` }
      : undefined;
  let found: { config: unknown; filepath: string; isEmpty?: boolean } | null;
  try {
    found = named ? await explorer.load(path.resolve(cwd, named.file)) : await explorer.search(cwd);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ConfigError(`config file not found: ${named?.file}${named?.from}`);
    throw new ConfigError(`cannot read the config file${named?.from ?? ''}: ${(err as Error).message}`);
  }
  if (!found) {
    throw new ConfigError(
      `no shardctl config found (looked for shardctl.config.yaml, .shardctlrc.yaml, .shardctlrc.json, a "shardctl" key in package.json, …); pass -c PATH or set ${CONFIG_ENV_VAR}`,
    );
  }
  return { config: parseConfig(found.config ?? {}, found.filepath, env), filepath: found.filepath };
}

export function parseConfig(raw: unknown, filepath: string, env: NodeJS.ProcessEnv): ShardctlConfig {
  const { value, missing } = interpolateEnv(raw, env);
  const result = configSchema.safeParse(value);
  const problems = [...missing];
  if (!result.success) {
    const issues = result.error.issues;
    const unknownAt = new Set(issues.filter((i) => i.code === 'unrecognized_keys').map((i) => formatPath(i.path)));
    for (const issue of issues) {
      if (issue.code === 'custom' && issue.params?.[UNLESS_UNKNOWN_KEYS] && unknownAt.has(formatPath(issue.path))) continue;
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
