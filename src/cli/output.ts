import chalk from 'chalk';
import { UsageError } from '../errors.js';
import { formatJson } from './render/json.js';

export type LogFormat = 'text' | 'json';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface OutputOptions {
  json: boolean;
  quiet: boolean;
  verbose: boolean;
  color: boolean;
  yes: boolean;
  logFormat: LogFormat;
}

export interface OutputStreams {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  stdin: NodeJS.ReadStream;
  env: NodeJS.ProcessEnv;
}

export interface Spinner {
  update(text: string): void;
  succeed(text?: string): void;
  fail(text?: string): void;
  stop(): void;
}

const NO_SPINNER: Spinner = { update() {}, succeed() {}, fail() {}, stop() {} };

/**
 * Everything the CLI writes goes through here: the result on stdout, logs,
 * spinners and prompts on stderr. It decides once whether colour, spinners and
 * prompts are allowed (TTY, CI, NO_COLOR, --no-color, --json, --quiet).
 */
export class Output {
  readonly #opts: OutputOptions;
  readonly #io: OutputStreams;

  constructor(opts: OutputOptions, io: OutputStreams = defaultStreams()) {
    this.#opts = opts;
    this.#io = io;
    // chalk does not read NO_COLOR itself; CI and pipes get plain text too.
    if (!this.colorEnabled) chalk.level = 0;
  }

  get options(): OutputOptions {
    return this.#opts;
  }

  get isCI(): boolean {
    const ci = this.#io.env.CI;
    return ci !== undefined && ci !== '' && ci !== 'false' && ci !== '0';
  }

  get colorEnabled(): boolean {
    const noColor = this.#io.env.NO_COLOR;
    return this.#opts.color && !(noColor !== undefined && noColor !== '') && !this.isCI && !!this.#io.stdout.isTTY;
  }

  /** Prompts only with a person at both ends of the terminal, and never in CI. */
  get interactive(): boolean {
    return !!this.#io.stdin.isTTY && !!this.#io.stderr.isTTY && !this.isCI;
  }

  /**
   * Spinners and progress redrawn in place: only on a TTY on stderr that
   * reports a width (a pseudo-terminal whose size was never set, as some CI
   * runners and `docker exec -t` give, reports 0) and can move the cursor
   * (not TERM=dumb); not under CI, NO_COLOR or --no-color, --json, --quiet
   * or --log-format json. Everywhere else progress is plain log lines.
   */
  get decorated(): boolean {
    const noColor = this.#io.env.NO_COLOR;
    return (
      !!this.#io.stderr.isTTY &&
      (this.#io.stderr.columns ?? 0) > 0 &&
      this.#io.env.TERM !== 'dumb' &&
      !this.isCI &&
      !(noColor !== undefined && noColor !== '') &&
      this.#opts.color &&
      !this.#opts.json &&
      !this.#opts.quiet &&
      this.#opts.logFormat === 'text'
    );
  }

  /** A live progress board on stderr when decorated, else null (log lines then). */
  async board(): Promise<import('./progress-board.js').ProgressBoard | null> {
    if (!this.decorated) return null;
    const { ProgressBoard } = await import('./progress-board.js');
    return new ProgressBoard(this.#io.stderr);
  }

  log(level: LogLevel, message: string, fields: Record<string, unknown> = {}): void {
    if (level === 'debug' && !this.#opts.verbose) return;
    if (level === 'info' && (this.#opts.quiet || this.#opts.json)) return;
    if (this.#opts.logFormat === 'json') {
      this.#io.stderr.write(JSON.stringify({ ts: new Date().toISOString(), level, msg: message, ...fields }) + '\n');
      return;
    }
    const tag = { debug: chalk.dim('debug'), info: chalk.cyan('info'), warn: chalk.yellow('warn'), error: chalk.red('error') }[level];
    const extra = Object.keys(fields).length ? ' ' + chalk.dim(formatFields(fields)) : '';
    this.#io.stderr.write(`${tag} ${message}${extra}\n`);
  }

  info(message: string, fields?: Record<string, unknown>): void {
    this.log('info', message, fields);
  }
  warn(message: string, fields?: Record<string, unknown>): void {
    this.log('warn', message, fields);
  }
  debug(message: string, fields?: Record<string, unknown>): void {
    this.log('debug', message, fields);
  }

  /**
   * The command's result: under --json the documented envelope
   * `{ ok: true, command, data }`, otherwise the text rendering.
   */
  result<T>(command: string, data: T, renderText: (data: T) => string): void {
    if (this.#opts.json) {
      this.#io.stdout.write(formatJson({ ok: true, command, data }) + '\n');
      return;
    }
    const text = renderText(data);
    if (text) this.#io.stdout.write(text.endsWith('\n') ? text : text + '\n');
  }

  /**
   * A failed command's partial result (per-shard outcomes the error carries as
   * `data`), rendered on stdout before the error is reported; under --json it
   * goes into the error envelope instead, so nothing is printed here.
   */
  partial<T>(err: unknown, isResult: (value: unknown) => value is T, renderText: (data: T) => string): void {
    const data = (err as { data?: unknown } | null)?.data;
    if (!this.#opts.json && isResult(data)) this.#io.stdout.write(renderText(data) + '\n');
  }

  async spinner(text: string): Promise<Spinner> {
    if (!this.decorated) {
      this.info(text);
      return NO_SPINNER;
    }
    const { default: ora } = await import('ora');
    const spin = ora({ text, stream: this.#io.stderr }).start();
    return {
      update: (t) => void (spin.text = t),
      succeed: (t) => void spin.succeed(t),
      fail: (t) => void spin.fail(t),
      stop: () => void spin.stop(),
    };
  }

  /**
   * Guards anything destructive: `--yes` goes ahead, a person at a TTY is asked,
   * anything else is refused with the flag to pass (exit 2, nothing touched).
   */
  async confirm(question: string): Promise<void> {
    if (this.#opts.yes) return;
    if (!this.interactive) {
      throw new UsageError(`${question} Refusing without a terminal to ask on: pass --yes to confirm.`);
    }
    const { confirm } = await import('@inquirer/prompts');
    const ok = await confirm(
      { message: question, default: false },
      { input: this.#io.stdin, output: this.#io.stderr },
    );
    if (!ok) throw new UsageError('cancelled; nothing was done');
  }

  /**
   * Progress of a long operation: a JSON line on stderr with --log-format json
   * (even under --json, which keeps stdout for the report), a spinner on a
   * TTY, otherwise an info line at most every `everyMs`.
   */
  progress(text: string, fields: Record<string, unknown>, spinner?: Spinner, everyMs = 5000): void {
    if (this.#opts.quiet) return;
    const now = Date.now();
    if (this.#opts.logFormat === 'json') {
      if (now - this.#lastProgress < 1000) return;
      this.#lastProgress = now;
      this.#io.stderr.write(JSON.stringify({ ts: new Date(now).toISOString(), level: 'info', msg: 'progress', ...fields }) + '\n');
      return;
    }
    if (spinner && this.decorated) {
      spinner.update(text);
      return;
    }
    if (now - this.#lastProgress < everyMs) return;
    this.#lastProgress = now;
    this.info(text);
  }

  #lastProgress = 0;

  writeStdout(text: string): void {
    this.#io.stdout.write(text);
  }
}

function formatFields(fields: Record<string, unknown>): string {
  return Object.entries(fields)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
}

function defaultStreams(): OutputStreams {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env };
}
