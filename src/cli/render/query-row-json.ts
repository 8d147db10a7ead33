import { pgJsonEncoder } from '../../core/pg-values.js';
import type { QueryColumn, QueryRow } from '../../engine/query/types.js';
import { fieldNames } from './query-keys.js';

/**
 * One merged row as a JSON object's text, `{"shard":"s1","id":1,…}`, for
 * NDJSON and the JSON document. Everything that does not depend on the row
 * (each field's escaped `,"key":`, each column's encoder) is computed once,
 * so a row costs one string built by appending: this is the hot loop of a
 * 2M-row export.
 */
export class RowJsonEncoder {
  readonly #keys: string[];
  readonly #encoders: Array<(text: string) => string>;
  #lastShard = '';
  #lastShardJson = '""';

  constructor(columns: readonly QueryColumn[]) {
    const names = fieldNames(columns).slice(1);
    this.#keys = names.map((name) => `,${JSON.stringify(name)}:`);
    this.#encoders = columns.map((c) => pgJsonEncoder(c.typeOid));
  }

  encode(row: QueryRow): string {
    // Rows come in runs from one shard at a time (a cursor's batch): escape its id once per run.
    if (row.shard !== this.#lastShard) {
      this.#lastShard = row.shard;
      this.#lastShardJson = JSON.stringify(row.shard);
    }
    let text = '{"shard":' + this.#lastShardJson;
    const values = row.values;
    const keys = this.#keys;
    const encoders = this.#encoders;
    for (let i = 0; i < keys.length; i++) {
      const value = values[i];
      text += keys[i]! + (value === null || value === undefined ? 'null' : encoders[i]!(value));
    }
    return text + '}';
  }
}
