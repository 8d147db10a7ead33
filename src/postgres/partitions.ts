/**
 * Time-partition maintenance on one PostgreSQL database (one shard): the
 * catalog reads, the lock-safe DDL and the setup checks `partition rotate /
 * list / setup` call per shard. Every statement is in src/postgres/partitions/.
 */
export * from './partitions/catalog.js';
export * from './partitions/lock-retries.js';
export * from './partitions/create.js';
export * from './partitions/retire.js';
export * from './partitions/setup-check.js';
