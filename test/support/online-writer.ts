import { listCaptures } from '../../src/mover/capture.js';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Ring, type RingSpec } from '../../src/core/ring.js';
import { createRouter, fencedWrite, withFencedRetry, type Router } from '../../src/router/index.js';
import { prng } from './prng.js';

/*
 * An application writing through the router while shardctl moves its rows:
 * a seeded random mix of inserts, updates (of a value, of the primary key, of
 * the shard key) and deletes over public.messages, public.reactions and
 * public.docs, each routed with router.shardFor and retried with
 * withFencedRetry. It keeps its own model of every row (primary key → the
 * row's column texts as PostgreSQL returned them at commit), so the end state
 * of the shards can be compared with it row for row.
 */

/** The third co-located table: types whose values must arrive byte for byte. */
export const DOCS_SQL = `
CREATE TABLE IF NOT EXISTS public.docs (
  room_id bigint NOT NULL, id bigint NOT NULL, doc jsonb NOT NULL, amount numeric(30,10) NOT NULL,
  big bigint NOT NULL, at timestamptz(6) NOT NULL, PRIMARY KEY (room_id, id));
`;

type Table = 'messages' | 'reactions' | 'docs';

const COLUMNS: Record<Table, string[]> = {
  messages: ['room_id', 'id', 'body', 'created_at'],
  reactions: ['room_id', 'message_id', 'emoji', 'user_id'],
  docs: ['room_id', 'id', 'doc', 'amount', 'big', 'at'],
};
const PK: Record<Table, string[]> = {
  messages: ['room_id', 'id'],
  reactions: ['room_id', 'message_id', 'emoji', 'user_id'],
  docs: ['room_id', 'id'],
};
const TABLES: Table[] = ['messages', 'reactions', 'docs'];

function selectText(table: Table, alias = ''): string {
  return COLUMNS[table].map((c) => `${alias}${c}::text`).join(', ');
}

/** Text values of a row, in COLUMNS order. */
type RowText = string[];

function keyOf(table: Table, row: RowText): string {
  return `${table}|${PK[table].map((c) => row[COLUMNS[table].indexOf(c)]).join('|')}`;
}

/** A set with O(1) random pick and removal. */
class KeyBag {
  #items: string[] = [];
  #index = new Map<string, number>();
  get size(): number {
    return this.#items.length;
  }
  add(k: string): void {
    if (this.#index.has(k)) return;
    this.#index.set(k, this.#items.length);
    this.#items.push(k);
  }
  delete(k: string): void {
    const i = this.#index.get(k);
    if (i === undefined) return;
    const last = this.#items.pop()!;
    if (last !== k) {
      this.#items[i] = last;
      this.#index.set(last, i);
    }
    this.#index.delete(k);
  }
  pick(random: () => number): string | undefined {
    if (!this.#items.length) return undefined;
    return this.#items[Math.floor(random() * this.#items.length)];
  }
}

export interface FencedSeen {
  code: string;
  shard: string;
  /** The rooms the refused statement touched (old and new shard key). */
  rooms: string[];
}

export interface WriterStats {
  writes: number;
  fenced: FencedSeen[];
  /** Errors other than fenced writes, and fenced writes that gave up. */
  failures: string[];
}

export interface WriterOptions {
  /** shard id → URL, every shard that may ever own a key. */
  urls: Record<string, string>;
  metadataUrl: string;
  redis?: string;
  prefix?: string;
  seed: number;
  workers?: number;
  /** Rooms the writer writes to: 1..rooms (new rooms, too, up to rooms + 20). */
  rooms: number;
}

export interface TryResult {
  committed: boolean;
  code?: string;
  /** The primary key of the row written. */
  key: { room_id: string; id: string };
}

const EMOJI = ['👍', '🎉', '❤️', 'ñ', '日本', 'Ω≈ç√', '+1', 'ğ', '\u{1F600}'];
const UNICODE = ['héllo wörld', 'Привет', '你好，世界', 'مرحبا', '🚀✨', 'tab\tand\nnewline', 'quote \' " \\ back', 'ß∂ƒ©', 'null-ish \\N'];

export class OnlineWriter {
  readonly router: Router;
  readonly #pools = new Map<string, pg.Pool>();
  readonly #rows = new Map<string, RowText>();
  readonly #bags: Record<Table, KeyBag> = { messages: new KeyBag(), reactions: new KeyBag(), docs: new KeyBag() };
  readonly #busy = new Set<string>();
  readonly #random: () => number;
  readonly #options: WriterOptions;
  #nextId = 10_000_000;
  #running = false;
  #loops: Promise<void>[] = [];
  stats: WriterStats = { writes: 0, fenced: [], failures: [] };

  private constructor(router: Router, options: WriterOptions) {
    this.router = router;
    this.#options = options;
    this.#random = prng(options.seed);
    for (const [id, url] of Object.entries(options.urls)) {
      const pool = new pg.Pool({ connectionString: url, max: 3, options: '-c TimeZone=UTC', application_name: 'online-writer' });
      pool.on('error', () => {});
      this.#pools.set(id, pool);
    }
  }

  /** A writer whose model is what the shards hold now. */
  static async create(options: WriterOptions): Promise<OnlineWriter> {
    const router = await createRouter({
      metadataUrl: options.metadataUrl,
      ...(options.redis ? { redis: options.redis } : {}),
      ...(options.prefix ? { prefix: options.prefix } : {}),
    });
    const w = new OnlineWriter(router, options);
    for (const [key, row] of await w.#readAll()) {
      if (w.#rows.has(key.key)) throw new Error(`duplicate row before the writer started: ${key.key}`);
      w.#add(key.table, row);
    }
    return w;
  }

  get size(): number {
    return this.#rows.size;
  }

  #pool(shard: string): pg.Pool {
    const p = this.#pools.get(shard);
    if (!p) throw new Error(`the writer has no URL for ${shard}`);
    return p;
  }

  #add(table: Table, row: RowText): void {
    const k = keyOf(table, row);
    this.#rows.set(k, row);
    this.#bags[table].add(k);
  }

  #remove(table: Table, k: string): void {
    this.#rows.delete(k);
    this.#bags[table].delete(k);
  }

  /** Every row of every shard: [{table, key, shard}, row text]. */
  async #readAll(): Promise<Array<[{ table: Table; key: string; shard: string }, RowText]>> {
    const out: Array<[{ table: Table; key: string; shard: string }, RowText]> = [];
    for (const [shard, pool] of this.#pools) {
      for (const table of TABLES) {
        const { rows } = await pool.query({ text: `SELECT ${selectText(table)} FROM public.${table}`, rowMode: 'array' });
        for (const r of rows as RowText[]) out.push([{ table, key: keyOf(table, r), shard }, r]);
      }
    }
    return out;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    const workers = this.#options.workers ?? 2;
    for (let i = 0; i < workers; i++) this.#loops.push(this.#loop());
  }

  /** Stops after the writes in flight have finished (committed, or given up). */
  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#loops);
    this.#loops = [];
  }

  async close(): Promise<void> {
    await this.stop();
    await this.router.close();
    await Promise.all([...this.#pools.values()].map((p) => p.end().catch(() => {})));
  }

  /** Stats since the last call, and counters reset. */
  takeStats(): WriterStats {
    const s = this.stats;
    this.stats = { writes: 0, fenced: [], failures: [] };
    return s;
  }

  async #loop(): Promise<void> {
    while (this.#running) {
      try {
        await this.#step();
      } catch (err) {
        this.stats.failures.push(`writer: ${(err as Error).message}`);
      }
      // Yield to the event loop (timers of the test, the engine's own work in this process).
      await new Promise((r) => setImmediate(r));
    }
  }

  #room(): string {
    return String(1 + Math.floor(this.#random() * (this.#options.rooms + 20)));
  }

  #id(): string {
    return String(this.#nextId++);
  }

  #body(): string {
    const r = this.#random();
    if (r < 0.03) {
      // 20-100 kB that does not repeat (TOASTed, barely compressible).
      const n = 20_000 + Math.floor(this.#random() * 80_000);
      return `large ${randomBytes(Math.ceil(n / 2)).toString('hex').slice(0, n)}`;
    }
    if (r < 0.5) return `${UNICODE[Math.floor(this.#random() * UNICODE.length)]} #${this.#nextId}`;
    return `body ${this.#nextId} ${this.#random().toString(36)}`;
  }

  #docValues(): [string, string, string, string] {
    const big = (2n ** 53n + BigInt(Math.floor(this.#random() * 1e12)) * 1000n + 7n).toString();
    const doc = JSON.stringify({
      t: UNICODE[Math.floor(this.#random() * UNICODE.length)],
      n: Number((this.#random() * 1e6).toFixed(3)),
      big: '12345678901234567890123',
      nested: { list: [1, 'two', null, true, { 'k é': 'v' }], esc: 'a"b\\c' },
    });
    const intPart = String(Math.floor(this.#random() * 1e15)) + String(Math.floor(this.#random() * 1e5));
    const frac = String(Math.floor(this.#random() * 1e10)).padStart(10, '0');
    const amount = `${this.#random() < 0.2 ? '-' : ''}${intPart}.${frac}`;
    const micros = String(Math.floor(this.#random() * 1e6)).padStart(6, '0');
    const at = `2026-0${1 + Math.floor(this.#random() * 9)}-1${Math.floor(this.#random() * 9)} 0${Math.floor(this.#random() * 9)}:1${Math.floor(this.#random() * 9)}:2${Math.floor(this.#random() * 9)}.${micros}+00`;
    return [doc, amount, big, at];
  }

  /** One write through the router, retried on fenced writes; null when the model had nothing to act on. */
  async #routed<T>(rooms: string[], fn: (pool: pg.Pool, shard: string) => Promise<T>): Promise<T> {
    return withFencedRetry(
      this.router,
      async () => {
        const shard = this.router.shardFor(rooms[0]!);
        try {
          return await fn(this.#pool(shard), shard);
        } catch (err) {
          const f = fencedWrite(err);
          if (f) this.stats.fenced.push({ code: f.code, shard, rooms });
          throw err;
        }
      },
      { attempts: 400, baseDelayMs: 20, maxDelayMs: 250 },
    );
  }

  #claim(k: string | undefined): string | undefined {
    if (k === undefined || this.#busy.has(k)) return undefined;
    this.#busy.add(k);
    return k;
  }

  async #step(): Promise<void> {
    const r = this.#random();
    try {
      if (r < 0.25) await this.#insertMessage();
      else if (r < 0.35) await this.#insertReaction();
      else if (r < 0.45) await this.#insertDoc();
      else if (r < 0.6) await this.#updateValue();
      else if (r < 0.7) await this.#updatePk();
      else if (r < 0.85) await this.#updateRoom();
      else await this.#delete();
    } catch (err) {
      const f = fencedWrite(err);
      this.stats.failures.push(f ? `gave up on a fenced write (${f.code}): ${(err as Error).message}` : `${(err as { code?: string }).code ?? ''} ${(err as Error).message}`);
    }
  }

  async #insert(table: Table, row: unknown[]): Promise<void> {
    const cols = COLUMNS[table].filter((_, i) => row[i] !== undefined);
    const values = row.filter((v) => v !== undefined);
    const k = this.#claim(`${table}|${PK[table].map((c) => row[COLUMNS[table].indexOf(c)]).join('|')}`);
    if (!k) return;
    try {
      const res = await this.#routed([String(row[0])], (pool) =>
        pool.query({ text: `INSERT INTO public.${table} (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')}) RETURNING ${selectText(table)}`, values, rowMode: 'array' }),
      );
      this.#add(table, res.rows[0] as RowText);
      this.stats.writes++;
    } finally {
      this.#busy.delete(k);
    }
  }

  async #insertMessage(): Promise<void> {
    await this.#insert('messages', [this.#room(), this.#id(), this.#body(), this.#random() < 0.5 ? undefined : '2026-02-03 04:05:06.789012+00']);
  }

  async #insertReaction(): Promise<void> {
    const m = this.#bags.messages.pick(this.#random);
    const room = m ? this.#rows.get(m)?.[0] : undefined;
    await this.#insert('reactions', [room ?? this.#room(), m ? this.#rows.get(m)?.[1] ?? this.#id() : this.#id(), EMOJI[Math.floor(this.#random() * EMOJI.length)], this.#id()]);
  }

  async #insertDoc(): Promise<void> {
    await this.#insert('docs', [this.#room(), this.#id(), ...this.#docValues()]);
  }

  #pickTable(tables: Table[]): Table {
    return tables[Math.floor(this.#random() * tables.length)]!;
  }

  /** Runs an update/delete of one model row; the model changes only when the statement committed with one row. */
  async #onRow(
    table: Table,
    k: string,
    sqlText: (where: string, n: number) => string,
    values: unknown[],
    rooms: string[],
    after: (row: RowText | null) => void,
    /** Checked on every attempt with the shard it would go to (after a fenced retry the ring may have changed): false gives up with 'rerouted'. */
    still?: (shard: string) => boolean,
  ): Promise<'rerouted' | void> {
    const row = this.#rows.get(k);
    if (!row) return;
    const pkVals = PK[table].map((c) => row[COLUMNS[table].indexOf(c)]);
    const where = PK[table].map((c, i) => `${c} = $${values.length + i + 1}`).join(' AND ');
    const res = await this.#routed(rooms, (pool, shard) =>
      still && !still(shard) ? Promise.resolve(null) : pool.query({ text: sqlText(where, values.length + pkVals.length), values: [...values, ...pkVals], rowMode: 'array' }),
    );
    if (res === null) return 'rerouted';
    if (res.rowCount !== 1) {
      this.stats.failures.push(`${table} ${k}: the model has the row but the shard ${this.router.shardFor(rooms[0]!)} changed ${res.rowCount} rows`);
      return;
    }
    after((res.rows[0] as RowText | undefined) ?? null);
    this.stats.writes++;
  }

  async #updateValue(): Promise<void> {
    const table = this.#pickTable(['messages', 'docs']);
    const k = this.#claim(this.#bags[table].pick(this.#random));
    if (!k) return;
    try {
      const room = this.#rows.get(k)![0]!;
      const [text, values] =
        table === 'messages'
          ? [(w: string) => `UPDATE public.messages SET body = $1 WHERE ${w} RETURNING ${selectText('messages')}`, [this.#body()]]
          : [(w: string) => `UPDATE public.docs SET doc = $1, amount = $2, big = $3, at = $4 WHERE ${w} RETURNING ${selectText('docs')}`, this.#docValues()];
      await this.#onRow(table, k, text, values, [room], (row) => this.#add(table, row!));
    } finally {
      this.#busy.delete(k);
    }
  }

  async #updatePk(): Promise<void> {
    const table = this.#pickTable(['messages', 'docs']);
    const k = this.#claim(this.#bags[table].pick(this.#random));
    if (!k) return;
    const newId = this.#id();
    try {
      const row = this.#rows.get(k)!;
      await this.#onRow(table, k, (w) => `UPDATE public.${table} SET id = $1 WHERE ${w} RETURNING ${selectText(table)}`, [newId], [row[0]!], (next) => {
        this.#remove(table, k);
        this.#add(table, next!);
      });
    } finally {
      this.#busy.delete(k);
    }
  }

  /** The shard key changes: in place when both rooms have the same owner, else delete on the old owner and insert on the new one. */
  async #updateRoom(): Promise<void> {
    const table = this.#pickTable(['messages', 'docs', 'reactions']);
    const k = this.#claim(this.#bags[table].pick(this.#random));
    if (!k) return;
    const row = this.#rows.get(k)!;
    const oldRoom = row[0]!;
    const newRoom = this.#room();
    const moved = [newRoom, ...row.slice(1)];
    const nk = this.#claim(keyOf(table, moved));
    if (!nk || this.#rows.has(nk)) {
      this.#busy.delete(k);
      if (nk) this.#busy.delete(nk);
      return;
    }
    try {
      if (this.router.shardFor(oldRoom) === this.router.shardFor(newRoom)) {
        // As an application must: the decision is taken again on each attempt, since a fenced
        // retry may come back with a ring where the two rooms have different owners.
        const done = await this.#onRow(
          table,
          k,
          (w) => `UPDATE public.${table} SET room_id = $1 WHERE ${w} RETURNING ${selectText(table)}`,
          [newRoom],
          [oldRoom, newRoom],
          (next) => {
            this.#remove(table, k);
            this.#add(table, next!);
          },
          (shard) => this.router.shardFor(newRoom) === shard,
        );
        if (done !== 'rerouted') return;
      }
      let deleted = false;
      await this.#onRow(table, k, (w) => `DELETE FROM public.${table} WHERE ${w}`, [], [oldRoom], () => {
        this.#remove(table, k);
        deleted = true;
      });
      if (!deleted) return;
      const res = await this.#routed([newRoom], (pool) =>
        pool.query({ text: `INSERT INTO public.${table} (${COLUMNS[table].join(', ')}) VALUES (${COLUMNS[table].map((c, i) => `$${i + 1}::${castOf(table, c)}`).join(', ')}) RETURNING ${selectText(table)}`, values: moved, rowMode: 'array' }),
      );
      this.#add(table, res.rows[0] as RowText);
      this.stats.writes++;
    } finally {
      this.#busy.delete(k);
      this.#busy.delete(nk);
    }
  }

  async #delete(): Promise<void> {
    const table = this.#pickTable(TABLES);
    const k = this.#claim(this.#bags[table].pick(this.#random));
    if (!k) return;
    try {
      await this.#onRow(table, k, (w) => `DELETE FROM public.${table} WHERE ${w} RETURNING ${selectText(table)}`, [], [this.#rows.get(k)![0]!], () => this.#remove(table, k));
    } finally {
      this.#busy.delete(k);
    }
  }

  /**
   * A message written to one named shard, bypassing the router (no retry):
   * what a client with a stale ring does. Recorded in the model when it committed.
   */
  async tryInsert(shard: string, room: string | number): Promise<TryResult> {
    const id = this.#id();
    const key = { room_id: String(room), id };
    try {
      const res = await this.#pool(shard).query({ text: `INSERT INTO public.messages (room_id, id, body) VALUES ($1, $2, $3) RETURNING ${selectText('messages')}`, values: [String(room), id, `direct ${id} ✓`], rowMode: 'array' });
      this.#add('messages', res.rows[0] as RowText);
      return { committed: true, key };
    } catch (err) {
      return { committed: false, code: (err as { code?: string }).code ?? (err as Error).message, key };
    }
  }

  /**
   * The model property: the union of the shards is the model, row for row
   * (every column's text), no row twice, and every row on the shard `ring`
   * names. Returns the problems (empty: it holds).
   */
  async check(ring: RingSpec): Promise<string[]> {
    const r = Ring.build(ring);
    const problems: string[] = [];
    const seen = new Map<string, string>();
    const short = (row: RowText | undefined) => (row ? JSON.stringify(row.map((v) => (v && v.length > 80 ? `${v.slice(0, 40)}…(${v.length} chars)` : v))) : 'absent');
    for (const [where, row] of await this.#readAll()) {
      if (seen.has(where.key)) problems.push(`${where.key} on both ${seen.get(where.key)} and ${where.shard}`);
      seen.set(where.key, where.shard);
      const owner = r.locate(row[0]!);
      if (owner !== where.shard) problems.push(`${where.key} on ${where.shard}, the ring gives it to ${owner}`);
      const want = this.#rows.get(where.key);
      if (!want) problems.push(`${where.key} on ${where.shard} is not in the model (${short(row)})`);
      else if (JSON.stringify(want) !== JSON.stringify(row)) problems.push(`${where.key} on ${where.shard} differs: model ${short(want)}, shard ${short(row)}`);
    }
    for (const [k, row] of this.#rows) if (!seen.has(k)) problems.push(`${k} is missing from every shard (model ${short(row)})`);
    return problems;
  }
}

function castOf(table: Table, column: string): string {
  if (table === 'docs') return ({ room_id: 'bigint', id: 'bigint', doc: 'jsonb', amount: 'numeric', big: 'bigint', at: 'timestamptz' } as Record<string, string>)[column]!;
  if (table === 'messages') return ({ room_id: 'bigint', id: 'bigint', body: 'text', created_at: 'timestamptz' } as Record<string, string>)[column]!;
  return ({ room_id: 'bigint', message_id: 'bigint', emoji: 'text', user_id: 'bigint' } as Record<string, string>)[column]!;
}

/** Fenced writes the writer saw on keys that do not move between the two rings (must be none). */
export function fencedOutsideMoves(fenced: FencedSeen[], before: RingSpec, after: RingSpec): FencedSeen[] {
  const a = Ring.build(before);
  const b = Ring.build(after);
  return fenced.filter((f) => f.rooms.every((room) => a.locate(room) === b.locate(room)));
}

/** Docs rows for rooms 1..rooms, each on the shard `ring` gives it. */
export async function seedDocs(ring: RingSpec, urls: Record<string, string>, rooms: number): Promise<void> {
  const r = Ring.build(ring);
  const byShard = new Map<string, number[]>();
  for (let room = 1; room <= rooms; room++) byShard.set(r.locate(String(room)), [...(byShard.get(r.locate(String(room))) ?? []), room]);
  for (const [shard, list] of byShard) {
    const c = new pg.Client({ connectionString: urls[shard]! });
    await c.connect();
    try {
      await c.query(
        `INSERT INTO public.docs SELECT r, d, jsonb_build_object('room', r, 'd', d, 'txt', 'ünï ' || r), (r * 1000 + d)::numeric / 7, 9007199254740993 + r * 10 + d,
                '2026-01-01 00:00:00.000001+00'::timestamptz + make_interval(secs => r * 1.000001 + d)
           FROM unnest($1::bigint[]) r, generate_series(1, 2) d`,
        [list],
      );
    } finally {
      await c.end();
    }
  }
}

/** Every online-move capture object on each shard (shard id → objects); empty when nothing is left. */
export async function capturesOn(urls: Record<string, string>): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const [id, url] of Object.entries(urls)) {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      const found = await listCaptures(c);
      if (found.length) out[id] = found.flatMap((f) => f.objects);
    } finally {
      await c.end();
    }
  }
  return out;
}

/** A client for test setup and probes, closed with the test's others (`into`, ended in afterEach). */
export async function trackedClient(url: string, into: pg.Client[]): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => {});
  await c.connect();
  into.push(c);
  return c;
}

/** A room of 1..rooms whose owner is `from` in `before` and `to` in `after` (to = from: a room that does not move). */
export function roomMoving(before: RingSpec, after: RingSpec, from: string, to: string, rooms: number): number {
  const a = Ring.build(before);
  const b = Ring.build(after);
  for (let room = 1; room <= rooms; room++) if (a.locate(String(room)) === from && b.locate(String(room)) === to) return room;
  throw new Error(`no room moves from ${from} to ${to}`);
}
