import type { ShardctlConfig, TableConfig } from '../../config/schema.js';
import { redactUrl } from '../../config/redact.js';
import { OperationError } from '../../errors.js';
import { Journal } from '../../metadata/journal.js';
import type { RunInfo } from '../../metadata/run-info.js';
import type { MetadataStore, RingEpoch, ShardRecord } from '../../metadata/store.js';
import { connect, type PgClient } from '../../postgres/connect.js';
import { describeTable, type TableShape } from '../../mover/table-shape.js';

/**
 * Everything a plan's execution needs besides the plan: where each shard is,
 * the sharded tables, the journal. URLs come from the config when it names the
 * shard (passwords live there), else from the registry (PGPASSWORD/.pgpass),
 * else from `extraUrls` (the --url of `shard add` during that run).
 */
export class MoveEnv {
  readonly journal: Journal;
  readonly #urls = new Map<string, string>();
  readonly #shapes = new Map<string, TableShape>();

  constructor(
    readonly config: ShardctlConfig,
    readonly store: MetadataStore,
    readonly run: RunInfo,
    shards: ShardRecord[],
    extraUrls: Record<string, string> = {},
  ) {
    this.journal = new Journal(store.client);
    for (const s of shards) this.#urls.set(s.id, s.url);
    for (const [id, url] of Object.entries(extraUrls)) this.#urls.set(id, url);
    for (const s of config.shards) this.#urls.set(s.id, s.url);
  }

  get tables(): TableConfig[] {
    return this.config.tables;
  }

  urlOf(shard: string): string {
    const url = this.#urls.get(shard);
    if (!url) throw new OperationError(`no connection URL for shard ${shard}: add it to the config`);
    return url;
  }

  displayUrl(shard: string): string {
    return redactUrl(this.urlOf(shard));
  }

  connect(shard: string, purpose: string): Promise<PgClient> {
    return connect(this.urlOf(shard), {
      label: `shard ${shard}`,
      applicationName: `shardctl ${purpose} by ${this.run.actor} pid ${process.pid}`,
      // Values travel between shards as text (COPY, catch-up): both ends print and read dates and intervals alike.
      settings: { DateStyle: 'ISO', IntervalStyle: 'postgres' },
    });
  }

  /** The table's shape as the source shard has it (read once per run). */
  async shapeOn(client: PgClient, shard: string, table: TableConfig): Promise<TableShape> {
    const key = `${shard}\u0000${table.name}`;
    let shape = this.#shapes.get(key);
    if (!shape) {
      const found = await describeTable(client, table);
      if (!found) throw new OperationError(`${table.name} does not exist on shard ${shard}`);
      shape = found;
      this.#shapes.set(key, shape);
    }
    return shape;
  }

  async currentRing(): Promise<RingEpoch> {
    const ring = await this.store.currentRing();
    if (!ring) throw new OperationError('no ring yet: run `shardctl init` first');
    return ring;
  }
}

/** Runs `fn` with connections that are always closed, whatever happens (a half-read COPY stream included). */
export async function withConnections<T>(clients: Array<Promise<PgClient>>, fn: (...clients: PgClient[]) => Promise<T>): Promise<T> {
  const settled = await Promise.allSettled(clients);
  const open = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  try {
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    return await fn(...open);
  } finally {
    await Promise.all(open.map((c) => c.end().catch(() => {})));
  }
}
