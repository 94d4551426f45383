import { HostMemory, ORDER_4K } from "../host/host-memory.js";

/**
 * The stage-2 (guest-physical -> host) page table of one VM, in host frames
 * like a real one: three levels of 512 entries indexed by gfn bits 26:18,
 * 17:9 and 8:0, with leaves at any level for 1 GiB, 2 MiB and 4 KiB mappings.
 * vCPUs walk it on a TLB miss without a lock; the fault path installs entries
 * with compare-and-swap; zapping runs under the VM's mmu lock and is followed
 * by a TLB flush on every vCPU (see vcpu-requests.ts).
 *
 * An entry is an int32: 0 = none; otherwise pfn << 4 | flags.
 */

const VALID = 1;
const LEAF = 2;
const WRITABLE = 4;

export const LEVEL_4K = 0;
export const LEVEL_2M = 1;
export const LEVEL_1G = 2;
export type MappingLevel = typeof LEVEL_4K | typeof LEVEL_2M | typeof LEVEL_1G;

/** Guest frames covered by one entry at each level. */
export const FRAMES_AT_LEVEL = [1, 512, 512 * 512] as const;
/** Guest frames the table covers: 512 GiB of guest-physical space. */
export const STAGE2_GFN_LIMIT = 512 * 512 * 512;

/** The result of a walk: host frame of the 4 KiB page, or 0, and its permissions. */
export class Stage2Walk {
  pfn = 0;
  writable = false;
  level: MappingLevel = LEVEL_4K;
}

export class Stage2 {
  constructor(
    private readonly host: HostMemory,
    /** Arena word holding the root table's pfn. */
    private readonly rootWord: number,
    /** Arena words counting mappings per level (pages_4k, pages_2m, pages_1g stats). */
    private readonly statsWord: number,
  ) {}

  /** Allocate the root table; returns its pfn, to be stored at rootWord. */
  static allocateRoot(host: HostMemory): number {
    return host.allocateFrames(ORDER_4K, true);
  }

  private tableWords(pfn: number): Int32Array {
    return this.host.chunkI32[HostMemory.chunkOf(pfn)];
  }

  private static tableBase(pfn: number): number {
    return HostMemory.offsetOf(pfn) >> 2;
  }

  /** Walk to the 4 KiB page of gfn. The hot path of a TLB miss: no allocation. */
  walk(gfn: number, out: Stage2Walk): boolean {
    let table = Atomics.load(this.host.arenaI32, this.rootWord);
    for (let level = LEVEL_1G; level >= LEVEL_4K; level--) {
      const shift = 9 * level;
      const index = (gfn >>> shift) & 511;
      const entry = Atomics.load(this.tableWords(table), Stage2.tableBase(table) + index);
      if ((entry & VALID) === 0) return false;
      if (entry & LEAF) {
        out.pfn = (entry >>> 4) + (gfn & (FRAMES_AT_LEVEL[level] - 1));
        out.writable = (entry & WRITABLE) !== 0;
        out.level = level as MappingLevel;
        return true;
      }
      table = entry >>> 4;
    }
    return false;
  }

  /**
   * Map gfn (aligned to the level) to pfn (aligned likewise). Returns false if
   * something is already mapped there (a racing fault won: not an error).
   */
  map(gfn: number, pfn: number, level: MappingLevel, writable: boolean): boolean {
    let table = Atomics.load(this.host.arenaI32, this.rootWord);
    for (let l = LEVEL_1G; l > level; l--) {
      const words = this.tableWords(table);
      const slot = Stage2.tableBase(table) + ((gfn >>> (9 * l)) & 511);
      let entry = Atomics.load(words, slot);
      if (entry & LEAF) return false;
      if ((entry & VALID) === 0) {
        const next = this.host.allocateFrames(ORDER_4K, true);
        const installed = (next << 4) | VALID;
        const previous = Atomics.compareExchange(words, slot, 0, installed);
        if (previous === 0) {
          entry = installed;
        } else {
          this.host.freeFrames(next, ORDER_4K);
          if (previous & LEAF) return false;
          entry = previous;
        }
      }
      table = entry >>> 4;
    }
    const words = this.tableWords(table);
    const slot = Stage2.tableBase(table) + ((gfn >>> (9 * level)) & 511);
    const leaf = (pfn << 4) | VALID | LEAF | (writable ? WRITABLE : 0);
    if (Atomics.compareExchange(words, slot, 0, leaf) !== 0) return false;
    Atomics.add(this.host.arenaI32, this.statsWord + level, 1);
    return true;
  }

  /**
   * Drop lower tables left empty inside [gfn, gfn + count), so that huge
   * leaves can be mapped there again (collapsing page tables). A dropped
   * table is not freed: vCPUs walk without a lock, and it costs one frame per
   * 2 MiB at most. Callers hold the mmu lock.
   */
  pruneEmptyTables(gfn: number, count: number): void {
    const end = Math.min(gfn + count, STAGE2_GFN_LIMIT);
    const prune = (table: number, level: MappingLevel, base: number): boolean => {
      const words = this.tableWords(table);
      const span = FRAMES_AT_LEVEL[level];
      let empty = true;
      for (let i = 0; i < 512; i++) {
        const slot = Stage2.tableBase(table) + i;
        const entry = Atomics.load(words, slot);
        if ((entry & VALID) === 0) continue;
        const start = base + i * span;
        const overlaps = start < end && start + span > gfn;
        if (!(entry & LEAF) && level > LEVEL_4K && overlaps) {
          const subtreeEmpty = prune(entry >>> 4, (level - 1) as MappingLevel, start);
          if (subtreeEmpty && start >= gfn && start + span <= end) {
            Atomics.store(words, slot, 0);
            continue;
          }
        }
        empty = false;
      }
      return empty;
    };
    if (end > gfn) prune(Atomics.load(this.host.arenaI32, this.rootWord), LEVEL_1G, 0);
  }

  /** Make the existing leaf covering gfn writable (dirty logging's write fault). */
  makeWritable(gfn: number): boolean {
    return this.updateLeaf(gfn, (entry) => entry | WRITABLE);
  }

  private updateLeaf(gfn: number, change: (entry: number) => number): boolean {
    let table = Atomics.load(this.host.arenaI32, this.rootWord);
    for (let level = LEVEL_1G; level >= LEVEL_4K; level--) {
      const words = this.tableWords(table);
      const slot = Stage2.tableBase(table) + ((gfn >>> (9 * level)) & 511);
      const entry = Atomics.load(words, slot);
      if ((entry & VALID) === 0) return false;
      if (entry & LEAF) {
        return Atomics.compareExchange(words, slot, entry, change(entry)) === entry;
      }
      table = entry >>> 4;
    }
    return false;
  }

  /**
   * Remove every mapping that overlaps [gfn, gfn + count), splitting nothing:
   * a huge leaf that overlaps the range is removed whole (the rest of it faults
   * back in later). Empty tables are kept. Callers hold the mmu lock and flush
   * vCPU TLBs afterwards. Returns the number of leaves removed.
   */
  unmapRange(gfn: number, count: number): number {
    return this.visitLeaves(gfn, count, (words, slot, level) => {
      Atomics.store(words, slot, 0);
      Atomics.sub(this.host.arenaI32, this.statsWord + level, 1);
    });
  }

  /**
   * Write-protect the range for dirty logging: clear the writable bit of
   * every 4 KiB leaf, and remove huge leaves, whose pages then fault back in
   * one 4 KiB page at a time (a write to a write-protected huge leaf could
   * not be logged page by page). Callers hold the mmu lock and flush.
   */
  writeProtectRange(gfn: number, count: number): number {
    return this.visitLeaves(gfn, count, (words, slot, level) => {
      if (level === LEVEL_4K) {
        Atomics.and(words, slot, ~WRITABLE);
      } else {
        Atomics.store(words, slot, 0);
        Atomics.sub(this.host.arenaI32, this.statsWord + level, 1);
      }
    });
  }

  private visitLeaves(
    gfn: number,
    count: number,
    visit: (words: Int32Array, slot: number, level: MappingLevel) => void,
  ): number {
    let visited = 0;
    const end = Math.min(gfn + count, STAGE2_GFN_LIMIT);
    const walkTable = (table: number, level: MappingLevel, base: number): void => {
      const words = this.tableWords(table);
      const span = FRAMES_AT_LEVEL[level];
      const first = Math.max(0, Math.floor((gfn - base) / span));
      const last = Math.min(511, Math.floor((end - 1 - base) / span));
      for (let i = first; i <= last; i++) {
        const slot = Stage2.tableBase(table) + i;
        const entry = Atomics.load(words, slot);
        if ((entry & VALID) === 0) continue;
        if (entry & LEAF) {
          visit(words, slot, level);
          visited++;
        } else if (level > LEVEL_4K) {
          walkTable(entry >>> 4, (level - 1) as MappingLevel, base + i * span);
        }
      }
    };
    if (end > gfn) walkTable(Atomics.load(this.host.arenaI32, this.rootWord), LEVEL_1G, 0);
    return visited;
  }

  /** Number of leaves per level: the pages_4k / pages_2m / pages_1g statistics. */
  mappingCounts(): [number, number, number] {
    const a = this.host.arenaI32;
    return [
      Atomics.load(a, this.statsWord),
      Atomics.load(a, this.statsWord + 1),
      Atomics.load(a, this.statsWord + 2),
    ];
  }
}
