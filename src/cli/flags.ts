import { InvalidArgumentError } from 'commander';
import { parseDuration } from '../config/duration.js';
import { SHARD_ID_PATTERN } from '../config/patterns.js';
import type { RingMember } from '../core/ring.js';

/** Parsers for flags several commands share; a bad value is a usage error (exit 2). */

export function shardIdFlag(value: string): string {
  if (!SHARD_ID_PATTERN.test(value)) throw new InvalidArgumentError(`"${value}" is not a shard id (letters, digits, "-", "_")`);
  return value;
}

export function weightFlag(text: string): number {
  const w = Number(text);
  if (!Number.isFinite(w) || w < 0 || w > 1000) throw new InvalidArgumentError(`"${text}" is not a weight (a number from 0 to 1000)`);
  return w;
}

/** `ID[:W]`. */
export function memberFlag(value: string): RingMember {
  const [id = '', weight] = value.split(':');
  return { id: shardIdFlag(id), weight: weight === undefined ? 1 : weightFlag(weight) };
}

export function collectMember(value: string, previous: RingMember[]): RingMember[] {
  return [...previous, memberFlag(value)];
}

export function collectShardId(value: string, previous: string[]): string[] {
  return [...previous, shardIdFlag(value)];
}

/** `ID=W`, repeatable. */
export function collectWeight(value: string, previous: RingMember[]): RingMember[] {
  const [id = '', weight] = value.split('=');
  if (weight === undefined) throw new InvalidArgumentError(`expected ID=WEIGHT, got "${value}"`);
  return [...previous, { id: shardIdFlag(id), weight: weightFlag(weight) }];
}

export function durationFlag(text: string): number {
  try {
    return parseDuration(text);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}
