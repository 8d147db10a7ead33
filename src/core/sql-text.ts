/**
 * Reading migration SQL the way PostgreSQL reads it, without a server: the
 * file's transaction directive, where its top-level statements start and end,
 * and which line and column an error position falls on. Pure: text in, data out.
 */

/** First line of a file that must run statement by statement, outside a transaction. */
export const NO_TRANSACTION_DIRECTIVE = '-- shardctl:no-transaction';

const BOM = '\uFEFF';

// Surrounding whitespace, letter case and the space after `--` (any amount, or none) are
// forgiven: `--shardctl:no-transaction` states the same intent. Anything else on the line
// (`-- shardctl:no-transactions`, trailing words) is not the directive, so the file runs
// in a transaction: if it needed not to, PostgreSQL says so loudly (CONCURRENTLY refuses).
const DIRECTIVE_LINE = /^--[ \t]*shardctl:no-transaction$/i;

export interface MigrationDirectives {
  transaction: boolean;
}

/** A file runs in one transaction unless its first line is {@link NO_TRANSACTION_DIRECTIVE}. */
export function migrationDirectives(sql: string): MigrationDirectives {
  const text = sql.startsWith(BOM) ? sql.slice(1) : sql;
  const firstLine = text.split(/\r\n|\n|\r/, 1)[0] ?? '';
  return { transaction: !DIRECTIVE_LINE.test(firstLine.trim()) };
}

export interface SqlStatement {
  /** From the statement's first token to its last, without the `;` and surrounding comments. */
  text: string;
  /** Index in the file (JavaScript string index) where `text` starts. */
  offset: number;
}

/**
 * The top-level statements of a file, split where psql would split them.
 *
 * The lexing follows PostgreSQL's scanner: '…' strings with '' (backslashes are
 * literal, as with standard_conforming_strings on, the default since 9.1), E'…'
 * strings with backslash escapes, "…" identifiers, $tag$…$tag$ bodies (a `$` inside
 * an identifier such as `a$$b` and a parameter such as `$1` open nothing), `--`
 * comments and nesting block comments. Like psql, a `;` inside parentheses or
 * inside the BEGIN ATOMIC … END body of CREATE [OR REPLACE] FUNCTION|PROCEDURE
 * does not end the statement; see {@link StatementBoundary} for how END is matched.
 *
 * An unterminated block comment is kept as (part of) a statement rather than
 * dropped, so the server rejects it instead of silently running less than was
 * written. psql meta-commands (`\i`, `:var`) and COPY … FROM STDIN data are not SQL
 * and are not recognised.
 */
export function splitStatements(sql: string): SqlStatement[] {
  const statements: SqlStatement[] = [];
  let start = -1;
  let end = -1;
  let boundary = new StatementBoundary();
  const finish = (): void => {
    if (start >= 0) statements.push({ text: sql.slice(start, end), offset: start });
    start = -1;
    boundary = new StatementBoundary();
  };

  // PostgreSQL would read a byte order mark as part of the first word; editors add one silently.
  for (const token of lexSql(sql, sql.startsWith(BOM) ? 1 : 0)) {
    if (token.kind === 'space' || (token.kind === 'comment' && token.closed)) continue;
    if (token.kind === 'symbol' && token.symbol === ';' && boundary.semicolonEndsStatement()) {
      finish();
      continue;
    }
    if (start < 0) start = token.start;
    end = token.end;
    boundary.see(token);
  }
  finish();
  return statements;
}

type SqlToken =
  | { kind: 'space'; start: number; end: number }
  | { kind: 'comment'; start: number; end: number; closed: boolean }
  | { kind: 'word'; start: number; end: number; word: string }
  /** A string, quoted identifier, dollar-quoted body, number or parameter. */
  | { kind: 'literal'; start: number; end: number }
  | { kind: 'symbol'; start: number; end: number; symbol: string };

/**
 * Whether a `;` ends the statement seen so far: the heuristic of psql's own
 * scanner (psqlscan.l). Not inside parentheses; and in a statement that starts
 * CREATE [OR REPLACE] FUNCTION|PROCEDURE, not between BEGIN ATOMIC and its END.
 * Inside that body CASE also closes with END, so at parenthesis depth 0 CASE
 * opens a level and END closes one. A keyword right after `.` or AS is a column
 * name or label (`r.end`, `AS end`) and counts for nothing.
 */
class StatementBoundary {
  #leadingWords: string[] = [];
  #parens = 0;
  #blockDepth = 0;
  #previous: SqlToken | undefined;

  semicolonEndsStatement(): boolean {
    return this.#parens === 0 && this.#blockDepth === 0;
  }

  see(token: SqlToken): void {
    if (token.kind === 'symbol' && token.symbol === '(') this.#parens++;
    else if (token.kind === 'symbol' && token.symbol === ')') this.#parens = Math.max(0, this.#parens - 1);
    else if (token.kind === 'word') {
      if (this.#leadingWords.length < 4) this.#leadingWords.push(token.word);
      if (this.#parens === 0 && this.#definesRoutine() && !this.#isLabelPosition()) this.#countBlockKeyword(token.word);
    }
    this.#previous = token;
  }

  #countBlockKeyword(word: string): void {
    const previous = this.#previous;
    if (word === 'atomic' && previous?.kind === 'word' && previous.word === 'begin') this.#blockDepth++;
    else if (word === 'case' && this.#blockDepth > 0) this.#blockDepth++;
    else if (word === 'end' && this.#blockDepth > 0) this.#blockDepth--;
  }

  #definesRoutine(): boolean {
    const [create, second, third, fourth] = this.#leadingWords;
    const routine = (word: string | undefined): boolean => word === 'function' || word === 'procedure';
    return create === 'create' && (routine(second) || (second === 'or' && third === 'replace' && routine(fourth)));
  }

  #isLabelPosition(): boolean {
    const previous = this.#previous;
    return (previous?.kind === 'symbol' && previous.symbol === '.') || (previous?.kind === 'word' && previous.word === 'as');
  }
}

// PostgreSQL's classes (scan.l): every byte >= 0x80 is an identifier character, `$` may
// continue an identifier but not start one, and a dollar-quote tag cannot start with a digit.
const SPACE = /[ \t\n\r\f\v]/;
const IDENT_START = /[A-Za-z_\u0080-\uffff]/;
const IDENT_PART = /[A-Za-z0-9_$\u0080-\uffff]/;
const NUMBER_PART = /[A-Za-z0-9_\u0080-\uffff]/;
const DIGIT = /[0-9]/;
const DOLLAR_DELIMITER = /\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/y;

function* lexSql(sql: string, from: number): Generator<SqlToken> {
  let i = from;
  while (i < sql.length) {
    const start = i;
    const c = sql[i]!;
    const next = sql[i + 1];
    if (SPACE.test(c)) {
      i = skipWhile(sql, i, SPACE);
      yield { kind: 'space', start, end: i };
    } else if (c === '-' && next === '-') {
      i = lineCommentEnd(sql, i);
      yield { kind: 'comment', start, end: i, closed: true };
    } else if (c === '/' && next === '*') {
      const end = blockCommentEnd(sql, i);
      i = end ?? sql.length;
      yield { kind: 'comment', start, end: i, closed: end !== undefined };
    } else if (c === "'" || c === '"') {
      i = quotedEnd(sql, i);
      yield { kind: 'literal', start, end: i };
    } else if ((c === 'E' || c === 'e') && next === "'") {
      i = escapeStringEnd(sql, i + 1);
      yield { kind: 'literal', start, end: i };
    } else if (IDENT_START.test(c)) {
      i = skipWhile(sql, i, IDENT_PART);
      yield { kind: 'word', start, end: i, word: sql.slice(start, i).toLowerCase() };
    } else if (DIGIT.test(c)) {
      i = skipWhile(sql, i, NUMBER_PART);
      yield { kind: 'literal', start, end: i };
    } else if (c === '$') {
      i = dollarEnd(sql, i);
      if (i > start + 1) yield { kind: 'literal', start, end: i };
      else yield { kind: 'symbol', start, end: i, symbol: c };
    } else {
      i++;
      yield { kind: 'symbol', start, end: i, symbol: c };
    }
  }
}

function skipWhile(sql: string, from: number, pattern: RegExp): number {
  let i = from;
  while (i < sql.length && pattern.test(sql[i]!)) i++;
  return i;
}

function lineCommentEnd(sql: string, from: number): number {
  let i = from;
  while (i < sql.length && sql[i] !== '\n' && sql[i] !== '\r') i++;
  return i;
}

/** Index after the `*\/` that closes the comment opened at `from`, counting nested `/*`. */
function blockCommentEnd(sql: string, from: number): number | undefined {
  let depth = 0;
  let i = from;
  while (i < sql.length) {
    if (sql.startsWith('/*', i)) {
      depth++;
      i += 2;
    } else if (sql.startsWith('*/', i)) {
      depth--;
      i += 2;
      if (depth === 0) return i;
    } else i++;
  }
  return undefined;
}

/** '…' or "…" opened at `from`, where a doubled quote stands for itself. */
function quotedEnd(sql: string, from: number): number {
  const quote = sql[from]!;
  let i = from + 1;
  for (;;) {
    const close = sql.indexOf(quote, i);
    if (close < 0) return sql.length;
    if (sql[close + 1] !== quote) return close + 1;
    i = close + 2;
  }
}

/** The body of E'…' opened by the quote at `from`: a backslash escapes the next character. */
function escapeStringEnd(sql: string, from: number): number {
  let i = from + 1;
  while (i < sql.length) {
    const c = sql[i];
    if (c === '\\') i += 2;
    else if (c === "'" && sql[i + 1] === "'") i += 2;
    else if (c === "'") return i + 1;
    else i++;
  }
  return sql.length;
}

/** After `$tag$…$tag$` or a parameter `$1` at `from`; `from + 1` when the `$` is just a character. */
function dollarEnd(sql: string, from: number): number {
  DOLLAR_DELIMITER.lastIndex = from;
  const delimiter = DOLLAR_DELIMITER.exec(sql)?.[0];
  if (delimiter !== undefined) {
    const close = sql.indexOf(delimiter, from + delimiter.length);
    return close < 0 ? sql.length : close + delimiter.length;
  }
  return DIGIT.test(sql[from + 1] ?? '') ? skipWhile(sql, from + 1, DIGIT) : from + 1;
}

export interface SqlLocation {
  /** 1-based. */
  line: number;
  /** 1-based, in characters (code points), as PostgreSQL counts. */
  column: number;
  /** The line, without its line break. */
  lineText: string;
  /** Spaces (tabs where lineText has them) up to the column, then `^`. */
  caret: string;
}

/**
 * Where PostgreSQL's `error.position` (1-based, in characters, not UTF-16 units)
 * falls in `sql`. Positions before the start clamp to the first character; past
 * the end, to just after the last one (where "at end of input" errors point).
 * `\n`, `\r\n` and a lone `\r` each end a line.
 */
export function sqlErrorLocation(sql: string, position: number): SqlLocation {
  const chars = Array.from(sql);
  let index = Number.isNaN(position) ? 0 : Math.min(Math.max(Math.trunc(position) - 1, 0), chars.length);
  if (chars[index] === '\n' && chars[index - 1] === '\r') index--;

  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < index; i++) {
    const c = chars[i];
    if (c === '\n' || (c === '\r' && chars[i + 1] !== '\n')) {
      line++;
      lineStart = i + 1;
    }
  }
  let lineEnd = lineStart;
  while (lineEnd < chars.length && chars[lineEnd] !== '\n' && chars[lineEnd] !== '\r') lineEnd++;

  const before = chars.slice(lineStart, index);
  return {
    line,
    column: before.length + 1,
    lineText: chars.slice(lineStart, lineEnd).join(''),
    caret: `${before.map((c) => (c === '\t' ? '\t' : ' ')).join('')}^`,
  };
}

export interface SqlErrorReport {
  file: string;
  /** The whole file's text. */
  sql: string;
  /** PostgreSQL's 1-based character position in the query that failed. */
  position?: number;
  /** When that query was a statement split out of the file: its `offset` from {@link splitStatements}. */
  statementOffset?: number;
  message: string;
  code?: string;
  detail?: string;
  hint?: string;
  where?: string;
}

/**
 * A PostgreSQL error as lines for a person: `file:line:column: message`, the
 * source line with a caret under the position, then code, detail, hint and where
 * when present. Without a position the first line is `file: message`.
 */
export function formatSqlError(report: SqlErrorReport): string[] {
  const lines: string[] = [];
  if (report.position === undefined) {
    lines.push(`${report.file}: ${report.message}`);
  } else {
    const offset = report.statementOffset ?? 0;
    const at = sqlErrorLocation(report.sql, characterCount(report.sql.slice(0, offset)) + report.position);
    const gutter = String(at.line);
    lines.push(
      `${report.file}:${at.line}:${at.column}: ${report.message}`,
      `${gutter} | ${at.lineText}`.trimEnd(),
      `${' '.repeat(gutter.length)} | ${at.caret}`,
    );
  }
  const fields: Array<[string, string | undefined]> = [
    ['code', report.code],
    ['detail', report.detail],
    ['hint', report.hint],
    ['where', report.where],
  ];
  for (const [label, value] of fields) if (value) lines.push(...labelled(label, value));
  return lines;
}

function characterCount(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

/** `label: value`, with further lines of a multi-line value (PL/pgSQL context) indented under the first. */
function labelled(label: string, value: string): string[] {
  const [first, ...rest] = value.split(/\r\n|\n|\r/);
  const indent = ' '.repeat(label.length + 2);
  return [`${label}: ${first}`, ...rest.map((line) => `${indent}${line}`)];
}
