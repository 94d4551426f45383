import type { ArenaHeap } from "./arena-heap.js";
import { fail } from "./errno.js";
import {
  type FrameOrder,
  HostMemory,
  ORDER_1G,
  ORDER_2M,
  ORDER_4K,
  PAGE_SHIFT,
  PAGE_SIZE,
} from "./host-memory.js";
import {
  createPfnTable,
  destroyPfnTable,
  pfnTableDrain,
  pfnTableEntries,
  pfnTableSet,
} from "./pfn-table.js";

/**
 * The page cache of one shared file (a memfd; the hypervisor's guest_memfd
 * reuses it): which frame holds each page of the file. The file's pages are
 * 4 KiB, 2 MiB or 1 GiB ("backing"); a huge file allocates whole naturally
 * aligned huge frames and its size must be a multiple of the huge size (a
 * 4 KiB-backed file may have any size, as a memfd).
 *
 * Its state is a pfn table in the arena, one entry per backing page (0 = not
 * present), so an empty file is all zeros and a 64 GiB file costs only what
 * is touched. Every index in this interface counts 4 KiB pages, whatever the
 * backing: for a huge file, page i is the (i mod 512 or 262144)th 4 KiB piece
 * of its huge frame, and `lookup(i)` returns that piece's pfn.
 *
 * Lookups are one typed-array load; pages are added by compare-and-swap (two
 * threads touching the same page for the first time end with one frame, the
 * loser frees its own), so no lock is taken. Removing pages (punchHole,
 * truncation) tells the owner first, which unmaps them from every mapping of
 * the file and from the hypervisor, and only then frees the frames.
 */

export const PAGE_SIZE_4K = PAGE_SIZE;
export const PAGE_SIZE_2M = 2 * 1024 * 1024;
export const PAGE_SIZE_1G = 1024 * 1024 * 1024;
export type BackingPageSize = typeof PAGE_SIZE_4K | typeof PAGE_SIZE_2M | typeof PAGE_SIZE_1G;

/** The largest file: 4 KiB pages must be countable in an int32. */
export const MAX_FILE_BYTES = 2 ** 31 * PAGE_SIZE;

/** What a page cache needs from the kernel that owns it (the Host). */
export interface PageCacheOwner {
  readonly memory: HostMemory;
  readonly heap: ArenaHeap;
  /**
   * Pages [first, first + count) of `cache` (4 KiB indices) are about to be
   * freed: unmap them from every mapping and from the hypervisor.
   */
  invalidatePageCache(cache: number, first: number, count: number): void;
}

// Header words.
const P_SHIFT = 0;
const P_TABLE = 1;
const P_CAPACITY = 2;
const P_PAGES = 3;
const P_FRAMES = 4;
// Float64 at byte 24: the size in bytes.
const P_SIZE_BYTE = 24;
const HEADER_BYTES = 32;

export function orderOfPageSize(pageSize: number): FrameOrder {
  if (pageSize === PAGE_SIZE_4K) return ORDER_4K;
  if (pageSize === PAGE_SIZE_2M) return ORDER_2M;
  if (pageSize === PAGE_SIZE_1G) return ORDER_1G;
  fail("EINVAL", `page size ${pageSize} is not 4 KiB, 2 MiB or 1 GiB`);
}

function checkIndex(index: number, what: string): void {
  if (!Number.isInteger(index) || index < 0) fail("EINVAL", `bad ${what} ${index}`);
}

export class PageCache {
  /** log2 of the backing page size. */
  readonly pageShift: number;
  readonly pageSize: number;
  readonly order: FrameOrder;
  /** 4 KiB pages the file can grow to. */
  readonly capacityPages: number;
  private readonly memory: HostMemory;
  private readonly i32: Int32Array;
  private readonly f64: Float64Array;
  private readonly w: number;
  private readonly table: number;
  private readonly entries: number;
  /** log2 of the 4 KiB pieces per backing page, and the mask of a piece's index. */
  private readonly pieceShift: number;
  private readonly pieceMask: number;

  constructor(
    private readonly owner: PageCacheOwner,
    /** Arena offset of the page cache's header (from `PageCache.create`). */
    readonly offset: number,
  ) {
    this.memory = owner.memory;
    this.i32 = owner.memory.arenaI32;
    this.f64 = owner.memory.arenaF64;
    this.w = offset >> 2;
    this.pageShift = this.i32[this.w + P_SHIFT];
    this.pageSize = 2 ** this.pageShift;
    this.pieceShift = this.pageShift - PAGE_SHIFT;
    this.pieceMask = (1 << this.pieceShift) - 1;
    this.order = orderOfPageSize(this.pageSize);
    this.table = this.i32[this.w + P_TABLE];
    this.entries = pfnTableEntries(this.table);
    this.capacityPages = this.i32[this.w + P_CAPACITY];
  }

  /**
   * Make an empty file of `size` bytes that may grow to `maxSize` (its table
   * is sized for that); returns the header's arena offset. A huge file's
   * sizes must be multiples of its page size (EINVAL).
   */
  static create(
    owner: PageCacheOwner,
    size: number,
    pageSize: BackingPageSize = PAGE_SIZE_4K,
    maxSize = size,
  ): number {
    const order = orderOfPageSize(pageSize);
    for (const bytes of [size, maxSize]) {
      if (!Number.isSafeInteger(bytes) || bytes < 0) fail("EINVAL", `bad file size ${bytes}`);
      if (pageSize !== PAGE_SIZE_4K && bytes % pageSize !== 0) {
        fail("EINVAL", `size ${bytes} is not a multiple of the ${pageSize}-byte huge page`);
      }
    }
    if (maxSize < size) fail("EINVAL", `maximum size ${maxSize} below size ${size}`);
    if (maxSize > MAX_FILE_BYTES) fail("EFBIG", `file of ${maxSize} bytes`);
    const capacityPages = Math.ceil(maxSize / PAGE_SIZE);
    const memory = owner.memory;
    const offset = memory.arenaAllocate(HEADER_BYTES, 8);
    const table = createPfnTable(memory.arenaI32, owner.heap, capacityPages >>> order);
    const w = offset >> 2;
    memory.arenaI32[w + P_SHIFT] = PAGE_SHIFT + order;
    memory.arenaI32[w + P_TABLE] = table;
    memory.arenaI32[w + P_CAPACITY] = capacityPages;
    memory.arenaI32[w + P_PAGES] = Math.ceil(size / PAGE_SIZE);
    memory.arenaF64[(offset + P_SIZE_BYTE) >> 3] = size;
    return offset;
  }

  /** The file's size in bytes. */
  get size(): number {
    return this.f64[(this.offset + P_SIZE_BYTE) >> 3];
  }

  /** The file's size in 4 KiB pages (rounded up). */
  get pages(): number {
    return Atomics.load(this.i32, this.w + P_PAGES);
  }

  /** 4 KiB frames the file holds (a huge page counts all its pieces). */
  get framesPresent(): number {
    return Atomics.load(this.i32, this.w + P_FRAMES);
  }

  /** The pfn of 4 KiB page `index`, 0 when absent. The hot path: one load, no allocation. */
  lookup(index: number): number {
    if (!(index >= 0 && index < this.capacityPages)) return 0;
    const head = Atomics.load(this.i32, this.entries + (index >>> this.pieceShift));
    return head === 0 ? 0 : head + (index & this.pieceMask);
  }

  /** The first pfn of the backing page that holds 4 KiB page `index`, 0 when absent. */
  lookupHead(index: number): number {
    if (!(index >= 0 && index < this.capacityPages)) return 0;
    return Atomics.load(this.i32, this.entries + (index >>> this.pieceShift));
  }

  isPresent(index: number): boolean {
    return this.lookupHead(index) !== 0;
  }

  /**
   * The pfn of page `index`, allocating its backing page on first touch.
   * `zeroed: false` is for a caller that overwrites the whole 4 KiB page at
   * once (huge pages are always zeroed: only one piece gets written). Pages
   * beyond the end of the file: EINVAL. Out of frames: ENOMEM.
   */
  getOrAllocate(index: number, zeroed: boolean): number {
    this.checkInFile(index, 1);
    const slot = this.entries + (index >>> this.pieceShift);
    for (;;) {
      const head = Atomics.load(this.i32, slot);
      if (head !== 0) return head + (index & this.pieceMask);
      const fresh = this.memory.allocateFrames(this.order, zeroed || this.order !== ORDER_4K);
      if (this.publish(index, fresh)) return fresh + (index & this.pieceMask);
      this.memory.freeFrames(fresh, this.order);
    }
  }

  /**
   * Write one 4 KiB page of data at page `index` (`source` from
   * `sourceOffset` must hold 4096 bytes), allocating the page if absent: the
   * page-install primitive. A new page is filled before it is published, so
   * no thread ever sees it half written. Returns the page's pfn.
   */
  install(index: number, source: Uint8Array, sourceOffset = 0): number {
    this.checkInFile(index, 1);
    if (sourceOffset < 0 || source.length - sourceOffset < PAGE_SIZE) {
      fail("EINVAL", "install needs 4096 bytes of data");
    }
    const slot = this.entries + (index >>> this.pieceShift);
    const piece = index & this.pieceMask;
    for (;;) {
      const head = Atomics.load(this.i32, slot);
      if (head !== 0) {
        this.copyPage(head + piece, source, sourceOffset);
        return head + piece;
      }
      const fresh = this.memory.allocateFrames(this.order, this.order !== ORDER_4K);
      this.copyPage(fresh + piece, source, sourceOffset);
      if (this.publish(index, fresh)) return fresh + piece;
      this.memory.freeFrames(fresh, this.order);
    }
  }

  /**
   * Add a whole backing page at `index` (aligned to the page size) filled
   * from `source` (pageSize bytes; null for zeros), only if it is absent:
   * returns its first pfn, or 0 when the page was already there (nothing is
   * written then). userfaultfd's COPY and ZEROPAGE on shared memory use this.
   */
  insert(index: number, source: Uint8Array | null, sourceOffset = 0): number {
    this.checkInFile(index, 1);
    if ((index & this.pieceMask) !== 0) fail("EINVAL", `page ${index} is not huge-page aligned`);
    if (source && (sourceOffset < 0 || source.length - sourceOffset < this.pageSize)) {
      fail("EINVAL", `insert needs ${this.pageSize} bytes of data`);
    }
    if (this.lookupHead(index) !== 0) return 0;
    const fresh = this.memory.allocateFrames(this.order, source === null);
    if (source) this.copyBacking(fresh, source, sourceOffset);
    if (this.publish(index, fresh)) return fresh;
    this.memory.freeFrames(fresh, this.order);
    return 0;
  }

  /**
   * Free 4 KiB pages [index, index + count) (fallocate PUNCH_HOLE). A huge
   * file frees whole huge pages only: the range must be aligned (EINVAL).
   * The pages are unmapped everywhere before their frames are freed.
   */
  punchHole(index: number, count: number): void {
    checkIndex(index, "page");
    checkIndex(count, "page count");
    if (((index | count) & this.pieceMask) !== 0 && this.pieceShift !== 0) {
      fail("EINVAL", `hole [${index}, +${count}) is not aligned to ${this.pageSize}-byte pages`);
    }
    const end = Math.min(index + count, this.capacityPages);
    if (index >= end) return;
    const freed: number[] = [];
    pfnTableDrain(
      this.i32,
      this.table,
      index >>> this.pieceShift,
      Math.ceil(end / (1 << this.pieceShift)),
      (_, pfn) => freed.push(pfn),
    );
    if (freed.length === 0) return;
    Atomics.sub(this.i32, this.w + P_FRAMES, freed.length << this.order);
    this.owner.invalidatePageCache(this.offset, index, end - index);
    for (const pfn of freed) this.memory.freeFrames(pfn, this.order);
  }

  /**
   * Change the file's size (ftruncate). Shrinking frees the pages past the
   * new end and zeroes the tail of a partial last page. Beyond the size the
   * table was made for: EFBIG; a huge file's size must stay a multiple of its
   * page size: EINVAL.
   */
  setSize(bytes: number): void {
    if (!Number.isSafeInteger(bytes) || bytes < 0) fail("EINVAL", `bad file size ${bytes}`);
    if (bytes > this.capacityPages * PAGE_SIZE) {
      fail("EFBIG", `size ${bytes} beyond the file's maximum ${this.capacityPages * PAGE_SIZE}`);
    }
    if (this.pieceShift !== 0 && bytes % this.pageSize !== 0) {
      fail("EINVAL", `size ${bytes} is not a multiple of the ${this.pageSize}-byte huge page`);
    }
    const oldPages = this.pages;
    const newPages = Math.ceil(bytes / PAGE_SIZE);
    this.f64[(this.offset + P_SIZE_BYTE) >> 3] = bytes;
    Atomics.store(this.i32, this.w + P_PAGES, newPages);
    if (newPages < oldPages) this.punchHole(newPages, oldPages - newPages);
    const tail = bytes % PAGE_SIZE;
    if (tail !== 0) {
      const pfn = this.lookup(newPages - 1);
      const at = HostMemory.offsetOf(pfn);
      if (pfn !== 0) this.frame(pfn).fill(0, at + tail, at + PAGE_SIZE);
    }
  }

  /** Free every page and the table; the file must be unreachable (its last reference gone). */
  destroy(): void {
    const order = this.order;
    pfnTableDrain(this.i32, this.table, 0, this.capacityPages >>> this.pieceShift, (_, pfn) =>
      this.memory.freeFrames(pfn, order),
    );
    Atomics.store(this.i32, this.w + P_FRAMES, 0);
    Atomics.store(this.i32, this.w + P_PAGES, 0);
    destroyPfnTable(this.i32, this.owner.heap, this.table);
  }

  private checkInFile(index: number, count: number): void {
    if (!(index >= 0 && index + count <= this.pages) || !Number.isInteger(index)) {
      fail("EINVAL", `page ${index} is beyond the end of the file (${this.pages} pages)`);
    }
  }

  /** Put a fresh backing page into the table; false if another thread got there first. */
  private publish(index: number, head: number): boolean {
    if (!pfnTableSet(this.i32, this.table, index >>> this.pieceShift, 0, head)) return false;
    Atomics.add(this.i32, this.w + P_FRAMES, 1 << this.order);
    return true;
  }

  private frame(pfn: number): Uint8Array {
    return this.memory.chunkU8[HostMemory.chunkOf(pfn)];
  }

  private copyPage(pfn: number, source: Uint8Array, sourceOffset: number): void {
    const at = HostMemory.offsetOf(pfn);
    if (sourceOffset === 0 && source.length === PAGE_SIZE) this.frame(pfn).set(source, at);
    else this.frame(pfn).set(source.subarray(sourceOffset, sourceOffset + PAGE_SIZE), at);
  }

  private copyBacking(head: number, source: Uint8Array, sourceOffset: number): void {
    const bytes = this.pageSize;
    const view = sourceOffset === 0 && source.length === bytes;
    this.frame(head).set(
      view ? source : source.subarray(sourceOffset, sourceOffset + bytes),
      HostMemory.offsetOf(head),
    );
  }
}
