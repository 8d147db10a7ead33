import { UsageError } from '../errors.js';
import type { RingMember, RingSpec } from './ring.js';

export interface RingChangeSpec {
  add?: RingMember[];
  remove?: string[];
  weights?: RingMember[];
  vnodes?: number;
}

/**
 * The ring after adding, removing and reweighting members (and, optionally, a
 * new vnodes); members left with weight 0 own nothing and drop out. Refuses
 * changes that make no sense. Used by `shard simulate` and by the planner.
 */
export function applyRingChange(before: RingSpec, change: RingChangeSpec): RingSpec {
  const members = new Map(before.members.map((m) => [m.id, m.weight]));
  for (const m of change.add ?? []) {
    if (members.has(m.id)) throw new UsageError(`--add ${m.id}: already in the ring`);
    members.set(m.id, m.weight);
  }
  for (const id of change.remove ?? []) {
    if (!members.delete(id)) throw new UsageError(`--remove ${id}: not in the ring`);
  }
  for (const m of change.weights ?? []) {
    if (!members.has(m.id)) throw new UsageError(`--weight ${m.id}: not in the ring`);
    members.set(m.id, m.weight);
  }
  const after = [...members].filter(([, w]) => w > 0).map(([id, weight]) => ({ id, weight }));
  if (!after.length) throw new UsageError('the change leaves no shard in the ring');
  return { vnodes: change.vnodes ?? before.vnodes, members: after };
}
