import type { QueryColumn } from '../../engine/query/types.js';
import { connect, type PgClient } from '../connect.js';
import { CopyOut, type CopyRows } from '../copy-out.js';
import { DeadlineExceeded, destroySocket } from '../deadline.js';

/**
 * One shard's part of `query`: a session that reads one statement's result
 * in bounded batches, inside a READ ONLY transaction, and is done by its
 * deadline whatever the server does.
 *
 * - Read only twice over: `default_transaction_read_only` in the startup
 *   packet and `BEGIN READ ONLY`, so a write in the statement fails with
 *   SQLSTATE 25006 and the transaction is rolled back at the end anyway. The
 *   statement goes through the extended protocol (Parse/Bind), which refuses
 *   several statements in one string: no `COMMIT; DELETE …` can follow.
 * - A cursor (pg-cursor: a named portal read with Execute(maxRows)), so a
 *   shard's result is never held whole: the next batch is asked for only
 *   when the caller wants it, and the server waits meanwhile.
 * - Values stay the text PostgreSQL sent (every type parser is the identity),
 *   with `TimeZone=UTC`, `DateStyle=ISO` and `extra_float_digits=1` forced in
 *   the startup packet: every shard prints timestamps in one shape (what the
 *   merge compares) and floats with every digit.
 * - Bounded in time: the connect timeout is the time left; statement_timeout
 *   (the time left once connected) ends the statement on the server, which
 *   counts from Parse to the portal's last row, streaming included; and at
 *   the deadline (plus a grace for the server's own cancel to arrive) the
 *   socket is destroyed, which fails whatever still waits on it. A SIGSTOPped
 *   server, which accepts a TCP connection and then says nothing, cannot
 *   hold the run.
 * - Described before it runs (Parse, Bind, Describe: the columns without a
 *   row). With `copy`, a statement without parameters that COPY accepts is
 *   then run as `COPY (statement) TO STDOUT` instead of through the cursor:
 *   a row is then a line of text in a chunk of many, not a DataRow message
 *   parsed field by field into strings (2M rows: ~4x less CPU in this
 *   process). Parse has refused several statements in the one string
 *   already, and a statement with any `;` left in it is not wrapped, so the
 *   wrapping can never become a second statement.
 */
export interface CursorSessionOptions {
  /** "shard shard-2", for error messages. */
  label: string;
  /** Date.now() value by which this shard must be done. */
  deadline: number;
  /** The time the shard was given, for the "no answer within 5s" message. */
  timeoutMs: number;
  /** Read the result as COPY text when the statement allows it (see `copyStatement`). */
  copy?: boolean;
}

export interface CursorBatch {
  /** The result's columns (empty for a statement that returns no rows, such as SET). */
  columns: QueryColumn[];
  rows: Array<Array<string | null>>;
  /** No row follows this batch. */
  done: boolean;
}

/** The server's own cancel (57014) gets this long past the deadline before the socket goes: it carries a SQLSTATE. */
const SERVER_CANCEL_GRACE_MS = 200;
/** A graceful close (Close portal, ROLLBACK, Terminate) gets this long; a hung server never answers it. */
const CLOSE_GRACE_MS = 200;

/** Every value as the text PostgreSQL sent it. */
const RAW_TEXT = { getTypeParser: () => (value: string) => value };

type CursorType = import('pg-cursor');
type CursorClass = new (text: string, values?: unknown[], config?: { rowMode?: 'array'; types?: unknown }) => CursorType;
type DescribedCursor = CursorType & { described: Promise<QueryColumn[]> };
let cursorModule: Promise<new (text: string, values: unknown[]) => DescribedCursor> | undefined;

interface FieldDescription {
  name: string;
  dataTypeID: number;
}

/**
 * pg-cursor, telling when its portal is described: RowDescription (the
 * columns), NoData (a statement without rows) or the error of Parse/Bind.
 */
function loadCursor(): Promise<new (text: string, values: unknown[]) => DescribedCursor> {
  cursorModule ??= import('pg-cursor').then((m) => {
    const Cursor = (m as { default?: CursorClass }).default ?? (m as unknown as CursorClass);
    const Base = Cursor as unknown as new (text: string, values: unknown[], config: object) => object;
    class Described extends Base {
      described: Promise<QueryColumn[]>;
      #settle: { resolve(c: QueryColumn[]): void; reject(e: unknown): void } | null = null;
      constructor(text: string, values: unknown[]) {
        super(text, values, { rowMode: 'array', types: RAW_TEXT });
        this.described = new Promise((resolve, reject) => (this.#settle = { resolve, reject }));
        this.described.catch(() => {});
      }
      handleRowDescription(msg: { fields: FieldDescription[] }): void {
        (Cursor.prototype as unknown as { handleRowDescription(m: unknown): void }).handleRowDescription.call(this, msg);
        this.#settle?.resolve(msg.fields.map((f) => ({ name: f.name, typeOid: f.dataTypeID })));
      }
      _ifNoData(): void {
        (Cursor.prototype as unknown as { _ifNoData(): void })._ifNoData.call(this);
        this.#settle?.resolve([]);
      }
      handleError(err: unknown): void {
        (Cursor.prototype as unknown as { handleError(e: unknown): void }).handleError.call(this, err);
        this.#settle?.reject(err);
      }
    }
    return Described as unknown as new (text: string, values: unknown[]) => DescribedCursor;
  });
  return cursorModule;
}

/** Leading comments and parentheses, then a keyword that COPY (query) takes. */
const COPYABLE = /^(?:\s+|--[^\n]*\n|\/\*[^]*?\*\/|\()*(?:select|with|values|table)\b/i;

/**
 * `COPY (statement) TO STDOUT`, or null when the statement is not one that
 * COPY takes (SHOW, EXPLAIN, …) or holds a `;` (even in a literal: then the
 * cursor reads it). The newline ends a trailing `--` comment.
 */
export function copyStatement(sql: string): string | null {
  const body = sql.replace(/[\s;]+$/, '');
  if (body.includes(';') || !COPYABLE.test(body)) return null;
  return `COPY (${body}\n) TO STDOUT`;
}

export class CursorSession {
  readonly #client: PgClient;
  readonly #cursor: CursorType;
  readonly #options: CursorSessionOptions;
  readonly #timer: NodeJS.Timeout;
  /** The result's columns, as described before the first row. */
  readonly columns: QueryColumn[];
  /** Set when the result is read as COPY text (streamCopy), not through the cursor (read). */
  readonly #copy: CopyOut | null;
  /**
   * Fails the read in flight (at the deadline, or when the session is
   * closed): it must not wait on a socket that is gone. Not a Promise.race
   * against one long-lived promise: every race would leave a reaction on it
   * that keeps its batch of rows alive for the session's whole life.
   */
  #failRead: ((err: Error) => void) | null = null;
  #timedOut = false;
  #done = false;
  #reading = false;
  #closed = false;

  private constructor(client: PgClient, cursor: CursorType, options: CursorSessionOptions, columns: QueryColumn[], copy: CopyOut | null) {
    this.#client = client;
    this.#cursor = cursor;
    this.#options = options;
    this.columns = columns;
    this.#copy = copy;
    // A COPY being streamed fails at the deadline or close (see streamCopy).
    if (copy) this.#failRead = (err) => copy.fail(err);
    const expire = () => {
      this.#timedOut = true;
      destroySocket(client);
      this.#failRead?.(new DeadlineExceeded(options.label, options.timeoutMs));
    };
    this.#timer = setTimeout(expire, Math.max(0, options.deadline - Date.now()) + SERVER_CANCEL_GRACE_MS);
  }

  /**
   * Connects, begins the read-only transaction and submits the statement
   * (its first rows come with the first `read`). Throws DeadlineExceeded,
   * the connect error, or PostgreSQL's error of BEGIN.
   */
  static async open(url: string, sql: string, params: readonly string[], options: CursorSessionOptions): Promise<CursorSession> {
    const left = options.deadline - Date.now();
    if (left <= 0) throw new DeadlineExceeded(options.label, options.timeoutMs);
    const Cursor = await loadCursor();
    let client: PgClient | undefined;
    let expire: () => void = () => {};
    const expired = new Promise<never>((_, reject) => {
      expire = () => {
        destroySocket(client);
        reject(new DeadlineExceeded(options.label, options.timeoutMs));
      };
    });
    expired.catch(() => {});
    const timer = setTimeout(expire, left + SERVER_CANCEL_GRACE_MS);
    const opening = (async () => {
      client = await connect(url, {
        applicationName: 'shardctl query',
        connectTimeoutMs: left,
        label: options.label,
        ownReads: options.copy === true && params.length === 0,
        settings: {
          statement_timeout: `${Math.max(1, options.deadline - Date.now())}ms`,
          default_transaction_read_only: 'on',
          TimeZone: 'UTC',
          DateStyle: 'ISO',
          IntervalStyle: 'postgres',
          extra_float_digits: '1',
        },
      });
      await client.query('BEGIN READ ONLY');
      const cursor = client.query(new Cursor(sql, [...params]) as unknown as never) as unknown as DescribedCursor;
      const columns = await cursor.described;
      const copy = options.copy && params.length === 0 && columns.length > 0 ? copyStatement(sql) : null;
      if (!copy) return new CursorSession(client, cursor, options, columns, null);
      await cursor.close();
      const copyOut = client.query(new CopyOut(copy) as unknown as never) as unknown as CopyOut;
      return new CursorSession(client, cursor, options, columns, copyOut);
    })();
    opening.catch(() => {});
    try {
      return await Promise.race([opening, expired]);
    } catch (err) {
      if (client) destroySocket(client);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  get timedOut(): boolean {
    return this.#timedOut;
  }

  /** The result is read with streamCopy, not read. */
  get copying(): boolean {
    return this.#copy !== null;
  }

  /**
   * The result as COPY text, handed to `consumer` a socket read at a time
   * (see CopyOut.stream: the bytes are valid until it returns or its promise
   * settles). Resolves at the end; errors as `read` (those of the session's
   * state thrown at once).
   */
  streamCopy(consumer: (rows: CopyRows) => void | Promise<void>): Promise<void> {
    const copy = this.#copy;
    if (!copy) throw new Error(`${this.#options.label}: the result is not read as COPY text`);
    if (this.#closed) throw new Error(`${this.#options.label}: the session is closed`);
    if (this.#timedOut) throw new DeadlineExceeded(this.#options.label, this.#options.timeoutMs);
    return copy.stream(consumer);
  }

  /** Up to `maxRows` rows. PostgreSQL's error of the statement (with its SQLSTATE) or DeadlineExceeded otherwise. */
  async read(maxRows: number): Promise<CursorBatch> {
    if (this.#copy) throw new Error(`${this.#options.label}: the result is read as COPY text`);
    if (this.#closed) throw new Error(`${this.#options.label}: the session is closed`);
    if (this.#done) return { columns: [], rows: [], done: true };
    if (this.#timedOut) throw new DeadlineExceeded(this.#options.label, this.#options.timeoutMs);
    this.#reading = true;
    try {
      const batch = await new Promise<CursorBatch>((resolve, reject) => {
        this.#failRead = reject;
        this.#cursor.read(maxRows, (err, rows, result) => {
          if (err) return reject(err);
          const columns = (result?.fields ?? []).map((f) => ({ name: f.name, typeOid: f.dataTypeID }));
          // Fewer rows than asked for means the portal ran to its end (CommandComplete came).
          const done = rows.length < maxRows;
          resolve({ columns, rows: rows as Array<Array<string | null>>, done });
        });
      });
      if (batch.done) this.#done = true;
      return batch;
    } finally {
      this.#failRead = null;
      this.#reading = false;
    }
  }

  /**
   * Ends the session. With no read in flight: closes the portal, rolls back
   * and says goodbye, within a short grace. With a read in flight (the run
   * stopped at --limit while this shard was still computing) or past the
   * deadline: destroys the socket at once; the backend notices its client is
   * gone at its next write or within client_connection_check_interval.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#failRead?.(new Error(`${this.#options.label}: the session was closed`));
    // A COPY not read to its end cannot be stopped but by a cancel request: the socket goes instead.
    if (this.#reading || this.#timedOut || (this.#copy && !this.#copy.ended)) {
      destroySocket(this.#client);
      return;
    }
    const guard = setTimeout(() => destroySocket(this.#client), CLOSE_GRACE_MS);
    try {
      await this.#cursor.close().catch(() => {});
      await this.#client.query('ROLLBACK').catch(() => {});
      await this.#client.end().catch(() => {});
    } finally {
      clearTimeout(guard);
    }
  }
}

export { DeadlineExceeded };
