import type { Interval, MoveMode } from '../core/move-plan.js';
import type { MoveState, PlanState } from '../core/move-state.js';
import type { RingSpec } from '../core/ring.js';
import type { PgClient } from '../postgres/connect.js';

/**
 * The move journal in the metadata database: every statement that records a
 * plan, a move's state or a table's cursor is in this file. Each write is its
 * own small transaction (autocommit) unless said otherwise, so what is
 * journaled survives a crash the instant after.
 */

export type PlanKind = 'add' | 'remove' | 'rebalance';

export interface TableProgress {
  table: string;
  copyCursor: number;
  copyDone: boolean;
  rowsCopied: number;
  bytesCopied: number;
  sourceRows: number | null;
  sourceSum: string | null;
  targetRows: number | null;
  targetSum: string | null;
  resyncs: number;
  cleanupCursor: number;
  cleanupDone: boolean;
  rowsDeleted: number;
  rowsLeft: number | null;
  /** 'block': copied in the source's physical order (batches recorded on the target); 'hash': sorted by routing hash. */
  copyOrder: 'hash' | 'block';
  /** The one snapshot the whole table was copied in (its xmin), and the table's row count in it; null after a resumed copy. */
  copySnapshotXmin: string | null;
  copyTableRows: number | null;
  /** Block-ordered cleanup: the last batch done, and how many batches no longer matched the copy. */
  cleanupBatch: number;
  cleanupMismatches: number;
}

export interface MoveRecord {
  planId: string;
  moveNo: number;
  source: string;
  target: string;
  mode: MoveMode;
  ranges: Interval[];
  state: MoveState;
  resumeState: MoveState | null;
  estRows: number;
  estBytes: number;
  error: string | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  tables: TableProgress[];
  /** An online move's capture, catch-up and fence figures (null: offline, or not started). */
  online: OnlineStats | null;
}

/** What `shard status` shows of an online move; updated as the move runs. */
export interface OnlineStats {
  /** Change records waiting on the source at the last look. */
  backlog?: number;
  /** Rows replayed to the target so far, and the rate of the last catch-up. */
  replayedRows?: number;
  rowsPerSecond?: number;
  catchUpRounds?: number;
  /** Fences raised, and the longest and the last interval they held (ms). */
  fenceAttempts?: number;
  longestFenceMs?: number;
  lastFenceMs?: number;
  /** The fence's deadline on the source's clock while it is up (ISO), else null. */
  fencedUntil?: string | null;
  /** Each table's columns and primary key on the source when capture began: DDL since, in any run, stops the move. */
  shapes?: Record<string, string>;
  /** How the last whole-range comparison had each table's source side (catch-up.ts, TableComparison). */
  compared?: Record<string, 'records+replayed' | 'records' | 'read'>;
}

export interface PlanRecord {
  id: string;
  kind: PlanKind;
  fromEpoch: number;
  targetRing: RingSpec;
  state: PlanState;
  switchedEpoch: number | null;
  options: Record<string, unknown>;
  error: string | null;
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
  moves: MoveRecord[];
}

export interface NewPlan {
  id: string;
  kind: PlanKind;
  fromEpoch: number;
  targetRing: RingSpec;
  options: Record<string, unknown>;
  createdBy: string;
  tables: string[];
  moves: Array<{ source: string; target: string; mode: MoveMode; ranges: Interval[]; estRows: number; estBytes: number }>;
}

export class Journal {
  readonly #client: PgClient;

  constructor(client: PgClient) {
    this.#client = client;
  }

  async createPlan(plan: NewPlan): Promise<void> {
    await this.#inTransaction(async () => {
      await this.#client.query(
        `INSERT INTO shardctl.plans (id, kind, from_epoch, target_ring, state, options, created_by) VALUES ($1, $2, $3, $4, 'running', $5, $6)`,
        [plan.id, plan.kind, plan.fromEpoch, JSON.stringify(plan.targetRing), JSON.stringify(plan.options), plan.createdBy],
      );
      for (const [i, m] of plan.moves.entries()) {
        await this.#client.query(
          `INSERT INTO shardctl.moves (plan_id, move_no, source, target, mode, ranges, state, est_rows, est_bytes)
           VALUES ($1, $2, $3, $4, $5, $6, 'planned', $7, $8)`,
          [plan.id, i + 1, m.source, m.target, m.mode, JSON.stringify(m.ranges.map((r) => [r.start, r.end])), m.estRows, m.estBytes],
        );
        for (const table of plan.tables) {
          await this.#client.query(`INSERT INTO shardctl.move_tables (plan_id, move_no, table_name) VALUES ($1, $2, $3)`, [plan.id, i + 1, table]);
        }
      }
    });
  }

  /** The plan in progress (running, switched, or failed), if any. */
  async activePlan(): Promise<PlanRecord | null> {
    const { rows } = await this.#client.query<{ id: string }>(`SELECT id FROM shardctl.plans WHERE state IN ('running', 'switched', 'failed')`);
    return rows[0] ? this.getPlan(rows[0].id) : null;
  }

  async getPlan(id: string): Promise<PlanRecord | null> {
    const { rows } = await this.#client.query<PlanRow>(`SELECT * FROM shardctl.plans WHERE id = $1`, [id]);
    if (!rows[0]) return null;
    return this.#hydrate(rows[0]);
  }

  async listPlans(limit: number): Promise<PlanRecord[]> {
    const { rows } = await this.#client.query<PlanRow>(`SELECT * FROM shardctl.plans ORDER BY created_at DESC LIMIT $1`, [limit]);
    // One plan after another: the session serves one query at a time.
    const plans: PlanRecord[] = [];
    for (const r of rows) plans.push(await this.#hydrate(r));
    return plans;
  }

  async setMoveState(planId: string, moveNo: number, state: MoveState, extra: { error?: string | null; resumeState?: MoveState | null } = {}): Promise<void> {
    await this.#client.query(
      `UPDATE shardctl.moves
          SET state = $3,
              error = CASE WHEN $4::boolean THEN $5 ELSE error END,
              resume_state = CASE WHEN $6::boolean THEN $7 ELSE resume_state END,
              started_at = COALESCE(started_at, CASE WHEN $3 = 'copying' THEN now() END),
              finished_at = CASE WHEN $3 IN ('cleaned', 'aborted') THEN now() ELSE finished_at END,
              updated_at = now()
        WHERE plan_id = $1 AND move_no = $2`,
      [planId, moveNo, state, 'error' in extra, extra.error ?? null, 'resumeState' in extra, extra.resumeState ?? null],
    );
  }

  /** Merges figures into a move's online stats. */
  async setOnline(planId: string, moveNo: number, stats: OnlineStats): Promise<void> {
    await this.#client.query(`UPDATE shardctl.moves SET online = coalesce(online, '{}'::jsonb) || $3::jsonb, updated_at = now() WHERE plan_id = $1 AND move_no = $2`, [
      planId,
      moveNo,
      JSON.stringify(stats),
    ]);
  }

  async setPlanState(planId: string, state: PlanState, error: string | null = null): Promise<void> {
    await this.#client.query(`UPDATE shardctl.plans SET state = $2, error = $3, updated_at = now() WHERE id = $1`, [planId, state, error]);
  }

  /** Records one table's progress; only the fields given change. */
  async updateTable(planId: string, moveNo: number, table: string, fields: Partial<Omit<TableProgress, 'table'>>): Promise<void> {
    const sets: string[] = [];
    const values: unknown[] = [planId, moveNo, table];
    for (const [key, value] of Object.entries(fields)) {
      const column = TABLE_COLUMNS[key as keyof typeof TABLE_COLUMNS];
      if (!column) throw new Error(`unknown journal field ${key}`);
      values.push(value);
      sets.push(`${column} = $${values.length}`);
    }
    if (!sets.length) return;
    await this.#client.query(
      `UPDATE shardctl.move_tables SET ${sets.join(', ')} WHERE plan_id = $1 AND move_no = $2 AND table_name = $3`,
      values,
    );
  }

  /**
   * The switch: in one metadata transaction the next ring epoch is written,
   * every move becomes `switched` and the shards change state. The epoch's
   * primary key refuses a second switch from the same epoch.
   */
  async switchPlan(
    plan: PlanRecord,
    createdBy: string,
    shardStates: Array<{ id: string; state: 'active' | 'draining' | 'retired'; weight?: number }>,
    changeRing: boolean,
  ): Promise<number> {
    const epoch = changeRing ? plan.fromEpoch + 1 : plan.fromEpoch;
    await this.#inTransaction(async () => {
      if (changeRing) {
        await this.#client.query(
          `INSERT INTO shardctl.ring_epochs (epoch, vnodes, members, reason, created_by) VALUES ($1, $2, $3, $4, $5)`,
          [epoch, plan.targetRing.vnodes, JSON.stringify(plan.targetRing.members), `plan ${plan.id} (${plan.kind})`, createdBy],
        );
      }
      await this.#client.query(`UPDATE shardctl.moves SET state = 'switched', updated_at = now() WHERE plan_id = $1`, [plan.id]);
      await this.#client.query(`UPDATE shardctl.plans SET state = 'switched', switched_epoch = $2, updated_at = now() WHERE id = $1`, [plan.id, epoch]);
      for (const s of shardStates) {
        await this.#client.query(
          `UPDATE shardctl.shards SET state = $2, weight = COALESCE($3, weight), updated_at = now() WHERE id = $1`,
          [s.id, s.state, s.weight ?? null],
        );
      }
    });
    return epoch;
  }

  async setShardState(id: string, state: 'pending' | 'active' | 'draining' | 'retired'): Promise<void> {
    await this.#client.query(`UPDATE shardctl.shards SET state = $2, updated_at = now() WHERE id = $1`, [id, state]);
  }

  async #inTransaction(fn: () => Promise<void>): Promise<void> {
    await this.#client.query('BEGIN');
    try {
      await fn();
      await this.#client.query('COMMIT');
    } catch (err) {
      await this.#client.query('ROLLBACK').catch(() => {});
      throw err;
    }
  }

  async #hydrate(row: PlanRow): Promise<PlanRecord> {
    const { rows: moves } = await this.#client.query<MoveRow>(`SELECT * FROM shardctl.moves WHERE plan_id = $1 ORDER BY move_no`, [row.id]);
    const { rows: tables } = await this.#client.query<TableRow>(
      `SELECT * FROM shardctl.move_tables WHERE plan_id = $1 ORDER BY move_no, table_name`,
      [row.id],
    );
    return {
      id: row.id,
      kind: row.kind,
      fromEpoch: row.from_epoch,
      targetRing: row.target_ring,
      state: row.state,
      switchedEpoch: row.switched_epoch,
      options: row.options,
      error: row.error,
      createdBy: row.created_by,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
      moves: moves.map((m) => ({
        planId: m.plan_id,
        moveNo: m.move_no,
        source: m.source,
        target: m.target,
        mode: m.mode,
        ranges: m.ranges.map(([start, end]) => ({ start, end })),
        state: m.state,
        resumeState: m.resume_state,
        estRows: m.est_rows,
        estBytes: m.est_bytes,
        error: m.error,
        startedAt: m.started_at,
        finishedAt: m.finished_at,
        tables: tables.filter((t) => t.move_no === m.move_no).map(toProgress),
        online: m.online ?? null,
      })),
    };
  }
}

const TABLE_COLUMNS = {
  copyCursor: 'copy_cursor',
  copyDone: 'copy_done',
  rowsCopied: 'rows_copied',
  bytesCopied: 'bytes_copied',
  sourceRows: 'source_rows',
  sourceSum: 'source_sum',
  targetRows: 'target_rows',
  targetSum: 'target_sum',
  resyncs: 'resyncs',
  cleanupCursor: 'cleanup_cursor',
  cleanupDone: 'cleanup_done',
  rowsDeleted: 'rows_deleted',
  rowsLeft: 'rows_left',
  copyOrder: 'copy_order',
  copySnapshotXmin: 'copy_snapshot_xmin',
  copyTableRows: 'copy_table_rows',
  cleanupBatch: 'cleanup_batch',
  cleanupMismatches: 'cleanup_mismatches',
} as const satisfies Record<keyof Omit<TableProgress, 'table'>, string>;

interface PlanRow {
  id: string;
  kind: PlanKind;
  from_epoch: number;
  target_ring: RingSpec;
  state: PlanState;
  switched_epoch: number | null;
  options: Record<string, unknown>;
  error: string | null;
  created_by: string;
  created_at: Date;
  updated_at: Date;
}

interface MoveRow {
  plan_id: string;
  move_no: number;
  source: string;
  target: string;
  mode: MoveMode;
  ranges: Array<[number, number]>;
  state: MoveState;
  resume_state: MoveState | null;
  est_rows: number;
  est_bytes: number;
  error: string | null;
  started_at: Date | null;
  finished_at: Date | null;
  online?: OnlineStats | null;
}

interface TableRow {
  move_no: number;
  table_name: string;
  copy_cursor: number;
  copy_done: boolean;
  rows_copied: number;
  bytes_copied: number;
  source_rows: number | null;
  source_sum: string | null;
  target_rows: number | null;
  target_sum: string | null;
  resyncs: number;
  cleanup_cursor: number;
  cleanup_done: boolean;
  rows_deleted: number;
  rows_left: number | null;
  copy_order: 'hash' | 'block';
  copy_snapshot_xmin: string | null;
  copy_table_rows: number | null;
  cleanup_batch: number;
  cleanup_mismatches: number;
}

function toProgress(t: TableRow): TableProgress {
  return {
    table: t.table_name,
    copyCursor: t.copy_cursor,
    copyDone: t.copy_done,
    rowsCopied: t.rows_copied,
    bytesCopied: t.bytes_copied,
    sourceRows: t.source_rows,
    sourceSum: t.source_sum,
    targetRows: t.target_rows,
    targetSum: t.target_sum,
    resyncs: t.resyncs,
    cleanupCursor: t.cleanup_cursor,
    cleanupDone: t.cleanup_done,
    rowsDeleted: t.rows_deleted,
    rowsLeft: t.rows_left,
    copyOrder: t.copy_order,
    copySnapshotXmin: t.copy_snapshot_xmin,
    copyTableRows: t.copy_table_rows,
    cleanupBatch: t.cleanup_batch,
    cleanupMismatches: t.cleanup_mismatches,
  };
}
