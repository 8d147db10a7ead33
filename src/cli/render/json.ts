/**
 * JSON indented as JSON.stringify(value, null, 2) indents it, except that an
 * array of numbers, or of arrays of numbers (a move's hash ranges), stays on
 * one line: a plan over thousands of ranges is a few dozen lines, not
 * thousands, and is still one document for jq.
 */
export function formatJson(value: unknown, indent = ''): string {
  if (Array.isArray(value)) {
    if (!value.length) return '[]';
    if (value.every((v) => typeof v === 'number' || (Array.isArray(v) && v.every((n) => typeof n === 'number')))) return JSON.stringify(value);
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
