import { OperationError } from '../../errors.js';
import type { PgClient } from '../connect.js';
import { parseQualifiedName, quoteIdent, quoteQualified } from '../ident.js';
import { partitionName } from './create.js';
import { readPartitions, requireRange, type PartitionedTable } from './catalog.js';
import { runScript, scriptText, withLockRetries, type DdlScript, type LockNeed } from './lock-retries.js';

/**
 * Retiring partitions: detach (kept in place), archive (detached and moved to
 * another schema) and drop.
 *
 * DETACH … CONCURRENTLY takes only SHARE UPDATE EXCLUSIVE on the parent, so
 * the application reads and writes on; but PostgreSQL refuses it inside a
 * transaction block and when the parent has a default partition. Plain DETACH
 * takes ACCESS EXCLUSIVE on the parent: every query on the table waits for it
 * (at most lock_timeout while it queues; for the statement itself, a moment).
 *
 * A concurrent detach runs in two transactions; between them it waits for
 * every transaction that may still see the partition. If that wait is cut
 * short (lock_timeout, cancel, a crash), the partition stays "detach pending"
 * (pg_inherits.inhdetachpending): still listed, no longer used by new
 * queries, finished only by DETACH … FINALIZE, which does run in a
 * transaction.
 */

export type DetachMethod = 'concurrently' | 'plain' | 'finalize';

export interface PartitionRef {
  parent: string;
  /** "messages_p20261201" (the parent's schema) or "schema.name". */
  name: string;
}

/** The statement of one detach method. */
export function detachPartitionSql(input: PartitionRef & { method: DetachMethod }): DdlScript {
  const head = `ALTER TABLE ${quoteQualified(input.parent)} DETACH PARTITION ${quoteQualified(partitionName(input.parent, input.name))}`;
  if (input.method === 'concurrently') return { transaction: false, statements: [{ text: `${head} CONCURRENTLY` }] };
  return { transaction: true, statements: [{ text: input.method === 'finalize' ? `${head} FINALIZE` : head }] };
}

function detachLocks(parent: string, partition: string, method: DetachMethod): LockNeed[] {
  // CONCURRENTLY and FINALIZE wait for every session that holds any lock on the partition.
  return [
    { relation: parent, mode: method === 'plain' ? 'ACCESS EXCLUSIVE' : 'SHARE UPDATE EXCLUSIVE' },
    { relation: partition, mode: 'ACCESS EXCLUSIVE' },
  ];
}

export interface DetachOptions extends PartitionRef {
  /** Use DETACH … CONCURRENTLY where PostgreSQL allows it (no default partition). */
  concurrently: boolean;
  lockTimeoutMs: number;
  retries?: number;
  backoffMs?: number;
}

export type DetachPlan =
  | { method: 'not-attached'; partition: string }
  | { method: DetachMethod; partition: string; script: DdlScript; sql: string[]; locks: LockNeed[]; /** Why not CONCURRENTLY, when it was asked for. */ reason: string | null };

/**
 * What detachPartition would run now, changing nothing. `known`: the parent's
 * catalog as the caller has just read it (rotate reads it once per table),
 * instead of reading it again.
 */
export async function planDetachPartition(client: PgClient, options: DetachOptions, known?: PartitionedTable): Promise<DetachPlan> {
  const info = requireRange(known ?? (await readPartitions(client, options.parent)));
  const target = partitionName(options.parent, options.name);
  const qualified = `${target.schema}.${target.name}`;
  const partition = info.partitions.find((p) => p.schema === target.schema && p.name === target.name);
  if (!partition) {
    if (await tableExists(client, qualified)) return { method: 'not-attached', partition: qualified };
    throw new OperationError(`partition ${qualified} of ${info.table} does not exist`);
  }
  if (partition.isDefault) throw new OperationError(`${qualified} is the default partition of ${info.table}; it is never retired`);
  let method: DetachMethod;
  let reason: string | null = null;
  if (partition.detachPending) {
    method = 'finalize';
    reason = 'an interrupted concurrent detach is pending';
  } else if (options.concurrently && info.partitions.some((p) => p.isDefault)) {
    method = 'plain';
    reason = `${info.table} has a default partition, and PostgreSQL allows DETACH … CONCURRENTLY only without one`;
  } else {
    method = options.concurrently ? 'concurrently' : 'plain';
  }
  const script = detachPartitionSql({ parent: info.table, name: qualified, method });
  return { method, partition: qualified, script, sql: scriptText(script, options.lockTimeoutMs), locks: detachLocks(info.table, qualified, method), reason };
}

export interface DetachResult {
  detached: boolean;
  partition: string;
  /** How it was detached; 'not-attached' when it already was. */
  method: DetachMethod | 'not-attached';
  /** Why CONCURRENTLY was not used, when asked for. */
  reason: string | null;
  /** Every statement run, over all attempts (a timed-out CONCURRENTLY is followed by FINALIZE). */
  sql: string[];
  attempts: number;
}

/**
 * Detaches one partition. Must be called outside a transaction (CONCURRENTLY
 * refuses to run in one). Each attempt re-reads the catalog, so an attempt
 * whose CONCURRENTLY timed out in its second phase is finished by FINALIZE.
 */
export async function detachPartition(client: PgClient, options: DetachOptions, known?: PartitionedTable): Promise<DetachResult> {
  const sql: string[] = [];
  let last: DetachPlan | undefined;
  const first = await planDetachPartition(client, options, known);
  if (first.method === 'not-attached') return { detached: false, partition: first.partition, method: 'not-attached', reason: null, sql, attempts: 0 };
  const { attempts } = await withLockRetries(
    client,
    { what: `detach ${first.partition} from ${options.parent}`, lockTimeoutMs: options.lockTimeoutMs, retries: options.retries, backoffMs: options.backoffMs, locks: first.locks },
    async (n) => {
      last = n === 1 ? first : await planDetachPartition(client, options);
      if (last.method === 'not-attached') return;
      for (const line of last.sql) if (!sql.includes(line)) sql.push(line);
      await runScript(client, last.script, options.lockTimeoutMs);
    },
  );
  const done = last!;
  return {
    detached: done.method !== 'not-attached',
    partition: first.partition,
    method: done.method,
    reason: done.method === 'not-attached' ? null : (first.method === 'plain' ? first.reason : done.reason),
    sql,
    attempts,
  };
}

/** Finishes every "detach pending" partition of `parent` with DETACH … FINALIZE; returns their names. */
export async function finalizeInterruptedDetaches(
  client: PgClient,
  parent: string,
  options: { lockTimeoutMs: number; retries?: number; backoffMs?: number },
): Promise<{ finalized: string[]; sql: string[] }> {
  const info = await readPartitions(client, parent);
  const finalized: string[] = [];
  const sql: string[] = [];
  for (const p of info.partitions.filter((x) => x.detachPending)) {
    const script = detachPartitionSql({ parent: info.table, name: p.qualifiedName, method: 'finalize' });
    await withLockRetries(
      client,
      { what: `finalize the detach of ${p.qualifiedName} from ${info.table}`, ...options, locks: detachLocks(info.table, p.qualifiedName, 'finalize') },
      () => runScript(client, script, options.lockTimeoutMs),
    );
    finalized.push(p.qualifiedName);
    sql.push(...scriptText(script, options.lockTimeoutMs));
  }
  return { finalized, sql };
}

export interface ArchiveOptions {
  /** The detached table: "public.messages_p20261201". */
  name: string;
  archiveSchema: string;
  lockTimeoutMs: number;
  retries?: number;
  backoffMs?: number;
}

/** Moves a detached table (with its indexes, constraints and owned sequences) into `archiveSchema`, creating the schema if need be. */
export function archivePartitionSql(input: { name: string; archiveSchema: string }): DdlScript {
  return {
    transaction: true,
    statements: [
      { text: `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(input.archiveSchema)}` },
      { text: `ALTER TABLE ${quoteQualified(input.name)} SET SCHEMA ${quoteIdent(input.archiveSchema)}` },
    ],
  };
}

/**
 * Archives a detached partition. Refuses one still attached (detach first: the
 * retention mode decides how). A table already in the archive schema and gone
 * from its own is reported as archived before.
 */
export async function archivePartition(client: PgClient, options: ArchiveOptions): Promise<{ archived: boolean; table: string; sql: string[]; attempts: number }> {
  const source = parseQualifiedName(options.name);
  const archived = `${options.archiveSchema}.${source.name}`;
  const { rows } = await client.query<{ relispartition: boolean }>(`SELECT relispartition FROM pg_class WHERE oid = to_regclass($1) AND relkind = 'r'`, [quoteQualified(source)]);
  if (!rows[0]) {
    if (await tableExists(client, archived)) return { archived: false, table: archived, sql: [], attempts: 0 };
    throw new OperationError(`table ${source.schema}.${source.name} does not exist`);
  }
  if (rows[0].relispartition) throw new OperationError(`${source.schema}.${source.name} is still attached; detach it before archiving`);
  const script = archivePartitionSql({ name: `${source.schema}.${source.name}`, archiveSchema: options.archiveSchema });
  const { attempts } = await withLockRetries(
    client,
    { what: `archive ${source.schema}.${source.name} into ${options.archiveSchema}`, ...options, locks: [{ relation: `${source.schema}.${source.name}`, mode: 'ACCESS EXCLUSIVE' }] },
    () => runScript(client, script, options.lockTimeoutMs),
  );
  return { archived: true, table: archived, sql: scriptText(script, options.lockTimeoutMs), attempts };
}

/**
 * The statements of dropPartition. A partition still attached is detached
 * first when it can be concurrently (the DROP then locks only the detached
 * table); otherwise it is dropped directly: DROP TABLE of a partition takes
 * ACCESS EXCLUSIVE on the parent, exactly as a plain DETACH would, in one
 * statement and one transaction.
 */
export function dropPartitionSql(input: PartitionRef & { method: DetachMethod | 'not-attached' }): DdlScript[] {
  const drop: DdlScript = { transaction: true, statements: [{ text: `DROP TABLE ${quoteQualified(partitionName(input.parent, input.name))}` }] };
  if (input.method === 'plain' || input.method === 'not-attached') return [drop];
  return [detachPartitionSql({ ...input, method: input.method }), drop];
}

export async function dropPartition(
  client: PgClient,
  options: DetachOptions,
  known?: PartitionedTable,
): Promise<{ dropped: boolean; partition: string; method: DetachMethod | 'not-attached'; reason: string | null; sql: string[]; attempts: number }> {
  const plan = await planDetachPartition(client, options, known).catch(async (err: unknown) => {
    const target = partitionName(options.parent, options.name);
    if (!(await tableExists(client, `${target.schema}.${target.name}`))) return null;
    throw err;
  });
  if (plan === null) {
    const target = partitionName(options.parent, options.name);
    return { dropped: false, partition: `${target.schema}.${target.name}`, method: 'not-attached', reason: null, sql: [], attempts: 0 };
  }
  let sql: string[] = [];
  let attempts = 0;
  let method = plan.method;
  let reason = plan.method === 'not-attached' ? null : plan.reason;
  if (plan.method !== 'not-attached' && plan.method !== 'plain') {
    const detached = await detachPartition(client, options, known);
    sql = detached.sql;
    attempts += detached.attempts;
    method = detached.method;
    reason = detached.reason;
  }
  const drop = dropPartitionSql({ ...options, method: 'not-attached' })[0]!;
  const locks: LockNeed[] = [{ relation: plan.partition, mode: 'ACCESS EXCLUSIVE' }];
  if (plan.method === 'plain') locks.unshift({ relation: options.parent, mode: 'ACCESS EXCLUSIVE' });
  const ran = await withLockRetries(
    client,
    { what: `drop ${plan.partition}`, lockTimeoutMs: options.lockTimeoutMs, retries: options.retries, backoffMs: options.backoffMs, locks },
    () => runScript(client, drop, options.lockTimeoutMs),
  );
  sql.push(...scriptText(drop, options.lockTimeoutMs));
  return { dropped: true, partition: plan.partition, method, reason, sql, attempts: attempts + ran.attempts };
}

async function tableExists(client: PgClient, name: string): Promise<boolean> {
  const { rows } = await client.query<{ found: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS found`, [quoteQualified(name)]);
  return rows[0]!.found;
}
