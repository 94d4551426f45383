import type { ArenaHeap } from "./arena-heap.js";

/**
 * A flat table of page frame numbers in the arena: entry i names the frame
 * behind page i of a page cache or of a mapping, 0 when there is none. Both
 * the page cache (file page -> pfn) and a mapping's page table (virtual page
 * -> pfn) are one of these.
 *
 * A fresh table is all zeros, so it costs nothing until touched (the arena is
 * committed by the OS on first write). Reading an entry is one typed-array
 * load; entries change only by compare-and-swap or exchange, so any thread
 * may read and install without a lock. A summary bitmap, one bit per 1024
 * entries (one 4 KiB page of the table), records which parts may hold a
 * frame, so that draining a sparse 64 GiB table reads only what was touched.
 *
 * Layout at the table's arena offset (64-byte aligned): word 0 the number of
 * entries, word 1 the arena word index of the summary bitmap, then from word
 * 16 the entries, then the summary bitmap.
 */

const T_LENGTH = 0;
const T_SUMMARY = 1;
/** Word offset of entry 0 from the table's first word. */
export const PFN_TABLE_HEADER_WORDS = 16;
const BLOCK_SHIFT = 10;

function summaryWords(entries: number): number {
  return Math.ceil(Math.ceil(entries / (1 << BLOCK_SHIFT)) / 32);
}

export function pfnTableBytes(entries: number): number {
  return (PFN_TABLE_HEADER_WORDS + entries + summaryWords(entries)) * 4;
}

/** Allocate an empty table of `entries` pfns; returns its arena offset. */
export function createPfnTable(i32: Int32Array, heap: ArenaHeap, entries: number): number {
  const table = heap.allocate(pfnTableBytes(entries));
  const base = table >> 2;
  i32[base + T_LENGTH] = entries;
  i32[base + T_SUMMARY] = base + PFN_TABLE_HEADER_WORDS + entries;
  return table;
}

/** Arena word index of entry 0: entry i is at `pfnTableEntries(table) + i`. */
export function pfnTableEntries(table: number): number {
  return (table >> 2) + PFN_TABLE_HEADER_WORDS;
}

export function pfnTableLength(i32: Int32Array, table: number): number {
  return i32[(table >> 2) + T_LENGTH];
}

/**
 * Set entry `index` to `value` if it holds `expected` (compare-and-swap);
 * true when it did. The summary bit is set first, so a drain never misses a
 * frame that is in the table.
 */
export function pfnTableSet(
  i32: Int32Array,
  table: number,
  index: number,
  expected: number,
  value: number,
): boolean {
  const base = table >> 2;
  if (value !== 0) {
    const word = i32[base + T_SUMMARY] + (index >>> (BLOCK_SHIFT + 5));
    const bit = 1 << ((index >>> BLOCK_SHIFT) & 31);
    if ((Atomics.load(i32, word) & bit) === 0) Atomics.or(i32, word, bit);
  }
  const at = base + PFN_TABLE_HEADER_WORDS + index;
  return Atomics.compareExchange(i32, at, expected, value) === expected;
}

/**
 * Take every frame out of entries [first, end): each non-zero entry is
 * exchanged for 0 and passed to `visit` (which frees or counts it). Returns
 * the number of entries cleared. Parts of the table never touched are skipped
 * without being read.
 */
export function pfnTableDrain(
  i32: Int32Array,
  table: number,
  first: number,
  end: number,
  visit: (index: number, pfn: number) => void,
): number {
  const base = table >> 2;
  const summary = i32[base + T_SUMMARY];
  const entries = base + PFN_TABLE_HEADER_WORDS;
  const last = Math.min(end, i32[base + T_LENGTH]);
  let cleared = 0;
  let index = Math.max(first, 0);
  while (index < last) {
    const block = index >>> BLOCK_SHIFT;
    const blockEnd = Math.min(last, (block + 1) << BLOCK_SHIFT);
    if ((Atomics.load(i32, summary + (block >>> 5)) & (1 << (block & 31))) !== 0) {
      for (let i = index; i < blockEnd; i++) {
        if (Atomics.load(i32, entries + i) === 0) continue;
        const pfn = Atomics.exchange(i32, entries + i, 0);
        if (pfn === 0) continue;
        cleared++;
        visit(i, pfn);
      }
    }
    index = blockEnd;
  }
  return cleared;
}

/**
 * Release a table whose entries are all zero (drained, and no thread can
 * install into it any more): clears the header and summary, so the block goes
 * back to the heap all zero as the heap requires.
 */
export function destroyPfnTable(i32: Int32Array, heap: ArenaHeap, table: number): void {
  const base = table >> 2;
  const entries = i32[base + T_LENGTH];
  const summary = i32[base + T_SUMMARY];
  i32.fill(0, summary, summary + summaryWords(entries));
  i32[base + T_LENGTH] = 0;
  i32[base + T_SUMMARY] = 0;
  heap.free(table, pfnTableBytes(entries));
}
