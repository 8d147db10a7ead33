// migrate fan-out: 32 shard databases, 20 small migrations. `shardctl migrate up`
// with --parallel 8 and --parallel 1, beside the loop a user writes today
// (one `psql -f` per file per shard), all measured in this run on the same
// databases, reset between runs. Prints JSON lines.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = path.join(ROOT, 'bin/shardctl');
const SHARDS = Number(process.env.BENCH_MIGRATE_SHARDS ?? 32);
const FILES = 20;

function migrationSql(i) {
  const t = `bench_t${i}`;
  return [
    `CREATE TABLE public.${t} (id bigint PRIMARY KEY, room_id bigint NOT NULL, body text, created_at timestamptz DEFAULT now());`,
    `CREATE INDEX ${t}_room ON public.${t} (room_id);`,
    `INSERT INTO public.${t} (id, room_id, body) SELECT g, g % 10, 'row ' || g FROM generate_series(1, 20) g;`,
    `ALTER TABLE public.${t} ADD COLUMN flags int NOT NULL DEFAULT 0;`,
  ].join('\n');
}

async function withClient(url, fn) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try { return await fn(c); } finally { await c.end(); }
}

async function reset(urls) {
  await Promise.all(urls.map((url) => withClient(url, (c) => c.query(
    `DROP TABLE IF EXISTS shardctl.schema_migrations, shardctl.schema_migrations_errors;
     DO $$ DECLARE r record; BEGIN
       FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'bench_t%' LOOP
         EXECUTE format('DROP TABLE public.%I', r.tablename);
       END LOOP; END $$;`))));
}

function timed(fn) {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

export async function benchMigrate() {
  const baseUrl = process.env.SHARDCTL_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const suffix = `${process.pid}_${Date.now().toString(36)}`;
  const urlOf = (db) => { const u = new URL(baseUrl); u.pathname = `/${db}`; return u.toString(); };
  const meta = `bench_mmeta_${suffix}`;
  const shards = Array.from({ length: SHARDS }, (_, i) => `bench_m${i}_${suffix}`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'shardctl-bench-migrate-'));
  const migDir = path.join(dir, 'migrations');
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  try {
    for (const db of shards) await admin.query(`CREATE DATABASE "${db}"`);
    execFileSync('mkdir', ['-p', migDir]);
    for (let i = 1; i <= FILES; i++) writeFileSync(path.join(migDir, `${String(i).padStart(4, '0')}_bench_${i}.sql`), migrationSql(i));
    const config = path.join(dir, 'shardctl.config.yaml');
    writeFileSync(config, JSON.stringify({
      metadata: { url: urlOf(meta) },
      shards: shards.map((db, i) => ({ id: `shard-${i}`, url: urlOf(db) })),
      migrate: { dir: migDir },
    }));
    execFileSync('node', [BIN, '-c', config, '-q', 'init'], { stdio: ['ignore', 'ignore', 'inherit'] });
    const urls = shards.map(urlOf);
    const files = Array.from({ length: FILES }, (_, i) => path.join(migDir, `${String(i + 1).padStart(4, '0')}_bench_${i + 1}.sql`));

    const runs = {};
    for (const parallel of [8, 1]) {
      await reset(urls);
      runs[`shardctl --parallel ${parallel}`] = timed(() => {
        const r = spawnSync('node', [BIN, '-c', config, '-q', 'migrate', 'up', '--parallel', String(parallel)], { stdio: ['ignore', 'ignore', 'inherit'] });
        if (r.status !== 0) throw new Error(`migrate up exited ${r.status}`);
      });
    }
    await reset(urls);
    runs['psql loop'] = timed(() => {
      for (const url of urls) {
        for (const file of files) {
          const r = spawnSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-1', '-f', file, url], { stdio: ['ignore', 'ignore', 'inherit'] });
          if (r.status !== 0) throw new Error(`psql exited ${r.status}`);
        }
      }
    });
    const psql = runs['psql loop'];
    for (const [impl, seconds] of Object.entries(runs)) {
      console.log(JSON.stringify({
        bench: 'migrate.fanout', impl, shards: SHARDS, files: FILES, applications: SHARDS * FILES,
        seconds: +seconds.toFixed(2), speedupVsPsqlLoop: +(psql / seconds).toFixed(2),
        ...(impl === 'shardctl --parallel 8' ? { goal: '>= 3x the psql loop' } : {}),
      }));
    }
  } finally {
    for (const db of [meta, ...shards]) await admin.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchMigrate();
