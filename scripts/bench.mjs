// `npm run bench`: every benchmark as JSON lines on stdout, each beside the peer
// or baseline it is compared with, measured in the same run.
import { benchRing } from './bench-ring.mjs';
import { benchMigrate } from './bench-migrate.mjs';
import { benchMove } from './bench-move.mjs';
import { benchStartup } from './bench-startup.mjs';
import { benchPartition } from './bench-partition.mjs';
import { benchStream } from './bench-stream.mjs';
import { benchHealth } from './bench-health.mjs';
import { benchQuery } from './bench-query.mjs';

const only = process.argv[2];
const suites = { startup: benchStartup, ring: benchRing, migrate: benchMigrate, move: benchMove, partition: benchPartition, stream: benchStream, health: benchHealth, query: benchQuery };
for (const [name, run] of Object.entries(suites)) {
  if (only && only !== name) continue;
  await run();
}
