import type { ShardctlConfig } from '../../config/schema.js';
import type { HealthGroup } from '../../core/health-checks.js';
import type { HealthStatus, HealthUnit, Thresholds } from '../../core/thresholds.js';
import type { MetadataStore, ShardRecord } from '../../metadata/store.js';
import type { SharedHealthSession } from '../../postgres/health-session.js';
import type { ShardSnapshot } from '../../postgres/health/shard-snapshot.js';
import type { ShardTarget } from '../shards/targets.js';

/**
 * One measured value of one check on one target, as a group's collector
 * reports it. The runner turns it into a CheckResult: thresholds from the
 * config (or `defaults`, or the check's own), then the status.
 */
export interface Measurement {
  /** A name of src/core/health-checks.ts. */
  check: string;
  /** For people: "shard-2", "metadata", "public.messages on shard-2", "messages:{room-1} group moderation", "redis 127.0.0.1:7001". */
  target: string;
  /** The check's metric labels (its spec's `labels`), each set: `{ shard: 'shard-2' }`. */
  labels: Record<string, string>;
  /** null: nothing to measure (no replicas, no maxmemory); OK unless `status` says otherwise. */
  value: number | null;
  /** One line saying what was found ("2 sessions idle in transaction, oldest pid 4242 (psql) for 41s"). */
  message: string;
  /** Levels derived from the config (a runway against the table's premake), used where health.thresholds sets none. */
  defaults?: Partial<Thresholds>;
  /**
   * A status decided by what happened rather than by the value: critical for
   * a server that did not answer, unknown for a check that could not run
   * (permission denied, an unsupported server). Thresholds are then not applied.
   */
  status?: HealthStatus;
}

/** A measurement judged: what every rendering (table, --json, Prometheus, Nagios, history) shows. */
export interface CheckResult {
  check: string;
  group: HealthGroup;
  target: string;
  labels: Record<string, string>;
  status: HealthStatus;
  value: number | null;
  unit: HealthUnit;
  thresholds: Thresholds;
  message: string;
}

export interface HealthReport {
  /** When the run started (ISO 8601). */
  at: string;
  status: HealthStatus;
  durationMs: number;
  timeoutMs: number;
  /** Worst first, then by check and target. */
  results: CheckResult[];
  summary: Record<HealthStatus, number>;
}

/**
 * What a group's collector gets. Every check shares one deadline (the run's
 * start + `health.timeout`): a collector must have returned by then, and the
 * runner reports whatever target has not as CRITICAL ("no answer within …").
 */
export interface HealthContext {
  config: ShardctlConfig;
  /** health.timeout or --timeout, in ms. */
  timeoutMs: number;
  /** Date.now() value by which everything must be done. */
  deadline: number;
  /** Aborted at the deadline (and on SIGINT/SIGTERM): close connections, stop waiting. */
  signal: AbortSignal;
  now: Date;
  /** The config's shards (their URLs are there), filtered by --shard: checkable at once, without waiting for the metadata database. */
  configShards: ShardTarget[];
  /**
   * Every shard, as the registry knows them (state, weight; retired ones left
   * out), plus config shards it does not know; filtered by --shard. Waits for
   * the metadata database; when it does not answer, the config's shards.
   */
  shards(): Promise<ShardTarget[]>;
  /** The registry's rows (retired ones too), read once per run; null when the metadata database did not answer or could not be read. */
  registry(): Promise<ShardRecord[] | null>;
  /** The metadata store, opened once within the deadline; null when it did not answer (its `reachable` result says why). */
  metadata(): Promise<MetadataStore | null>;
  /**
   * The run's one bounded session to a database (a shard, or the metadata
   * database as a target of the shards group), by URL: opened on first use,
   * shared by every group, one use at a time (src/postgres/health-session.ts).
   * `label` ("shard shard-2") names it in errors; the first caller's is kept.
   */
  session(url: string, label: string): SharedHealthSession;
  /** --check NAME: collectors skip checks not wanted (measuring them is harmless, but costs time). */
  wants(check: string): boolean;
  /**
   * Every part this run's groups read from one database (the shards group's
   * stats; for a shard also the sharded tables' sizes and sample and the
   * partitions), in one statement on its session (src/postgres/health/shard-snapshot.ts),
   * read once per URL by whichever group asks first: one round trip per
   * shard instead of one or more per group. `shard`: the database is a shard
   * (the metadata database gets the stats only). Resolves to null when the
   * statement failed as a statement (a sharded table missing on the shard, a
   * permission): each group then reads its own part as before, so one
   * group's problem stays that group's. A part this snapshot does not hold
   * (asked for first as another kind of target) is read the same way.
   * Rejects as the session does (the deadline, a refused connection).
   */
  snapshot(url: string, label: string, shard: boolean): Promise<ShardSnapshot | null>;
}

/** Characters of a session's or statement's query text a message shows (the server sends one more, to tell a cut). */
export const QUERY_CHARS = 60;

export type CollectGroup = (ctx: HealthContext) => Promise<Measurement[]>;
