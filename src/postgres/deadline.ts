import type { PgClient } from './connect.js';

/**
 * Sessions bounded in time (health's, query's): what they throw when the
 * server has not answered by the deadline, and how they stop waiting on it.
 */
export class DeadlineExceeded extends Error {
  constructor(label: string, timeoutMs: number) {
    super(`${label}: no answer within ${(timeoutMs / 1000).toFixed(timeoutMs % 1000 ? 1 : 0)}s`);
  }
}

/**
 * Drops a session's socket at once: whatever waits on it fails. A hung server
 * (SIGSTOPped, or behind a firewall that drops packets) never answers the
 * Terminate that `end()` sends, so this is the only way to stop waiting.
 */
export function destroySocket(client: PgClient | undefined): void {
  (client as unknown as { connection?: { stream?: { destroy(): void } } } | undefined)?.connection?.stream?.destroy();
}
