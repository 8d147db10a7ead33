import { describeTable, type TableShape } from '../../src/mover/table-shape.js';
import { connect, type PgClient } from '../../src/postgres/connect.js';
import { installRoutingFunction } from '../../src/postgres/routing-function.js';
import { createTestDatabase, type TestDatabase } from './databases.js';
import { SCHEMA_SQL } from './dataset.js';

/** A source and a target database for the mover's own tests: the schema and route_hash on both, rows on the source. */
export interface MoverPair {
  dbs: TestDatabase[];
  source: PgClient;
  target: PgClient;
  shape: TableShape;
}

/**
 * 300 rooms of 20 messages on the source (6000 rows), each room's rows
 * scattered over the heap (loaded message by message), analysed.
 */
export async function moverPair(prefix: string): Promise<MoverPair> {
  const dbs = [await createTestDatabase(`${prefix}_src`), await createTestDatabase(`${prefix}_tgt`)];
  const [source, target] = (await Promise.all(dbs.map((d) => connect(d.url, { label: d.name })))) as [PgClient, PgClient];
  for (const c of [source, target]) {
    await c.query(SCHEMA_SQL);
    await installRoutingFunction(c);
  }
  await source.query(
    `INSERT INTO public.messages (room_id, id, body) SELECT r, m, 'message ' || m || repeat('.', (r % 9) * 20) FROM generate_series(1, 20) m, generate_series(1, 300) r`,
  );
  await source.query('ANALYZE public.messages');
  const shape = (await describeTable(source, { name: 'public.messages', key: 'room_id' }))!;
  return { dbs, source, target, shape };
}

export async function closeMoverPair(pair: Partial<MoverPair>, clients: Array<PgClient | undefined>): Promise<void> {
  await Promise.all(clients.map((c) => c?.end().catch(() => {})));
  for (const d of pair.dbs ?? []) await d.drop();
}
