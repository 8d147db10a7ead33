import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  NO_TRANSACTION_DIRECTIVE,
  formatSqlError,
  migrationDirectives,
  splitStatements,
  sqlErrorLocation,
} from '../../src/core/sql-text.js';

const texts = (sql: string): string[] => splitStatements(sql).map((s) => s.text);

describe('migrationDirectives', () => {
  it('a file runs in one transaction by default', () => {
    expect(migrationDirectives('CREATE TABLE t (id int);\n')).toEqual({ transaction: true });
    expect(migrationDirectives('')).toEqual({ transaction: true });
  });

  it('the directive on the first line turns the transaction off', () => {
    expect(NO_TRANSACTION_DIRECTIVE).toBe('-- shardctl:no-transaction');
    expect(migrationDirectives(`${NO_TRANSACTION_DIRECTIVE}\nCREATE INDEX CONCURRENTLY i ON t (id);\n`)).toEqual({ transaction: false });
    expect(migrationDirectives(NO_TRANSACTION_DIRECTIVE)).toEqual({ transaction: false });
  });

  it('surrounding whitespace, CRLF and a leading byte order mark still count', () => {
    for (const sql of [
      '   -- shardctl:no-transaction   \nSELECT 1;',
      '\t-- shardctl:no-transaction\r\nSELECT 1;',
      '\uFEFF-- shardctl:no-transaction\nSELECT 1;',
      '\uFEFF  -- shardctl:no-transaction \r\n',
    ]) {
      expect(migrationDirectives(sql), JSON.stringify(sql)).toEqual({ transaction: false });
    }
  });

  it('the directive is case-insensitive and the space after -- is optional', () => {
    for (const line of ['-- SHARDCTL:NO-TRANSACTION', '-- ShardCtl:No-Transaction', '--shardctl:no-transaction', '--   shardctl:no-transaction', '--\tshardctl:no-transaction']) {
      expect(migrationDirectives(`${line}\nSELECT 1;`), line).toEqual({ transaction: false });
    }
  });

  it('the directive anywhere but the first line does not count', () => {
    for (const sql of [
      `SELECT 1;\n${NO_TRANSACTION_DIRECTIVE}\n`,
      `\n${NO_TRANSACTION_DIRECTIVE}\n`,
      `\uFEFF\n${NO_TRANSACTION_DIRECTIVE}\n`,
      `-- 0002_add_index.sql\n${NO_TRANSACTION_DIRECTIVE}\n`,
      `SELECT 1; ${NO_TRANSACTION_DIRECTIVE}\n`,
    ]) {
      expect(migrationDirectives(sql), JSON.stringify(sql)).toEqual({ transaction: true });
    }
  });

  it('near misses of the directive do not count', () => {
    for (const line of [
      '-- shardctl:no-transactions',
      '-- shardctl: no-transaction',
      '-- shardctl:no_transaction',
      '-- shardctl:no-transaction because of CONCURRENTLY',
      '-- shardctl:no-transaction;',
      '--- shardctl:no-transaction',
      '- - shardctl:no-transaction',
      '/* shardctl:no-transaction */',
      'shardctl:no-transaction',
    ]) {
      expect(migrationDirectives(`${line}\nSELECT 1;`), line).toEqual({ transaction: true });
    }
  });
});

describe('splitStatements', () => {
  it('splits top-level statements at semicolons, without the semicolon', () => {
    const sql = 'CREATE TABLE a (id int);\nCREATE TABLE b (id int);\n';
    expect(splitStatements(sql)).toEqual([
      { text: 'CREATE TABLE a (id int)', offset: 0 },
      { text: 'CREATE TABLE b (id int)', offset: 25 },
    ]);
  });

  it('keeps a final statement that has no semicolon', () => {
    expect(texts('SELECT 1;\nSELECT 2\n')).toEqual(['SELECT 1', 'SELECT 2']);
    expect(texts('SELECT 1')).toEqual(['SELECT 1']);
  });

  it('drops empty statements and statements that are only comments or whitespace', () => {
    expect(texts('')).toEqual([]);
    expect(texts(' \n\t ')).toEqual([]);
    expect(texts(';;\n ; SELECT 1;; ;')).toEqual(['SELECT 1']);
    expect(texts('-- nothing here\n/* nor here */;\nSELECT 1;\n-- trailing note\n')).toEqual(['SELECT 1']);
    expect(texts(`${NO_TRANSACTION_DIRECTIVE}\n`)).toEqual([]);
  });

  it('starts a statement at its first token and ends it at its last, past surrounding comments', () => {
    const sql = '-- why\n/* more */  SELECT /* kept */ 1 -- gone\n ;';
    const [statement] = splitStatements(sql);
    expect(statement).toEqual({ text: 'SELECT /* kept */ 1', offset: sql.indexOf('SELECT') });
  });

  it('offsets index the original text, CRLF and byte order mark included', () => {
    const sql = '\uFEFFSELECT 1;\r\n\r\n  SELECT 2;\r\n';
    const statements = splitStatements(sql);
    expect(statements).toEqual([
      { text: 'SELECT 1', offset: 1 },
      { text: 'SELECT 2', offset: 16 },
    ]);
    for (const s of statements) expect(sql.slice(s.offset, s.offset + s.text.length)).toBe(s.text);
  });

  it('does not split inside a single-quoted string, where doubled quotes escape', () => {
    expect(texts("INSERT INTO t VALUES ('it''s; fine', ';');\nSELECT 2;")).toEqual([
      "INSERT INTO t VALUES ('it''s; fine', ';')",
      'SELECT 2',
    ]);
  });

  it('treats a backslash in a standard string as an ordinary character', () => {
    expect(texts("SELECT '\\'; SELECT 2;")).toEqual(["SELECT '\\'", 'SELECT 2']);
  });

  it('honours backslash escapes in E-strings, with either case of prefix', () => {
    expect(texts("SELECT E'it\\'s; fine'; SELECT 2;")).toEqual(["SELECT E'it\\'s; fine'", 'SELECT 2']);
    expect(texts("SELECT e'\\\\'; SELECT 2;")).toEqual(["SELECT e'\\\\'", 'SELECT 2']);
    // '' inside an E-string is a quote too, so the \' after it is still escaped.
    expect(texts("SELECT E'a''\\';b'; SELECT 2;")).toEqual(["SELECT E'a''\\';b'", 'SELECT 2']);
  });

  it('does not take the final e of an identifier for an E-string prefix', () => {
    // `type'\'` is the identifier `type` then the standard string '\'.
    expect(texts("SELECT type'\\'; SELECT 2;")).toEqual(["SELECT type'\\'", 'SELECT 2']);
  });

  it('does not split inside a double-quoted identifier, where doubled quotes escape', () => {
    expect(texts('CREATE TABLE "we""ird;name" (";" int);\nSELECT 2;')).toEqual([
      'CREATE TABLE "we""ird;name" (";" int)',
      'SELECT 2',
    ]);
  });

  it('does not split inside $$ or $tag$ dollar-quoted bodies', () => {
    const fn = `CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  RAISE NOTICE 'a;b';
  RETURN 1;
END
$$`;
    expect(texts(`${fn};\nSELECT f();`)).toEqual([fn, 'SELECT f()']);

    const tagged = "DO $body$ BEGIN PERFORM $$;$$; EXECUTE $x$ SELECT ';' $x$; END $body$";
    expect(texts(`${tagged}; SELECT 2`)).toEqual([tagged, 'SELECT 2']);
  });

  it('closes a dollar quote only with the same tag', () => {
    expect(texts('SELECT $a$ $b$ ; $B$ ; $a $a$; SELECT 2')).toEqual(['SELECT $a$ $b$ ; $B$ ; $a $a$', 'SELECT 2']);
  });

  it('reads $1 as a parameter and a $ inside an identifier as part of it, not as quotes', () => {
    expect(texts('PREPARE p(int) AS SELECT $1; SELECT $2 FROM t; SELECT 3')).toEqual([
      'PREPARE p(int) AS SELECT $1',
      'SELECT $2 FROM t',
      'SELECT 3',
    ]);
    // A tag cannot start with a digit: `$1$` is the parameter $1 and a `$`, not a delimiter.
    expect(texts('SELECT $1$; SELECT 2; SELECT $1$')).toEqual(['SELECT $1$', 'SELECT 2', 'SELECT $1$']);
    // PostgreSQL lexes `a$$b` as one identifier: no dollar quote opens there.
    expect(texts('SELECT a$$b; SELECT 2; SELECT $$b')).toEqual(['SELECT a$$b', 'SELECT 2', 'SELECT $$b']);
  });

  it('hides semicolons and quotes in a line comment until the end of the line', () => {
    expect(texts("SELECT 1 -- not here; nor ' here\nFROM t; SELECT 2")).toEqual([
      "SELECT 1 -- not here; nor ' here\nFROM t",
      'SELECT 2',
    ]);
    expect(texts('SELECT 1 -- /* not a block comment\n; SELECT 2')).toEqual(['SELECT 1', 'SELECT 2']);
    expect(texts('SELECT 1 -- a lone CR ends the line too\r; SELECT 2')).toEqual(['SELECT 1', 'SELECT 2']);
  });

  it('nests block comments as PostgreSQL does', () => {
    expect(texts('SELECT /* outer /* inner; */ still comment; */ 1; SELECT 2')).toEqual([
      'SELECT /* outer /* inner; */ still comment; */ 1',
      'SELECT 2',
    ]);
    expect(texts("/* a /* b */ c; ' */ SELECT 1; SELECT 2")).toEqual(['SELECT 1', 'SELECT 2']);
  });

  it('keeps an unterminated block comment so the server reports it instead of skipping what follows', () => {
    expect(texts('SELECT 1; /* forgot to close\nDROP TABLE t;')).toEqual(['SELECT 1', '/* forgot to close\nDROP TABLE t;']);
  });

  it('keeps an unterminated string to the end of the file', () => {
    expect(texts("SELECT 'oops; SELECT 2;")).toEqual(["SELECT 'oops; SELECT 2;"]);
  });

  it('does not split at a semicolon inside parentheses, as psql does not', () => {
    expect(texts('SELECT (1; 2); SELECT 3')).toEqual(['SELECT (1; 2)', 'SELECT 3']);
  });

  it('keeps a BEGIN ATOMIC body with CASE … END inside as one statement', () => {
    const fn = `CREATE FUNCTION sign_word(x int) RETURNS text LANGUAGE sql
BEGIN ATOMIC
  SELECT CASE WHEN x > 0 THEN 'positive;' WHEN x < 0 THEN 'negative' ELSE 'zero' END;
  SELECT CASE WHEN x IS NULL THEN CASE WHEN true THEN 'a' END END;
END`;
    expect(texts(`${fn};\nSELECT sign_word(1);`)).toEqual([fn, 'SELECT sign_word(1)']);
  });

  it('recognises CREATE OR REPLACE PROCEDURE and keywords in any case, with comments between', () => {
    const proc = `create or replace procedure p() language sql
begin /* the body */ atomic
  insert into t values (1);
  update t set x = case x when 1 then 2 end;
end`;
    expect(texts(`${proc};\nCALL p();`)).toEqual([proc, 'CALL p()']);
  });

  it('does not take a column named end for the end of a BEGIN ATOMIC body', () => {
    const fn = `CREATE FUNCTION last_end() RETURNS int LANGUAGE sql
BEGIN ATOMIC
  SELECT r.end FROM ranges r;
  SELECT max(x) AS end FROM t;
END`;
    expect(texts(`${fn}; SELECT 2`)).toEqual([fn, 'SELECT 2']);
  });

  it('reads a transaction BEGIN … END outside a function body as ordinary statements', () => {
    expect(texts('BEGIN; CREATE TABLE t (id int); END; SELECT begin atomic FROM t; SELECT 2')).toEqual([
      'BEGIN',
      'CREATE TABLE t (id int)',
      'END',
      'SELECT begin atomic FROM t',
      'SELECT 2',
    ]);
  });

  describe('generated files', () => {
    // Words that steer the BEGIN ATOMIC heuristic are left out of random text; the
    // routine statements below use them on purpose.
    const steering = new Set(['begin', 'atomic', 'case', 'end', 'create', 'or', 'replace', 'function', 'procedure', 'as']);
    const word = fc.stringMatching(/^[A-Za-zé_][A-Za-z0-9_$é]{0,6}$/).filter((w) => !steering.has(w.toLowerCase()));
    const number = fc.nat({ max: 99999 }).map(String);
    const parameter = fc.integer({ min: 1, max: 99 }).map((n) => `$${n}`);
    const tricky = ['a', ' ', ';', "'", '"', '$', '\\', '-', '/', '*', '\n', 'é', '\u{1F600}'];
    const standardString = fc.string({ unit: fc.constantFrom(...tricky), maxLength: 8 }).map((s) => `'${s.replaceAll("'", "''")}'`);
    const eString = fc
      .array(fc.constantFrom('a', ';', '"', '$', '-', '/*', '\n', "\\'", "''", '\\\\', '\\n'), { maxLength: 6 })
      .chain((pieces) => fc.constantFrom('E', 'e').map((prefix) => `${prefix}'${pieces.join('')}'`));
    const quotedIdentifier = fc.string({ unit: fc.constantFrom(...tricky), minLength: 1, maxLength: 6 }).map((s) => `"${s.replaceAll('"', '""')}"`);
    const dollarString = fc
      .tuple(fc.constantFrom('', 'body', 'a', 'fn_1', 'Tag'), fc.string({ unit: fc.constantFrom('a', 'b', '1', '_', '$', ';', "'", '\n', '-'), maxLength: 10 }))
      .filter(([tag, body]) => (body + `$${tag}$`).indexOf(`$${tag}$`) === body.length)
      .map(([tag, body]) => `$${tag}$${body}$${tag}$`);
    const operator = fc.constantFrom('=', '+', ',', '::', '<>', '*', '.', '||');
    const simpleAtom = fc.oneof(word, word, number, parameter, standardString, eString, quotedIdentifier, dollarString, operator);

    const whitespace = fc.string({ unit: fc.constantFrom(' ', '\t', '\n', '\r\n'), minLength: 1, maxLength: 3 });
    const commentBody = fc.string({ unit: fc.constantFrom('a', ' ', ';', "'", '"', '$', '-', '\n', 'E'), maxLength: 6 });
    const blockComment = fc
      .tuple(commentBody, fc.option(commentBody), commentBody)
      .map(([a, inner, b]) => (inner === null ? `/*${a}*/` : `/*${a}/*${inner}*/${b}*/`));
    const lineComment = fc
      .string({ unit: fc.constantFrom('a', ' ', ';', "'", '"', '$', '/*', '*/'), maxLength: 6 })
      .map((s) => `--${s}\n`);
    const separator = fc.oneof(whitespace, whitespace, blockComment, lineComment);
    const gap = fc.array(separator, { maxLength: 3 }).map((parts) => parts.join(''));

    function joined(atoms: fc.Arbitrary<string>, minLength: number): fc.Arbitrary<string> {
      return fc
        .tuple(fc.array(atoms, { minLength, maxLength: 6 }), fc.array(separator, { minLength: 6, maxLength: 6 }))
        .map(([tokens, seps]) => tokens.map((t, i) => (i === 0 ? t : `${seps[i]}${t}`)).join(''));
    }

    // A `;` inside parentheses belongs to the statement, as it does for psql.
    const group = joined(fc.oneof(simpleAtom, fc.constant(';')), 0).map((inside) => `(${inside})`);
    const atom = fc.oneof({ arbitrary: simpleAtom, weight: 5 }, { arbitrary: group, weight: 1 });
    const plainStatement = joined(atom, 1);

    // Operands, not operators: `. END` would make END a column label (and is not SQL anyway).
    const operand = fc.oneof(word, number, standardString, eString, quotedIdentifier, dollarString, group);
    const caseExpression = fc
      .tuple(operand, operand, fc.option(operand), fc.boolean())
      .map(([when, then, otherwise, nested]) => {
        const inner = `CASE WHEN ${when} THEN ${then}${otherwise === null ? '' : ` ELSE ${otherwise}`} END`;
        return nested ? `case when ${when} then ${inner} end` : inner;
      });
    const bodyStatement = fc
      .tuple(plainStatement, fc.option(caseExpression))
      .map(([statement, expression]) => (expression === null ? statement : `SELECT ${expression}, ${statement}`));
    const routineStatement = fc
      .tuple(
        fc.constantFrom('CREATE FUNCTION', 'create or replace function', 'Create Procedure', 'CREATE OR REPLACE PROCEDURE'),
        word,
        fc.constantFrom('BEGIN ATOMIC', 'begin atomic', 'BEGIN /* body */ ATOMIC', 'Begin\nAtomic'),
        fc.array(fc.tuple(bodyStatement, gap), { minLength: 1, maxLength: 3 }),
      )
      .map(([head, name, begin, body]) => `${head} ${name}() ${begin}\n${body.map(([s, g]) => `  ${s}${g};\n`).join('')}END`);

    const statement = fc.oneof({ arbitrary: plainStatement, weight: 4 }, { arbitrary: routineStatement, weight: 1 });
    const file = fc.tuple(
      fc.array(fc.tuple(gap, statement, gap, fc.constantFrom(';', ';', ';;', '; ;', ';\n;')), { minLength: 1, maxLength: 6 }),
      gap,
      fc.boolean(),
    );

    it('splitting gives back each statement at the offset where it was written', () => {
      fc.assert(
        fc.property(file, ([parts, tail, lastTerminated]) => {
          let sql = '';
          const expected: Array<{ text: string; offset: number }> = [];
          parts.forEach(([before, text, after, terminator], i) => {
            sql += before;
            expected.push({ text, offset: sql.length });
            sql += text + after + (i === parts.length - 1 && !lastTerminated ? '' : terminator);
          });
          sql += tail;

          const statements = splitStatements(sql);
          expect(statements).toEqual(expected);
          for (const s of statements) expect(sql.slice(s.offset, s.offset + s.text.length)).toBe(s.text);
        }),
        { numRuns: 500 },
      );
    });

    it('any text splits into ordered, non-overlapping slices of itself that never start with trivia', () => {
      const anySql = fc.string({
        unit: fc.constantFrom('a', 'e', 'E', ' ', '\n', ';', "'", '"', '$', '\\', '-', '/', '*', '(', ')', '1', '\u{1F600}'),
        maxLength: 60,
      });
      fc.assert(
        fc.property(anySql, (sql) => {
          let previousEnd = 0;
          for (const s of splitStatements(sql)) {
            expect(sql.slice(s.offset, s.offset + s.text.length)).toBe(s.text);
            expect(s.offset).toBeGreaterThanOrEqual(previousEnd);
            expect(s.text).not.toMatch(/^\s/);
            expect(s.text).not.toMatch(/^--/);
            previousEnd = s.offset + s.text.length;
          }
        }),
        { numRuns: 1000 },
      );
    });
  });
});

describe('sqlErrorLocation', () => {
  const sql = 'CREATE TABLE a (id int);\nCREATE TABLE b (id int);\nINSERT INTO b VALUES (1, 2);\n';

  it('position 1 is the first character of line 1', () => {
    expect(sqlErrorLocation(sql, 1)).toEqual({ line: 1, column: 1, lineText: 'CREATE TABLE a (id int);', caret: '^' });
  });

  it('points into the middle of line 3', () => {
    const position = sql.indexOf('VALUES') + 1;
    expect(sqlErrorLocation(sql, position)).toEqual({
      line: 3,
      column: 15,
      lineText: 'INSERT INTO b VALUES (1, 2);',
      caret: '              ^',
    });
  });

  it('keeps tabs before the caret so it lines up under the character', () => {
    const text = 'SELECT\n\t\tfoo,\tbar\nFROM t';
    const at = sqlErrorLocation(text, text.indexOf('bar') + 1);
    expect(at).toEqual({ line: 2, column: 8, lineText: '\t\tfoo,\tbar', caret: '\t\t    \t^' });
  });

  it('clamps a position past the end to just after the last character', () => {
    const text = 'SELECT 1 +\nFROM';
    const end = { line: 2, column: 5, lineText: 'FROM', caret: '    ^' };
    expect(sqlErrorLocation(text, text.length + 1)).toEqual(end);
    expect(sqlErrorLocation(text, 1000)).toEqual(end);
    expect(sqlErrorLocation('', 5)).toEqual({ line: 1, column: 1, lineText: '', caret: '^' });
  });

  it('clamps a position before the start to the first character', () => {
    const first = { line: 1, column: 1, lineText: 'SELECT 1', caret: '^' };
    expect(sqlErrorLocation('SELECT 1', 0)).toEqual(first);
    expect(sqlErrorLocation('SELECT 1', -3)).toEqual(first);
    expect(sqlErrorLocation('SELECT 1', Number.NaN)).toEqual(first);
  });

  it('counts characters as PostgreSQL does, not UTF-16 units', () => {
    const text = "SELECT '\u{1F600}é', nope";
    // PostgreSQL: the emoji is one character, so `nope` is character 14.
    expect(sqlErrorLocation(text, 14)).toMatchObject({ line: 1, column: 14, caret: `${' '.repeat(13)}^` });
  });

  it('treats CRLF as one line break and leaves the CR out of the line', () => {
    const text = 'SELECT 1;\r\nSELEC 2;\r\n';
    expect(sqlErrorLocation(text, 12)).toEqual({ line: 2, column: 1, lineText: 'SELEC 2;', caret: '^' });
    expect(sqlErrorLocation('a\rb', 3)).toMatchObject({ line: 2, column: 1, lineText: 'b' });
  });

  it('the character at line and column is the character at the position', () => {
    const text = fc.string({ unit: fc.constantFrom('a', 'b', ' ', '\t', '\n', '\r\n', 'é', '\u{1F600}'), maxLength: 40 });
    fc.assert(
      fc.property(text, fc.integer({ min: 1, max: 45 }), (sql, position) => {
        const chars = Array.from(sql);
        fc.pre(position <= chars.length && chars[position - 1] !== '\n' && chars[position - 1] !== '\r');
        const at = sqlErrorLocation(sql, position);
        const lines = sql.split(/\r\n|\n|\r/);
        expect(at.lineText).toBe(lines[at.line - 1]);
        expect(Array.from(at.lineText)[at.column - 1]).toBe(chars[position - 1]);
        expect(Array.from(at.caret)).toHaveLength(at.column);
      }),
    );
  });
});

describe('formatSqlError', () => {
  const file = '0003_users.sql';
  const sql = '-- users\nCREATE TABLE users (id int);\nCREATE TABLE users (id int);\n';

  it('renders file:line:column, the line, a caret, then code, detail and hint', () => {
    const position = sql.lastIndexOf('users') + 1;
    expect(
      formatSqlError({
        file,
        sql,
        position,
        message: 'relation "users" already exists',
        code: '42P07',
        detail: 'Key (id)=(1) already exists.',
        hint: 'Drop it first.',
      }),
    ).toEqual([
      '0003_users.sql:3:14: relation "users" already exists',
      '3 | CREATE TABLE users (id int);',
      '  |              ^',
      'code: 42P07',
      'detail: Key (id)=(1) already exists.',
      'hint: Drop it first.',
    ]);
  });

  it('adds the statement offset when the failing query was one statement of the file', () => {
    const [, second] = splitStatements(sql);
    // PostgreSQL counts from the statement it was sent: `users` is at character 14 of it.
    const lines = formatSqlError({ file, sql, position: 14, statementOffset: second!.offset, message: 'relation "users" already exists' });
    expect(lines.slice(0, 3)).toEqual([
      '0003_users.sql:3:14: relation "users" already exists',
      '3 | CREATE TABLE users (id int);',
      '  |              ^',
    ]);
  });

  it('counts the statement offset in characters when earlier lines hold astral characters', () => {
    const text = "SELECT '\u{1F600}';\nSELECT nope;";
    const [, second] = splitStatements(text);
    expect(formatSqlError({ file, sql: text, position: 8, statementOffset: second!.offset, message: 'column "nope" does not exist' })[0]).toBe(
      '0003_users.sql:2:8: column "nope" does not exist',
    );
  });

  it('without a position names only the file, and leaves out absent fields', () => {
    expect(formatSqlError({ file, sql, message: 'canceling statement due to lock timeout', code: '55P03' })).toEqual([
      '0003_users.sql: canceling statement due to lock timeout',
      'code: 55P03',
    ]);
  });

  it('indents the further lines of a multi-line where under the first', () => {
    const lines = formatSqlError({ file, sql, message: 'boom', where: 'PL/pgSQL function f() line 3 at RAISE\nSQL statement "SELECT f()"' });
    expect(lines).toEqual(['0003_users.sql: boom', 'where: PL/pgSQL function f() line 3 at RAISE', '       SQL statement "SELECT f()"']);
  });

  it('widens the gutter for long files so the caret stays under the line', () => {
    const long = `${'SELECT 1;\n'.repeat(11)}SELEC 2;`;
    const lines = formatSqlError({ file, sql: long, position: long.length - 7, message: 'syntax error at or near "SELEC"' });
    expect(lines.slice(1, 3)).toEqual(['12 | SELEC 2;', '   | ^']);
  });
});
