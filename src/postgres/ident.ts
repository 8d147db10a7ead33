/**
 * The one place identifiers become SQL text (SPEC safety invariant 4).
 * Config and flags are validated against these patterns before they get here;
 * quoting is done anyway, so a name can never close its quotes.
 */

/** Quotes any name PostgreSQL could hold (config names were already held to a stricter pattern). */
export function quoteIdent(name: string): string {
  if (name.length === 0 || name.includes('\0') || Buffer.byteLength(name) > 63) {
    throw new Error(`not a valid SQL identifier: ${JSON.stringify(name)}`);
  }
  return `"${name.replace(/"/g, '""')}"`;
}

export interface QualifiedName {
  schema: string;
  name: string;
}

/** "public.messages" or "messages" (schema public). */
export function parseQualifiedName(text: string): QualifiedName {
  const parts = text.split('.');
  if (parts.length === 1) return { schema: 'public', name: parts[0]! };
  if (parts.length === 2) return { schema: parts[0]!, name: parts[1]! };
  throw new Error(`not a valid table name: ${JSON.stringify(text)}`);
}

export function quoteQualified(text: string | QualifiedName): string {
  const q = typeof text === 'string' ? parseQualifiedName(text) : text;
  return `${quoteIdent(q.schema)}.${quoteIdent(q.name)}`;
}

/** A string literal, for the rare statement that cannot take parameters (DDL bodies). */
export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}
