import { to as copyTo } from 'pg-copy-streams';
import { CopyRowSplitter, unescapeCopyField } from '../core/copy-text.js';
import type { Interval } from '../core/move-plan.js';
import type { PgClient } from '../postgres/connect.js';
import { quoteIdent } from '../postgres/ident.js';
import { rangeFilter } from './copy-range.js';
import { hashExpression, rowDigest, type TableShape } from './table-shape.js';

export interface CleanupOptions {
  ranges: Interval[];
  cursor: number;
  batchSize: number;
  /** Called after each batch of deletes commits; journal here. Return false to stop. */
  onBatch: (batch: { cursor: number; deleted: number; kept: number }) => Promise<boolean>;
}

export interface CleanupResult {
  done: boolean;
  cursor: number;
  deleted: number;
  /** Source rows seen that had no identical row on the target: left in place. */
  kept: number;
}

interface DigestRow {
  hash: number;
  /** The primary key fields as COPY text (escaped), joined by tabs: equal on both sides for equal keys. */
  key: string;
  digest: string;
}

/**
 * Deletes from the source the moved rows that are confirmed identical on the
 * target (SPEC invariant 1). Both sides are read in hash order and merged, so
 * memory holds one hash's rows at a time; each delete re-checks the row's
 * digest in its WHERE clause, so a row changed since it was read is kept.
 * Rows that differ or are absent on the target stay on the source, counted.
 *
 * Uses three connections: a reader on each side and `sourceWriter` for the
 * deletes (the source reader's snapshot is fixed when its COPY starts).
 */
export async function cleanupRange(
  sourceReader: PgClient,
  targetReader: PgClient,
  sourceWriter: PgClient,
  shape: TableShape,
  options: CleanupOptions,
): Promise<CleanupResult> {
  const query = (client: PgClient) =>
    readDigests(client, `COPY (SELECT ${hashExpression(shape)}, ${shape.primaryKey.map((c) => `t.${quoteIdent(c.name)}`).join(', ')}, ${rowDigest(shape)}
       FROM ${shape.sqlName} t WHERE ${rangeFilter(shape, options.ranges, options.cursor)} ORDER BY 1) TO STDOUT`);
  const source = query(sourceReader);
  const target = new Peekable(query(targetReader));
  const pending: DigestRow[] = [];
  let cursor = options.cursor;
  let deleted = 0;
  let kept = 0;
  let lastHash = -1;

  const flush = async (): Promise<boolean> => {
    if (pending.length) deleted += await deleteConfirmed(sourceWriter, shape, pending.splice(0));
    cursor = lastHash;
    return options.onBatch({ cursor, deleted, kept });
  };

  let group: Map<string, string> = new Map();
  let groupHash = -1;
  for await (const row of source) {
    if (row.hash !== lastHash && pending.length >= options.batchSize) {
      if (!(await flush())) return { done: false, cursor, deleted, kept };
    }
    if (row.hash !== groupHash) {
      // The target rows with this hash, by key: one key's rows at a time.
      group = new Map();
      groupHash = row.hash;
      for (;;) {
        const next = await target.peek();
        if (!next || next.hash > row.hash) break;
        await target.next();
        if (next.hash === row.hash) group.set(next.key, next.digest);
      }
    }
    if (group.get(row.key) === row.digest) pending.push(row);
    else kept++;
    lastHash = row.hash;
  }
  await target.close();
  if (lastHash !== -1) await flush();
  return { done: true, cursor, deleted, kept };
}

/** DELETE … USING unnest(typed keys, digests): an index lookup per key, and only if the row is still identical. */
async function deleteConfirmed(client: PgClient, shape: TableShape, rows: DigestRow[]): Promise<number> {
  const pk = shape.primaryKey;
  const columns = pk.map((_, i) => rows.map((r) => unescapeCopyField(r.key.split('\t')[i]!)));
  const unnestArgs = pk.map((c, i) => `$${i + 1}::text[]::${c.type}[]`).join(', ');
  const aliases = pk.map((_, i) => `k${i}`).join(', ');
  const match = pk.map((c, i) => `t.${quoteIdent(c.name)} = c.k${i}`).join(' AND ');
  const { rowCount } = await client.query(
    `DELETE FROM ${shape.sqlName} t USING unnest(${unnestArgs}, $${pk.length + 1}::text[]) AS c(${aliases}, digest)
      WHERE ${match} AND ${rowDigest(shape)} = c.digest`,
    [...columns, rows.map((r) => r.digest)],
  );
  return rowCount ?? 0;
}

async function* readDigests(client: PgClient, sql: string): AsyncGenerator<DigestRow> {
  const stream = client.query(copyTo(sql));
  const splitter = new CopyRowSplitter();
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    for (const row of splitter.push(chunk)) {
      const line = row.toString('utf8', 0, row.length - 1);
      const first = line.indexOf('\t');
      const last = line.lastIndexOf('\t');
      yield { hash: Number(line.slice(0, first)), key: line.slice(first + 1, last), digest: line.slice(last + 1) };
    }
  }
}

class Peekable<T> {
  #head: IteratorResult<T> | undefined;
  constructor(private readonly iterator: AsyncIterator<T>) {}

  async peek(): Promise<T | undefined> {
    this.#head ??= await this.iterator.next();
    return this.#head.done ? undefined : this.#head.value;
  }

  async next(): Promise<T | undefined> {
    const value = await this.peek();
    this.#head = undefined;
    return value;
  }

  async close(): Promise<void> {
    // Drain what is left so the connection leaves COPY mode cleanly.
    while ((await this.peek()) !== undefined) await this.next();
  }
}
