import { z } from 'zod/v3';
import { isTimeZoneName } from '../core/time-zone.js';
import { BYTE_SIZE_PATTERN } from '../core/partition-growth.js';
import { DURATION_PATTERN } from './duration.js';
import { IDENTIFIER_PATTERN as IDENTIFIER, QUALIFIED_NAME_PATTERN as QUALIFIED_NAME, SHARD_ID_PATTERN } from './patterns.js';

/**
 * The configuration file's shape: a contract with users, whose files must keep
 * working. Sections that later commands fill in are already fixed here.
 *
 * Every object is strict: a misspelt key (`redis.uri`, `shards[0].wieght`)
 * would otherwise be dropped in silence and its default used instead, so it
 * is a problem like any other. A section left out gets the defaults of its
 * keys through `default({})`, which zod parses like a value given, so each
 * default is written once, on its key.
 *
 * zod's v3 API (`zod/v3`, in the zod 4 package): importing it takes ~10 ms
 * against ~50 ms for zod 4's, which every command would pay at start-up.
 */

export { SHARD_ID_PATTERN };

const postgresUrl = z
  .string()
  .refine((s) => /^postgres(ql)?:\/\/.+/.test(s) && URL.canParse(s), 'expected a postgres:// URL');
const redisUrl = z
  .string()
  .refine((s) => /^rediss?:\/\/.+/.test(s) && URL.canParse(s), 'expected a redis:// or rediss:// (TLS) URL');
const duration = z
  .string()
  .regex(DURATION_PATTERN, 'expected a duration such as 500ms, 5s, 10m, 12h, 90d');
const identifier = z.string().regex(IDENTIFIER, 'expected a plain SQL identifier (letters, digits, _)');
const qualifiedName = z
  .string()
  .regex(QUALIFIED_NAME, 'expected a table name such as public.messages');

const shard = z.strictObject({
  id: z
    .string()
    .regex(SHARD_ID_PATTERN, 'expected a shard id of letters, digits, "-" and "_" (at most 63)'),
  url: postgresUrl,
  weight: z.number().min(0).max(1000).default(1),
});

const threshold = z.strictObject({
  warning: z.union([z.number(), z.string(), z.null()]).optional(),
  critical: z.union([z.number(), z.string(), z.null()]).optional(),
});

/** An issue so marked is left out when its object also has unknown keys (the likelier mistake). */
export const UNLESS_UNKNOWN_KEYS = 'unlessUnknownKeys';

/** One stream trim policy (src/core/trim-floor.ts). */
const streamPolicyShape = {
  /** A Redis glob as SCAN MATCH reads it (`*`, `?`, `[a-z]`, `[^a]`, `\\` escapes; braces are literal). */
  match: z.string().min(1, 'expected a key pattern such as messages:*'),
  /** Keep at most this many entries. */
  maxLen: z.number().int().min(0).optional(),
  /** Drop entries whose id is stamped longer ago than this (MINID from the entry id's milliseconds). */
  maxAge: duration.optional(),
  /** `~`: Redis trims whole radix-tree nodes only, keeping up to one node more, for a much cheaper trim. */
  approximate: z.boolean().default(true),
};

export const configSchema = z.strictObject({
  metadata: z.strictObject({
    url: postgresUrl,
    /** A metadata-lock holder whose lease heartbeat is older than this is stale (--break-stale-lock may end it). */
    lockStaleAfter: duration.default('2m'),
  }),
  redis: z
    .strictObject({
      url: redisUrl.optional(),
      nodes: z.array(redisUrl).min(1).optional(),
      /** Prefix of every key and channel shardctl writes (the ring key, its channel). */
      prefix: z.string().min(1).default('shardctl:'),
    })
    .refine((r) => !(r.url && r.nodes), 'give either url or nodes, not both')
    .optional(),
  ring: z
    // Unset means "not configured" (init and rebalance tell it from a chosen value); effectiveConfig shows the default.
    .strictObject({ vnodes: z.number().int().min(1).max(100_000).optional() })
    .default({}),
  shards: z.array(shard).default([]),
  tables: z.array(z.strictObject({ name: qualifiedName, key: identifier })).default([]),
  migration: z
    .strictObject({
      batchSize: z.number().int().min(1).max(10_000_000).default(10_000),
      parallel: z.number().int().min(1).max(64).default(2),
      maxRowsPerSecond: z.number().min(0).default(0),
      /** work_mem of the sessions that read a move in hash order: the sort stays in memory up to this. */
      workMem: z.string().regex(/^\d+(kB|MB|GB)$/, 'expected a PostgreSQL memory size such as 64MB').default('256MB'),
      /** Moves run online (the application keeps writing; README, "Online moves") unless false or --offline. */
      online: z.boolean().default(true),
      /** How long an online move may refuse writes to the moving ranges at the switch before it lifts the fence and tries again. */
      fenceTimeout: duration.default('5s'),
      /** lock_timeout of the trigger DDL an online move runs on a source (retried a few times). */
      lockTimeout: duration.default('1s'),
    })
    .default({}),
  partitions: z
    .array(
      z.strictObject({
        table: qualifiedName,
        column: identifier,
        interval: z.enum(['hourly', 'daily', 'weekly', 'monthly', 'yearly']),
        premake: z.number().int().min(0).max(1000).default(7),
        retention: duration.optional(),
        retentionMode: z.enum(['drop', 'detach', 'archive']).default('detach'),
        archiveSchema: identifier.default('archive'),
        /** The zone whose local midnights / month starts the bounds fall on (a DST day's partition spans 23 or 25 h). */
        timezone: z
          .string()
          .refine(isTimeZoneName, (zone) => ({ message: `unknown time zone ${JSON.stringify(zone)} (expected an IANA name such as UTC or Europe/Berlin)` }))
          .default('UTC'),
        /** lock_timeout of every DDL statement of rotate: an application query never waits longer than this behind it. */
        lockTimeout: duration.default('1s'),
        /** A partition holding more rows is flagged by partition list. */
        maxRows: z.number().int().positive().optional(),
        /** A partition bigger than this is flagged: a byte count or a size such as 10GB (1 GB = 1024³ bytes, as PostgreSQL counts). */
        maxBytes: z
          .union([z.number().int().positive(), z.string().regex(BYTE_SIZE_PATTERN, 'expected a size such as 512MB, 10GB or 1TB, or a byte count')])
          .optional(),
      }),
    )
    .default([]),
  /** Trim policies; the first whose `match` fits a key governs that stream (src/core/trim-floor.ts). */
  streams: z
    .array(
      z.strictObject(streamPolicyShape).superRefine((p, ctx) => {
        if (p.maxLen !== undefined || p.maxAge !== undefined) return;
        // A misspelt `maxlen` is already named as an unknown key, with the spelling it
        // resembles: parseConfig says it once (UNLESS_UNKNOWN_KEYS).
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'a stream policy needs maxLen or maxAge', params: { [UNLESS_UNKNOWN_KEYS]: true } });
      }),
    )
    .default([]),
  health: z
    .strictObject({
      timeout: duration.default('5s'),
      thresholds: z.record(z.string(), threshold).default({}),
      /** How long `health --record` keeps samples in the metadata database. */
      retention: duration.default('30d'),
    })
    .default({}),
  migrate: z
    .strictObject({
      dir: z.string().min(1).default('./db/migrations'),
      targets: z.enum(['shards', 'metadata', 'all']).default('shards'),
      parallel: z.number().int().min(1).max(64).default(4),
      lockTimeout: duration.default('5s'),
    })
    .default({}),
});

/**
 * Cross-item rules, checked on the raw value so that they are reported with
 * every other problem (zod skips refinements of an object that has issues).
 */
export function duplicateProblems(raw: unknown): string[] {
  const problems: string[] = [];
  const cfg = (raw ?? {}) as { shards?: unknown; tables?: unknown };
  const seen = new Map<string, number>();
  (Array.isArray(cfg.shards) ? cfg.shards : []).forEach((s: { id?: unknown }, i) => {
    if (typeof s?.id !== 'string') return;
    const first = seen.get(s.id);
    if (first !== undefined) problems.push(`shards[${i}].id: duplicate shard id "${s.id}" (also shards[${first}])`);
    else seen.set(s.id, i);
  });
  // Two shards in one database would share rows: a move between them would delete what it copied.
  const databases = new Map<string, number>();
  (Array.isArray(cfg.shards) ? cfg.shards : []).forEach((s: { url?: unknown }, i) => {
    const where = typeof s?.url === 'string' ? databaseIdentity(s.url) : undefined;
    if (!where) return;
    const first = databases.get(where);
    if (first !== undefined) problems.push(`shards[${i}].url: the same database as shards[${first}]`);
    else databases.set(where, i);
  });
  const tables = new Set<string>();
  (Array.isArray(cfg.tables) ? cfg.tables : []).forEach((t: { name?: unknown }, i) => {
    if (typeof t?.name !== 'string') return;
    const name = t.name.includes('.') ? t.name : `public.${t.name}`;
    if (tables.has(name)) problems.push(`tables[${i}].name: duplicate table ${name}`);
    tables.add(name);
  });
  return problems;
}

function databaseIdentity(url: string): string | undefined {
  if (!URL.canParse(url)) return undefined;
  const u = new URL(url);
  const port = u.port || '5432';
  const host = u.hostname === 'localhost' ? '127.0.0.1' : u.hostname;
  return `${host}:${port}/${decodeURIComponent(u.pathname.slice(1))}`;
}

export type ShardctlConfig = z.infer<typeof configSchema>;
export type ShardConfig = ShardctlConfig['shards'][number];
export type TableConfig = ShardctlConfig['tables'][number];
