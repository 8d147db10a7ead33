import { setMaxListeners } from 'node:events';
import { parseDuration } from '../../config/duration.js';
import { redactText } from '../../config/redact.js';
import type { ShardctlConfig } from '../../config/schema.js';
import { copyTextValues } from '../../core/copy-text.js';
import { compareRows, MinHeap, orderByClause, resolveMergeKeys, type MergeKey, type ResolvedMergeKey } from '../../core/merge-order.js';
import { pgTypeName } from '../../core/pg-values.js';
import { UsageError } from '../../errors.js';
import { CursorSession, DeadlineExceeded, type CursorBatch } from '../../postgres/query/cursor-session.js';
import { withMetadata } from '../metadata-session.js';
import type { ShardTarget } from '../shards/targets.js';
import { selectTargets } from './targets.js';
import type { QueryColumn, QuerySummary, RowSink, ShardOutcome, ShardStatus } from './types.js';

export interface QueryOptions {
  sql: string;
  /** Bound to $1, $2, … as text; PostgreSQL infers each one's type from where it stands (or `$1::int`). */
  params?: string[];
  /** --shard: only these registered shards. */
  shards?: string[];
  /** --key: only the owners of these keys by the current ring. */
  keys?: string[];
  /** --timeout: each shard's time from its turn (connect, statement, streaming). Default health.timeout. */
  timeoutMs?: number;
  /** --parallel: shards read at once. Default QUERY_PARALLEL_DEFAULT. */
  parallel?: number;
  /** --merge-order, parsed: each shard's rows come in this order and are merged into one ordered stream. */
  mergeOrder?: MergeKey[];
  /** --limit: stop every shard once this many rows are out. */
  limit?: number;
  /** Aborted: every shard stops at once and is reported cancelled. */
  signal?: AbortSignal;
  /** The rows of a shard's first batch (tests make it small to cross batch boundaries). */
  firstBatchRows?: number;
  /**
   * Without --merge-order and --param, read each shard's result as `COPY
   * (statement) TO STDOUT` text when the statement allows it (default true;
   * false: always the cursor, which tests compare it with).
   */
  copy?: boolean;
}

/**
 * Shards read at once by default. Not migrate.parallel: that one is sized for
 * DDL, which takes locks; a read costs each shard's server one backend. Eight
 * hide connection set-up and network latency behind each other on a small
 * client while keeping a server that hosts several shard databases from
 * being asked for many backends at once.
 */
export const QUERY_PARALLEL_DEFAULT = 8;

/** The first batch is small, so the first rows come quickly; later batches grow to about BATCH_BYTES. */
const FIRST_BATCH_ROWS = 1_000;
const MAX_BATCH_ROWS = 5_000;
const MIN_BATCH_ROWS = 50;
/** Text per batch to aim for: at most two batches per shard are held (the one being written, the one being fetched). */
const BATCH_BYTES = 1 << 20;

/**
 * `query`: one read-only statement on every target shard, its rows streamed
 * to `sink` as they arrive, or k-way merged in `mergeOrder`. Each shard's
 * part is a value (ShardOutcome): a shard that fails, times out or describes
 * other columns than the first one is reported, and the others' rows still
 * come. Memory stays flat: each shard holds at most the batch being written
 * and the one being fetched, and the next batch is asked for only once the
 * sink has taken the previous one (its back-pressure holds the reading).
 */
export async function runQuery(config: ShardctlConfig, options: QueryOptions, sink: RowSink): Promise<QuerySummary> {
  const started = Date.now();
  const { targets } = await withMetadata(config, (store) => selectTargets(config, store, { shards: options.shards, keys: options.keys }), {
    applicationName: 'shardctl query',
  });
  const run = new QueryRun(sink, {
    timeoutMs: options.timeoutMs ?? parseDuration(config.health.timeout),
    limit: options.limit ?? Infinity,
    mergeKeys: options.mergeOrder?.length ? options.mergeOrder : null,
    firstBatchRows: options.firstBatchRows ?? FIRST_BATCH_ROWS,
    sql: options.sql,
    params: options.params ?? [],
    copy: options.copy ?? true,
  });
  const onAbort = () => run.stop('interrupted');
  if (options.signal?.aborted) onAbort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const parallel = Math.max(1, options.parallel ?? QUERY_PARALLEL_DEFAULT);
    const outcomes = run.mergeKeys ? await run.merged(targets, parallel) : await run.interleaved(targets, parallel);
    await run.drain();
    if (run.fatal) throw run.fatal;
    const summary: QuerySummary = {
      shards: outcomes,
      rows: run.emitted,
      durationMs: Date.now() - started,
      limited: run.stopReason === 'limit' && outcomes.some((o) => o.status === 'cancelled'),
      ...(run.stopReason === 'output closed' ? { outputClosed: true } : {}),
    };
    await sink.end(summary);
    return summary;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
}

type StopReason = 'limit' | 'interrupted' | 'output closed' | 'failed';

interface RunSettings {
  timeoutMs: number;
  limit: number;
  mergeKeys: MergeKey[] | null;
  firstBatchRows: number;
  sql: string;
  params: string[];
  copy: boolean;
}

/** A shard's columns are not the first describer's: that shard fails, the run goes on. */
class ColumnsDiffer extends Error {}
/** A shard's rows are not in --merge-order: that shard fails from that row on. */
class OutOfOrder extends Error {}

/** One run's shared state: the sink (written by one caller at a time), the columns, the limit, and stopping. */
class QueryRun {
  readonly #sink: RowSink;
  readonly #settings: RunSettings;
  readonly #sessions = new Set<CursorSession>();
  /** Every sink call is chained here, so the sink sees one caller at a time, columns before rows. */
  #tail: Promise<void> = Promise.resolve();
  /** Sink calls chained and not yet done: with none, the next one runs at once (see #write). */
  #inFlight = 0;
  #columns: { shard: string; columns: QueryColumn[] } | null = null;
  #keys: ResolvedMergeKey[] = [];
  readonly stopController = new AbortController();
  stopReason: StopReason | null = null;
  /** An error of the run itself (the sink failed, a --merge-order column the result lacks): thrown at the end. */
  fatal: Error | null = null;
  emitted = 0;

  constructor(sink: RowSink, settings: RunSettings) {
    this.#sink = sink;
    this.#settings = settings;
    setMaxListeners(0, this.stopController.signal);
  }

  get mergeKeys(): MergeKey[] | null {
    return this.#settings.mergeKeys;
  }

  get stopped(): boolean {
    return this.stopReason !== null;
  }

  /** Stops every shard now: sessions with a read in flight lose their socket, idle ones close their cursor and roll back. */
  stop(reason: StopReason): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    this.stopController.abort();
    for (const session of this.#sessions) void session.close();
  }

  drain(): Promise<void> {
    return this.#tail;
  }

  // ---- interleaved: rows as they arrive ----

  async interleaved(targets: ShardTarget[], parallel: number): Promise<ShardOutcome[]> {
    const outcomes: ShardOutcome[] = new Array(targets.length);
    let next = 0;
    const worker = async () => {
      while (next < targets.length) {
        const i = next++;
        outcomes[i] = await this.#readShard(targets[i]!);
      }
    };
    await Promise.all(Array.from({ length: Math.min(parallel, targets.length) }, worker));
    return outcomes;
  }

  async #readShard(target: ShardTarget): Promise<ShardOutcome> {
    const part = new ShardPart(target.id);
    if (this.stopped) return part.cancelled(this.stopReason!);
    let session: CursorSession | undefined;
    try {
      session = await this.#open(target, part);
      if (session.copying) return await this.#readCopy(target.id, session, part);
      let reading = session.read(this.#settings.firstBatchRows);
      for (;;) {
        const batch = await reading;
        if (this.stopped) return part.cancelled(this.stopReason!);
        await this.#acceptColumns(target.id, batch.columns);
        // Fetch the next batch while this one is written: one batch in flight per shard.
        if (!batch.done) (reading = session.read(nextBatchRows(batch))).catch(() => {});
        const written = await this.#emitBatch(target.id, batch.rows);
        part.rows += written;
        if (batch.done && written === batch.rows.length) return part.ok();
        if (this.stopped) return part.cancelled(this.stopReason!);
      }
    } catch (err) {
      return this.#outcomeOf(part, err);
    } finally {
      if (session) await this.#close(session);
    }
  }

  /**
   * A shard's result as COPY text: the whole rows of each socket read go to
   * the sink together, from inside the read. Reading waits only while the
   * sink is full or another shard's rows are being written: no promise per
   * read otherwise.
   */
  async #readCopy(shard: string, session: CursorSession, part: ShardPart): Promise<ShardOutcome> {
    await this.#acceptColumns(shard, session.columns);
    await session.streamCopy((chunk) => {
      // Stopping: the session's socket is going, which ends the stream.
      if (this.stopped) return;
      const written = this.#emitCopy(shard, chunk.text, chunk.rows);
      if (typeof written === 'number') part.rows += written;
      else return written.then((n) => void (part.rows += n));
    });
    return this.stopped ? part.cancelled(this.stopReason!) : part.ok();
  }

  /** Writes `rows` whole rows of COPY text, up to the limit; returns how many were written (at once when the sink took them at once). */
  #emitCopy(shard: string, text: Buffer, rows: number): number | Promise<number> {
    let written = 0;
    const pending = this.#write(() => {
      const now = this.#copyToSink(shard, text, rows);
      if (typeof now === 'number') written = now;
      else return now.then((n) => void (written = n));
    });
    return pending ? pending.then(() => written) : written;
  }

  /** #emitCopy's sink call: the rows written, or a promise of them while the sink is full. */
  #copyToSink(shard: string, text: Buffer, rows: number): number | Promise<number> {
    if (this.stopped) return 0;
    const sink = this.#sink;
    const room = this.#settings.limit - this.emitted;
    let end = text.length;
    if (rows > room) {
      // Cut after the room-th row.
      end = 0;
      for (let i = 0; i < room; i++) end = text.indexOf(NEWLINE, end) + 1;
      rows = room;
    }
    if (!sink.copyRows) return this.#copyAsRows(shard, text, end);
    const taken = sink.copyRows(shard, end === text.length ? text : text.subarray(0, end), rows);
    this.emitted += rows;
    if (taken) return taken.then(() => (this.#stopIfDone(), rows));
    this.#stopIfDone();
    return rows;
  }

  /** COPY text to a sink that takes only rows: each line's values, one row() at a time. */
  async #copyAsRows(shard: string, text: Buffer, end: number): Promise<number> {
    const sink = this.#sink;
    let written = 0;
    const lines = text.toString('utf8', 0, end - 1).split('\n');
    for (const line of lines) {
      if (this.stopped) break;
      const pending = sink.row({ shard, values: copyTextValues(line) });
      written++;
      this.emitted++;
      if (pending) await pending;
      if ((sink as { closed?: boolean }).closed) break;
    }
    this.#stopIfDone();
    return written;
  }

  /** At the limit, or once the reader has gone, every shard stops. */
  #stopIfDone(): void {
    if (this.emitted >= this.#settings.limit) this.stop('limit');
    else if ((this.#sink as { closed?: boolean }).closed) this.stop('output closed');
  }

  // ---- merged: a k-way merge of per-shard ordered streams ----

  async merged(targets: ShardTarget[], parallel: number): Promise<ShardOutcome[]> {
    const outcomes: ShardOutcome[] = new Array(targets.length);
    // Every shard's first batch before the first row: the merge needs each one's head. --parallel
    // bounds how many are being opened and asked for it at once; all stay open for the merge.
    const slots = new Slots(parallel);
    const firsts = await Promise.all(
      targets.map(async (target, index) => {
        const part = new ShardPart(target.id);
        let session: CursorSession | undefined;
        await slots.take();
        try {
          if (this.stopped) {
            outcomes[index] = part.cancelled(this.stopReason!);
            return null;
          }
          session = await this.#open(target, part);
          const first = await session.read(this.#settings.firstBatchRows);
          await this.#acceptColumns(target.id, first.columns);
          return { index, part, session, first };
        } catch (err) {
          outcomes[index] = this.#outcomeOf(part, err);
          if (session) void this.#close(session);
          return null;
        } finally {
          slots.give();
        }
      }),
    );
    // The keys are resolved now (the first describer's columns): check each shard's first batch and start.
    const ordering = this.#keys.length ? orderByClause(this.#keys) : '';
    const open: MergeStream[] = [];
    for (const s of firsts) {
      if (!s) continue;
      const stream = new MergeStream(s.index, s.part, s.session, this.#keys, ordering);
      try {
        stream.begin(s.first);
        open.push(stream);
      } catch (err) {
        outcomes[s.index] = this.#outcomeOf(s.part, err);
        void this.#close(s.session);
      }
    }
    try {
      await this.#merge(open, outcomes);
    } finally {
      await Promise.all(open.map((s) => this.#close(s.session)));
    }
    return outcomes;
  }

  async #merge(streams: MergeStream[], outcomes: ShardOutcome[]): Promise<void> {
    const keys = this.#keys;
    const heap = new MinHeap<MergeStream>((a, b) => compareRows(a.head!, b.head!, keys) || a.index - b.index);
    for (const s of streams) {
      if (this.stopped) outcomes[s.index] = s.part.cancelled(this.stopReason!);
      else if (s.head) heap.push(s);
      else outcomes[s.index] = s.part.ok();
    }
    for (let s = heap.pop(); s; s = heap.pop()) {
      if (this.stopped) {
        outcomes[s.index] = s.part.cancelled(this.stopReason!);
        continue;
      }
      const written = await this.#emitBatch(s.part.shard, [s.head!]);
      s.part.rows += written;
      if (this.stopped) {
        outcomes[s.index] = s.atLastRow ? s.part.ok() : s.part.cancelled(this.stopReason!);
        continue;
      }
      try {
        if (await s.advance()) heap.push(s);
        else outcomes[s.index] = s.part.ok();
      } catch (err) {
        outcomes[s.index] = this.#outcomeOf(s.part, err);
        void this.#close(s.session);
      }
    }
  }

  // ---- shared steps ----

  /** A shard's error as its outcome; once the run is stopping, a read cut short is "cancelled", not a failure. */
  #outcomeOf(part: ShardPart, err: unknown): ShardOutcome {
    const ownFault = err instanceof ColumnsDiffer || err instanceof OutOfOrder;
    return this.stopped && !ownFault ? part.cancelled(this.stopReason!) : part.failed(err, this.#settings.timeoutMs);
  }

  async #open(target: ShardTarget, part: ShardPart): Promise<CursorSession> {
    part.started = Date.now();
    const label = `shard ${target.id}`;
    const session = await CursorSession.open(target.url, this.#settings.sql, this.#settings.params, {
      label,
      deadline: part.started + this.#settings.timeoutMs,
      timeoutMs: this.#settings.timeoutMs,
      copy: this.#settings.copy && !this.#settings.mergeKeys,
    });
    this.#sessions.add(session);
    // Stopped while connecting: the session was not there to be closed.
    if (this.stopped) void session.close();
    return session;
  }

  async #close(session: CursorSession): Promise<void> {
    this.#sessions.delete(session);
    await session.close();
  }

  /** The first shard to describe its result sets the columns; a shard that describes others fails. */
  async #acceptColumns(shard: string, columns: QueryColumn[]): Promise<void> {
    const established = this.#columns;
    if (established) {
      if (!sameColumns(established.columns, columns)) {
        throw new ColumnsDiffer(`its columns ${describeColumns(columns)} differ from those of ${established.shard} ${describeColumns(established.columns)}`);
      }
      return this.#tail;
    }
    this.#columns = { shard, columns };
    if (this.#settings.mergeKeys) {
      try {
        this.#keys = resolveMergeKeys(this.#settings.mergeKeys, columns);
      } catch (err) {
        this.fatal = new UsageError((err as Error).message);
        this.stop('failed');
        throw this.fatal;
      }
    }
    await this.#write(() => this.#sink.columns(columns));
  }

  /** Writes rows until the batch ends, the limit is reached or the run stops; returns how many were written. */
  #emitBatch(shard: string, rows: Array<Array<string | null>>): Promise<number> {
    let written = 0;
    // An async step: #write returns its promise.
    const writing = this.#write(async () => {
      const sink = this.#sink;
      for (const values of rows) {
        if (this.stopped) break;
        const pending = sink.row({ shard, values });
        written++;
        this.emitted++;
        if (pending) await pending;
        this.#stopIfDone();
      }
    }) as Promise<void>;
    return writing.then(() => written);
  }

  /**
   * Runs a sink call after those before it. With none in flight it runs at
   * once, and returns nothing when the sink took it at once: a stream of
   * COPY reads into a sink that keeps up then makes no promise per read.
   */
  #write(step: () => void | Promise<void>): void | Promise<void> {
    if (this.#inFlight === 0) {
      let pending: void | Promise<void>;
      try {
        pending = step();
      } catch (err) {
        throw this.#sinkFailed(err);
      }
      return pending ? this.#chain(pending) : undefined;
    }
    return this.#chain(this.#tail.then(step));
  }

  #chain(step: Promise<void>): Promise<void> {
    this.#inFlight++;
    const done = step.then(
      () => void this.#inFlight--,
      (err: unknown) => {
        this.#inFlight--;
        throw this.#sinkFailed(err);
      },
    );
    this.#tail = done.catch(() => {});
    return done;
  }

  /** The sink itself failed: nothing more can be written; the run ends with this error. */
  #sinkFailed(err: unknown): Error {
    this.fatal ??= err instanceof Error ? err : new Error(String(err));
    this.stop('failed');
    return this.fatal;
  }
}

/** One shard's part of the run, becoming its outcome. */
class ShardPart {
  rows = 0;
  started = Date.now();
  constructor(readonly shard: string) {}

  #outcome(status: ShardStatus, extra: { error?: string; code?: string } = {}): ShardOutcome {
    return { shard: this.shard, status, rows: this.rows, durationMs: Date.now() - this.started, ...extra };
  }

  ok(): ShardOutcome {
    return this.#outcome('ok');
  }

  cancelled(reason: StopReason): ShardOutcome {
    const why = { limit: 'stopped at --limit', interrupted: 'interrupted', 'output closed': 'the output was closed', failed: 'stopped: the run failed' }[reason];
    return this.#outcome('cancelled', { error: why });
  }

  failed(err: unknown, timeoutMs: number): ShardOutcome {
    const e = err as { message?: string; code?: string; position?: string; hint?: string; detail?: string };
    const code = typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : undefined;
    if (err instanceof DeadlineExceeded || /connection timeout|timeout expired/i.test(e.message ?? '')) {
      return this.#outcome('timeout', { error: `no answer within ${seconds(timeoutMs)}` });
    }
    if (code === '57014' && /statement timeout/.test(e.message ?? '')) {
      return this.#outcome('timeout', { error: `${e.message} (after ${seconds(timeoutMs)})`, code });
    }
    let text = e.message ?? String(err);
    if (e.position) text += ` (at character ${e.position})`;
    if (e.detail) text += `: ${e.detail}`;
    if (e.hint) text += `; hint: ${e.hint}`;
    return this.#outcome('failed', { error: redactText(text.replace(/\s*\n\s*/g, ' ')), ...(code ? { code } : {}) });
  }
}

/** One shard's ordered rows for the merge: the head row, the rest of its batch, and the next batch being fetched. */
class MergeStream {
  head: Array<string | null> | null = null;
  #batch: CursorBatch | null = null;
  #at = 0;
  #next: Promise<CursorBatch> | null = null;
  #lastRow: Array<string | null> | null = null;
  #read = 0;

  constructor(
    readonly index: number,
    readonly part: ShardPart,
    readonly session: CursorSession,
    readonly keys: ResolvedMergeKey[],
    readonly ordering: string,
  ) {}

  /** The head is the shard's last row. */
  get atLastRow(): boolean {
    return !this.#next && !!this.#batch && this.#at >= this.#batch.rows.length - 1;
  }

  /** Starts the stream on its first batch, now that the keys are resolved. */
  begin(batch: CursorBatch): void {
    this.#take(batch);
  }

  /**
   * The batch becomes the current one, checked in full before any row of it
   * is written: a shard whose statement has no ORDER BY fails before its
   * first row (a later batch that breaks the order fails before its own).
   */
  #take(batch: CursorBatch): void {
    const rows = batch.rows;
    let previous = this.#lastRow;
    for (let i = 0; i < rows.length; i++) {
      if (previous && compareRows(previous, rows[i]!, this.keys) > 0) {
        throw new OutOfOrder(`its rows are not in --merge-order (row ${this.#read + i + 1} sorts before the one before it): add ${this.ordering} to the statement`);
      }
      previous = rows[i]!;
    }
    this.#read += rows.length;
    this.#lastRow = previous;
    this.#batch = batch;
    this.#at = 0;
    this.head = rows[0] ?? null;
    if (!batch.done) (this.#next = this.session.read(nextBatchRows(batch))).catch(() => {});
    else this.#next = null;
  }

  /** Moves to the next row; false at the end. Throws OutOfOrder when the next batch breaks the order. */
  async advance(): Promise<boolean> {
    this.#at++;
    while (this.#batch && this.#at >= this.#batch.rows.length) {
      if (!this.#next) {
        this.head = null;
        return false;
      }
      this.#take(await this.#next);
    }
    this.head = this.#batch!.rows[this.#at]!;
    return true;
  }
}

/** A counting semaphore. */
class Slots {
  #free: number;
  readonly #waiting: Array<() => void> = [];
  constructor(size: number) {
    this.#free = size;
  }
  async take(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }
  give(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free++;
  }
}

/** Rows for the next fetch: about BATCH_BYTES of text at the size this batch's rows had. */
function nextBatchRows(batch: CursorBatch): number {
  const sample = batch.rows.length > 200 ? batch.rows.slice(0, 200) : batch.rows;
  if (sample.length === 0) return MAX_BATCH_ROWS;
  let bytes = 0;
  for (const row of sample) for (const v of row) bytes += 8 + (v === null ? 0 : v.length);
  const perRow = Math.max(1, bytes / sample.length);
  return Math.max(MIN_BATCH_ROWS, Math.min(MAX_BATCH_ROWS, Math.floor(BATCH_BYTES / perRow)));
}

const NEWLINE = 0x0a;

function sameColumns(a: QueryColumn[], b: QueryColumn[]): boolean {
  return a.length === b.length && a.every((c, i) => c.name === b[i]!.name && c.typeOid === b[i]!.typeOid);
}

function describeColumns(columns: QueryColumn[]): string {
  return `(${columns.map((c) => `${c.name} ${pgTypeName(c.typeOid) ?? `oid ${c.typeOid}`}`).join(', ')})`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms % 1000 ? 1 : 0)}s`;
}
