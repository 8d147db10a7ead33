/**
 * How often a lock holder refreshes its lease, and how long without a
 * confirmed heartbeat it counts the lease as lost, from lockStaleAfter (the
 * age at which other runs call a holder stale). The holder must give up well
 * before others may take over: at half the stale age, and at most 30 s, so
 * that it also stops before the server's TCP keepalives (about a minute)
 * could free its lock behind its back. Default 2m: a beat every 5 s, lost
 * after 30 s.
 */
export function leaseTimings(staleAfterMs: number): { beatMs: number; lossAfterMs: number } {
  return {
    beatMs: Math.max(50, Math.min(5_000, staleAfterMs / 8)),
    lossAfterMs: Math.max(200, Math.min(30_000, staleAfterMs / 2)),
  };
}
