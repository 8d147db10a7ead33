import type { PgClient } from '../connect.js';
import { quoteIdent } from '../ident.js';

/**
 * What `health` reads from one shard (or the metadata database), one check
 * family per function. Each family is a scalar subquery that returns one JSON
 * object, so `readShardStats` asks for every family in one statement: one
 * round trip per target, whatever the number of checks. The one bind
 * parameter, $1, is how many characters of a session's or a statement's
 * query text to keep. Only catalog and statistics views are read: no lock
 * beyond their ACCESS SHARE, nothing that waits behind an application.
 *
 * The statistics views are read through the functions they are defined on
 * (pg_stat_get_activity, pg_lock_status, pg_stat_get_wal_senders,
 * pg_get_replication_slots, pg_stat_get_db_blocks_*), with only the joins a
 * figure needs: a new backend's first read of a view loads its rewrite rule
 * and every relation it joins, which was about 10 of the 15 ms this
 * statement cost on each shard's fresh session (the same values, read the
 * way the views read them).
 *
 * Ages are measured by the server's own clock (now() - xact_start), so a
 * client whose clock is off reports the same ages.
 *
 * The session family sees only client sessions (backend_type 'client
 * backend': autovacuum workers and replication senders are left out) of the
 * database it is connected to (datname = current_database()), and never its
 * own session (pid <> pg_backend_pid()): shards are often databases on one
 * shared server, and each shard's checks must name only its own sessions.
 */

/** One session of pg_stat_activity, as the session checks name it. */
export interface SessionInfo {
  pid: number;
  application: string;
  state: string | null;
  /** Seconds: of the transaction, the idle spell, the query or the lock wait, by the check. */
  age: number;
  /** The first characters of its query ('' when hidden from this role or empty). */
  query: string;
}

export interface LockWaiter extends SessionInfo {
  /** "AccessShareLock on public.items", "ShareLock on transaction 1234". */
  lock: string;
  /** pg_blocking_pids() of the waiter: who holds the lock or queues ahead of it. */
  blockedBy: number[];
}

export interface SessionStats {
  /** Open transactions (xact_start set) and the oldest of them. */
  transactions: number;
  oldestTransaction: SessionInfo | null;
  /** Sessions idle in transaction (or aborted in one) and the longest idle. */
  idleInTransaction: number;
  longestIdle: SessionInfo | null;
  /** Running statements (state active) and the longest running. */
  activeQueries: number;
  longestQuery: SessionInfo | null;
  /** Sessions waiting for a heavyweight lock (pg_locks not granted) and the one waiting longest. */
  lockWaiters: number;
  oldestLockWait: LockWaiter | null;
}

export interface ServerStats {
  /** server_version_num, e.g. 150020. */
  versionNum: number;
  /** server_version, e.g. "15.20 (Debian 15.20-0+deb12u1)". */
  version: string;
  database: string;
  inRecovery: boolean;
  /** Client sessions of the whole server (every database). */
  connections: number;
  maxConnections: number;
  reservedConnections: number;
  /** age(datfrozenxid) of the server's oldest database, and which that is. */
  xidAge: number;
  xidDatabase: string;
  databaseSize: number;
  blocksHit: number;
  blocksRead: number;
}

export interface ReplicationStats {
  replicas: number;
  /** The replica with the largest replay_lag (null lag: caught up and idle). */
  laggiest: { name: string; client: string; state: string; lag: number | null } | null;
  inactiveSlots: number;
  /** The inactive slot with the oldest restart_lsn, and the WAL it holds back (bytes; null when it reserves none). */
  oldestInactiveSlot: { name: string; type: string; database: string | null; retained: number | null } | null;
}

/** Where pg_stat_statements is installed in this database, and its mean-time column (1.8+: mean_exec_time, before: mean_time). */
export interface StatementsView {
  schema: string;
  column: 'mean_exec_time' | 'mean_time';
  version: string;
}

export interface ShardStats {
  server: ServerStats;
  sessions: SessionStats;
  replication: ReplicationStats;
  /** null: pg_stat_statements is not installed in this database. */
  statements: StatementsView | null;
}

export interface SlowestStatement {
  /** Mean execution time in seconds. */
  mean: number;
  calls: number;
  query: string;
  /** Statements of this database in the view. */
  statements: number;
}

/** Server-wide figures and the shard database's own: version, connections, xid age, size, cache reads. */
export function serverStatsSql(): string {
  return `(SELECT json_build_object(
    'versionNum', current_setting('server_version_num')::int,
    'version', current_setting('server_version'),
    'database', current_database(),
    'inRecovery', pg_is_in_recovery(),
    'connections', (SELECT count(*) FROM pg_stat_get_activity(NULL) a WHERE a.backend_type = 'client backend'),
    'maxConnections', current_setting('max_connections')::int,
    'reservedConnections', current_setting('superuser_reserved_connections')::int,
    'xid', (SELECT json_build_object('age', age(datfrozenxid), 'database', datname) FROM pg_database ORDER BY age(datfrozenxid) DESC LIMIT 1),
    'databaseSize', pg_database_size(current_database()),
    'blocksHit', pg_stat_get_db_blocks_hit(d.oid),
    'blocksRead', pg_stat_get_db_blocks_fetched(d.oid) - pg_stat_get_db_blocks_hit(d.oid))
  FROM pg_database d WHERE d.datname = current_database())`;
}

/**
 * The client sessions of this database other than our own: the oldest
 * transaction, the longest idle in transaction, the longest running query and
 * the longest lock wait (pg_locks.waitstart where the server has it, 14+,
 * else the query's start), each with a count. waitstart is read through
 * to_jsonb of the lock row, so one text serves servers with and without the
 * column; only ungranted locks are turned into JSON.
 */
export function sessionStatsSql(queryCharsParam = '$1'): string {
  const session = (age: string) => `pid, app AS application, state, query, greatest(0, extract(epoch FROM now() - ${age}))::float8 AS age`;
  return `(WITH s AS MATERIALIZED (
    SELECT a.pid, coalesce(a.application_name, '') AS app, a.state, a.xact_start, a.query_start, a.state_change,
           left(coalesce(a.query, ''), ${queryCharsParam}::int) AS query
    FROM pg_stat_get_activity(NULL) a
    WHERE a.datid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
  ), w AS MATERIALIZED (
    SELECT l.pid,
           min(coalesce((to_jsonb(l) ->> 'waitstart')::timestamptz, s.query_start, s.state_change)) AS since,
           min(l.mode || ' on ' || CASE
             WHEN l.relation IS NOT NULL THEN l.relation::regclass::text
             WHEN l.locktype = 'transactionid' THEN 'transaction ' || l.transactionid::text
             WHEN l.locktype = 'virtualxid' THEN 'virtual transaction ' || l.virtualxid
             ELSE l.locktype END) AS lock
    FROM pg_lock_status() l JOIN s ON s.pid = l.pid
    WHERE NOT l.granted
    GROUP BY l.pid
  )
  SELECT json_build_object(
    'transactions', (SELECT count(*) FROM s WHERE xact_start IS NOT NULL),
    'oldestTransaction', (SELECT row_to_json(x) FROM (SELECT ${session('xact_start')} FROM s WHERE xact_start IS NOT NULL ORDER BY xact_start LIMIT 1) x),
    'idleInTransaction', (SELECT count(*) FROM s WHERE state LIKE 'idle in transaction%'),
    'longestIdle', (SELECT row_to_json(x) FROM (SELECT ${session('state_change')} FROM s WHERE state LIKE 'idle in transaction%' ORDER BY state_change LIMIT 1) x),
    'activeQueries', (SELECT count(*) FROM s WHERE state = 'active'),
    'longestQuery', (SELECT row_to_json(x) FROM (SELECT ${session('query_start')} FROM s WHERE state = 'active' ORDER BY query_start LIMIT 1) x),
    'lockWaiters', (SELECT count(*) FROM w),
    'oldestLockWait', (SELECT row_to_json(x) FROM (
      SELECT s.pid, s.app AS application, s.state, s.query, w.lock, pg_blocking_pids(w.pid) AS "blockedBy",
             greatest(0, extract(epoch FROM now() - w.since))::float8 AS age
      FROM w JOIN s ON s.pid = w.pid ORDER BY w.since NULLS LAST LIMIT 1) x)
  ))`;
}

/**
 * Replicas of the server (pg_stat_replication, physical and logical) and its
 * inactive replication slots with the WAL the oldest of them holds back
 * (pg_wal_lsn_diff from the current WAL position, or the last replayed one on
 * a standby).
 */
export function replicationStatsSql(): string {
  return `(SELECT json_build_object(
    'replicas', (SELECT count(*) FROM pg_stat_get_wal_senders() w JOIN pg_stat_get_activity(NULL) a ON a.pid = w.pid),
    'laggiest', (SELECT row_to_json(x) FROM (
      SELECT coalesce(a.application_name, '') AS name, coalesce(host(a.client_addr), 'local') AS client, coalesce(w.state, '') AS state,
             extract(epoch FROM w.replay_lag)::float8 AS lag
      FROM pg_stat_get_wal_senders() w JOIN pg_stat_get_activity(NULL) a ON a.pid = w.pid ORDER BY w.replay_lag DESC NULLS LAST LIMIT 1) x),
    'inactiveSlots', (SELECT count(*) FROM pg_get_replication_slots() l WHERE NOT l.active),
    'oldestInactiveSlot', (SELECT row_to_json(x) FROM (
      SELECT l.slot_name AS name, l.slot_type AS type, d.datname AS database,
             pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, l.restart_lsn)::float8 AS retained
      FROM pg_get_replication_slots() l LEFT JOIN pg_database d ON d.oid = l.datoid WHERE NOT l.active ORDER BY l.restart_lsn NULLS LAST LIMIT 1) x)
  ))`;
}

/**
 * Where pg_stat_statements is installed in this database (it is per
 * database), and which mean-time column its view has: mean_exec_time from
 * the extension's 1.8 (PostgreSQL 13), mean_time before. Read from the view's
 * own columns, so an extension left at an old version after an upgrade is
 * read right too.
 */
export function statementsViewSql(): string {
  return `(SELECT json_build_object('schema', n.nspname, 'column', a.attname, 'version', e.extversion)
    FROM pg_extension e
    JOIN pg_namespace n ON n.oid = e.extnamespace
    JOIN pg_class c ON c.relnamespace = e.extnamespace AND c.relname = 'pg_stat_statements'
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname IN ('mean_exec_time', 'mean_time') AND NOT a.attisdropped
    WHERE e.extname = 'pg_stat_statements'
    ORDER BY a.attname LIMIT 1)`;
}

/** Every family in one statement; $1 is the query-text length. */
export function shardStatsSql(): string {
  return `SELECT ${shardStatsColumns('$1')}`;
}

/**
 * The families as select-list columns (server, sessions, replication, and
 * whether pg_stat_statements is installed), `queryCharsParam` the query-text
 * length: for a statement that reads more. Where the extension is installed,
 * its view is looked at in a statement of its own (readShardStatsRow):
 * planning statementsViewSql's catalog join cost a fresh session a few ms on
 * every shard, and most have no pg_stat_statements.
 */
export function shardStatsColumns(queryCharsParam: string): string {
  return `${serverStatsSql()} AS server, ${sessionStatsSql(queryCharsParam)} AS sessions, ${replicationStatsSql()} AS replication, EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') AS statements`;
}

export interface ShardStatsRow {
  server: (Omit<ServerStats, 'xidAge' | 'xidDatabase'> & { xid: { age: number; database: string } | null }) | null;
  sessions: SessionStats;
  replication: ReplicationStats;
  /** pg_stat_statements is installed in this database. */
  statements: boolean;
}

/** One round trip (two where pg_stat_statements is installed): every stat of every family but pg_stat_statements' (see readSlowestStatement). */
export async function readShardStats(client: PgClient, options: { queryChars: number }): Promise<ShardStats> {
  const { rows } = await client.query<ShardStatsRow>(shardStatsSql(), [options.queryChars]);
  return readShardStatsRow(client, rows[0]!);
}

/** The stats of a row with shardStatsColumns' columns. */
export async function readShardStatsRow(client: PgClient, row: ShardStatsRow): Promise<ShardStats> {
  if (!row.server) throw new Error(`database ${JSON.stringify(await currentDatabase(client))} has no row in pg_stat_database`);
  const { xid, ...server } = row.server;
  return {
    server: { ...server, xidAge: xid?.age ?? 0, xidDatabase: xid?.database ?? '' },
    sessions: row.sessions,
    replication: row.replication,
    statements: row.statements ? ((await client.query<{ statements: StatementsView | null }>(`SELECT ${statementsViewSql()} AS statements`)).rows[0]?.statements ?? null) : null,
  };
}

async function currentDatabase(client: PgClient): Promise<string> {
  return (await client.query<{ db: string }>('SELECT current_database() AS db')).rows[0]!.db;
}

/**
 * The statement of this database with the highest mean execution time in
 * pg_stat_statements (null: the view holds none of this database's). The view
 * errors (SQLSTATE 55000) when the library is installed but not in
 * shared_preload_libraries: callers tell that apart with `notPreloaded`.
 */
export function slowestStatementSql(view: StatementsView): string {
  const v = `${quoteIdent(view.schema)}.pg_stat_statements`;
  const col = quoteIdent(view.column);
  return `SELECT (s.${col} / 1000.0)::float8 AS mean, s.calls, left(coalesce(s.query, ''), $1::int) AS query, count(*) OVER () AS statements
    FROM ${v} s
    WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND s.${col} IS NOT NULL
    ORDER BY s.${col} DESC LIMIT 1`;
}

export async function readSlowestStatement(client: PgClient, view: StatementsView, options: { queryChars: number }): Promise<SlowestStatement | null> {
  const { rows } = await client.query<SlowestStatement>(slowestStatementSql(view), [options.queryChars]);
  return rows[0] ?? null;
}

/** The error pg_stat_statements raises when its library is not in shared_preload_libraries. */
export function notPreloaded(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e.code === '55000' && /shared_preload_libraries/.test(e.message ?? '');
}
