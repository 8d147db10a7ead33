import type { MoveEvent } from '../engine/moves/execute.js';
import type { CommandContext } from './context.js';
import type { ProgressBoard } from './progress-board.js';
import { formatCount } from './render/table.js';

export interface MoveProgress {
  onEvent(event: MoveEvent): void;
  /** Erases the board (if any): call before the result is printed. */
  stop(): void;
  /** Whether the plan was already shown (on a terminal, before the work started). */
  readonly planShown: boolean;
}

interface MoveLine {
  label: string;
  state: string;
  estRows: number;
  copied: number;
  detail: string;
}

/**
 * Progress of a data-moving command. On a terminal that can take it
 * (Output.decorated): the plan first, then a board with one line per move and
 * an overall line (rows, rows/s, ETA), redrawn a few times a second and erased
 * before the result. Elsewhere (CI, pipes, TERM=dumb, NO_COLOR, --log-format
 * json): plain log lines, progress at most every few seconds.
 */
export async function moveProgress(ctx: CommandContext): Promise<MoveProgress> {
  const { formatProgress, renderPlan } = await import('./render/moves.js');
  const board: ProgressBoard | null = await ctx.out.board();
  const moves = new Map<number, MoveLine>();
  const started = Date.now();
  let copiedAtStart = 0;
  let planShown = false;

  const redraw = (key: number) => {
    const m = moves.get(key);
    if (!board || !m) return;
    board.set(String(key), `move ${key} ${m.label}  ${m.state}${m.detail ? `  ${m.detail}` : ''}`);
    const est = [...moves.values()].reduce((n, x) => n + x.estRows, 0);
    const copied = [...moves.values()].reduce((n, x) => n + x.copied, 0);
    const seconds = (Date.now() - started) / 1000;
    const rate = seconds > 0 ? (copied - copiedAtStart) / seconds : 0;
    const eta = rate > 0 && est > copied ? ` · ETA ${Math.round((est - copied) / rate)}s` : '';
    const done = [...moves.values()].filter((x) => x.state === 'cleaned').length;
    board.footer(`total ${formatCount(copied)}/${formatCount(est)} rows copied · ${formatCount(Math.round(rate))} rows/s${eta} · ${done}/${moves.size} moves done · ${Math.round(seconds)}s`);
  };

  const onEvent = (e: MoveEvent) => {
    switch (e.type) {
      case 'plan':
        if (board) {
          board.log(renderPlan(e.plan));
          planShown = true;
        }
        return;
      case 'started':
        for (const m of e.moves) moves.set(m.moveNo, { label: `${m.source} → ${m.target}`, state: m.state, estRows: m.estRows, copied: m.rowsCopied, detail: '' });
        copiedAtStart = e.moves.reduce((n, m) => n + m.rowsCopied, 0);
        if (board) for (const m of e.moves) redraw(m.moveNo);
        else ctx.out.info(`plan ${e.planId}: ${e.moves.length} move(s), about ${formatCount(e.moves.reduce((n, m) => n + m.estRows, 0))} rows`);
        return;
      case 'progress': {
        const m = moves.get(e.moveNo);
        if (m) {
          if (e.phase === 'copy') m.copied = e.rows;
          const eta = e.etaSeconds === null ? '' : ` ETA ${e.etaSeconds}s`;
          m.detail = `${e.phase} ${e.table}: ${formatCount(e.rows)}/${formatCount(e.estRows)} rows, ${formatCount(e.rowsPerSecond)} rows/s${eta}`;
        }
        if (board) redraw(e.moveNo);
        else ctx.out.progress(formatProgress(e), { ...e });
        return;
      }
      case 'move-state': {
        const m = moves.get(e.moveNo);
        if (m) m.state = e.state;
        if (board) redraw(e.moveNo);
        else ctx.out.debug(`move ${e.moveNo} ${e.source} → ${e.target}: ${e.state}`);
        return;
      }
      case 'fence': {
        const line = `move ${e.moveNo} ${e.source} → ${e.target}: fence ${e.outcome} after ${e.ms} ms${e.reason ? ` (${e.reason})` : ''}`;
        if (board) board.log(line);
        else if (e.outcome === 'held') ctx.out.debug(line);
        else ctx.out.info(line);
        return;
      }
      case 'switched': {
        const line = `ring switched to epoch ${e.epoch}`;
        if (board) board.log(line);
        else ctx.out.info(line);
        if (e.published.status === 'error') ctx.out.warn(`the new ring could not be published to Redis: ${e.published.reason} (shard resume publishes it again)`);
        return;
      }
    }
  };
  return {
    onEvent,
    stop: () => board?.stop(),
    get planShown() {
      return planShown;
    },
  };
}
