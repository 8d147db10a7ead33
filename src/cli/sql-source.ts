import { readFile } from 'node:fs/promises';
import { UsageError } from '../errors.js';

export type SqlSource = 'argument' | 'file' | 'stdin';

const MISSING = 'no SQL: give a statement as the argument, with -f FILE, or on stdin ("-")';

/**
 * The SQL of `query` and `exec`: the argument, `-f FILE`, or stdin (`-`, or
 * no argument with stdin not a terminal: nobody types SQL into a waiting
 * command, so a terminal on stdin means the statement is missing).
 */
export async function readSql(argument: string | undefined, file: string | undefined): Promise<{ sql: string; source: SqlSource }> {
  if (argument !== undefined && file !== undefined) throw new UsageError('give the SQL either as the argument or with -f FILE, not both');
  if (argument !== undefined && argument !== '-') return { sql: argument, source: 'argument' };
  if (file !== undefined) {
    try {
      return { sql: await readFile(file, 'utf8'), source: 'file' };
    } catch (err) {
      throw new UsageError(`-f ${file}: ${(err as Error).message}`);
    }
  }
  if (argument === undefined && process.stdin.isTTY) throw new UsageError(MISSING);
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const sql = Buffer.concat(chunks).toString('utf8');
  if (!sql.trim()) throw new UsageError(MISSING);
  return { sql, source: 'stdin' };
}
