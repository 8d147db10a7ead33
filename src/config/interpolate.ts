/**
 * `${VAR}` and `${VAR:-default}` expansion over every string of a parsed config,
 * so secrets stay in the environment. `$${…}` is a literal `${…}`.
 * Unset variables without a default are collected, not thrown one at a time.
 */
const PLACEHOLDER = /\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

export function interpolateEnv(
  value: unknown,
  env: NodeJS.ProcessEnv,
  path: (string | number)[] = [],
  missing: string[] = [],
): { value: unknown; missing: string[] } {
  if (typeof value === 'string') {
    const expanded = value.replace(PLACEHOLDER, (whole, escaped, name: string, fallback?: string) => {
      if (escaped) return whole.slice(1);
      const found = env[name];
      if (found !== undefined && found !== '') return found;
      if (fallback !== undefined) return fallback;
      missing.push(`${formatPath(path)}: environment variable ${name} is not set`);
      return '';
    });
    return { value: expanded, missing };
  }
  if (Array.isArray(value)) {
    return { value: value.map((v, i) => interpolateEnv(v, env, [...path, i], missing).value), missing };
  }
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolateEnv(v, env, [...path, k], missing).value;
    return { value: out, missing };
  }
  return { value, missing };
}

/** `shards[2].url`, the way problems are named to users. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || '(root)';
}
