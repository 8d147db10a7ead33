import { redactUrl } from '../../config/redact.js';
import { HEALTH_CHECKS } from '../../core/health-checks.js';
import { formatBytes, formatSeconds } from '../../core/thresholds.js';
import { DeadlineExceeded } from '../../postgres/health-session.js';
import {
  notPreloaded,
  readShardStats,
  readSlowestStatement,
  type SessionInfo,
  type ShardStats,
  type SlowestStatement,
} from '../../postgres/health/shard-stats.js';
import { QUERY_CHARS, type HealthContext, type Measurement } from './types.js';

/**
 * The `shards` group: every check of that group on every shard and on the
 * metadata database (target "metadata", label shard="metadata"), each target
 * on the run's bounded session to it (ctx.session, shared with the sharding
 * and partitions groups; src/postgres/health-session.ts), all at once.
 *
 * Per target: connect; `SELECT 1` three times, the fastest timed (latency); one statement for every
 * other stat (src/postgres/health/shard-stats.ts), which on a shard also reads
 * what the sharding and partitions groups want of it (ctx.snapshot); and,
 * only where pg_stat_statements is installed in that database, two more: its
 * view's schema and columns, and the slowest statement. So two round trips
 * after the connection, four with pg_stat_statements.
 *
 * A target that does not answer (refused, or no answer by the deadline) is
 * reachable=0, CRITICAL, with why; every other check of it is UNKNOWN ("not
 * measured: …") with no value, so each (check, target) pair is in every
 * report, and `--check latency` on a dead shard is not OK by omission. A
 * target that answered SELECT 1 and then failed or ran out of time on the
 * stats is reachable=1, with the stats' checks UNKNOWN and the reason.
 *
 * The config's shards are checked at once; shards the registry knows but the
 * config does not (a URL from the registry) are added when the metadata
 * database has answered.
 */


const SHARD_CHECKS = HEALTH_CHECKS.filter((c) => c.group === 'shards').map((c) => c.name);
/** Counts as people read them ("2,147,483,647"): one formatter for the run (each toLocaleString('en-US') made its own, ~0.2 ms a call). */
const COUNT = new Intl.NumberFormat('en-US');

/** Checks answered by the one stats statement. */
const STATS_CHECKS = new Set(SHARD_CHECKS.filter((c) => c !== 'reachable' && c !== 'latency' && c !== 'slow_statements'));

interface Target {
  id: string;
  url: string;
  /** For error messages: "shard shard-2", "the metadata database". */
  label: string;
}

/** What a target's session got before it ended, however it ended. */
interface Found {
  latency?: number;
  stats?: ShardStats;
  /** undefined: not read (not wanted, or not installed); null: none of this database's statements in the view. */
  slowest?: SlowestStatement | null | { notLoaded: true } | { failed: string };
  error?: unknown;
}

export async function collectShards(ctx: HealthContext): Promise<Measurement[]> {
  const targets: Target[] = [
    { id: 'metadata', url: ctx.config.metadata.url, label: 'the metadata database' },
    ...ctx.configShards.map((s) => ({ id: s.id, url: s.url, label: `shard ${s.id}` })),
  ];
  const checked = targets.map((t, i) => checkTarget(ctx, t, i > 0));
  const configured = new Set(ctx.configShards.map((s) => s.id));
  const registeredOnly = ctx
    .shards()
    .then((all) => Promise.all(all.filter((s) => !configured.has(s.id)).map((s) => checkTarget(ctx, { id: s.id, url: s.url, label: `shard ${s.id}` }, true))))
    .catch(() => [] as Measurement[][]);
  return [...(await Promise.all(checked)), ...(await registeredOnly)].flat();
}

async function checkTarget(ctx: HealthContext, target: Target, shard: boolean): Promise<Measurement[]> {
  const wanted = SHARD_CHECKS.filter((c) => ctx.wants(c));
  if (!wanted.length) return [];
  const found: Found = {};
  try {
    const session = ctx.session(target.url, target.label);
    await session.use(async (client) => {
      // The fastest of three round trips: the first on a new backend also pays its catalog cache warm-up.
      let fastest = Infinity;
      for (let i = 0; i < 3; i++) {
        const started = performance.now();
        await client.query('SELECT 1');
        fastest = Math.min(fastest, performance.now() - started);
      }
      found.latency = fastest / 1000;
    });
    if (wanted.some((c) => STATS_CHECKS.has(c) || c === 'slow_statements')) {
      found.stats = (await ctx.snapshot(target.url, target.label, shard))?.stats ?? (await session.use((client) => readShardStats(client, { queryChars: QUERY_CHARS + 1 })));
      const view = found.stats.statements;
      if (view && ctx.wants('slow_statements')) {
        await session.use(async (client) => {
          try {
            found.slowest = await readSlowestStatement(client, view, { queryChars: QUERY_CHARS + 1 });
          } catch (err) {
            if (ctx.signal.aborted) throw err;
            found.slowest = notPreloaded(err) ? { notLoaded: true } : { failed: (err as Error).message };
          }
        });
      }
    }
  } catch (err) {
    found.error = err;
  }
  return measure(target, found, ctx).filter((m) => wanted.includes(m.check));
}

function measure(target: Target, found: Found, ctx: HealthContext): Measurement[] {
  const labels = { shard: target.id };
  const out: Measurement[] = [];
  const add = (check: string, value: number | null, message: string, status?: Measurement['status']) =>
    out.push({ check, target: target.id, labels, value, message, ...(status ? { status } : {}) });
  const why = found.error ? errorText(found.error, target, ctx) : '';

  if (found.latency === undefined) {
    add('reachable', 0, why || `${target.label} did not answer`, 'critical');
    for (const check of SHARD_CHECKS) if (check !== 'reachable') add(check, null, `not measured: ${target.id} is unreachable`, 'unknown');
    return out;
  }
  add('reachable', 1, `answered at ${redactUrl(target.url)}`);
  add('latency', found.latency, `SELECT 1 took ${formatSeconds(found.latency)}`);

  const stats = found.stats;
  if (!stats) {
    const reason = found.error ? `not measured: ${why}` : 'not measured';
    for (const check of SHARD_CHECKS) if (STATS_CHECKS.has(check) || check === 'slow_statements') add(check, null, reason, 'unknown');
    return out;
  }
  const { server, sessions, replication } = stats;

  add('server_version', server.versionNum, `PostgreSQL ${server.version}${server.versionNum < 140000 ? ' (online moves need 14 or later)' : ''}`);
  add(
    'connections',
    server.maxConnections > 0 ? server.connections / server.maxConnections : null,
    `${server.connections} of ${server.maxConnections} connections in use on the server (${server.reservedConnections} reserved for superusers)`,
  );

  add(
    'longest_transaction',
    sessions.oldestTransaction?.age ?? 0,
    sessions.oldestTransaction
      ? `${plural(sessions.transactions, 'open transaction')} in ${server.database}, oldest ${describeSession(sessions.oldestTransaction, `open ${formatSeconds(sessions.oldestTransaction.age)}, now ${sessions.oldestTransaction.state ?? 'in a hidden state'}`)}`
      : `no open transaction in ${server.database}`,
  );
  add(
    'idle_in_transaction',
    sessions.longestIdle?.age ?? 0,
    sessions.longestIdle
      ? `${plural(sessions.idleInTransaction, 'session')} idle in transaction in ${server.database}, longest ${describeSession(sessions.longestIdle, `${sessions.longestIdle.state ?? 'idle in transaction'} for ${formatSeconds(sessions.longestIdle.age)}`)}`
      : `no session idle in transaction in ${server.database}`,
  );
  add(
    'longest_query',
    sessions.longestQuery?.age ?? 0,
    sessions.longestQuery
      ? `${plural(sessions.activeQueries, 'running query', 'running queries')} in ${server.database}, longest ${describeSession(sessions.longestQuery, `active for ${formatSeconds(sessions.longestQuery.age)}`)}`
      : `no query running in ${server.database}`,
  );
  const waiter = sessions.oldestLockWait;
  add(
    'lock_waits',
    waiter?.age ?? 0,
    waiter
      ? `${plural(sessions.lockWaiters, 'session')} waiting for a lock in ${server.database}, oldest ${describeSession(waiter, `waiting ${formatSeconds(waiter.age)} for ${waiter.lock}${waiter.blockedBy.length ? ` behind pid ${waiter.blockedBy.join(', ')}` : ''}`)}`
      : `no session waiting for a lock in ${server.database}`,
  );

  add('xid_age', server.xidAge, `oldest database ${server.xidDatabase}: ${COUNT.format(server.xidAge)} transactions since its oldest unfrozen xid (wraparound at 2,147,483,647)`);
  add('database_size', server.databaseSize, `${server.database}: ${formatBytes(server.databaseSize)}`);

  const laggiest = replication.laggiest;
  add(
    'replication_lag',
    replication.replicas ? (laggiest?.lag ?? 0) : null,
    !replication.replicas
      ? 'no replicas'
      : `${plural(replication.replicas, 'replica')}, largest replay lag ${laggiest?.lag == null ? '0 (caught up)' : formatSeconds(laggiest.lag)}` +
          (laggiest ? ` (${laggiest.name || 'unnamed'} at ${laggiest.client}, ${laggiest.state})` : ''),
  );
  const slot = replication.oldestInactiveSlot;
  add(
    'inactive_slots',
    replication.inactiveSlots ? (slot?.retained ?? 0) : null,
    !replication.inactiveSlots || !slot
      ? 'no inactive replication slots'
      : `${plural(replication.inactiveSlots, 'inactive replication slot')}, oldest "${slot.name}" (${slot.type}${slot.database ? `, database ${slot.database}` : ''}) retains ${slot.retained === null ? 'no WAL' : formatBytes(slot.retained)}`,
  );

  const blocks = server.blocksHit + server.blocksRead;
  add(
    'cache_hit_ratio',
    blocks >= 1000 ? server.blocksHit / blocks : null,
    blocks >= 1000
      ? `${COUNT.format(server.blocksHit)} of ${COUNT.format(blocks)} block reads of ${server.database} from shared buffers`
      : `only ${COUNT.format(blocks)} block reads of ${server.database} so far (judged from 1,000)`,
  );

  const view = stats.statements;
  const slowest = found.slowest;
  if (!view) add('slow_statements', null, `pg_stat_statements is not installed in ${server.database}`);
  else if (slowest === undefined) add('slow_statements', null, found.error ? `not measured: ${why}` : 'not measured', 'unknown');
  else if (slowest === null) add('slow_statements', null, `pg_stat_statements ${view.version} holds no statement of ${server.database} yet`);
  else if ('notLoaded' in slowest) add('slow_statements', null, `pg_stat_statements is installed in ${server.database} but not loaded (add it to shared_preload_libraries)`);
  else if ('failed' in slowest) add('slow_statements', null, `pg_stat_statements could not be read: ${slowest.failed}`, 'unknown');
  else {
    add(
      'slow_statements',
      slowest.mean,
      `slowest of ${plural(slowest.statements, 'statement')} of ${server.database}: mean ${formatSeconds(slowest.mean)} over ${plural(slowest.calls, 'call')}: ${quoted(slowest.query)}`,
    );
  }
  return out;
}

/** `pid 4242 (psql), idle in transaction for 41s: "UPDATE items SET …"`: who, then what the check found. */
function describeSession(s: SessionInfo, what: string): string {
  return `pid ${s.pid} (${s.application || 'no application_name'}), ${what}${s.query ? `: ${quoted(s.query)}` : ''}`;
}

/** The query's first QUERY_CHARS characters, whitespace runs as one space; "…" when it goes on (the server sent one more). */
function quoted(query: string): string {
  const flat = query.replace(/\s+/g, ' ').trim();
  return JSON.stringify(query.length > QUERY_CHARS ? `${flat.slice(0, QUERY_CHARS).trimEnd()}…` : flat);
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function errorText(err: unknown, target: Target, ctx: HealthContext): string {
  if (err instanceof DeadlineExceeded) return `${target.label}: no answer within ${formatSeconds(ctx.timeoutMs / 1000)}`;
  return (err as Error).message ?? String(err);
}
