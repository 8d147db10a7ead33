import type { PartitionInterval } from './partition-calendar.js';

/**
 * Dynamic thresholds for `partition list`: from the sizes of a table's recent
 * partitions, project the next ones and say when they cross `maxRows` /
 * `maxBytes`, suggesting a shorter interval before they do. Pure.
 *
 * The trend is a least-squares line through (index, size) of the partitions
 * given, so steady growth is extrapolated and one odd partition moves it only
 * a little. Give only complete partitions: the one still filling (holding
 * now) would read as a collapse.
 */

export interface PartitionSize {
  /** Upper bound, epoch ms; the history is in this order, oldest first. */
  toMs: number;
  rows: number;
  bytes: number;
}

export interface GrowthLimits {
  maxRows?: number;
  maxBytes?: number;
  interval: PartitionInterval;
}

export interface GrowthProjection {
  /** Slope of the rows trend: how many more rows each partition holds than the one before. */
  trendRowsPerPartition: number;
  trendBytesPerPartition: number;
  /** The trend's value for the partition after the last one given (never below 0). */
  projectedNext: { rows: number; bytes: number };
  /**
   * How many partitions after the last one given the first to reach a
   * threshold is (1 = the next one); null when there is no threshold or the
   * trend never reaches it. Map it to a date with the calendar's nextSlot.
   */
  crossesAt: number | null;
  /** A shorter interval whose partitions would stay within SUGGEST_AT of the thresholds; null when none is needed (or none is shorter). */
  suggestion: PartitionInterval | null;
  /** One sentence saying why, for the listing. */
  reason: string;
}

/** The share of a threshold at which a shorter interval is suggested. */
export const SUGGEST_AT = 0.8;

/** Average length of each interval in hours: how a partition's size scales when its interval changes. */
const HOURS: Record<PartitionInterval, number> = { hourly: 1, daily: 24, weekly: 168, monthly: 730.5, yearly: 8766 };
const SHORTER: PartitionInterval[] = ['yearly', 'monthly', 'weekly', 'daily', 'hourly'];

const SIZE_UNITS = { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 } as const;
/** A size as PostgreSQL writes one (binary multiples, as pg_size_pretty): '512kB', '10GB', '1.5TB', '800B'. */
export const BYTE_SIZE_PATTERN = /^(\d+(?:\.\d+)?)\s?(B|kB|MB|GB|TB)$/;

/** A byte count, or a size string such as '10GB' (1 GB = 1024³ bytes, as PostgreSQL counts) → bytes. Throws on anything else. */
export function parseByteSize(size: number | string): number {
  if (typeof size === 'number') {
    if (!Number.isInteger(size) || size <= 0) throw new Error(`${size} is not a positive whole number of bytes`);
    return size;
  }
  const m = BYTE_SIZE_PATTERN.exec(size.trim());
  if (!m) throw new Error(`"${size}" is not a size (examples: 800B, 512kB, 64MB, 10GB, 1TB)`);
  const bytes = Math.round(Number(m[1]) * SIZE_UNITS[m[2] as keyof typeof SIZE_UNITS]);
  if (bytes <= 0) throw new Error(`"${size}" is not a positive size`);
  return bytes;
}

/** Least squares through (i, y_i): the slope and the value at x. */
function linearTrend(ys: readonly number[]): { slope: number; at: (x: number) => number } {
  const n = ys.length;
  if (n === 0) return { slope: 0, at: () => 0 };
  const meanX = (n - 1) / 2;
  const meanY = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  ys.forEach((y, i) => {
    sxy += (i - meanX) * (y - meanY);
    sxx += (i - meanX) ** 2;
  });
  const slope = sxx === 0 ? 0 : sxy / sxx;
  return { slope, at: (x) => meanY + slope * (x - meanX) };
}

/** Partitions after the last one (index n-1) until the trend first reaches `limit`; null if it never does. */
function partitionsUntil(trend: { slope: number; at: (x: number) => number }, n: number, limit: number | undefined): number | null {
  if (limit === undefined) return null;
  if (trend.at(n) >= limit) return 1;
  if (trend.slope <= 0) return null;
  // at(n - 1 + k) >= limit  ⇔  k >= (limit - at(n - 1)) / slope
  return Math.max(1, Math.ceil((limit - trend.at(n - 1)) / trend.slope - 1e-9));
}

const share = (value: number, limit: number | undefined) => (limit === undefined || limit <= 0 ? 0 : value / limit);

/**
 * The trend of `history` (complete partitions, oldest first) against the
 * thresholds: the next partition's projected size, how many partitions ahead
 * the first one reaches a threshold, and a shorter interval once the next one
 * is projected past SUGGEST_AT of either threshold.
 */
export function projectGrowth(history: readonly PartitionSize[], limits: GrowthLimits): GrowthProjection {
  const rows = linearTrend(history.map((p) => p.rows));
  const bytes = linearTrend(history.map((p) => p.bytes));
  const n = history.length;
  const projectedNext = { rows: Math.max(0, Math.round(rows.at(n))), bytes: Math.max(0, Math.round(bytes.at(n))) };
  const base = { trendRowsPerPartition: rows.slope, trendBytesPerPartition: bytes.slope, projectedNext };

  if (limits.maxRows === undefined && limits.maxBytes === undefined) {
    return { ...base, crossesAt: null, suggestion: null, reason: 'no maxRows or maxBytes set' };
  }
  if (n === 0) return { ...base, crossesAt: null, suggestion: null, reason: 'no complete partition to project from' };

  const crossings = [partitionsUntil(rows, n, limits.maxRows), partitionsUntil(bytes, n, limits.maxBytes)].filter((k): k is number => k !== null);
  const crossesAt = crossings.length ? Math.min(...crossings) : null;

  const fill = Math.max(share(projectedNext.rows, limits.maxRows), share(projectedNext.bytes, limits.maxBytes));
  const percent = `${Math.round(fill * 100)}%`;
  if (fill <= SUGGEST_AT) {
    const when = crossesAt === null ? 'the trend does not reach it' : `the trend reaches it ${crossesAt} partition${crossesAt === 1 ? '' : 's'} ahead`;
    return { ...base, crossesAt, suggestion: null, reason: `the next partition is projected at ${percent} of the threshold; ${when}` };
  }

  const shorter = SHORTER.slice(SHORTER.indexOf(limits.interval) + 1);
  if (shorter.length === 0) {
    return { ...base, crossesAt, suggestion: null, reason: `the next partition is projected at ${percent} of the threshold, and hourly is the shortest interval` };
  }
  // Partition sizes scale with the interval's length: the longest interval that stays within SUGGEST_AT, else the shortest.
  const fits = shorter.find((candidate) => (fill * HOURS[candidate]) / HOURS[limits.interval] <= SUGGEST_AT);
  const suggestion = fits ?? shorter[shorter.length - 1]!;
  const projected = `${Math.round(((fill * HOURS[suggestion]) / HOURS[limits.interval]) * 100)}%`;
  return {
    ...base,
    crossesAt,
    suggestion,
    reason: `the next partition is projected at ${percent} of the threshold (over ${SUGGEST_AT * 100}%); ${suggestion} partitions would be about ${projected}${fits ? '' : ', still over'}`,
  };
}
