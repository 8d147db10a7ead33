import type { QueryColumn } from '../../engine/query/types.js';

/**
 * The names a merged row's fields go by in every format: `shard` first, then
 * each column's own name; a name already taken (a result column called
 * `shard`, or two columns both called `id`, as a join easily gives) gets the
 * first free suffix `_2`, `_3`, …, so no value overwrites another in a JSON
 * object and CSV headers name each field once.
 */
export function fieldNames(columns: readonly QueryColumn[]): string[] {
  const taken = new Set<string>(['shard']);
  const names = ['shard'];
  for (const column of columns) {
    let name = column.name;
    for (let n = 2; taken.has(name); n++) name = `${column.name}_${n}`;
    taken.add(name);
    names.push(name);
  }
  return names;
}
