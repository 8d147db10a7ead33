import { describe, expect, it } from 'vitest';
import { compareVersions, duplicateVersions, migrationSlug, nextVersion, parseMigrationFilename, planMigrations } from '../../src/core/migration-plan.js';

const f = (version: string, name: string, checksum = `c${version}`) => ({ version, name, checksum });

describe('migration planning', () => {
  it('parses numbered and timestamped file names, and ignores other files', () => {
    expect(parseMigrationFilename('0001_create_users.sql')).toEqual({ version: '0001', name: 'create_users' });
    expect(parseMigrationFilename('20261121093000_add-index.sql')).toEqual({ version: '20261121093000', name: 'add-index' });
    expect(parseMigrationFilename('README.md')).toBeNull();
    expect(parseMigrationFilename('0001_x.sql.bak')).toBeNull();
    expect(parseMigrationFilename('abc_x.sql')).toBeNull();
  });

  it('orders versions numerically, not as text', () => {
    expect(['10', '9', '0100', '2'].sort(compareVersions)).toEqual(['2', '9', '10', '0100']);
  });

  it('classifies files as applied, pending, failed, changed, and applied rows without a file as missing', () => {
    const files = [f('1', 'a'), f('2', 'b'), f('3', 'c'), f('4', 'd')];
    const applied = [f('1', 'a'), f('2', 'b', 'other'), f('7', 'gone')];
    const plan = planMigrations(files, applied, new Set(['4']));
    expect(plan.entries.map((e) => [e.version, e.state])).toEqual([
      ['1', 'applied'],
      ['2', 'changed'],
      ['3', 'pending'],
      ['4', 'failed'],
      ['7', 'missing'],
    ]);
    expect(plan.pending.map((p) => p.version)).toEqual(['3', '4']);
    expect(plan.changed.map((p) => p.version)).toEqual(['2']);
    expect(plan.missing.map((p) => p.version)).toEqual(['7']);
  });

  it('reports two files with one version', () => {
    expect(duplicateVersions([f('1', 'a'), f('01', 'x'), f('1', 'b')])).toEqual(['version 1 is used by both a and b']);
  });
});

describe('new migration files', () => {
  const now = new Date('2026-11-21T09:30:05Z');
  it('numbers the next file after the highest, keeping the width in use', () => {
    expect(nextVersion([], { now })).toBe('0001');
    expect(nextVersion(['0001', '0009'], { now })).toBe('0010');
    expect(nextVersion(['00001'], { now })).toBe('00002');
  });
  it('uses a UTC timestamp when asked or when the directory does, and never goes backwards', () => {
    expect(nextVersion([], { now, timestamp: true })).toBe('20261121093005');
    expect(nextVersion(['20261121093005'], { now })).toBe('20261121093006');
    expect(nextVersion(['20250101000000'], { now })).toBe('20261121093005');
  });
  it('makes a file-name slug of any name', () => {
    expect(migrationSlug('Add users table!')).toBe('add_users_table');
    expect(migrationSlug('  --x--  ')).toBe('x');
  });
});
