import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { init } from '../../src/engine/init.js';
import { migrateStatus, migrateUp, migrateValidate, type MigrateEvent } from '../../src/engine/migrate/migrate.js';
import { LockHeldError, OperationError } from '../../src/errors.js';
import { LOCK_NAMESPACE, LOCKS } from '../../src/postgres/advisory-lock.js';
import { createTestDatabase } from '../support/databases.js';
import { createDeployment, testRun, type TestDeployment } from '../support/deployment.js';
import { appliedVersions, migrationDir, sql } from '../support/migrations.js';

const BASE = {
  '0001_users.sql': 'CREATE TABLE public.users (id bigint PRIMARY KEY, email text);\n',
  '0002_rooms.sql': 'CREATE TABLE public.rooms (room_id bigint PRIMARY KEY, title text NOT NULL);\n',
  '0003_seed.sql': "INSERT INTO public.rooms VALUES (1, 'lobby');\n",
};

describe('migrate on 16 shards', () => {
  let d: TestDeployment;
  let files: Awaited<ReturnType<typeof migrationDir>>;

  beforeAll(async () => {
    d = await createDeployment({ shards: 16, redis: false, tables: false });
    await init(d.config, testRun());
    files = await migrationDir(BASE);
  });
  afterAll(async () => {
    await files?.remove();
    await d?.cleanup();
  });

  it('up applies every file to every shard, several shards at once, and status shows the matrix', async () => {
    let running = 0;
    let maxRunning = 0;
    const onEvent = (e: MigrateEvent) => {
      if (e.type === 'target-start') maxRunning = Math.max(maxRunning, ++running);
      if (e.type === 'target-done') running--;
    };
    const result = await migrateUp(d.config, testRun(), { dir: files.dir, parallel: 4, onEvent });
    expect(result.summary.migrated).toBe(16);
    expect(maxRunning).toBeGreaterThan(1);
    expect(maxRunning).toBeLessThanOrEqual(4);
    for (const [i, url] of d.shardUrls.entries()) {
      expect(await appliedVersions(url)).toEqual(['0001', '0002', '0003']);
      expect(result.targets[i]).toMatchObject({ target: `shard-${i}`, status: 'migrated', version: '0003' });
    }
    const status = await migrateStatus(d.config, { dir: files.dir });
    expect(status.clean).toBe(true);
    expect(status.targets).toHaveLength(16);
    expect(status.targets.every((t) => t.states.map((s) => s.state).join() === 'applied,applied,applied')).toBe(true);

    const again = await migrateUp(d.config, testRun(), { dir: files.dir });
    expect(again.summary['up-to-date']).toBe(16);
  });

  it('a file that fails on one shard rolls back there, stops new shards, and the report matches every database', async () => {
    await sql(d.shardUrls[5]!, 'CREATE TABLE public.widgets (conflict int)');
    await files.write(
      '0004_widgets.sql',
      ['ALTER TABLE public.users ADD COLUMN nickname text;', '', 'CREATE TABLE public.widgets (id bigint PRIMARY KEY);', ''].join('\n'),
    );
    const err = (await migrateUp(d.config, testRun(), { dir: files.dir, parallel: 2 }).catch((e: unknown) => e)) as OperationError;
    expect(err).toBeInstanceOf(OperationError);
    expect(err.exitCode).toBe(1);
    const result = err.data as Awaited<ReturnType<typeof migrateUp>>;
    const failed = result.targets.find((t) => t.target === 'shard-5')!;
    expect(failed).toMatchObject({ status: 'failed', version: '0003', pending: ['0004_widgets.sql'] });
    expect(failed.error?.failure).toMatchObject({ file: '0004_widgets.sql', code: '42P07', line: 3 });
    expect(failed.error?.failure?.lines.join('\n')).toMatch(/0004_widgets\.sql:3:\d+: relation "widgets" already exists/);
    // Rolled back: the first statement of the file left no trace on shard-5.
    expect(await sql(d.shardUrls[5]!, `SELECT 1 FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'nickname'`)).toEqual([]);
    // Stopped: some shards were never started, and every reported version is the real one.
    expect(result.summary.skipped).toBeGreaterThan(0);
    for (const [i, url] of d.shardUrls.entries()) {
      const real = await appliedVersions(url);
      expect(result.targets[i]!.version).toBe(real.at(-1));
      expect(real.at(-1)).toBe(result.targets[i]!.status === 'migrated' ? '0004' : '0003');
    }
    const status = await migrateStatus(d.config, { dir: files.dir });
    expect(status.targets[5]!.states.at(-1)).toMatchObject({ version: '0004', state: 'failed' });

    // --continue-on-error: every other shard gets there; shard-5 fails again, exactly.
    const err2 = (await migrateUp(d.config, testRun(), { dir: files.dir, continueOnError: true }).catch((e: unknown) => e)) as OperationError;
    const result2 = err2.data as Awaited<ReturnType<typeof migrateUp>>;
    expect(result2.summary.failed).toBe(1);
    expect(result2.summary.skipped).toBe(0);
    for (const [i, url] of d.shardUrls.entries()) {
      expect((await appliedVersions(url)).at(-1)).toBe(i === 5 ? '0003' : '0004');
    }
    // Fixed by hand on shard-5, the next run finishes it.
    await sql(d.shardUrls[5]!, 'DROP TABLE public.widgets');
    const fixed = await migrateUp(d.config, testRun(), { dir: files.dir });
    expect(fixed.targets[5]).toMatchObject({ status: 'migrated', applied: [{ file: '0004_widgets.sql', durationMs: expect.any(Number) }] });
    expect((await migrateStatus(d.config, { dir: files.dir })).clean).toBe(true);
  });

  it('refuses to run, touching nothing, when an applied file changed; validate names file and shard', async () => {
    await files.write('0001_users.sql', BASE['0001_users.sql'] + '-- edited after it ran\n');
    await files.write('0005_more.sql', 'CREATE TABLE public.more (id int);\n');
    const err = (await migrateUp(d.config, testRun(), { dir: files.dir }).catch((e: unknown) => e)) as OperationError;
    expect(err).toBeInstanceOf(OperationError);
    expect(err.details).toHaveLength(16);
    expect(err.details[0]).toBe('shard-0: 0001_users.sql changed since it was applied (checksum differs)');
    for (const url of d.shardUrls) expect((await appliedVersions(url)).at(-1)).toBe('0004');
    await expect(migrateValidate(d.config, { dir: files.dir })).rejects.toMatchObject({
      details: expect.arrayContaining(['shard-7: 0001_users.sql changed since it was applied (checksum differs)']),
    });
    const forced = await migrateUp(d.config, testRun(), { dir: files.dir, allowChanged: true });
    expect(forced.summary.migrated).toBe(16);
    await files.write('0001_users.sql', BASE['0001_users.sql']);
    await expect(migrateValidate(d.config, { dir: files.dir })).resolves.toMatchObject({ clean: true });
  });
});

describe('migrate: locks, CONCURRENTLY, late shards', () => {
  let d: TestDeployment;
  let files: Awaited<ReturnType<typeof migrationDir>>;
  beforeAll(async () => {
    d = await createDeployment({ shards: 3, redis: false, tables: false });
    await init(d.config, testRun());
    files = await migrationDir({});
  });
  afterAll(async () => {
    await files?.remove();
    await d?.cleanup();
  });

  it('two concurrent runs never apply a file twice: the second waits, then finds nothing to do', async () => {
    await files.write('0001_a.sql', 'CREATE TABLE public.a (id int); SELECT pg_sleep(0.3);');
    await files.write('0002_b.sql', 'CREATE TABLE public.b (id int);');
    const [one, two] = await Promise.all([
      migrateUp(d.config, testRun({ lockWaitMs: 30_000 }), { dir: files.dir }),
      migrateUp(d.config, testRun({ lockWaitMs: 30_000 }), { dir: files.dir }),
    ]);
    for (let i = 0; i < 3; i++) {
      expect(one.targets[i]!.applied.length + two.targets[i]!.applied.length).toBe(2);
      expect(await appliedVersions(d.shardUrls[i]!)).toEqual(['0001', '0002']);
    }
  });

  it('without --lock-wait the second run exits 75 having done nothing', async () => {
    await files.write('0003_c.sql', 'SELECT pg_sleep(0.5); CREATE TABLE public.c (id int);');
    const first = migrateUp(d.config, testRun(), { dir: files.dir });
    await new Promise((r) => setTimeout(r, 150));
    const second = await migrateUp(d.config, testRun(), { dir: files.dir }).catch((e: unknown) => e);
    expect(second).toBeInstanceOf(LockHeldError);
    expect((second as LockHeldError).exitCode).toBe(75);
    await expect(first).resolves.toMatchObject({ summary: { migrated: 3 } });
  });

  it('a shard whose migrate lock another runner holds is reported locked; the others are migrated', async () => {
    await files.write('0004_d.sql', 'CREATE TABLE public.d (id int);');
    const holder = new pg.Client({ connectionString: d.shardUrls[1], application_name: 'another migrator' });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1, $2)', [LOCK_NAMESPACE, LOCKS.migrate]);
      const err = (await migrateUp(d.config, testRun({ lockWaitMs: 200 }), { dir: files.dir, continueOnError: true }).catch((e: unknown) => e)) as OperationError;
      expect(err).toBeInstanceOf(OperationError);
      const result = err.data as Awaited<ReturnType<typeof migrateUp>>;
      expect(result.targets.map((t) => t.status)).toEqual(['migrated', 'locked', 'migrated']);
      expect(result.targets[1]!.error?.message).toMatch(/another migrator/);
      expect((await appliedVersions(d.shardUrls[1]!)).at(-1)).toBe('0003');
    } finally {
      await holder.end();
    }
  });

  it('a no-transaction CREATE INDEX CONCURRENTLY file succeeds while another session holds a long transaction open on an unrelated table', async () => {
    await sql(d.shardUrls[0]!, 'CREATE TABLE public.unrelated (id int); INSERT INTO public.unrelated VALUES (1); CREATE TABLE public.events (id bigint, kind text); INSERT INTO public.events SELECT g, g::text FROM generate_series(1, 1000) g');
    await files.write(
      '0005_events_kind.sql',
      '-- shardctl:no-transaction\nCREATE TABLE IF NOT EXISTS public.events (id bigint, kind text);\nCREATE INDEX CONCURRENTLY IF NOT EXISTS events_kind ON public.events (kind);\nCREATE INDEX CONCURRENTLY IF NOT EXISTS events_id ON public.events (id);\n',
    );
    const longTx = new pg.Client({ connectionString: d.shardUrls[0] });
    await longTx.connect();
    try {
      await longTx.query('BEGIN');
      await longTx.query('UPDATE public.unrelated SET id = 2');
      const result = await migrateUp(d.config, testRun(), { dir: files.dir, shards: ['shard-0'], lockTimeoutMs: 10_000 });
      expect(result.targets[0]).toMatchObject({ status: 'migrated', version: '0005' });
      const indexes = await sql<{ index: string; indisvalid: boolean }>(
        d.shardUrls[0]!,
        `SELECT indexrelid::regclass::text AS index, indisvalid FROM pg_index WHERE indrelid = 'public.events'::regclass ORDER BY 1`,
      );
      expect(indexes).toEqual([
        { index: 'events_id', indisvalid: true },
        { index: 'events_kind', indisvalid: true },
      ]);
    } finally {
      await longTx.query('ROLLBACK').catch(() => {});
      await longTx.end();
    }
  });

  it('a shard listed in the config after the others were migrated is caught up by the next up', async () => {
    const late = await createTestDatabase('sct_late');
    try {
      await d.rewrite((raw) => {
        (raw.shards as unknown[]).push({ id: 'shard-late', url: late.url });
      });
      const status = await migrateStatus(d.config, { dir: files.dir });
      expect(status.targets.find((t) => t.target === 'shard-late')!.states.every((s) => s.state === 'pending')).toBe(true);
      const result = await migrateUp(d.config, testRun(), { dir: files.dir });
      expect(result.targets.find((t) => t.target === 'shard-late')).toMatchObject({ status: 'migrated', version: '0005' });
      expect(await appliedVersions(late.url)).toEqual(['0001', '0002', '0003', '0004', '0005']);
      expect((await migrateStatus(d.config, { dir: files.dir })).clean).toBe(true);
    } finally {
      await d.rewrite((raw) => {
        (raw.shards as unknown[]).pop();
      });
      await late.drop();
    }
  });
});

describe('migrate when a target loses its lock session', () => {
  let d: TestDeployment;
  let files: Awaited<ReturnType<typeof migrationDir>>;

  beforeAll(async () => {
    d = await createDeployment({ shards: 1, redis: false, tables: false });
    await init(d.config, testRun());
    files = await migrationDir({ '0001_users.sql': BASE['0001_users.sql'] });
    await migrateUp(d.config, testRun(), { dir: files.dir });
  });
  afterAll(async () => {
    await files?.remove();
    await d?.cleanup();
  });

  /** The backend holding the migrate lock on the shard, once a file is running there. */
  const migrateLockHolder = async (): Promise<number> => {
    for (let i = 0; i < 400; i++) {
      const rows = await sql<{ pid: number }>(
        d.shardUrls[0]!,
        `SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::bigint::oid AND l.objid = $2
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
                          AND a.query LIKE 'SELECT pg_sleep%' AND a.state = 'active')`,
        [LOCK_NAMESPACE, LOCKS.migrate],
      );
      if (rows[0]) return rows[0].pid;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error('no file started running under the migrate lock');
  };

  for (const transactional of [true, false]) {
    it(`${transactional ? 'a transactional' : 'a no-transaction'} file whose target lock session is terminated mid-file is not recorded, stops that target with a clear error, and the next up applies it once`, async () => {
      const version = transactional ? '0002' : '0003';
      const name = `${version}_slow.sql`;
      const table = `public.after_sleep_${version}`;
      await files.write(name, `${transactional ? '' : '-- shardctl:no-transaction\n'}SELECT pg_sleep(1.5);\nCREATE TABLE ${table} (id int);\n`);
      const run = migrateUp(d.config, testRun(), { dir: files.dir }).catch((e: unknown) => e);
      await sql(d.shardUrls[0]!, 'SELECT pg_terminate_backend($1, 5000)', [await migrateLockHolder()]);
      const err = (await run) as OperationError;
      expect(err).toBeInstanceOf(OperationError);
      const target = (err.data as Awaited<ReturnType<typeof migrateUp>>).targets[0]!;
      expect(target.status).toBe('failed');
      expect(target.error?.message).toMatch(/the migrate lock was lost/);
      expect(target.error?.message).toContain(`${name} was not recorded`);
      expect(await appliedVersions(d.shardUrls[0]!)).not.toContain(version);
      // The file's effects: rolled back (transactional), or its next statement never ran.
      expect(await sql(d.shardUrls[0]!, `SELECT to_regclass($1) AS t`, [table])).toEqual([{ t: null }]);

      const again = await migrateUp(d.config, testRun(), { dir: files.dir });
      expect(again.targets[0]).toMatchObject({ status: 'migrated', version });
      expect((await appliedVersions(d.shardUrls[0]!)).filter((v) => v === version)).toEqual([version]);
    });
  }
});
