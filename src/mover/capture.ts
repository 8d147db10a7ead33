import { createHash } from 'node:crypto';
import { multirangeLiteral, type Interval } from '../core/move-plan.js';
import type { PgClient } from '../postgres/connect.js';
import { quoteIdent, quoteLiteral } from '../postgres/ident.js';
import { withLockRetries, lockTimeoutStatement, type LockNeed } from '../postgres/partitions/lock-retries.js';
import { OperationError } from '../errors.js';
import { hashExpression, type TableShape } from './table-shape.js';

/**
 * Change capture and the write fence of an online move, on its source shard
 * (README, "Online moves"). Per move, in the schema shardctl:
 *
 * - `move_<tag>_changes`: one row per change to a row of the moving ranges,
 *   (table, primary key as jsonb), written by AFTER ROW triggers whose WHEN
 *   holds the ranges (so other rows cost one hash test, no function call);
 *   an update logs the old and the new primary key when it changes either the
 *   key or the shard key. TRUNCATE logs a marker that stops the move.
 * - `move_<tag>_fence`: a sequence holding the fence's deadline in server
 *   milliseconds (0: none; the largest bigint: permanent, after the switch).
 *   A sequence, not a row: setval is seen at once by every session whatever
 *   its snapshot or isolation, and a dead mover's fence lapses on the server's
 *   clock. BEFORE ROW triggers with the same WHEN raise SH001 ("moving, retry
 *   shortly") or SH002 ("moved, reload the ring") while it holds.
 * - triggers `shardctl_move_<tag>_*` on every table of the move, `ENABLE
 *   ALWAYS` (so sessions replaying logical replication are captured too).
 * - a row in `shardctl.move_captures`, written with them: what `shard verify`
 *   checks leftovers against.
 *
 * The mover's own sessions (cleanup after the switch) set
 * `shardctl.mover = <plan id>` and pass the fence without being captured.
 */

export const FENCE_SQLSTATE = { moving: 'SH001', moved: 'SH002' } as const;

/** The permanent fence: the largest bigint. */
const PERMANENT = '9223372036854775807';

export interface CaptureTarget {
  planId: string;
  moveNo: number;
  ranges: Interval[];
  shapes: TableShape[];
}

/** A short stable name part for the move's objects (identifiers stay under 63 bytes). */
export function moveTag(planId: string, moveNo: number): string {
  return `m${moveNo}_${createHash('md5').update(planId).digest('hex').slice(0, 10)}`;
}

// shardctl.move_captures itself is created with the routing function (MOVE_BATCHES_SQL's neighbour,
// src/postgres/routing-function.ts), before any move runs: two moves from one source install at
// once, and concurrent CREATE TABLE IF NOT EXISTS of one table can collide in the catalog.

export function changesTable(tag: string): string {
  return `shardctl.${quoteIdent(`move_${tag}_changes`)}`;
}

function fenceSequence(tag: string): string {
  return `shardctl.${quoteIdent(`move_${tag}_fence`)}`;
}

function fn(tag: string, what: string): string {
  return `shardctl.${quoteIdent(`move_${tag}_${what}`)}`;
}

function triggerName(tag: string, what: string): string {
  return quoteIdent(`shardctl_move_${tag}_${what}`);
}

const CAPTURE_TRIGGERS = ['c_ins', 'c_upd', 'c_del', 'c_trunc'] as const;
const FENCE_TRIGGERS = ['f_ins', 'f_upd', 'f_del'] as const;
export const TRIGGERS_PER_TABLE = CAPTURE_TRIGGERS.length + FENCE_TRIGGERS.length;

/** "The row is in the moving ranges", for OLD or NEW in a trigger's WHEN. */
function inRanges(shape: TableShape, ranges: Interval[], row: 'OLD' | 'NEW'): string {
  return `${quoteLiteral(multirangeLiteral(ranges))}::int8multirange @> ${hashExpression(shape, row)}`;
}

function pkObject(shape: TableShape, row: 'OLD' | 'NEW' | 't'): string {
  return `jsonb_build_object(${shape.primaryKey.map((c) => `${quoteLiteral(c.name)}, ${row}.${quoteIdent(c.name)}`).join(', ')})`;
}

/** The jsonb text of a row's primary key, as the capture triggers write it: equal keys give equal text. */
export function pkJson(shape: TableShape, alias = 't'): string {
  return `${pkObject(shape, alias as 't')}::text`;
}

function captureFunction(tag: string, shape: TableShape, index: number): string {
  const pkOld = shape.primaryKey.map((c) => `OLD.${quoteIdent(c.name)}`).join(', ');
  const pkNew = shape.primaryKey.map((c) => `NEW.${quoteIdent(c.name)}`).join(', ');
  const insert = (row: 'OLD' | 'NEW') => `INSERT INTO ${changesTable(tag)} (table_name, pk) VALUES (${quoteLiteral(shape.name)}, ${pkObject(shape, row)});`;
  return `CREATE OR REPLACE FUNCTION ${fn(tag, `capture_${index}`)}() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF TG_OP <> 'INSERT' THEN ${insert('OLD')} END IF;
  IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND ROW(${pkOld}) IS DISTINCT FROM ROW(${pkNew})) THEN ${insert('NEW')} END IF;
  RETURN NULL;
END $fn$`;
}

function truncateFunction(tag: string): string {
  return `CREATE OR REPLACE FUNCTION ${fn(tag, 'truncated')}() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  INSERT INTO ${changesTable(tag)} (table_name, pk) VALUES (TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, NULL);
  RETURN NULL;
END $fn$`;
}

function fenceFunction(tag: string, planId: string, moveNo: number): string {
  const detail = quoteLiteral(`plan=${planId} move=${moveNo}`);
  return `CREATE OR REPLACE FUNCTION ${fn(tag, 'fence_check')}() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  until bigint := pg_sequence_last_value(${quoteLiteral(fenceSequence(tag))}::regclass);
BEGIN
  IF until > 0 AND current_setting('shardctl.mover', true) IS DISTINCT FROM ${quoteLiteral(planId)} THEN
    IF until = ${PERMANENT} THEN
      RAISE EXCEPTION 'shardctl: the rows of this key have moved to another shard; reload the ring and retry there'
        USING ERRCODE = '${FENCE_SQLSTATE.moved}', DETAIL = ${detail};
    ELSIF until > (extract(epoch FROM clock_timestamp()) * 1000)::bigint THEN
      RAISE EXCEPTION 'shardctl: the rows of this key are moving to another shard; retry shortly'
        USING ERRCODE = '${FENCE_SQLSTATE.moving}', DETAIL = ${detail};
    END IF;
  END IF;
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  RETURN NEW;
END $fn$`;
}

function tableTriggers(tag: string, planId: string, shape: TableShape, ranges: Interval[], index: number): string[] {
  const t = shape.sqlName;
  const capture = fn(tag, `capture_${index}`);
  const fence = fn(tag, 'fence_check');
  // The mover's own session (cleanup) is let through in WHEN, before any function call: a
  // PL/pgSQL call per deleted row would cost more than the delete.
  const others = `current_setting('shardctl.mover', true) IS DISTINCT FROM ${quoteLiteral(planId)}`;
  const oldIn = `${others} AND ${inRanges(shape, ranges, 'OLD')}`;
  const newIn = `${others} AND ${inRanges(shape, ranges, 'NEW')}`;
  const defs: Array<[string, string]> = [
    ['c_ins', `AFTER INSERT ON ${t} FOR EACH ROW WHEN (${newIn}) EXECUTE FUNCTION ${capture}()`],
    ['c_upd', `AFTER UPDATE ON ${t} FOR EACH ROW WHEN (${others} AND (${inRanges(shape, ranges, 'OLD')} OR ${inRanges(shape, ranges, 'NEW')})) EXECUTE FUNCTION ${capture}()`],
    ['c_del', `AFTER DELETE ON ${t} FOR EACH ROW WHEN (${oldIn}) EXECUTE FUNCTION ${capture}()`],
    ['c_trunc', `AFTER TRUNCATE ON ${t} FOR EACH STATEMENT EXECUTE FUNCTION ${fn(tag, 'truncated')}()`],
    ['f_ins', `BEFORE INSERT ON ${t} FOR EACH ROW WHEN (${newIn}) EXECUTE FUNCTION ${fence}()`],
    ['f_upd', `BEFORE UPDATE ON ${t} FOR EACH ROW WHEN (${others} AND (${inRanges(shape, ranges, 'OLD')} OR ${inRanges(shape, ranges, 'NEW')})) EXECUTE FUNCTION ${fence}()`],
    ['f_del', `BEFORE DELETE ON ${t} FOR EACH ROW WHEN (${oldIn}) EXECUTE FUNCTION ${fence}()`],
  ];
  // CREATE OR REPLACE (PostgreSQL 14, as online moves need anyway) takes SHARE ROW EXCLUSIVE,
  // as ENABLE ALWAYS does; a DROP TRIGGER, even IF EXISTS of none, would take ACCESS EXCLUSIVE
  // and hold up the table's readers too until the commit.
  // One ALTER TABLE for all seven: each statement on the table rebuilds its relcache entry
  // (every trigger's WHEN with the ranges), while the application's writes wait.
  return [
    ...defs.map(([what, def]) => `CREATE OR REPLACE TRIGGER ${triggerName(tag, what)} ${def}`),
    `ALTER TABLE ${t} ${defs.map(([what]) => `ENABLE ALWAYS TRIGGER ${triggerName(tag, what)}`).join(', ')}`,
  ];
}

export interface LockOptions {
  lockTimeoutMs: number;
  retries?: number;
}

/**
 * Runs statements as one transaction under lock_timeout, retried on a lock
 * timeout (SPEC invariant 5). `locks` are the application's tables the
 * statements lock (named when a lock cannot be had): every write to them
 * waits until the commit, so such a transaction holds nothing else.
 */
async function ddl(client: PgClient, what: string, locks: LockNeed[], statements: string[], lock: LockOptions, beforeCommit?: () => Promise<void>): Promise<void> {
  await withLockRetries(
    client,
    { what, lockTimeoutMs: lock.lockTimeoutMs, retries: lock.retries ?? 5, locks },
    async () => {
      await client.query('BEGIN');
      try {
        await client.query(lockTimeoutStatement(lock.lockTimeoutMs, true));
        await client.query(statements.join(';\n'));
        await beforeCommit?.();
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      }
    },
  );
}

/** Online moves need int8multirange (PostgreSQL 14) in the triggers' WHEN. */
export const ONLINE_MIN_VERSION = 140000;

export async function assertOnlineSupported(client: PgClient, shard: string): Promise<void> {
  const { rows } = await client.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
  if (Number(rows[0]!.v) < ONLINE_MIN_VERSION) {
    throw new OperationError(`shard ${shard} runs PostgreSQL ${rows[0]!.v}: online moves need 14 or later; move with --offline in a maintenance window`);
  }
}

/**
 * Creates (or re-creates, idempotently) the move's change table, fence
 * sequence, functions and triggers on the source. When the triggers commit,
 * every later change to a moving row is recorded: a snapshot taken after it
 * misses nothing that the change table does not hold. Two transactions: the
 * objects the triggers use first, which lock none of the application's
 * tables, then the triggers alone, so the application's writes wait only for
 * the trigger DDL (and `beforeCommit`). A crash between them leaves the
 * registry row, by which `shard verify` names the rest and abort removes it.
 */
export async function installCapture(client: PgClient, move: CaptureTarget, lock: LockOptions, beforeCommit?: () => Promise<void>): Promise<void> {
  const tag = moveTag(move.planId, move.moveNo);
  const seq = fenceSequence(tag);
  await ddl(client, `change capture objects for move ${move.moveNo}`, [], [
    `INSERT INTO shardctl.move_captures (tag, plan_id, move_no, tables) VALUES (${quoteLiteral(tag)}, ${quoteLiteral(move.planId)}, ${Math.trunc(move.moveNo)}, ARRAY[${move.shapes.map((s) => quoteLiteral(s.name)).join(', ')}]::text[]) ON CONFLICT (tag) DO NOTHING`,
    `CREATE TABLE IF NOT EXISTS ${changesTable(tag)} (id bigserial PRIMARY KEY, table_name text NOT NULL, pk jsonb)`,
    `CREATE SEQUENCE IF NOT EXISTS ${seq} MINVALUE 0 START 0`,
    `SELECT setval(${quoteLiteral(seq)}, 0, true) WHERE pg_sequence_last_value(${quoteLiteral(seq)}::regclass) IS NULL`,
    truncateFunction(tag),
    fenceFunction(tag, move.planId, move.moveNo),
    ...move.shapes.map((s, i) => captureFunction(tag, s, i)),
  ], lock);
  const triggers = move.shapes.flatMap((s, i) => tableTriggers(tag, move.planId, s, move.ranges, i));
  const locks = move.shapes.map((x): LockNeed => ({ relation: x.name, mode: 'SHARE ROW EXCLUSIVE' }));
  await ddl(client, `change capture for move ${move.moveNo}`, locks, triggers, lock, beforeCommit);
}

/** Which of the move's triggers are missing or not ENABLE ALWAYS (empty: capture and fence are intact). */
export async function captureProblems(client: PgClient, move: Pick<CaptureTarget, 'planId' | 'moveNo' | 'shapes'>): Promise<string[]> {
  const tag = moveTag(move.planId, move.moveNo);
  // Matched to the tables by oid (to_regclass of each quoted name), not by how a name prints.
  const { rows } = await client.query<{ tgname: string; tgenabled: string; rel: string }>(
    `SELECT t.tgname, t.tgenabled, n AS rel FROM unnest($2::text[]) n JOIN pg_trigger t ON t.tgrelid = to_regclass(n) WHERE t.tgname LIKE $1`,
    [`shardctl\\_move\\_${tag}\\_%`, move.shapes.map((x) => x.sqlName)],
  );
  const { rows: tables } = await client.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [changesTable(tag)]);
  const problems: string[] = [];
  if (!tables[0]!.ok) problems.push(`the change table ${changesTable(tag)} is missing`);
  for (const shape of move.shapes) {
    for (const what of [...CAPTURE_TRIGGERS, ...FENCE_TRIGGERS]) {
      const name = `shardctl_move_${tag}_${what}`;
      const found = rows.find((r) => r.tgname === name && r.rel === shape.sqlName);
      if (!found) problems.push(`trigger ${name} on ${shape.name} is missing`);
      else if (found.tgenabled !== 'A') problems.push(`trigger ${name} on ${shape.name} is not ENABLE ALWAYS (${found.tgenabled})`);
    }
  }
  return problems;
}

/**
 * Removes the capture (change triggers, functions, change table), keeping the
 * fence; with `all`, the fence and the registry row too. Tables that no
 * longer exist are skipped. Idempotent.
 */
export async function removeCapture(client: PgClient, move: { planId: string; moveNo: number; tables: string[] }, lock: LockOptions, all: boolean): Promise<void> {
  const tag = moveTag(move.planId, move.moveNo);
  const { rows } = await client.query<{ name: string; rel: string | null }>(`SELECT n AS name, to_regclass(n)::text AS rel FROM unnest($1::text[]) n`, [move.tables]);
  const present = rows.filter((r) => r.rel !== null).map((r) => r.name);
  const quoted = (name: string) => name.split('.').map((p) => quoteIdent(p)).join('.');
  const whats = all ? [...CAPTURE_TRIGGERS, ...FENCE_TRIGGERS] : CAPTURE_TRIGGERS;
  // DROP TRIGGER takes ACCESS EXCLUSIVE (reads wait too): that transaction drops the triggers
  // and nothing else; the functions and the change table go in the next, locking no table.
  const drops = present.flatMap((t) => whats.map((w) => `DROP TRIGGER IF EXISTS ${triggerName(tag, w)} ON ${quoted(t)}`));
  const locks = present.map((relation): LockNeed => ({ relation, mode: 'ACCESS EXCLUSIVE' }));
  if (drops.length) await ddl(client, `removing the change capture of move ${move.moveNo}`, locks, drops, lock);
  const statements = [
    ...move.tables.map((_, i) => `DROP FUNCTION IF EXISTS ${fn(tag, `capture_${i}`)}()`),
    `DROP FUNCTION IF EXISTS ${fn(tag, 'truncated')}()`,
    `DROP TABLE IF EXISTS ${changesTable(tag)}`,
    ...(all
      ? [
          `DROP FUNCTION IF EXISTS ${fn(tag, 'fence_check')}()`,
          `DROP SEQUENCE IF EXISTS ${fenceSequence(tag)}`,
          `DELETE FROM shardctl.move_captures WHERE tag = ${quoteLiteral(tag)}`,
        ]
      : []),
  ];
  await ddl(client, `removing the change capture objects of move ${move.moveNo}`, [], statements, lock);
}

export interface ChangeRecord {
  /** bigint as text. */
  id: string;
  table: string;
  /** The primary key's jsonb text; null for a TRUNCATE marker. */
  pk: string | null;
}

/** The oldest `limit` change records (all with no limit), by id. */
export async function readChanges(client: PgClient, tag: string, limit: number | null): Promise<ChangeRecord[]> {
  const { rows } = await client.query<{ id: string; table_name: string; pk: string | null }>(
    `SELECT id::text AS id, table_name, pk::text AS pk FROM ${changesTable(tag)} ORDER BY id${limit === null ? '' : ` LIMIT ${Math.trunc(limit)}`}`,
  );
  return rows.map((r) => ({ id: r.id, table: r.table_name, pk: r.pk }));
}

/** Removes exactly the records replayed (never by an id threshold: a late commit may hold a lower id). */
export async function deleteChanges(client: PgClient, tag: string, ids: string[]): Promise<void> {
  if (!ids.length) return;
  await client.query(`DELETE FROM ${changesTable(tag)} WHERE id = ANY ($1::bigint[])`, [ids]);
}

export async function changeBacklog(client: PgClient, tag: string): Promise<number> {
  const { rows } = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${changesTable(tag)}`);
  return rows[0]!.n;
}

export interface FenceState {
  /** Deadline in server milliseconds (0: none; Infinity: permanent). */
  untilMs: number;
  nowMs: number;
}

const NOW_MS = `(extract(epoch FROM clock_timestamp()) * 1000)::bigint`;

/** Raises the fence until `ttlMs` from now on the server's clock; returns the deadline and the instant. */
export async function raiseFence(client: PgClient, tag: string, ttlMs: number): Promise<{ untilMs: number; at: Date }> {
  const { rows } = await client.query<{ until: string; at: Date }>(
    `SELECT setval($1::regclass, ${NOW_MS} + $2::bigint, true)::text AS until, clock_timestamp() AS at`,
    [fenceSequence(tag), Math.trunc(ttlMs)],
  );
  return { untilMs: Number(rows[0]!.until), at: rows[0]!.at };
}

/**
 * Makes the fence permanent, but only while at least `marginMs` of its
 * deadline is left (checked and set in one statement on the server): a fence
 * that lapsed may have let a write through that nobody replayed.
 */
export async function makeFencePermanent(client: PgClient, tag: string, marginMs: number): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>(
    `SELECT CASE WHEN pg_sequence_last_value($1::regclass) = ${PERMANENT}
                   OR pg_sequence_last_value($1::regclass) - $2::bigint > ${NOW_MS}
            THEN setval($1::regclass, ${PERMANENT}, true) IS NOT NULL ELSE false END AS ok`,
    [fenceSequence(tag), Math.trunc(marginMs)],
  );
  return rows[0]!.ok;
}

/** Lifts the fence (also a permanent one: only before the switch, or by abort). */
export async function liftFence(client: PgClient, tag: string): Promise<void> {
  await client.query(`SELECT setval(s, 0, true) FROM (SELECT to_regclass($1::text) AS s) x WHERE s IS NOT NULL`, [fenceSequence(tag)]);
}

export async function fenceState(client: PgClient, tag: string): Promise<FenceState | null> {
  const { rows } = await client.query<{ until: string | null; now: string }>(
    `SELECT pg_sequence_last_value(to_regclass($1::text))::text AS until, ${NOW_MS}::text AS now`,
    [fenceSequence(tag)],
  );
  const r = rows[0]!;
  if (r.until === null) return null;
  return { untilMs: r.until === PERMANENT ? Infinity : Number(r.until), nowMs: Number(r.now) };
}

/**
 * Waits until no transaction that began before `since` still holds a write
 * lock on one of the tables: those are the writers that may have passed the
 * fence trigger before the fence rose, whose changes commit (and are
 * captured) later. Polls; returns false when `deadlineMs` (server clock) comes first.
 */
export async function waitForWritersBefore(client: PgClient, tables: string[], since: Date, deadlineMs: number): Promise<boolean> {
  for (;;) {
    const { rows } = await client.query<{ n: number; now: string }>(
      `SELECT count(DISTINCT l.pid)::int AS n, ${NOW_MS}::text AS now
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'relation' AND l.mode = 'RowExclusiveLock' AND l.granted
          AND l.relation = ANY (SELECT to_regclass(n)::oid FROM unnest($1::text[]) n)
          AND a.pid <> pg_backend_pid() AND a.xact_start <= $2`,
      [tables, since],
    );
    if (rows[0]!.n === 0) return true;
    if (Number(rows[0]!.now) >= deadlineMs) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
}

export interface LeftoverCapture {
  tag: string;
  planId: string | null;
  moveNo: number | null;
  /** Triggers, functions, tables and sequences of the tag found on the shard. */
  objects: string[];
}

/** Every move capture object on the shard, by tag (what `shard verify` compares with the moves in flight). */
export async function listCaptures(client: PgClient): Promise<LeftoverCapture[]> {
  const { rows } = await client.query<{ tag: string; object: string }>(
    `SELECT substring(t.tgname FROM '^shardctl_move_(m[0-9]+_[0-9a-f]{10})_') AS tag, 'trigger ' || t.tgname || ' on ' || t.tgrelid::regclass::text AS object
       FROM pg_trigger t WHERE t.tgname ~ '^shardctl_move_m[0-9]+_[0-9a-f]{10}_'
     UNION ALL
     SELECT substring(p.proname FROM '^move_(m[0-9]+_[0-9a-f]{10})_'), 'function shardctl.' || p.proname
       FROM pg_proc p WHERE p.pronamespace = to_regnamespace('shardctl') AND p.proname ~ '^move_m[0-9]+_[0-9a-f]{10}_'
     UNION ALL
     SELECT substring(c.relname FROM '^move_(m[0-9]+_[0-9a-f]{10})_'), CASE c.relkind WHEN 'S' THEN 'sequence' ELSE 'table' END || ' shardctl.' || c.relname
       FROM pg_class c WHERE c.relnamespace = to_regnamespace('shardctl') AND c.relname ~ '^move_m[0-9]+_[0-9a-f]{10}_(changes|fence)$'`,
  );
  const registry = new Map<string, { planId: string; moveNo: number }>();
  const { rows: reg } = await client.query<{ ok: boolean }>(`SELECT to_regclass('shardctl.move_captures') IS NOT NULL AS ok`);
  if (reg[0]!.ok) {
    const { rows: entries } = await client.query<{ tag: string; plan_id: string; move_no: number }>(`SELECT tag, plan_id, move_no FROM shardctl.move_captures`);
    for (const e of entries) registry.set(e.tag, { planId: e.plan_id, moveNo: e.move_no });
  }
  const byTag = new Map<string, LeftoverCapture>();
  for (const [tag, r] of registry) byTag.set(tag, { tag, planId: r.planId, moveNo: r.moveNo, objects: [`registry row ${tag}`] });
  for (const r of rows) {
    const entry = byTag.get(r.tag) ?? { tag: r.tag, planId: null, moveNo: null, objects: [] };
    entry.objects.push(r.object);
    byTag.set(r.tag, entry);
  }
  return [...byTag.values()];
}
