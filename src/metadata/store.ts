import { compareShardIds } from '../core/shard-id.js';
import { fileURLToPath } from 'node:url';
import { parseDuration } from '../config/duration.js';
import type { ShardctlConfig } from '../config/schema.js';
import { stripPassword } from '../config/redact.js';
import type { RingMember, RingSpec } from '../core/ring.js';
import { connect, databaseOf, serialized, withClient, withDatabase, type ConnectOptions, type PgClient } from '../postgres/connect.js';
import { quoteIdent } from '../postgres/ident.js';
import { OperationError } from '../errors.js';

/** The package's own metadata schema files, next to dist/ and src/. */
export const METADATA_MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations', import.meta.url));
const TRACKING_TABLE = { schema: 'shardctl', name: 'tool_migrations' };
/** The default of metadata.lockStaleAfter. */
export const DEFAULT_LOCK_STALE_AFTER_MS = 120_000;

export interface StoreOptions {
  lockStaleAfterMs?: number;
  shardUrls?: string[];
}

/** The store's options from the config: lockStaleAfter, and where the shards are. */
export function storeOptionsOf(config: ShardctlConfig): StoreOptions {
  return { lockStaleAfterMs: parseDuration(config.metadata.lockStaleAfter), shardUrls: config.shards.map((s) => s.url) };
}

export type ShardState = 'pending' | 'active' | 'draining' | 'retired';

export interface ShardRecord {
  id: string;
  /** Without password. */
  url: string;
  weight: number;
  state: ShardState;
}

export interface RingEpoch extends RingSpec {
  epoch: number;
  reason: string;
  createdBy: string;
  createdAt: Date;
}

export interface AuditRecord {
  id: number;
  actor: string;
  command: string;
  commandLine: string;
  startedAt: Date;
  finishedAt: Date | null;
  outcome: string;
  exitCode: number | null;
  summary: unknown;
}

/**
 * The control-plane database: shard registry, ring epochs, audit log. Every
 * statement shardctl sends to it is in this file.
 */
export class MetadataStore {
  readonly #client: PgClient;
  readonly url: string;
  /** metadata.lockStaleAfter: a lock holder silent for longer is stale. */
  readonly lockStaleAfterMs: number;
  /** The config's shard URLs (with their passwords): where breaking a stale lock also ends the stale run's sessions. */
  readonly shardUrls: string[];

  private constructor(client: PgClient, url: string, options: StoreOptions) {
    this.#client = serialized(client);
    this.url = url;
    this.lockStaleAfterMs = options.lockStaleAfterMs ?? DEFAULT_LOCK_STALE_AFTER_MS;
    this.shardUrls = options.shardUrls ?? [];
  }

  static async open(
    url: string,
    options: StoreOptions & { applicationName?: string; createDatabase?: boolean; connect?: Pick<ConnectOptions, 'connectTimeoutMs' | 'settings'> } = {},
  ): Promise<MetadataStore> {
    const appName = options.applicationName ?? 'shardctl';
    try {
      return new MetadataStore(await connect(url, { applicationName: appName, label: 'the metadata database', ...options.connect }), url, options);
    } catch (err) {
      const code = (err as { cause?: { code?: string } }).cause?.code;
      if (code !== '3D000' || !options.createDatabase) {
        if (code === '3D000') {
          throw new OperationError(`the metadata database "${databaseOf(url)}" does not exist: run \`shardctl init\` first`);
        }
        throw err;
      }
    }
    // The database itself is missing: create it from the server's maintenance database.
    await withClient(withDatabase(url, 'postgres'), { applicationName: appName, label: 'the metadata server' }, (c) =>
      c.query(`CREATE DATABASE ${quoteIdent(databaseOf(url))}`),
    );
    return new MetadataStore(await connect(url, { applicationName: appName, label: 'the metadata database' }), url, options);
  }

  get client(): PgClient {
    return this.#client;
  }

  async close(): Promise<void> {
    await this.#client.end().catch(() => {});
  }

  /** Creates or upgrades the schema from migrations/; returns the files it applied. */
  async migrateSchema(appliedBy: string): Promise<{ applied: string[]; current: number }> {
    // Loaded here: only init and migrate change the schema, and the migrator is most of this module's imports.
    const [{ applyMigrationFile, ensureTrackingTable, readApplied, readMigrationFiles }, { planMigrations }] = await Promise.all([
      import('../postgres/migrator.js'),
      import('../core/migration-plan.js'),
    ]);
    const files = await readMigrationFiles(METADATA_MIGRATIONS_DIR);
    await ensureTrackingTable(this.#client, TRACKING_TABLE);
    const plan = planMigrations(files, await readApplied(this.#client, TRACKING_TABLE));
    if (plan.changed.length || plan.missing.length) {
      throw new OperationError('the metadata schema does not match this version of shardctl', {
        details: [
          ...plan.changed.map((e) => `${e.version}_${e.name}: applied file changed since it ran (checksum differs)`),
          ...plan.missing.map((e) => `${e.version}_${e.name}: applied but not shipped with this shardctl (downgrade?)`),
        ],
      });
    }
    const applied: string[] = [];
    for (const file of plan.pending) {
      const sql = files.find((f) => f.version === file.version)!;
      await applyMigrationFile(this.#client, TRACKING_TABLE, sql, { appliedBy, lockTimeoutMs: 10_000 });
      applied.push(sql.filename);
    }
    return { applied, current: files.length };
  }

  /**
   * Makes this session's writes carry the lease's generation (checked by the
   * fence trigger, migrations/0004_leases.sql), under the holder's name, so
   * that breaking a stale lock ends this session too; null lets go. A session
   * of a mutating run never idles inside a transaction, so one that does (a
   * paused process) is ended by the server rather than holding rows for ever.
   */
  async claimLease(generation: number | null, holder: string | null): Promise<void> {
    await this.#client.query(
      `SELECT set_config('shardctl.lease', $1, false), set_config('application_name', coalesce($2, current_setting('application_name')), false),
              set_config('idle_in_transaction_session_timeout', $3, false)`,
      [generation === null ? '' : String(generation), holder?.slice(0, 63) ?? null, generation === null ? '0' : '60s'],
    );
  }

  async isInitialised(): Promise<boolean> {
    const { rows } = await this.#client.query<{ ok: boolean }>(`SELECT to_regclass('shardctl.ring_epochs') IS NOT NULL AS ok`);
    return !!rows[0]?.ok;
  }

  async listShards(): Promise<ShardRecord[]> {
    const { rows } = await this.#client.query<ShardRecord>(`SELECT id, url, weight, state FROM shardctl.shards`);
    // shard-2 before shard-10: the order people read ids in.
    return rows.sort((a, b) => compareShardIds(a.id, b.id));
  }

  /** Inserts a shard that is not registered yet; returns false if it already was. */
  async registerShard(shard: { id: string; url: string; weight: number; state: ShardState }): Promise<boolean> {
    const { rowCount } = await this.#client.query(
      `INSERT INTO shardctl.shards (id, url, weight, state) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING`,
      [shard.id, stripPassword(shard.url), shard.weight, shard.state],
    );
    return rowCount === 1;
  }

  async currentRing(): Promise<RingEpoch | null> {
    const { rows } = await this.#client.query<{
      epoch: number;
      vnodes: number;
      members: RingMember[];
      reason: string;
      created_by: string;
      created_at: Date;
    }>(`SELECT epoch, vnodes, members, reason, created_by, created_at FROM shardctl.ring_epochs ORDER BY epoch DESC LIMIT 1`);
    const row = rows[0];
    if (!row) return null;
    return {
      epoch: row.epoch,
      vnodes: row.vnodes,
      members: row.members,
      reason: row.reason,
      createdBy: row.created_by,
      createdAt: row.created_at,
    };
  }

  /**
   * Records a new ring as the next epoch. `expectedEpoch` is the epoch the
   * caller planned from: if another epoch was written meanwhile, the primary
   * key makes this insert fail instead of silently overwriting.
   */
  async insertRingEpoch(ring: RingSpec, expectedEpoch: number, reason: string, createdBy: string): Promise<number> {
    const epoch = expectedEpoch + 1;
    await this.#client.query(
      `INSERT INTO shardctl.ring_epochs (epoch, vnodes, members, reason, created_by) VALUES ($1, $2, $3, $4, $5)`,
      [epoch, ring.vnodes, JSON.stringify(ring.members), reason, createdBy],
    );
    return epoch;
  }

  async auditStart(entry: { actor: string; command: string; commandLine: string }): Promise<number> {
    const { rows } = await this.#client.query<{ id: number }>(
      `INSERT INTO shardctl.audit_log (actor, command, command_line) VALUES ($1, $2, $3) RETURNING id`,
      [entry.actor, entry.command, entry.commandLine],
    );
    return rows[0]!.id;
  }

  async auditFinish(id: number, outcome: string, exitCode: number, summary: unknown): Promise<void> {
    await this.#client.query(
      `UPDATE shardctl.audit_log SET finished_at = now(), outcome = $2, exit_code = $3, summary = $4 WHERE id = $1`,
      [id, outcome, exitCode, JSON.stringify(summary ?? null)],
    );
  }

  async listAudit(options: { limit: number; command?: string; since?: Date }): Promise<AuditRecord[]> {
    const { rows } = await this.#client.query<{
      id: number; actor: string; command: string; command_line: string; started_at: Date;
      finished_at: Date | null; outcome: string; exit_code: number | null; summary: unknown;
    }>(
      // A row still 'running' is alive only if its run holds the lock now: the live lease was taken
      // before the row was written (runMutation takes it first) by a session that still holds the
      // lock. Any other running row belongs to a process that died (SIGKILL, a lost machine): 'died'.
      `SELECT id, actor, command, command_line, started_at, finished_at, exit_code, summary,
              CASE WHEN outcome = 'running' AND NOT EXISTS (
                     SELECT 1 FROM shardctl.leases l
                      WHERE l.name = 'metadata' AND l.released_at IS NULL AND l.acquired_at <= a.started_at
                        AND EXISTS (SELECT 1 FROM pg_locks k
                                     WHERE k.locktype = 'advisory' AND k.granted AND k.pid = l.holder_pid
                                       AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                                       AND k.classid = 1397244756::bigint::oid AND k.objid = 1 AND k.objsubid = 2))
                   THEN 'died' ELSE outcome END AS outcome
         FROM shardctl.audit_log a
        WHERE ($2::text IS NULL OR command = $2 OR command LIKE $2 || ' %')
          AND ($3::timestamptz IS NULL OR started_at >= $3)
        ORDER BY id DESC LIMIT $1`,
      [options.limit, options.command ?? null, options.since ?? null],
    );
    return rows.map((r) => ({
      id: r.id,
      actor: r.actor,
      command: r.command,
      commandLine: r.command_line,
      startedAt: r.started_at,
      finishedAt: r.finished_at,
      outcome: r.outcome,
      exitCode: r.exit_code,
      summary: r.summary,
    }));
  }
}
