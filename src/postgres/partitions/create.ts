import { OperationError } from '../../errors.js';
import type { PgClient } from '../connect.js';
import { parseQualifiedName, quoteIdent, quoteLiteral, quoteQualified, type QualifiedName } from '../ident.js';
import { readPartitions, requireRange, rowsInRange, sameValues, type PartitionedTable } from './catalog.js';
import { runScript, scriptText, withLockRetries, type DdlScript, type LockNeed } from './lock-retries.js';

/**
 * Creating one partition without a validation scan and without queueing the
 * application behind it. The new table is made standalone (LIKE parent
 * INCLUDING ALL), given a CHECK constraint that states its bounds, and then
 * attached: ATTACH PARTITION takes only SHARE UPDATE EXCLUSIVE on the parent
 * (reads and writes go on) and, seeing the CHECK imply the partition
 * constraint, skips scanning the new table. The CHECK is dropped afterwards.
 * All of it is one transaction, so a failure (a lock timeout, a crash) leaves
 * nothing behind and a retry starts clean.
 */

/** The CHECK that lets ATTACH skip its scan; per-table name, dropped in the same transaction. */
export const BOUNDS_CONSTRAINT = 'shardctl_partition_bounds';

export interface CreatePartitionOptions {
  /** "public.messages". */
  parent: string;
  /** "messages_p20261201" (in the parent's schema) or "schema.name". */
  name: string;
  /**
   * Bounds as literal texts of the column's type: "2026-12-01" for a date,
   * "2026-12-01 00:00:00+00" for timestamptz (a value without an offset is
   * read as UTC: the statements run with TimeZone UTC).
   */
  from: string;
  to: string;
  column: string;
  lockTimeoutMs: number;
  retries?: number;
  backoffMs?: number;
  /** Move the default partition's rows in [from, to) into the new partition (else they make the ATTACH fail). */
  moveFromDefault: boolean;
}

export interface CreatePartitionSqlInput {
  parent: string;
  name: string;
  from: string;
  to: string;
  column: string;
  /** The parent's insertable columns (not generated), in order: what is copied out of the default. */
  columns: string[];
  /** The default partition to move rows out of, or null for none. */
  moveFrom: string | null;
  /** Drop a standalone table of that name first (empty leftover of an older tool or run). */
  replaceLeftover: boolean;
}

/** The statements of createPartition, in order, to run as one transaction. Index `moveAt` is the statement whose row count is the rows moved. */
export function createPartitionSql(input: CreatePartitionSqlInput): DdlScript & { moveAt: number | null } {
  const parent = quoteQualified(input.parent);
  const table = quoteQualified(partitionName(input.parent, input.name));
  const col = quoteIdent(input.column);
  const statements: DdlScript['statements'] = [];
  if (input.replaceLeftover) statements.push({ text: `DROP TABLE ${table}` });
  statements.push({ text: `CREATE TABLE ${table} (LIKE ${parent} INCLUDING ALL)` });
  statements.push({
    text: `ALTER TABLE ${table} ADD CONSTRAINT ${quoteIdent(BOUNDS_CONSTRAINT)} CHECK (${col} IS NOT NULL AND ${col} >= ${quoteLiteral(input.from)} AND ${col} < ${quoteLiteral(input.to)})`,
  });
  let moveAt: number | null = null;
  if (input.moveFrom) {
    const def = quoteQualified(input.moveFrom);
    const cols = input.columns.map(quoteIdent).join(', ');
    // ATTACH takes ACCESS EXCLUSIVE on the default anyway (to scan it); taking it before the copy,
    // after the parent as ATTACH does, means no row can land in the range between DELETE and ATTACH.
    statements.push({ text: `LOCK TABLE ONLY ${parent} IN SHARE UPDATE EXCLUSIVE MODE` });
    statements.push({ text: `LOCK TABLE ${def} IN ACCESS EXCLUSIVE MODE` });
    moveAt = statements.length;
    // The bounds as literals (typed by the column they are compared with), so the script goes in one round trip.
    statements.push({
      text: `WITH moved AS (DELETE FROM ${def} WHERE ${col} >= ${quoteLiteral(input.from)} AND ${col} < ${quoteLiteral(input.to)} RETURNING ${cols}) INSERT INTO ${table} (${cols}) SELECT ${cols} FROM moved`,
    });
  }
  statements.push({ text: `ALTER TABLE ${parent} ATTACH PARTITION ${table} FOR VALUES FROM (${quoteLiteral(input.from)}) TO (${quoteLiteral(input.to)})` });
  statements.push({ text: `ALTER TABLE ${table} DROP CONSTRAINT ${quoteIdent(BOUNDS_CONSTRAINT)}` });
  return { transaction: true, statements, moveAt };
}

/** "messages_p1" → the parent's schema; "archive.messages_p1" as given. */
export function partitionName(parent: string, name: string): QualifiedName {
  return name.includes('.') ? parseQualifiedName(name) : { schema: parseQualifiedName(parent).schema, name };
}

export type CreatePartitionPlan =
  | { action: 'exists'; partition: string }
  | {
      action: 'create';
      partition: string;
      script: DdlScript & { moveAt: number | null };
      /** The statements as sent (BEGIN … COMMIT), for --dry-run. */
      sql: string[];
      /** Rows now in the default partition within [from, to) (count(*)). */
      rowsToMove: number;
      defaultPartition: string | null;
      replacesLeftover: boolean;
      locks: LockNeed[];
    };

/**
 * What planning a table's creates reads from its catalog, once for all of them
 * (rotate creates up to `premake` partitions per table): the partitions, the
 * insertable columns, and any table already bearing one of the names.
 */
export interface CreateContext {
  info: PartitionedTable & { columnTypeSql: string };
  columns: string[];
  /** "schema.name" → what holds that name now, for the names asked about. */
  taken: Map<string, { relkind: string; relispartition: boolean }>;
}

export async function readCreateContext(client: PgClient, parent: string, names: string[], known?: PartitionedTable): Promise<CreateContext> {
  const info = requireRange(known ?? (await readPartitions(client, parent)));
  const targets = names.map((n) => partitionName(parent, n));
  const { rows } = await client.query<{ schema: string; name: string; relkind: string; relispartition: boolean }>(
    `SELECT n.nspname AS schema, c.relname AS name, c.relkind, c.relispartition
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN unnest($1::text[], $2::text[]) AS t(s, r) ON n.nspname = t.s AND c.relname = t.r`,
    [targets.map((t) => t.schema), targets.map((t) => t.name)],
  );
  const taken = new Map(rows.map((r) => [`${r.schema}.${r.name}`, { relkind: r.relkind, relispartition: r.relispartition }]));
  return { info, columns: await insertableColumns(client, info.table), taken };
}

/**
 * What createPartition would do, read from the catalog and changing nothing:
 * the dry run. Throws when the name is taken by something it must not touch
 * (a partition with other bounds, a table with rows, another parent's
 * partition), or when rows in the default fall in the range and
 * `moveFromDefault` is off (the ATTACH would fail on them).
 */
export async function planCreatePartition(client: PgClient, options: CreatePartitionOptions, known?: CreateContext): Promise<CreatePartitionPlan> {
  const context = known ?? (await readCreateContext(client, options.parent, [options.name]));
  const info = context.info;
  if (info.columns[0] !== options.column) {
    throw new OperationError(`table ${info.table} is partitioned on ${info.columns.join(', ')}, not ${options.column}`);
  }
  const target = partitionName(options.parent, options.name);
  const qualified = `${target.schema}.${target.name}`;
  const existing = info.partitions.find((p) => p.schema === target.schema && p.name === target.name);
  if (existing) {
    const same = existing.from !== null && existing.to !== null && (await sameValues(client, info.columnTypeSql, [[existing.from, options.from], [existing.to, options.to]]));
    if (!same) throw new OperationError(`partition ${qualified} exists with other bounds (${existing.bound}), not FROM ('${options.from}') TO ('${options.to}')`);
    if (existing.detachPending) throw new OperationError(`partition ${qualified} is pending detach: finish it with DETACH … FINALIZE first`);
    return { action: 'exists', partition: qualified };
  }
  const replacesLeftover = await checkLeftover(client, target, context.taken.get(qualified));
  const def = info.partitions.find((p) => p.isDefault);
  const rowsToMove = def ? await rowsInRange(client, def.qualifiedName, options.column, options.from, options.to) : 0;
  if (rowsToMove > 0 && !options.moveFromDefault) {
    throw new OperationError(
      `${rowsToMove} row${rowsToMove === 1 ? '' : 's'} of the default partition ${def!.qualifiedName} fall in [${options.from}, ${options.to}): attaching ${qualified} would fail; move them (moveFromDefault)`,
    );
  }
  const script = createPartitionSql({
    parent: info.table,
    name: qualified,
    from: options.from,
    to: options.to,
    column: options.column,
    columns: context.columns,
    moveFrom: def && options.moveFromDefault ? def.qualifiedName : null,
    replaceLeftover: replacesLeftover,
  });
  const locks: LockNeed[] = [{ relation: info.table, mode: 'SHARE UPDATE EXCLUSIVE' }];
  if (def) locks.push({ relation: def.qualifiedName, mode: 'ACCESS EXCLUSIVE' });
  return {
    action: 'create',
    partition: qualified,
    script,
    sql: scriptText(script, options.lockTimeoutMs),
    rowsToMove,
    defaultPartition: def?.qualifiedName ?? null,
    replacesLeftover,
    locks,
  };
}

export interface CreatePartitionResult {
  created: boolean;
  partition: string;
  /** Rows moved out of the default partition into the new one (0 when none, or when it existed). */
  movedFromDefault: number;
  /** The statements run ([] when it existed). */
  sql: string[];
  /** A leftover empty standalone table of that name was dropped and recreated. */
  replacedLeftover: boolean;
  /** Attempts of the transaction (lock timeouts retried). */
  attempts: number;
}

/** Creates and attaches one partition, moving the default's rows in its range into it; a no-op when it exists with these bounds. */
export async function createPartition(client: PgClient, options: CreatePartitionOptions, known?: CreateContext): Promise<CreatePartitionResult> {
  const plan = await planCreatePartition(client, options, known);
  if (plan.action === 'exists') return { created: false, partition: plan.partition, movedFromDefault: 0, sql: [], replacedLeftover: false, attempts: 0 };
  const { value: results, attempts } = await withLockRetries(
    client,
    { what: `create partition ${plan.partition} of ${options.parent}`, lockTimeoutMs: options.lockTimeoutMs, retries: options.retries, backoffMs: options.backoffMs, locks: plan.locks },
    () => runScript(client, plan.script, options.lockTimeoutMs),
  );
  const moved = plan.script.moveAt === null ? 0 : (results[plan.script.moveAt]!.rowCount ?? 0);
  return { created: true, partition: plan.partition, movedFromDefault: moved, sql: plan.sql, replacedLeftover: plan.replacesLeftover, attempts };
}

/**
 * A table already named like the new partition but not attached to the parent:
 * an empty plain table is a leftover and is replaced (true); anything else is
 * someone's data, refused.
 */
async function checkLeftover(client: PgClient, target: QualifiedName, found: { relkind: string; relispartition: boolean } | undefined): Promise<boolean> {
  if (!found) return false;
  const name = `${target.schema}.${target.name}`;
  if (found.relkind !== 'r') throw new OperationError(`${name} exists and is not a plain table (relkind ${found.relkind}); not replaced`);
  if (found.relispartition) throw new OperationError(`${name} is a partition of another table; not replaced`);
  const { rows: any } = await client.query<{ has_rows: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${quoteQualified(target)}) AS has_rows`);
  if (any[0]!.has_rows) throw new OperationError(`${name} exists as a standalone table with rows; not replaced (attach or drop it by hand)`);
  return true;
}

/** The parent's columns a row copy can write: not dropped, not generated. */
async function insertableColumns(client: PgClient, table: string): Promise<string[]> {
  const { rows } = await client.query<{ attname: string }>(
    `SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum`,
    [quoteQualified(table)],
  );
  return rows.map((r) => r.attname);
}
