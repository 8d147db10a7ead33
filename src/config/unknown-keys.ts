import type { z } from 'zod';

/**
 * Naming an unknown key in the config: the keys its object accepts are read
 * from the schema itself, so a suggestion can never name a key that does not
 * exist, and a new key is suggested as soon as it is added.
 */

/** The keys the object schema at `path` (as zod reports it: names and array indexes) accepts. */
export function knownKeysAt(schema: z.ZodType, path: ReadonlyArray<PropertyKey>): string[] {
  let node: Def | undefined = defOf(schema);
  for (const segment of path) {
    node = unwrap(node);
    if (node?.type === 'object') node = node.shape?.[String(segment)] && defOf(node.shape[String(segment)]!);
    else if (node?.type === 'array') node = node.element && defOf(node.element);
    else if (node?.type === 'record') node = node.valueType && defOf(node.valueType);
    else return [];
  }
  node = unwrap(node);
  return node?.type === 'object' && node.shape ? Object.keys(node.shape) : [];
}

/** `unknown key`, with `(did you mean "url"?)` when one known key is close enough to be the intended one. */
export function unknownKeyMessage(key: string, known: readonly string[]): string {
  const suggestion = closestKey(key, known);
  return suggestion ? `unknown key (did you mean "${suggestion}"?)` : 'unknown key';
}

/**
 * The known key fewest edits away (case ignored: `batchsize` is `batchSize`),
 * if within a third of its length (at least 1): `uri` → `url`, `wieght` → `weight`.
 */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  let best: { key: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    const limit = Math.max(1, Math.floor(Math.max(key.length, candidate.length) / 3));
    if (distance <= limit && (!best || distance < best.distance)) best = { key: candidate, distance };
  }
  return best?.key;
}

/** Insertions, deletions, substitutions and swaps of two neighbours (optimal string alignment). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/** The parts of zod's schema definitions that lead from one object to the next. */
interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  valueType?: z.ZodType;
  innerType?: z.ZodType;
  in?: z.ZodType;
}

function defOf(schema: z.ZodType): Def {
  return (schema as unknown as { _zod: { def: Def } })._zod.def;
}

/** Through optional, default, prefault, nullable and pipes to the schema that holds the keys. */
function unwrap(node: Def | undefined): Def | undefined {
  while (node) {
    const inner = node.innerType ?? (node.type === 'pipe' ? node.in : undefined);
    if (!inner) return node;
    node = defOf(inner);
  }
  return node;
}
