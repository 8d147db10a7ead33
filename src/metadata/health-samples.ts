import type { HealthStatus } from '../core/thresholds.js';
import type { PgClient } from '../postgres/connect.js';

/** One recorded result of one check on one target. */
export interface HealthSample {
  check: string;
  target: string;
  status: HealthStatus;
  value: number | null;
  message: string;
}

/** The recent trend of one check on one target, for `health --history`. */
export interface HealthSeries {
  check: string;
  target: string;
  samples: number;
  min: number | null;
  max: number | null;
  last: { at: string; status: HealthStatus; value: number | null; message: string };
  /** The number of samples per status over the window. */
  statuses: Record<HealthStatus, number>;
  /** The last values, oldest first (at most `points`): what the sparkline draws. */
  values: Array<number | null>;
}

const UNDEFINED_TABLE = '42P01';

/**
 * Stores one run's results (one INSERT for all of them) and prunes samples
 * older than `retentionMs`, in one transaction.
 */
export async function recordHealthSamples(client: PgClient, takenAt: Date, samples: HealthSample[], retentionMs: number): Promise<{ stored: number; pruned: number }> {
  await client.query('BEGIN');
  try {
    const inserted = await client.query(
      `INSERT INTO shardctl.health_samples (taken_at, check_name, target, status, value, message)
       SELECT $1, c, t, s, v, m FROM unnest($2::text[], $3::text[], $4::text[], $5::float8[], $6::text[]) AS x(c, t, s, v, m)`,
      [takenAt, samples.map((s) => s.check), samples.map((s) => s.target), samples.map((s) => s.status), samples.map((s) => s.value), samples.map((s) => s.message)],
    );
    const pruned = await client.query(`DELETE FROM shardctl.health_samples WHERE taken_at < $1`, [new Date(takenAt.getTime() - retentionMs)]);
    await client.query('COMMIT');
    return { stored: inserted.rowCount ?? 0, pruned: pruned.rowCount ?? 0 };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw withUpgradeHint(err);
  }
}

/** Per check and target since `since`: min, max, last, counts by status and the last `points` values. */
export async function readHealthHistory(client: PgClient, options: { since: Date; check?: string; points?: number }): Promise<HealthSeries[]> {
  const points = options.points ?? 24;
  const { rows } = await client
    .query<{
      check_name: string;
      target: string;
      samples: number;
      min: number | null;
      max: number | null;
      last_at: Date;
      last_status: HealthStatus;
      last_value: number | null;
      last_message: string;
      ok: number;
      warning: number;
      critical: number;
      unknown: number;
      values: Array<number | null>;
    }>(
      `SELECT check_name, target, count(*)::int AS samples, min(value) AS min, max(value) AS max,
              (array_agg(taken_at ORDER BY taken_at DESC))[1] AS last_at,
              (array_agg(status ORDER BY taken_at DESC))[1] AS last_status,
              (array_agg(value ORDER BY taken_at DESC))[1] AS last_value,
              (array_agg(message ORDER BY taken_at DESC))[1] AS last_message,
              count(*) FILTER (WHERE status = 'ok')::int AS ok, count(*) FILTER (WHERE status = 'warning')::int AS warning,
              count(*) FILTER (WHERE status = 'critical')::int AS critical, count(*) FILTER (WHERE status = 'unknown')::int AS unknown,
              (array_agg(value ORDER BY taken_at DESC))[1:$3] AS values
         FROM shardctl.health_samples
        WHERE taken_at >= $1 AND ($2::text IS NULL OR check_name = $2)
        GROUP BY check_name, target
        ORDER BY check_name, target`,
      [options.since, options.check ?? null, points],
    )
    .catch((err: unknown) => {
      throw withUpgradeHint(err);
    });
  return rows.map((r) => ({
    check: r.check_name,
    target: r.target,
    samples: r.samples,
    min: r.min,
    max: r.max,
    last: { at: r.last_at.toISOString(), status: r.last_status, value: r.last_value, message: r.last_message },
    statuses: { ok: r.ok, warning: r.warning, critical: r.critical, unknown: r.unknown },
    values: [...r.values].reverse(),
  }));
}

function withUpgradeHint(err: unknown): unknown {
  if ((err as { code?: string }).code === UNDEFINED_TABLE) {
    return new Error('the metadata database has no health samples table: run `shardctl init` to upgrade its schema');
  }
  return err;
}
