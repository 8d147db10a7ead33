/**
 * Live progress on a terminal: a few lines (one per move, one overall)
 * redrawn in place at most `fps` times a second, each cut to the terminal's
 * width so a line never wraps (a wrapped line would make the next redraw
 * climb too few lines and smear the screen). Writes happen only from a timer,
 * never in a loop, so a signal is always handled between two redraws.
 * Only for a TTY that reports its width (Output.decorated decides).
 */
export class ProgressBoard {
  readonly #stream: NodeJS.WriteStream;
  readonly #lines = new Map<string, string>();
  #footer = '';
  #drawn = 0;
  #dirty = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(stream: NodeJS.WriteStream, fps = 5) {
    this.#stream = stream;
    this.#timer = setInterval(() => this.#draw(), Math.round(1000 / fps));
    this.#timer.unref();
  }

  /** Sets (or adds) the line `key`; lines keep the order they were first set in. */
  set(key: string, text: string): void {
    if (this.#lines.get(key) === text) return;
    this.#lines.set(key, text);
    this.#dirty = true;
  }

  /** The last line, below every other: the overall progress. */
  footer(text: string): void {
    if (this.#footer === text) return;
    this.#footer = text;
    this.#dirty = true;
  }

  /** Prints a line above the board (a log line), keeping the board below it. */
  log(text: string): void {
    this.#erase();
    this.#stream.write(text.endsWith('\n') ? text : text + '\n');
    this.#dirty = true;
  }

  /** Erases the board and stops redrawing: call before the result is printed. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#erase();
  }

  #draw(): void {
    if (!this.#dirty) return;
    this.#dirty = false;
    const width = Math.max(10, (this.#stream.columns ?? 80) - 1);
    const lines = [...this.#lines.values(), ...(this.#footer ? [this.#footer] : [])].map((l) => cut(l, width));
    this.#erase();
    if (!lines.length) return;
    this.#stream.write(lines.join('\n') + '\n');
    this.#drawn = lines.length;
  }

  #erase(): void {
    // Up to the board's first line, then clear to the end of the screen.
    if (this.#drawn > 0) this.#stream.write(`\u001b[${this.#drawn}F\u001b[J`);
    this.#drawn = 0;
  }
}

/** The text cut to `width` characters (code points; the board's text has no wide characters). */
export function cut(text: string, width: number): string {
  const chars = [...text];
  return chars.length <= width ? text : chars.slice(0, width - 1).join('') + '…';
}
