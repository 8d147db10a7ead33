/**
 * Health statuses and thresholds, on plain data: what a measured value means
 * against a check's warning and critical levels, the worst of many statuses,
 * and the exit code of SPEC.md (the Nagios plugin convention: 0 OK, 1 WARNING,
 * 2 CRITICAL, 3 UNKNOWN).
 */

export type HealthStatus = 'ok' | 'warning' | 'critical' | 'unknown';

/** What a value is measured in: how thresholds are read from the config and how values are shown. */
/** `ratio`: a share of a whole, 0..1 (shown as %); `factor`: a multiple such as max/mean (shown as 1.50x). */
export type HealthUnit = 'seconds' | 'bytes' | 'ratio' | 'factor' | 'count' | 'boolean' | 'version';

/**
 * `above`: the check fires when the value reaches a threshold (a transaction's
 * age); `below`: when it falls to one (a cache hit ratio, a partition runway).
 */
export type ThresholdDirection = 'above' | 'below';

export interface Thresholds {
  warning: number | null;
  critical: number | null;
}

const SEVERITY: Record<HealthStatus, number> = { ok: 0, unknown: 1, warning: 2, critical: 3 };

/** Worst first: critical, warning, unknown, ok. UNKNOWN ranks above OK (something could not be checked) and below WARNING. */
export function compareStatus(a: HealthStatus, b: HealthStatus): number {
  return SEVERITY[b] - SEVERITY[a];
}

export function worstStatus(statuses: Iterable<HealthStatus>): HealthStatus {
  let worst: HealthStatus = 'ok';
  for (const s of statuses) if (SEVERITY[s] > SEVERITY[worst]) worst = s;
  return worst;
}

/** SPEC.md's exit codes for `health`. */
export function exitCodeOfStatus(status: HealthStatus): 0 | 1 | 2 | 3 {
  return status === 'ok' ? 0 : status === 'warning' ? 1 : status === 'critical' ? 2 : 3;
}

/** A value against its thresholds; a null value (nothing to measure) is OK. Critical wins when both are reached. */
export function evaluateThresholds(value: number | null, thresholds: Thresholds, direction: ThresholdDirection): HealthStatus {
  if (value === null || Number.isNaN(value)) return 'ok';
  const { critical, warning } = thresholds;
  if (direction === 'above') {
    if (critical !== null && value >= critical) return 'critical';
    if (warning !== null && value >= warning) return 'warning';
  } else {
    if (critical !== null && value <= critical) return 'critical';
    if (warning !== null && value <= warning) return 'warning';
  }
  return 'ok';
}

const DURATION_UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };
const BYTE_UNITS: Record<string, number> = {
  b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4,
};

/**
 * A threshold as the config writes it, in the check's unit: seconds as a
 * number or a duration ("30s", "5m", "1.5h"); bytes as a number or a size
 * ("512MB", "10GiB", "1G" = GiB); a ratio as a number (0.8) or a percentage
 * ("80%"); counts and versions as numbers. Throws a message naming what is
 * expected.
 */
export function parseThresholdValue(raw: number | string, unit: HealthUnit): number {
  if (typeof raw === 'number') {
    if (!Number.isFinite(raw)) throw new Error(`${raw} is not a finite number`);
    return raw;
  }
  const text = raw.trim();
  if (/^[-+]?\d+(\.\d+)?$/.test(text)) return Number(text);
  const m = /^([-+]?\d+(?:\.\d+)?)\s*([a-zA-Z%]+)$/.exec(text);
  if (m) {
    const n = Number(m[1]);
    const suffix = m[2]!;
    if (unit === 'seconds' && DURATION_UNITS[suffix] !== undefined) return n * DURATION_UNITS[suffix]!;
    if (unit === 'bytes' && BYTE_UNITS[suffix.toLowerCase()] !== undefined) return n * BYTE_UNITS[suffix.toLowerCase()]!;
    if (unit === 'ratio' && suffix === '%') return n / 100;
  }
  const expected: Record<HealthUnit, string> = {
    seconds: 'a number of seconds or a duration such as "30s", "5m", "2h"',
    bytes: 'a number of bytes or a size such as "512MB", "10GiB"',
    ratio: 'a ratio such as 0.8 or a percentage such as "80%"',
    factor: 'a number such as 1.5',
    count: 'a number',
    boolean: 'a number (1 = true)',
    version: 'a server_version_num such as 140000',
  };
  throw new Error(`"${raw}" is not ${expected[unit]}`);
}

/** A value for people: "4m 10s", "1.2 GiB", "93.1%", "12". */
export function formatHealthValue(value: number | null, unit: HealthUnit): string {
  if (value === null) return '-';
  switch (unit) {
    case 'seconds':
      return formatSeconds(value);
    case 'bytes':
      return formatBytes(value);
    case 'ratio':
      return `${(value * 100).toFixed(value >= 0.9995 && value < 1 ? 2 : 1)}%`;
    case 'factor':
      return `${value.toFixed(2)}x`;
    case 'boolean':
      return value ? 'yes' : 'no';
    default:
      return Number.isInteger(value) ? String(value) : value.toFixed(2);
  }
}

export function formatSeconds(s: number): string {
  if (s < 1) return `${Math.round(s * 1000)}ms`;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)}s`;
  const parts: string[] = [];
  let rest = Math.round(s);
  for (const [unit, size] of [['d', 86_400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join(' ');
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** ▁▂▃▄▅▆▇█ for a series: the trend of a check over recorded samples. */
export function sparkline(values: Array<number | null>): string {
  const bars = '▁▂▃▄▅▆▇█';
  const present = values.filter((v): v is number => v !== null);
  if (!present.length) return '';
  const min = Math.min(...present);
  const max = Math.max(...present);
  return values.map((v) => (v === null ? ' ' : bars[max === min ? 0 : Math.round(((v - min) / (max - min)) * (bars.length - 1))])).join('');
}
