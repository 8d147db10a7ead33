import type { PgClient } from '../connect.js';
import { parseQualifiedName, quoteIdent, quoteQualified } from '../ident.js';
import { readPartitions } from './catalog.js';

/**
 * The read-only checks of `partition setup`: is the table ready for
 * time-partition maintenance on `column`? Each problem comes with the SQL
 * that would fix it, for the operator to review and run (nothing is run here).
 */

export interface SetupProblem {
  code: 'missing-table' | 'not-partitioned' | 'not-range' | 'other-key' | 'column-type' | 'unique-without-column' | 'no-default-partition';
  /** 'warning': workable, with a trade-off the operator should choose knowingly. */
  severity: 'error' | 'warning';
  message: string;
  /** Statements that fix it, in order; templates where the operator must fill in (marked with comments). */
  fixSql: string[];
}

export interface SetupReport {
  table: string;
  column: string;
  rangePartitioned: boolean;
  hasDefaultPartition: boolean;
  problems: SetupProblem[];
}

const TIME_TYPES = new Set(['timestamptz', 'timestamp', 'date']);

export async function checkSetup(client: PgClient, table: string, column: string): Promise<SetupReport> {
  const info = await readPartitions(client, table);
  const qualified = parseQualifiedName(table);
  const t = quoteQualified(qualified);
  const col = quoteIdent(column);
  const report: SetupReport = { table: info.table, column, rangePartitioned: false, hasDefaultPartition: false, problems: [] };
  const problems = report.problems;
  if (!info.exists) {
    problems.push({
      code: 'missing-table',
      severity: 'error',
      message: `table ${info.table} does not exist`,
      fixSql: [`CREATE TABLE ${t} (\n  -- the table's columns, and a primary key that includes ${col}\n  ${col} timestamptz NOT NULL\n) PARTITION BY RANGE (${col})`],
    });
    return report;
  }
  const columnType = await typeOf(client, t, column);
  if (columnType === null) {
    problems.push({ code: 'column-type', severity: 'error', message: `table ${info.table} has no column ${column}`, fixSql: [`ALTER TABLE ${t} ADD COLUMN ${col} timestamptz NOT NULL DEFAULT now()`] });
  } else if (!TIME_TYPES.has(columnType)) {
    problems.push({ code: 'column-type', severity: 'error', message: `column ${column} is ${columnType}; time partitioning needs timestamptz, timestamp or date`, fixSql: [] });
  }
  // A partitioned table cannot have a unique index without its key (PostgreSQL refuses it):
  // this bites when converting a plain table, so the check runs on plain ones.
  if (info.strategy === null) {
    for (const u of await uniqueWithoutColumn(client, t, column)) {
      const cols = [...u.columns, column].map(quoteIdent).join(', ');
      problems.push({
        code: 'unique-without-column',
        severity: 'error',
        message: `${u.primary ? 'the primary key' : 'unique index'} ${u.name} (${u.columns.join(', ')}) does not include ${column}: a partitioned table cannot enforce it`,
        fixSql: u.constraint
          ? [`ALTER TABLE ${t} DROP CONSTRAINT ${quoteIdent(u.name)}, ADD CONSTRAINT ${quoteIdent(u.name)} ${u.primary ? 'PRIMARY KEY' : 'UNIQUE'} (${cols})`]
          : [`DROP INDEX ${quoteQualified({ schema: qualified.schema, name: u.name })}`, `CREATE UNIQUE INDEX ${quoteIdent(u.name)} ON ${t} (${cols})`],
      });
    }
    const copy = quoteQualified({ schema: qualified.schema, name: `${qualified.name}_partitioned` });
    problems.push({
      code: 'not-partitioned',
      severity: 'error',
      message: `table ${info.table} is not partitioned; PostgreSQL cannot partition a table in place`,
      fixSql: [
        `CREATE TABLE ${copy} (LIKE ${t} INCLUDING ALL) PARTITION BY RANGE (${col})`,
        `CREATE TABLE ${quoteQualified({ schema: qualified.schema, name: `${qualified.name}_default` })} PARTITION OF ${copy} DEFAULT`,
        `-- then copy the rows across, and swap the names: ALTER TABLE ${t} RENAME TO …; ALTER TABLE ${copy} RENAME TO ${quoteIdent(qualified.name)}`,
      ],
    });
    return report;
  }
  if (info.strategy !== 'range') {
    problems.push({ code: 'not-range', severity: 'error', message: `table ${info.table} is partitioned by ${info.strategy.toUpperCase()}, not RANGE`, fixSql: [] });
    return report;
  }
  report.rangePartitioned = true;
  if (info.columns.length !== 1 || info.columns[0] !== column) {
    problems.push({
      code: 'other-key',
      severity: 'error',
      message: `table ${info.table} is range-partitioned on ${info.columns.length ? info.columns.join(', ') : 'an expression'}, not ${column}`,
      fixSql: [],
    });
  }
  report.hasDefaultPartition = info.partitions.some((p) => p.isDefault);
  if (!report.hasDefaultPartition) {
    problems.push({
      code: 'no-default-partition',
      severity: 'warning',
      message: `table ${info.table} has no default partition: a row beyond the last partition is refused (with one, rotate moves such rows, but retiring must use plain DETACH, which blocks the table for a moment)`,
      fixSql: [`CREATE TABLE ${quoteQualified({ schema: qualified.schema, name: `${qualified.name}_default` })} PARTITION OF ${t} DEFAULT`],
    });
  }
  return report;
}

async function typeOf(client: PgClient, table: string, column: string): Promise<string | null> {
  const { rows } = await client.query<{ typname: string }>(
    `SELECT t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped`,
    [table, column],
  );
  return rows[0]?.typname ?? null;
}

async function uniqueWithoutColumn(client: PgClient, table: string, column: string): Promise<Array<{ name: string; primary: boolean; constraint: boolean; columns: string[] }>> {
  const { rows } = await client.query<{ name: string; primary: boolean; constraint: boolean; columns: string[] }>(
    `SELECT ic.relname AS name, i.indisprimary AS primary, EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u')) AS constraint,
            ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord) AS columns
       FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
      WHERE i.indrelid = to_regclass($1) AND i.indisunique
        AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = i.indrelid AND a.attname = $2 AND a.attnum = ANY (i.indkey::int2[]))
      ORDER BY i.indisprimary DESC, ic.relname`,
    [table, column],
  );
  return rows;
}
