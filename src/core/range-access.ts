/**
 * How the mover reads a table's rows in a set of hash ranges: `scan` reads
 * every row and computes its routing hash (md5 of the key), `index` reads
 * only the rows in the ranges through an index on the routing hash (a bitmap
 * index scan per range, OR'd, then the heap in physical order), computing no
 * hash at all.
 *
 * Measured on 1M rows of about 250 bytes (244 MB, in cache), 128 ranges:
 * the index read took 0.18 s for 1% of the rows against 0.75 s scanning
 * (hash once per key) or 1.8 s (hash per row); 0.99 s for 34% against 2.1 s;
 * 2.2 s for 99% against 4.0 s. So whenever a usable index exists it wins, with
 * one condition: the bitmap must stay exact. A bitmap that outgrows work_mem
 * turns lossy, and the server then re-checks every row of a lossy page
 * against every range, hashing the key once per range: the same 34% read took
 * 143 s with work_mem 1MB and 264 s with 64kB. So the read gets a work_mem that
 * holds one entry per heap page it may touch, and where that would exceed
 * MAX_BITMAP_WORK_MEM_KB the table is scanned instead.
 */
export type RangeAccess = { kind: 'scan' } | { kind: 'index'; workMemKb: number };

/** Bytes of work_mem per heap page in an exact bitmap (PostgreSQL's entry is 48 bytes plus its hash table's overhead), with room to spare. */
export const BITMAP_BYTES_PER_PAGE = 160;
/** The most work_mem the mover asks for one read (256 MB: an exact bitmap of 1.6M pages, a 13 GB table). */
export const MAX_BITMAP_WORK_MEM_KB = 256 * 1024;
/** The most ranges one read ORs together; more than that and the plan itself gets heavy. */
export const MAX_INDEX_RANGES = 4096;

export interface RangeAccessInput {
  /** A valid index on the routing hash that the planner can use for a range. */
  indexUsable: boolean;
  ranges: number;
  /** The table's size in heap pages, now. */
  tablePages: number;
  /** Rows per heap page (from statistics); 0 when unknown. */
  rowsPerPage: number;
  /** Share of the table's rows in the ranges (0..1); 1 when unknown. */
  fraction: number;
  /** The session's own work_mem, in kB: never ask for less. */
  workMemKb: number;
}

/** The pages a read of `fraction` of the rows may touch: every page, or fewer when few rows are read. */
export function pagesTouched(input: Pick<RangeAccessInput, 'tablePages' | 'rowsPerPage' | 'fraction'>): number {
  const f = Math.min(1, Math.max(0, input.fraction));
  if (input.rowsPerPage <= 0) return input.tablePages;
  // Keys hash uniformly: a page holds none of the rows read with probability (1 - f)^rowsPerPage.
  const share = 1 - Math.pow(1 - f, input.rowsPerPage);
  return Math.ceil(input.tablePages * share);
}

export function chooseRangeAccess(input: RangeAccessInput): RangeAccess {
  if (!input.indexUsable || input.ranges === 0 || input.ranges > MAX_INDEX_RANGES) return { kind: 'scan' };
  // Pages can be added while the read runs: leave room for a quarter more.
  const needKb = Math.ceil((pagesTouched(input) * 1.25 * BITMAP_BYTES_PER_PAGE) / 1024);
  if (needKb > MAX_BITMAP_WORK_MEM_KB) return { kind: 'scan' };
  return { kind: 'index', workMemKb: Math.max(input.workMemKb, needKb, 1024) };
}

/**
 * Cleanup deletes a block span per group of batches. By index, each group
 * reads the whole move's ranges from the index and visits their pages (the
 * span only filters), so `groups` of them cost about `groups × fraction`
 * of one pass over the table; a scan of the spans costs one pass with a
 * hash per row, about twice an index read of every row (see above). The index
 * serves when that product stays at or under 1.
 */
export function cleanupUsesIndex(access: RangeAccess, groups: number, fraction: number): boolean {
  return access.kind === 'index' && groups * Math.min(1, Math.max(0, fraction)) <= 1;
}
