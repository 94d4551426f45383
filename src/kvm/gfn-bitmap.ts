import { type HostMemory, ORDER_4K } from "../host/host-memory.js";

/**
 * One bit per guest frame over the whole guest-physical space, as a two-level
 * table in host memory: a directory in the arena names, for each 128 MiB of
 * guest-physical space, a 4 KiB leaf frame holding its 32768 bits. Leaves are
 * allocated when a bit in them is first set, so a sparse 64 GiB guest costs
 * only what its attributes touch. Every bit operation is one atomic on one
 * word, and any thread may test a bit without a lock. Memory attributes
 * (USERFAULT, PRIVATE) and dirty logs are kept this way.
 */

const LEAF_SHIFT = 15;
const LEAF_BITS = 1 << LEAF_SHIFT;
/** Directory entries: 2^DIRECTORY_SHIFT leaves cover 2^(15+12+DIRECTORY_SHIFT) bytes. */
const DIRECTORY_SHIFT = 13;
const DIRECTORY_ENTRIES = 1 << DIRECTORY_SHIFT;
/** Guest frames the bitmap covers: 1 TiB of guest-physical space. */
export const GFN_LIMIT = DIRECTORY_ENTRIES * LEAF_BITS;

export class GfnBitmap {
  private readonly directory: number;

  /** Attach to a bitmap whose directory starts at `offset` in the arena. */
  constructor(
    private readonly host: HostMemory,
    offset: number,
  ) {
    this.directory = offset >> 2;
  }

  static allocate(host: HostMemory): number {
    return host.arenaAllocate(DIRECTORY_ENTRIES * 4, 64);
  }

  /** The chunk word index of the 32 bits holding gfn, or -1 when its leaf is absent. */
  private wordOf(gfn: number): number {
    const leaf = Atomics.load(this.host.arenaI32, this.directory + (gfn >>> LEAF_SHIFT));
    if (leaf === 0) return -1;
    return ((leaf & 0x3ffff) << 10) + ((gfn & (LEAF_BITS - 1)) >>> 5);
  }

  private wordsOf(gfn: number): Int32Array {
    const leaf = Atomics.load(this.host.arenaI32, this.directory + (gfn >>> LEAF_SHIFT));
    return this.host.chunkI32[leaf >>> 18];
  }

  /** True when the bit of gfn is set. The hot path: two loads, no allocation. */
  test(gfn: number): boolean {
    const word = this.wordOf(gfn);
    if (word < 0) return false;
    return (Atomics.load(this.wordsOf(gfn), word) & (1 << (gfn & 31))) !== 0;
  }

  /**
   * The shared word that holds gfn's bit and its index, so that a waiter can
   * sleep on it with Atomics.wait. Allocates the leaf if needed.
   */
  wordFor(gfn: number): { words: Int32Array; index: number } {
    this.leafFor(gfn);
    return { words: this.wordsOf(gfn), index: this.wordOf(gfn) };
  }

  private leafFor(gfn: number): void {
    const slot = this.directory + (gfn >>> LEAF_SHIFT);
    const arena = this.host.arenaI32;
    if (Atomics.load(arena, slot) !== 0) return;
    const pfn = this.host.allocateFrames(ORDER_4K, true);
    if (Atomics.compareExchange(arena, slot, 0, pfn) !== 0) this.host.freeFrames(pfn, ORDER_4K);
  }

  /** Set the bits of [gfn, gfn + count). */
  setRange(gfn: number, count: number): void {
    this.updateRange(gfn, count, true);
  }

  /** Clear the bits of [gfn, gfn + count); returns whether any bit was set. */
  clearRange(gfn: number, count: number): boolean {
    return this.updateRange(gfn, count, false);
  }

  private updateRange(gfn: number, count: number, set: boolean): boolean {
    let changed = false;
    let g = gfn;
    const end = gfn + count;
    while (g < end) {
      const leafEnd = Math.min(end, (Math.floor(g / LEAF_BITS) + 1) * LEAF_BITS);
      if (set) this.leafFor(g);
      else if (this.wordOf(g) < 0) {
        g = leafEnd;
        continue;
      }
      const words = this.wordsOf(g);
      while (g < leafEnd) {
        const bit = g & 31;
        const n = Math.min(32 - bit, leafEnd - g);
        const mask = n === 32 ? -1 : ((1 << n) - 1) << bit;
        const word = this.wordOf(g);
        const old = set ? Atomics.or(words, word, mask) : Atomics.and(words, word, ~mask);
        if ((old & mask) !== (set ? mask : 0)) changed = true;
        g += n;
      }
    }
    return changed;
  }

  /** True when every bit of [gfn, gfn + count) is set (or, with `value` false, clear). */
  rangeIs(gfn: number, count: number, value: boolean): boolean {
    for (let g = gfn; g < gfn + count; g++) {
      if (this.test(g) !== value) return false;
    }
    return true;
  }

  /**
   * Call `visit` for every set bit in [gfn, gfn + count), in order: one load
   * per word and one step per set bit (a dirty log read walks a whole
   * memslot, with the vCPUs stopped for the last one).
   */
  forEachSet(gfn: number, count: number, visit: (gfn: number) => void): void {
    let g = gfn;
    const end = gfn + count;
    while (g < end) {
      const leafEnd = Math.min(end, (Math.floor(g / LEAF_BITS) + 1) * LEAF_BITS);
      let word = this.wordOf(g);
      if (word < 0) {
        g = leafEnd;
        continue;
      }
      const words = this.wordsOf(g);
      while (g < leafEnd) {
        const base = g - (g & 31);
        let bits = Atomics.load(words, word++) & (-1 << (g & 31));
        if (leafEnd - base < 32) bits &= (1 << (leafEnd - base)) - 1;
        while (bits !== 0) {
          const low = bits & -bits;
          visit(base + 31 - Math.clz32(low));
          bits ^= low;
        }
        g = base + 32;
      }
    }
  }
}
