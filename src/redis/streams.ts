/**
 * The Redis side of `stream info` / `stream trim`: discovery (SCAN on every
 * master), per-stream state, and the consumer-group-safe trim script. The
 * engine (src/engine/streams/) drives these; nothing here prints.
 *
 * XTRIM … ACKED (Redis 8.2+) is not used: `~` with it misbehaved until
 * redis#14623 and 7.x must work. A server could be detected as supporting it
 * from `INFO server` (`redis_version` ≥ the release carrying that fix), or by
 * `COMMAND DOCS XTRIM` listing the ACKED argument; the script here gives the
 * same guarantee on 7.x and reports which group holds the floor, which ACKED
 * would not.
 */
export { scanStreams, scanStreamKeys, type StreamKeyBatch } from './streams/scan.js';
export { streamInfo, type StreamInfo, type StreamGroupInfo, type StreamConsumerInfo } from './streams/info.js';
export {
  safeTrimStream,
  trimStreams,
  trimStreamBatches,
  type TrimCutoff,
  type SafeTrimOptions,
  type TrimStreamsOptions,
  type TrimFloor,
  type StreamTrimResult,
  type StreamTrimStatus,
} from './streams/trim.js';
export { RedisNodeError, keySlot, nodeOfKey, assertClusterServesAllSlots } from './streams/nodes.js';
export { compareStreamIds, minIdForMaxAge, normalizeStreamId, streamIdAgeMs, streamIdMs } from '../core/stream-id.js';
