#!/usr/bin/env node
// The shardctl tour: a 4-shard sandbox, the metadata store, a few hundred
// thousand co-located rows placed by the ring, list and simulate, then the
// main job: plan and add a fifth shard, verify, list again.
// `npm run demo` builds first. The sandbox is torn down at the end, on error
// and on Ctrl-C alike.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import pg from 'pg';
import YAML from 'yaml';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = path.join(ROOT, 'bin', 'shardctl');
const DEMO_DIR = '.shardctl/demo';
const CONFIG = path.join(DEMO_DIR, 'shardctl.config.yaml');

const ROOMS = 5_000;
// Rooms hold 30..90 messages (60 on average): 300,000 messages; every third gets a reaction.
const MIN_MESSAGES_PER_ROOM = 30;
const MESSAGE_SPREAD = 61;
const REACTION_EVERY = 3;

const tty = process.stdout.isTTY && !process.env.NO_COLOR;
const bold = (s) => (tty ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s) => (tty ? `\x1b[2m${s}\x1b[0m` : s);

const openClients = new Set();
let interrupted = false;

process.on('SIGINT', () => {
  if (interrupted) {
    console.error(`\nsecond interrupt: leaving now; clean up with: shardctl --yes sandbox down --dir ${DEMO_DIR}`);
    process.exit(130);
  }
  interrupted = true;
  console.error('\ninterrupted: stopping, then tearing the sandbox down (Ctrl-C again to leave it running)');
  // Pending queries fail at once; the shardctl children got the same SIGINT from the terminal.
  for (const client of openClients) client.connection.stream.destroy();
});

let stepNumber = 0;
async function step(title, fn) {
  if (interrupted) throw new Error('interrupted');
  stepNumber += 1;
  console.log(`\n${bold(`── ${stepNumber}. ${title}`)}`);
  const started = performance.now();
  const value = await fn();
  console.log(dim(`   (${((performance.now() - started) / 1000).toFixed(1)}s)`));
  return value;
}

/** The built CLI, from the repo root, with the user seeing its output. */
function shardctl(args, options = {}) {
  console.log(dim(`$ shardctl ${args.join(' ')}`));
  return execa('node', [BIN, ...args], { cwd: ROOT, stdio: 'inherit', ...options });
}

async function withShard(url, fn) {
  const client = new pg.Client({ connectionString: url, application_name: 'shardctl demo' });
  client.on('error', () => {});
  openClients.add(client);
  try {
    await client.connect();
    return await fn(client);
  } finally {
    openClients.delete(client);
    await client.end().catch(() => {});
  }
}

// The tables come from the sandbox's migration set (`sandbox up` applies it; `shard add` applies it
// to a new shard): the demo only empties them, so it can run again on a sandbox left up.
const RESET = 'TRUNCATE public.reactions, public.messages';

const STREAM_ROOMS = 200;
const STREAM_ENTRIES = 300;
const STREAM_KEEP = 100;
const STREAM_MODERATED = 180;

/** Room streams as the original design had them, with the three groups; moderation stuck on its first entries. */
async function loadStreams(redis) {
  for (let room = 1; room <= STREAM_ROOMS; room++) {
    const key = `messages:{room-${room}}`;
    const batch = redis.pipeline();
    batch.del(key);
    for (let i = 1; i <= STREAM_ENTRIES; i++) batch.xadd(key, `${1_764_000_000_000 + i}-0`, 'body', `message ${i}`);
    for (const group of ['broadcast', 'archival', 'moderation']) batch.xgroup('CREATE', key, group, '0');
    await batch.exec();
    for (const group of ['broadcast', 'archival']) {
      const read = await redis.xreadgroup('GROUP', group, `${group}-1`, 'COUNT', STREAM_ENTRIES, 'STREAMS', key, '>');
      await redis.xack(key, group, ...read[0][1].map(([id]) => id));
    }
    // Odd rooms: moderation read 180 and acked the first 150 (30 pending). Even rooms: caught up.
    const read = await redis.xreadgroup('GROUP', 'moderation', 'moderator-1', 'COUNT', room % 2 ? STREAM_MODERATED : STREAM_ENTRIES, 'STREAMS', key, '>');
    const ids = read[0][1].map(([id]) => id);
    await redis.xack(key, 'moderation', ...(room % 2 ? ids.slice(0, STREAM_MODERATED - 30) : ids));
  }
}

// A time-partitioned table, added to every shard by the migration set; its partitions come from `partition rotate`.
const EVENTS_SQL = `CREATE TABLE public.events (
  room_id bigint      NOT NULL,
  id      bigint      NOT NULL,
  at      timestamptz NOT NULL,
  kind    text        NOT NULL,
  PRIMARY KEY (room_id, id, at)
) PARTITION BY RANGE (at);
`;

/** One shard's rows: the rooms the ring gives it (located once each), their messages, their reactions. */
async function loadShard(shard, ringSql) {
  return withShard(shard.url, async (client) => {
    await client.query(RESET);
    await client.query(ringSql); // creates shardctl_ring and shardctl_locate(text)
    await client.query('CREATE TEMP TABLE my_rooms (room_id bigint PRIMARY KEY)');
    const rooms = await client.query(
      'INSERT INTO my_rooms SELECT r FROM generate_series(1, $1::int) r WHERE shardctl_locate(r::text) = $2',
      [ROOMS, shard.id],
    );
    const messages = await client.query(
      `INSERT INTO public.messages (room_id, id, body, created_at)
       SELECT r.room_id, m.id,
              'message ' || m.id || ' in room ' || r.room_id,
              now() - ((r.room_id * 97 + m.id * 13) % 43200) * interval '1 minute'
         FROM my_rooms r
        CROSS JOIN LATERAL generate_series(1, $1::int + (r.room_id % $2::int)::int) AS m(id)`,
      [MIN_MESSAGES_PER_ROOM, MESSAGE_SPREAD],
    );
    const reactions = await client.query(
      `INSERT INTO public.reactions (room_id, message_id, emoji, user_id)
       SELECT room_id, id, (ARRAY['👍', '🎉', '❤️', '😂'])[1 + (id % 4)::int], 1000 + (room_id * 7 + id) % 500
         FROM public.messages
        WHERE id % $1::int = 0`,
      [REACTION_EVERY],
    );
    await client.query('ANALYZE public.messages, public.reactions');
    return { shard: shard.id, rooms: rooms.rowCount, messages: messages.rowCount, reactions: reactions.rowCount };
  });
}

/**
 * What an application does during an online move: writes, routed by the ring
 * it follows (shardctl/router), a fenced write retried after reloading it.
 */
async function startWriter(config, urls) {
  const { createRouter, withFencedRetry, fencedWrite } = await import(path.join(ROOT, 'dist/router/index.js'));
  const router = await createRouter({ metadataUrl: config.metadata.url, ...(config.redis?.url ? { redis: config.redis.url, prefix: config.redis.prefix } : {}) });
  const pools = new Map(Object.entries(urls).map(([id, url]) => [id, new pg.Pool({ connectionString: url, max: 2, application_name: 'shardctl demo app' })]));
  for (const pool of pools.values()) pool.on('error', () => {});
  const stats = { writes: 0, fenced: 0, failed: 0 };
  let running = true;
  let id = 1_000_000;
  const loop = async () => {
    while (running) {
      const room = 1 + Math.floor(Math.random() * ROOMS);
      const messageId = id++;
      try {
        await withFencedRetry(router, async () => {
          try {
            await pools.get(router.shardFor(room)).query('INSERT INTO public.messages (room_id, id, body) VALUES ($1, $2, $3)', [room, messageId, `written during the move`]);
          } catch (err) {
            if (fencedWrite(err)) stats.fenced++;
            throw err;
          }
        });
        stats.writes++;
      } catch {
        stats.failed++;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const loops = [loop(), loop()];
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      await router.close();
      await Promise.all([...pools.values()].map((p) => p.end()));
      return stats;
    },
  };
}

async function main() {
  const started = performance.now();
  let failure;
  try {
    await step('start a 4-shard sandbox (embedded PostgreSQL, and Redis when installed)', () =>
      shardctl(['sandbox', 'up', '--shards', '4', '--dir', DEMO_DIR]),
    );

    await step('create the metadata store, register the shards, make the ring', () => shardctl(['-c', CONFIG, 'init']));

    await step(`load ${ROOMS.toLocaleString('en-US')} rooms of messages and reactions, each room on the shard the ring gives it`, async () => {
      const config = YAML.parse(await readFile(path.join(ROOT, CONFIG), 'utf8'));
      console.log(dim(`$ shardctl -c ${CONFIG} shard ring --format sql > ring.sql`));
      console.log(dim(`$ psql SHARD_URL -f ring.sql   # on every shard: shardctl_ring and shardctl_locate(key), routing inside SQL`));
      console.log(dim(`$ psql SHARD_URL -c "INSERT INTO public.messages … FROM generate_series(1, ${ROOMS}) room WHERE shardctl_locate(room::text) = 'SHARD_ID'"   # and reactions`));
      const ring = await execa('node', [BIN, '-c', CONFIG, 'shard', 'ring', '--format', 'sql'], { cwd: ROOT, stderr: 'inherit' });
      const loaded = await Promise.all(config.shards.map((shard) => loadShard(shard, ring.stdout)));
      const total = { rooms: 0, messages: 0, reactions: 0 };
      for (const r of loaded) {
        console.log(`   ${r.shard}: ${fmt(r.rooms)} rooms, ${fmt(r.messages)} messages, ${fmt(r.reactions)} reactions`);
        for (const k of Object.keys(total)) total[k] += r[k];
      }
      console.log(`   total:   ${fmt(total.rooms)} rooms, ${fmt(total.messages)} messages, ${fmt(total.reactions)} reactions`);
    });

    await step('the shards, with rows and bytes per sharded table', () => shardctl(['-c', CONFIG, 'shard', 'list', '--stats']));

    await step('what adding a fifth shard would move (writes nothing)', () =>
      shardctl(['-c', CONFIG, 'shard', 'simulate', '--add', 'shard-4', '--keys', '200000']),
    );

    const config = YAML.parse(await readFile(path.join(ROOT, CONFIG), 'utf8'));
    const newShardUrl = databaseUrl(config.shards[0].url, 'shard_4');
    await step('a fifth, empty database (what a DBA provisions; shard add gives it the tables from migrate.dir)', async () => {
      console.log(dim(`$ psql ${databaseUrl(config.shards[0].url, 'postgres')} -c 'CREATE DATABASE shard_4'`));
      await withShard(databaseUrl(config.shards[0].url, 'postgres'), (client) => client.query('CREATE DATABASE shard_4'));
    });

    await step('review the plan: which hash ranges move, from where, how many rows (writes nothing)', async () => {
      await shardctl(['-c', CONFIG, 'shard', 'plan', '--add', 'shard-4', '--url', newShardUrl]);
      console.log(dim('   est. rows and bytes are estimates: each table\'s planner statistics scaled by the share of the hash space that moves'));
      console.log(dim('   (--exact counts instead). The report after `shard add` gives the rows actually copied, verified and deleted.'));
    });

    await step('add it online while an application keeps writing: capture changes, copy, catch up, a brief fence, switch the ring, delete the moved rows from the sources', async () => {
      const writer = await startWriter(config, { ...Object.fromEntries(config.shards.map((x) => [x.id, x.url])), 'shard-4': newShardUrl });
      console.log(dim('   (an application inserts messages into random rooms meanwhile, routing with shardctl/router and retrying fenced writes)'));
      try {
        await shardctl(['-c', CONFIG, 'shard', 'add', 'shard-4', '--url', newShardUrl]);
      } finally {
        const done = await writer.stop();
        console.log(`   the application wrote ${fmt(done.writes)} messages during the move; ${fmt(done.fenced)} met the fence and went through on retry; ${fmt(done.failed)} failed`);
      }
    });

    await step('check: every row on the shard the new ring names, nothing lost', () => shardctl(['-c', CONFIG, 'shard', 'verify']));

    await step('the five shards now', () => shardctl(['-c', CONFIG, 'shard', 'list', '--stats', '--exact']));

    await step('a time-partitioned table on every shard, through the migration set (migrate create, then migrate up)', async () => {
      const created = await execa('node', [BIN, '-c', CONFIG, '--json', 'migrate', 'create', 'events'], { cwd: ROOT });
      const file = JSON.parse(created.stdout).data.path;
      console.log(dim(`$ shardctl -c ${CONFIG} migrate create events   # → ${path.relative(ROOT, file)}`));
      await writeFile(file, EVENTS_SQL);
      console.log(dim(EVENTS_SQL.trim().split('\n').map((l) => `   | ${l}`).join('\n')));
      await shardctl(['-c', CONFIG, 'migrate', 'up']);
      // The policy: daily partitions, 3 ahead, 7 days kept, older ones detached.
      const doc = YAML.parse(await readFile(path.join(ROOT, CONFIG), 'utf8'));
      doc.partitions = [{ table: 'public.events', column: 'at', interval: 'daily', premake: 3, retention: '7d', retentionMode: 'detach' }];
      await writeFile(path.join(ROOT, CONFIG), YAML.stringify(doc));
      console.log(dim(`   config: partitions: [{ table: public.events, column: at, interval: daily, premake: 3, retention: 7d, retentionMode: detach }]`));
    });

    await step('partition rotate, first as a dry run (the SQL per shard), then for real; a second run has nothing to do', async () => {
      await shardctl(['-c', CONFIG, 'partition', 'rotate', '--dry-run', '--shard', 'shard-0']);
      await shardctl(['-c', CONFIG, 'partition', 'rotate']);
      await shardctl(['-c', CONFIG, 'partition', 'rotate']);
    });

    await step('the partitions of one shard: bounds, rows, runway', () => shardctl(['-c', CONFIG, 'partition', 'list', '--shard', 'shard-4']));

    const withRedis = YAML.parse(await readFile(path.join(ROOT, CONFIG), 'utf8'));
    if (withRedis.redis?.url) {
      await step(`${STREAM_ROOMS} room streams with three consumer groups (moderation is behind), and a policy that keeps ${STREAM_KEEP}`, async () => {
        const { Redis } = await import('ioredis');
        const redis = new Redis(withRedis.redis.url);
        try {
          await loadStreams(redis);
        } finally {
          redis.disconnect();
        }
        withRedis.streams = [{ match: 'messages:*', maxLen: STREAM_KEEP, approximate: false }];
        await writeFile(path.join(ROOT, CONFIG), YAML.stringify(withRedis));
        console.log(dim(`   per room: ${STREAM_ENTRIES} entries; broadcast and archival read and acked all; moderation too in even rooms, and in odd rooms read ${STREAM_MODERATED} and acked ${STREAM_MODERATED - 30}`));
        console.log(dim(`   config: streams: [{ match: "messages:*", maxLen: ${STREAM_KEEP}, approximate: false }]`));
      });
      await step('one stream, its groups and their lag', () => shardctl(['-c', CONFIG, 'stream', 'info', 'messages:{room-1}']));
      await step('stream trim: first a dry run, then for real; where moderation has pending entries they hold the trim back, and the report says so', async () => {
        await shardctl(['-c', CONFIG, 'stream', 'trim', '--dry-run', '--match', 'messages:{room-[12]}']);
        await shardctl(['-c', CONFIG, '-q', 'stream', 'trim']);
      });
    } else {
      console.log(dim('\n(no redis-server on this machine: the stream steps are skipped)'));
    }

    await step('where keys live', () => shardctl(['-c', CONFIG, 'shard', 'locate', 'room-1', '42']));

    await step('one statement on every shard, merged: messages per shard, then the newest five across all shards', async () => {
      await shardctl(['-c', CONFIG, 'query', 'SELECT count(*) AS messages FROM public.messages']);
      await shardctl(['-c', CONFIG, 'query', '--merge-order', 'created_at:desc', '--limit', '5', 'SELECT room_id, id, created_at FROM public.messages ORDER BY created_at DESC LIMIT 5']);
    });

    await step('exec: one statement that may write, on every shard, each in its own transaction (here ANALYZE)', () =>
      shardctl(['-c', CONFIG, '--yes', 'exec', 'ANALYZE public.messages']));

    await step('who did what', () => shardctl(['-c', CONFIG, 'audit']));

    await step('health: shards, sharding, partitions and streams in one run, worst first; then the same as one Nagios line', async () => {
      for (const args of [['health'], ['health', '--format', 'nagios']]) {
        const r = await shardctl(['-c', CONFIG, ...args], { reject: false });
        // The exit code is the verdict (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN): the behind moderation group may warn.
        if (r.exitCode > 2) throw new Error(`shardctl ${args.join(' ')} exited ${r.exitCode}`);
        console.log(dim(`   exit ${r.exitCode} (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)`));
      }
    });
  } catch (err) {
    failure = err;
  } finally {
    console.log(`\n${bold('── tear down')}`);
    try {
      await shardctl(['--yes', '-c', CONFIG, 'sandbox', 'down']);
    } catch (err) {
      console.error(`tear down failed: ${err.shortMessage ?? err.message}; run: shardctl --yes sandbox down --dir ${DEMO_DIR}`);
      failure ??= err;
    }
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (failure) {
    console.error(`\ndemo ${interrupted ? 'interrupted' : 'failed'} after ${seconds}s${interrupted ? '' : `: ${failure.shortMessage ?? failure.message}`}`);
    process.exitCode = interrupted ? 130 : 1;
    return;
  }
  console.log(`\n${bold(`demo finished in ${seconds}s`)}`);
}

function databaseUrl(url, database) {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

function fmt(n) {
  return Number(n).toLocaleString('en-US');
}

await main();
