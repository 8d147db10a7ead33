import { redactText } from '../../config/redact.js';
import { splitStatements } from '../../core/sql-text.js';
import { UsageError } from '../../errors.js';

/**
 * What `exec` decides from the statement's text alone, before it touches a
 * server: whether it can run the way it was asked to, and what the audit log
 * may keep of it. Pure: text in, data out.
 */

// A COMMIT in the text would end the shard's transaction before the lease check that
// guards it; BEGIN would nest (a warning, then the text's COMMIT ends ours).
const TRANSACTION_CONTROL = /^(begin|start\s+transaction|commit|end|rollback|abort|prepare\s+transaction)\b/i;

export interface StatementShape {
  /** Top-level statements in the text, as psql would split it. */
  statements: number;
}

/**
 * Refuses (a usage error, nothing run) what exec cannot run as asked:
 * nothing to run; transaction control (each shard's transaction is exec's);
 * several statements with --param (the extended protocol binds one) or with
 * --no-transaction (a multi-statement query is one implicit transaction, which
 * is what VACUUM and CONCURRENTLY refuse).
 */
export function checkStatement(sql: string, options: { params: number; transaction: boolean }): StatementShape {
  const statements = splitStatements(sql);
  if (!statements.length) throw new UsageError('no SQL to run: give a statement as the argument, with -f FILE, or on stdin');
  const control = statements.find((s) => TRANSACTION_CONTROL.test(s.text));
  if (control) {
    throw new UsageError(`exec runs the SQL in a transaction of its own on each shard; leave out "${control.text.split(/\s+/)[0]}" (use --no-transaction for a statement that cannot run in a transaction)`);
  }
  if (statements.length > 1 && options.params > 0) {
    throw new UsageError(`--param binds one statement, and the SQL has ${statements.length}: run them one exec at a time, or without --param`);
  }
  if (statements.length > 1 && !options.transaction) {
    throw new UsageError(`--no-transaction runs one statement, and the SQL has ${statements.length}: run them one exec at a time`);
  }
  return { statements: statements.length };
}

/** How much of a statement the audit log keeps. */
const AUDIT_STATEMENT_CHARS = 4000;

/**
 * The statement as the audit log and the reports may show it: URL passwords
 * and password literals (`PASSWORD '…'`, `password=…` in a conninfo string,
 * `OPTIONS (password '…')`) replaced by ***, cut at 4000 characters.
 */
export function redactStatement(sql: string): string {
  const redacted = redactText(sql)
    .replace(/\b(password)(\s+)('(?:[^']|'')*'|[eE]'(?:[^'\\]|\\.|'')*'|\$([A-Za-z_]\w*)?\$[\s\S]*?\$\4\$)/gi, "$1$2'***'")
    .replace(/\b(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s']+)/gi, '$1***');
  const text = redacted.trim();
  return text.length > AUDIT_STATEMENT_CHARS ? `${text.slice(0, AUDIT_STATEMENT_CHARS)}… (${text.length - AUDIT_STATEMENT_CHARS} more characters)` : text;
}

/** The rows a command tag reports ("UPDATE 42" → 42, "INSERT 0 5" → 5), null for one without a count ("CREATE TABLE"). */
export function rowsOfTag(tag: string): number | null {
  const match = / (\d+)$/.exec(tag);
  return match ? Number(match[1]) : null;
}

/** The sum of the tags' counts; null when none has one (DDL). */
export function rowsOfTags(tags: string[]): number | null {
  const counts = tags.map(rowsOfTag).filter((n): n is number => n !== null);
  return counts.length ? counts.reduce((a, b) => a + b, 0) : null;
}

/**
 * The command line the audit log records for an exec: as typed, with URL and
 * statement passwords redacted and --param values replaced by *** (they are
 * data, perhaps personal: the log keeps how many, not what).
 */
export function maskedArguments(args: string[]): string[] {
  return args.map((arg, i) => (args[i - 1] === '--param' ? '***' : arg.startsWith('--param=') ? '--param=***' : redactStatement(arg)));
}

/** The audited command line followed by the statement that ran, so every audit row says what ran (also when it came from a file or stdin). */
export function withStatement(commandLine: string, statement: string): string {
  return `${commandLine} # sql: ${statement.replace(/\s+/g, ' ')}`;
}
