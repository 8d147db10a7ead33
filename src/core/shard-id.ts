/**
 * Shard ids in the order people read them: shard-2 before shard-10. One
 * collator for the process: `localeCompare` with options builds a new one on
 * every call (measured: 68 ms of a health run sorting 32 shards' records).
 */
export const compareShardIds: (a: string, b: string) => number = new Intl.Collator('en', { numeric: true }).compare;
