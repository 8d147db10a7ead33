/**
 * JSON indented as JSON.stringify(value, null, 2) indents it, except that an
 * array of numbers, or of arrays of numbers (a move's hash ranges), stays on
 * one line: a plan over thousands of ranges is a few dozen lines, not
 * thousands, and is still one document for jq.
 *
 * A value with no such array (a health report of thousands of results) is
 * laid out the same by JSON.stringify itself, which is many times faster
 * than building it piece by piece here: `standardLayout` says when, and only
 * the parts that need the compact layout are walked.
 */
export function formatJson(value: unknown, indent = ''): string {
  if (standardLayout(value)) {
    const text = JSON.stringify(value, null, 2) ?? 'null';
    return indent ? text.replaceAll('\n', `\n${indent}`) : text;
  }
  if (Array.isArray(value)) {
    if (!value.length) return '[]';
    if (compactArray(value)) return JSON.stringify(value);
    const inner = indent + '  ';
    return `[\n${value.map((v) => inner + (v === undefined || typeof v === 'function' ? 'null' : formatJson(v, inner))).join(',\n')}\n${indent}]`;
  }
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON !== 'function') {
    const inner = indent + '  ';
    const entries = Object.entries(value).filter(([, v]) => v !== undefined && typeof v !== 'function');
    if (!entries.length) return '{}';
    return `{\n${entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${formatJson(v, inner)}`).join(',\n')}\n${indent}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** Kept on one line: a non-empty array of numbers, or of arrays of numbers. */
function compactArray(value: unknown[]): boolean {
  return value.length > 0 && value.every((v) => typeof v === 'number' || (Array.isArray(v) && v.every((n) => typeof n === 'number')));
}

/**
 * Whether JSON.stringify(value, null, 2) lays `value` out exactly as
 * formatJson does: nowhere an array to keep on one line, nor a value the two
 * treat differently (toJSON, whose result formatJson does not indent; a
 * symbol property, which formatJson writes as null; a boxed primitive, a bigint).
 */
function standardLayout(value: unknown): boolean {
  if (value === null) return true;
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'undefined':
    case 'function':
      return true;
    case 'object':
      break;
    default:
      return false;
  }
  if (Array.isArray(value)) {
    if (compactArray(value)) return false;
    for (const v of value) if (typeof v !== 'symbol' && !standardLayout(v)) return false;
    return true;
  }
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function' || value instanceof Number || value instanceof String || value instanceof Boolean) return false;
  for (const key in value) {
    if (!Object.prototype.hasOwnProperty.call(value, key)) continue;
    const v = (value as Record<string, unknown>)[key];
    if (typeof v === 'symbol' || !standardLayout(v)) return false;
  }
  return true;
}
