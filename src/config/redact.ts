/** Passwords never reach output, logs, the metadata database or Redis. */

const URL_WITH_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*):([^@/?#\s]+)@/gi;

/** `postgres://app:secret@host/db` → `postgres://app:***@host/db`. */
export function redactUrl(url: string): string {
  return url.replace(URL_WITH_PASSWORD, '$1:***@');
}

/** The URL with its password removed entirely: what the metadata store may keep. */
export function stripPassword(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.password = '';
    return parsed.toString();
  } catch {
    return redactUrl(url);
  }
}

/** Redacts every URL password found anywhere in a string (a command line, an error message). */
export const redactText = redactUrl;

/** Deep copy with every string redacted. */
export function redactDeep<T>(value: T): T {
  if (typeof value === 'string') return redactUrl(value) as T;
  if (Array.isArray(value)) return value.map(redactDeep) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactDeep(v)])) as T;
  }
  return value;
}
