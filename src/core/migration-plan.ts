/**
 * Which migration files are applied, pending, changed since they were applied,
 * or missing from disk. Pure: the files and the tracking rows come in as data.
 */

export interface MigrationSource {
  version: string;
  name: string;
  checksum: string;
}

/** pending = not applied; failed = not applied, and its last attempt failed; changed = applied, file differs since; missing = applied, file gone. */
export type MigrationState = 'applied' | 'pending' | 'failed' | 'changed' | 'missing';

export interface MigrationEntry {
  version: string;
  name: string;
  state: MigrationState;
}

export interface MigrationPlan {
  entries: MigrationEntry[];
  pending: MigrationSource[];
  changed: MigrationEntry[];
  missing: MigrationEntry[];
}

const FILENAME = /^(\d+)_([A-Za-z0-9][A-Za-z0-9_.-]*)\.sql$/;

/** `0001_create_users.sql` or `20261121093000_add_index.sql` → version and name; other files are not migrations. */
export function parseMigrationFilename(filename: string): { version: string; name: string } | null {
  const match = FILENAME.exec(filename);
  return match ? { version: match[1]!, name: match[2]! } : null;
}

export function compareVersions(a: string, b: string): number {
  const diff = BigInt(a) - BigInt(b);
  return diff < 0n ? -1 : diff > 0n ? 1 : 0;
}

export function planMigrations(
  files: MigrationSource[],
  applied: MigrationSource[],
  failedVersions: ReadonlySet<string> = new Set(),
): MigrationPlan {
  const appliedByVersion = new Map(applied.map((a) => [a.version, a]));
  const fileVersions = new Set(files.map((f) => f.version));
  const entries: MigrationEntry[] = [];
  const pending: MigrationSource[] = [];
  const changed: MigrationEntry[] = [];
  const missing: MigrationEntry[] = [];

  for (const file of [...files].sort((a, b) => compareVersions(a.version, b.version))) {
    const done = appliedByVersion.get(file.version);
    if (!done) {
      pending.push(file);
      entries.push({ version: file.version, name: file.name, state: failedVersions.has(file.version) ? 'failed' : 'pending' });
    } else if (done.checksum !== file.checksum) {
      const entry = { version: file.version, name: file.name, state: 'changed' as const };
      changed.push(entry);
      entries.push(entry);
    } else {
      entries.push({ version: file.version, name: file.name, state: 'applied' });
    }
  }
  for (const done of applied) {
    if (!fileVersions.has(done.version)) {
      const entry = { version: done.version, name: done.name, state: 'missing' as const };
      missing.push(entry);
      entries.push(entry);
    }
  }
  entries.sort((a, b) => compareVersions(a.version, b.version));
  return { entries, pending, changed, missing };
}

/** Files that share a version are ambiguous: refuse them before anything runs. */
export function duplicateVersions(files: MigrationSource[]): string[] {
  const seen = new Map<string, string>();
  const dups: string[] = [];
  for (const f of files) {
    const other = seen.get(f.version);
    if (other) dups.push(`version ${f.version} is used by both ${other} and ${f.name}`);
    else seen.set(f.version, f.name);
  }
  return dups;
}

/**
 * The version for a new file: a UTC timestamp (YYYYMMDDHHMMSS) when asked or
 * when the directory already uses timestamps, otherwise the next number,
 * zero-padded to the width in use (at least 4).
 */
export function nextVersion(existing: string[], options: { timestamp?: boolean; now: Date }): string {
  const usesTimestamps = existing.some((v) => v.length >= 14);
  if (options.timestamp || usesTimestamps) {
    const stamp = options.now.toISOString().replace(/[-:T]/g, '').slice(0, 14);
    const latest = existing.reduce((max, v) => (compareVersions(v, max) > 0 ? v : max), '0');
    // Two files created in the same second still get distinct, ordered versions.
    return compareVersions(stamp, latest) > 0 ? stamp : (BigInt(latest) + 1n).toString();
  }
  const width = Math.max(4, ...existing.map((v) => v.length));
  const max = existing.reduce((m, v) => (BigInt(v) > m ? BigInt(v) : m), 0n);
  return (max + 1n).toString().padStart(width, '0');
}

/** "Add users table!" → "add_users_table": the name part of a migration file. */
export function migrationSlug(name: string): string {
  const slug = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return slug.slice(0, 80);
}
