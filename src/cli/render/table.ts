import chalk from 'chalk';
import Table from 'cli-table3';

/** A plain, borderless table: readable at a shell and easy to grep. */
export function renderTable(head: string[], rows: Array<Array<string | number>>): string {
  const table = new Table({
    head: head.map((h) => chalk.bold(h)),
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 2 },
    chars: {
      top: '', 'top-mid': '', 'top-left': '', 'top-right': '',
      bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
      left: '', 'left-mid': '', mid: '', 'mid-mid': '',
      right: '', 'right-mid': '', middle: '',
    },
  });
  for (const row of rows) table.push(row.map(String));
  return table.toString().split('\n').map((l) => l.trimEnd()).join('\n');
}

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return '-';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 && i > 0 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function formatCount(n: number | null | undefined): string {
  return n === null || n === undefined ? '-' : n.toLocaleString('en-US');
}

export function formatPercent(fraction: number, digits = 1): string {
  return `${(fraction * 100).toFixed(digits)}%`;
}

export function statusMark(status: string): string {
  if (status === 'ok' || status === 'success' || status === 'active' || status === 'up') return chalk.green(status);
  if (status === 'error' || status === 'failed' || status === 'down') return chalk.red(status);
  return chalk.yellow(status);
}
