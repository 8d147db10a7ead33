/**
 * Where the integration tests look for servers (SPEC "Tests and benchmarks").
 * Kept apart from databases.ts, which imports vitest: global setup runs outside
 * a test worker and must not load it.
 */
export const DEFAULT_TEST_PG_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
export const DEFAULT_TEST_REDIS_URL = 'redis://127.0.0.1:6379';
