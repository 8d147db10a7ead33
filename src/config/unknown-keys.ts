import type { z } from 'zod/v3';

/**
 * Naming an unknown key in the config: the keys its object accepts are read
 * from the schema itself, so a suggestion can never name a key that does not
 * exist, and a new key is suggested as soon as it is added.
 */

/** The keys the object schema at `path` (as zod reports it: names and array indexes) accepts. */
export function knownKeysAt(schema: z.ZodTypeAny, path: ReadonlyArray<PropertyKey>): string[] {
  let node: Def | undefined = unwrap(defOf(schema));
  for (const segment of path) {
    if (node?.typeName === 'ZodObject') node = node.shape && defOfOptional(node.shape()[String(segment)]);
    else if (node?.typeName === 'ZodArray') node = node.type && defOf(node.type);
    else if (node?.typeName === 'ZodRecord') node = node.valueType && defOf(node.valueType);
    else return [];
    node = unwrap(node);
  }
  return node?.typeName === 'ZodObject' && node.shape ? Object.keys(node.shape()) : [];
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

/** The parts of zod's (v3) schema definitions that lead from one object to the next. */
interface Def {
  typeName: string;
  shape?: () => Record<string, z.ZodTypeAny>;
  /** An array's element. */
  type?: z.ZodTypeAny;
  valueType?: z.ZodTypeAny;
  /** Optional, default, nullable. */
  innerType?: z.ZodTypeAny;
  /** Refinements and transforms (ZodEffects). */
  schema?: z.ZodTypeAny;
}

function defOf(schema: z.ZodTypeAny): Def {
  return schema._def as Def;
}

function defOfOptional(schema: z.ZodTypeAny | undefined): Def | undefined {
  return schema && defOf(schema);
}

/** Through optional, default, nullable and refinements to the schema that holds the keys. */
function unwrap(node: Def | undefined): Def | undefined {
  while (node) {
    const inner = node.innerType ?? (node.typeName === 'ZodEffects' ? node.schema : undefined);
    if (!inner) return node;
    node = defOf(inner);
  }
  return node;
}
