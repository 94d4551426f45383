import { type Errno, ErrnoError, fail } from "./errno.js";
import { FILE_MAPPABLE, OBJ_FLAGS, OBJ_PAGE_CACHE, OBJ_TYPE, putFile } from "./files.js";
import type { Host } from "./host.js";
import { HostMemory, PAGE_SHIFT, PAGE_SIZE } from "./host-memory.js";
import {
  MAX_FILE_BYTES,
  orderOfPageSize,
  PAGE_SIZE_2M,
  PAGE_SIZE_4K,
  type BackingPageSize,
  type PageCache,
} from "./page-cache.js";
import {
  createPfnTable,
  destroyPfnTable,
  pfnTableDrain,
  pfnTableEntries,
  pfnTableSet,
} from "./pfn-table.js";
import { lock, unlock } from "./sync.js";

/**
 * The VMM process's virtual address space: its mappings, their page tables,
 * and the host page-fault path that every access through a mapping takes
 * (the VMM's own reads and writes, and the hypervisor's gfn -> hva -> pfn
 * for traditional memslots).
 *
 * Kinds of mapping:
 *  - private anonymous: its own page table (virtual page -> pfn), a zeroed
 *    frame allocated on first touch; with a huge page size it takes whole
 *    naturally aligned huge frames, like hugetlbfs;
 *  - shared file: a memfd, or any file object exposing a page cache and
 *    FILE_MAPPABLE (the hypervisor's guest_memfd with MMAP). Pages come from
 *    the file's page cache, so two mappings of one file share memory; the
 *    mapping still has its own page table, separate from the page cache as
 *    Linux's page tables are, so that a page present in the file but not yet
 *    mapped here is told apart (userfaultfd MINOR) from a page the file does
 *    not have (MISSING). MAP_SHARED | MAP_ANONYMOUS maps a fresh such file.
 * Private mappings of files (copy-on-write) are not supported (EINVAL).
 *
 * The mapping table is a fixed array of slots in the arena. A slot's fields
 * never change while it is live; its generation word is odd while live and
 * is bumped when it is published and when it is unmapped, so any thread can
 * read it without a lock, seqlock style, and a per-thread cache of the last
 * mapping makes the present-page fault path two loads of the generation and
 * one of the page table entry. Populating a page (the slow path) registers
 * the thread as a user of the slot; munmap retires the slot, then waits for
 * its users to leave before freeing its page table.
 */

export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;

export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const MAP_POPULATE = 0x8000;
export const MAP_HUGETLB = 0x40000;
const KNOWN_MAP_FLAGS =
  MAP_SHARED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_POPULATE | MAP_HUGETLB;

export const MADV_DONTNEED = 4;
export const MADV_REMOVE = 9;

/** Fault flags. */
export const FAULT_WRITE = 1;
/** The caller cannot sleep: a fault that would wait for userfaultfd fails with EAGAIN instead. */
export const FAULT_ATOMIC = 2;

/** Failures of `tryFaultIn`: negated Linux errno values (a pfn is always positive). */
export const FAULT_EFAULT = -14;
export const FAULT_EAGAIN = -11;
export const FAULT_ENOMEM = -12;
export const FAULT_EINTR = -4;
const FAULT_ERRNO: Record<number, Errno> = {
  [FAULT_EFAULT]: "EFAULT",
  [FAULT_EAGAIN]: "EAGAIN",
  [FAULT_ENOMEM]: "ENOMEM",
  [FAULT_EINTR]: "EINTR",
};

/** userfaultfd registration modes and fault reasons (UFFDIO_REGISTER_MODE_*). */
export const UFFD_MISSING = 1;
export const UFFD_WP = 2;
export const UFFD_MINOR = 4;

/** `mfill` operations: what UFFDIO_COPY, UFFDIO_ZEROPAGE and UFFDIO_CONTINUE do to a mapping. */
export const MFILL_COPY = 1;
export const MFILL_ZEROPAGE = 2;
export const MFILL_CONTINUE = 3;
/** Or'ed into the operation: map the page write-protected for userfaultfd WP. */
export const MFILL_WP = 0x100;

/** Page table entry: the pfn of the mapped (backing) page, and a userfaultfd write-protect marker. */
export const PTE_UFFD_WP = 1 << 30;
export const PTE_PFN_MASK = PTE_UFFD_WP - 1;

/** The top of user space (x86-64's 47 bits): no user address range goes past it. */
export const TASK_SIZE = 2 ** 47;

/** Mappings are placed top-down below this address, as Linux's mmap base. */
export const MMAP_TOP = 0x7f00_0000_0000;
const MMAP_BOTTOM = 0x1_0000_0000;
export const DEFAULT_MAX_MAPPINGS = 1024;

export interface MmapOptions {
  length: number;
  prot: number;
  flags: number;
  /** The file to map (not for MAP_ANONYMOUS). */
  fd?: number;
  /** Offset in the file, a multiple of its page size. */
  offset?: number;
  /** Anonymous mappings: 2 MiB or 1 GiB pages (MAP_HUGETLB alone means 2 MiB). */
  hugePageSize?: number;
}

export interface MappingInfo {
  start: number;
  length: number;
  prot: number;
  flags: number;
  pageSize: number;
  /** Backed by a page cache (memfd, shmem, guest_memfd) rather than private anonymous memory. */
  shared: boolean;
  /** Offset of the mapping in its file. */
  fileOffset: number;
  /** 4 KiB frames this mapping's page table maps. */
  residentFrames: number;
}

/** A mapping with its userfaultfd registration (mode 0: none; [uffdStart, uffdEnd) in bytes). */
export interface UserfaultMappingInfo extends MappingInfo {
  /** The mapped file's type (FILE_MEMFD, FILE_GUEST_MEMFD, ...), 0 for private memory. */
  fileType: number;
  uffdMode: number;
  uffdContext: number;
  uffdStart: number;
  uffdEnd: number;
}

/**
 * The userfaultfd hook. A fault that finds no page (or, for MINOR, a page in
 * the page cache not yet mapped here; for WP, a write to a write-protected
 * page) in a range registered with `setUserfaultRange` for that reason calls
 * this instead of populating the page, unless the caller is atomic (then the
 * fault fails with FAULT_EAGAIN and nothing is queued). The handler queues a
 * message on the registration's userfaultfd and sleeps until the fault is
 * resolved; it returns 0 to have the fault retried (resolved, or userfaultfd
 * gone) or a negative FAULT_* code to fail it. It is called outside the
 * mapping's users section (munmap is never held up by a sleeping fault), so
 * it must check `space.isLive(slot, gen)` before it queues anything.
 */
export type UserfaultHandler = (
  space: AddressSpace,
  slot: number,
  gen: number,
  hva: number,
  reason: number,
  flags: number,
) => number;

let userfaultHandler: UserfaultHandler | null = null;

/**
 * Install the userfaultfd hook on this thread and return the one it replaces.
 * Loading the userfaultfd module (as loading host.js does) installs the real
 * one on every thread that may take faults (it is a JS function); tests that
 * put their own in must put the previous one back, not null.
 */
export function setUserfaultHandler(handler: UserfaultHandler | null): UserfaultHandler | null {
  const previous = userfaultHandler;
  userfaultHandler = handler;
  return previous;
}

/** Called on the thread that unmaps host pages, before their frames are freed: the MMU notifier. */
export type InvalidateListener = (start: number, end: number) => void;

const KIND_ANON = 1;
const KIND_FILE = 2;

// Address-space header words.
const A_LOCK = 0;
const A_CAPACITY = 1;
const A_HIGH = 2;
const A_LIVE = 3;
const HEADER_WORDS = 16;

// Slot words (a slot is 128 bytes; start and length are Float64 at bytes 64 and 72).
const M_GEN = 0;
const M_USERS = 1;
const M_KIND = 2;
const M_PROT = 3;
const M_FLAGS = 4;
const M_SHIFT = 5;
const M_TABLE = 6;
const M_FILE = 7;
const M_CACHE = 8;
const M_MAPPED = 9;
const M_PGOFF = 10;
const M_UFFD_MODE = 11;
const M_UFFD_CONTEXT = 12;
const M_UFFD_FIRST = 13;
const M_UFFD_END = 14;
const SLOT_WORDS = 32;

/** populate's answer when the fault must go to userfaultfd: NEED_USERFAULT - reason. */
const NEED_USERFAULT = -1000;

function roundUp(value: number, to: number): number {
  return Math.ceil(value / to) * to;
}

function hex(value: number): string {
  return `0x${value.toString(16)}`;
}

export class AddressSpace {
  private readonly memory: HostMemory;
  private readonly i32: Int32Array;
  private readonly f64: Float64Array;
  private readonly base: number;
  private readonly slots: number;
  readonly capacity: number;
  private readonly listeners: InvalidateListener[] = [];

  // This thread's cache of the last mapping it found (valid while its generation is unchanged).
  private cSlot = 0;
  private cGen = -1;
  private cStart = 0;
  private cEnd = 0;
  private cProt = 0;
  private cEntries = 0;
  private cPieceShift = 0;
  private cPieceMask = 0;

  constructor(
    /** The kernel this address space belongs to (for the userfault handler). */
    readonly host: Host,
    /** Arena offset of the address space (from `AddressSpace.allocate`). */
    readonly offset: number,
  ) {
    this.memory = host.memory;
    this.i32 = host.memory.arenaI32;
    this.f64 = host.memory.arenaF64;
    this.base = offset >> 2;
    this.slots = this.base + HEADER_WORDS;
    this.capacity = this.i32[this.base + A_CAPACITY];
  }

  static allocate(memory: HostMemory, capacity = DEFAULT_MAX_MAPPINGS): number {
    const offset = memory.arenaAllocate((HEADER_WORDS + capacity * SLOT_WORDS) * 4, 128);
    memory.arenaI32[(offset >> 2) + A_CAPACITY] = capacity;
    return offset;
  }

  /** Tell `listener` (on this thread) about every range of host pages unmapped from here on. */
  addInvalidateListener(listener: InvalidateListener): void {
    this.listeners.push(listener);
  }

  removeInvalidateListener(listener: InvalidateListener): void {
    const at = this.listeners.indexOf(listener);
    if (at >= 0) this.listeners.splice(at, 1);
  }

  // ---------------------------------------------------------------- mmap

  /** mmap(2): a new mapping, placed top-down and aligned to its page size; returns its address. */
  mmap(options: MmapOptions): number {
    const { prot, flags } = options;
    const offset = options.offset ?? 0;
    if (!Number.isSafeInteger(options.length) || options.length <= 0) {
      fail("EINVAL", `bad mapping length ${options.length}`);
    }
    if (!Number.isInteger(prot) || (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)) !== 0) {
      fail("EINVAL", `bad protection ${prot}`);
    }
    if (!Number.isInteger(flags) || (flags & ~KNOWN_MAP_FLAGS) !== 0) {
      fail("EINVAL", `unknown mmap flags ${flags}`);
    }
    const shared = (flags & MAP_SHARED) !== 0;
    if (shared === ((flags & MAP_PRIVATE) !== 0)) {
      fail("EINVAL", "exactly one of MAP_SHARED and MAP_PRIVATE");
    }
    if (!Number.isSafeInteger(offset) || offset < 0) fail("EINVAL", `bad offset ${offset}`);

    let kind = KIND_ANON;
    let pageSize: number;
    let file = 0;
    let cache = 0;
    let pgoff = 0;
    if ((flags & MAP_ANONYMOUS) !== 0) {
      pageSize =
        options.hugePageSize ?? ((flags & MAP_HUGETLB) !== 0 ? PAGE_SIZE_2M : PAGE_SIZE_4K);
      orderOfPageSize(pageSize);
      if (shared) {
        // Shared anonymous memory is a file of its own (shmem), held only by the mapping.
        const size = roundUp(options.length, pageSize);
        if (size > MAX_FILE_BYTES) fail("ENOMEM", `mapping of ${size} bytes`);
        file = this.host.memfds.createObject("dev/zero", size, {
          hugePageSize: pageSize as BackingPageSize,
        });
        kind = KIND_FILE;
        cache = this.i32[(file >> 2) + OBJ_PAGE_CACHE];
      }
    } else {
      if (options.fd === undefined) fail("EBADF", "mmap of a file needs its fd");
      file = this.host.files.getAny(options.fd);
      try {
        cache = this.i32[(file >> 2) + OBJ_PAGE_CACHE];
        if (cache === 0 || (this.i32[(file >> 2) + OBJ_FLAGS] & FILE_MAPPABLE) === 0) {
          fail("ENODEV", `fd ${options.fd} cannot be mapped`);
        }
        if (!shared) fail("EINVAL", "private file mappings are not supported");
        pageSize = this.host.pageCache(cache).pageSize;
        if (options.hugePageSize !== undefined && options.hugePageSize !== pageSize) {
          fail("EINVAL", `the file's pages are ${pageSize} bytes, not ${options.hugePageSize}`);
        }
        if (offset % pageSize !== 0) fail("EINVAL", `offset ${offset} not aligned to ${pageSize}`);
        if (offset + roundUp(options.length, pageSize) > MAX_FILE_BYTES) {
          fail("EINVAL", "mapping beyond the largest file offset");
        }
      } catch (error) {
        putFile(this.host, file);
        throw error;
      }
      kind = KIND_FILE;
      pgoff = offset / PAGE_SIZE;
    }

    const length = roundUp(options.length, pageSize);
    const shift = PAGE_SHIFT + orderOfPageSize(pageSize);
    let table = 0;
    let start: number;
    try {
      if (length > MAX_FILE_BYTES) fail("ENOMEM", `mapping of ${length} bytes`);
      table = createPfnTable(this.i32, this.host.heap, length / pageSize);
      start = this.publish(kind, prot, flags, shift, table, file, cache, pgoff, length);
    } catch (error) {
      if (table !== 0) destroyPfnTable(this.i32, this.host.heap, table);
      if (file !== 0) putFile(this.host, file);
      throw error;
    }
    if ((flags & MAP_POPULATE) !== 0) {
      const access = (prot & PROT_WRITE) !== 0 ? FAULT_WRITE : 0;
      for (let at = 0; at < length; at += pageSize) {
        if (this.tryFaultIn(start + at, access) < 0) break; // as Linux, population is best effort
      }
    }
    return start;
  }

  private publish(
    kind: number,
    prot: number,
    flags: number,
    shift: number,
    table: number,
    file: number,
    cache: number,
    pgoff: number,
    length: number,
  ): number {
    const i32 = this.i32;
    lock(i32, this.base + A_LOCK);
    try {
      let s = -1;
      for (let k = 0; k < this.capacity; k++) {
        const candidate = this.slots + k * SLOT_WORDS;
        if ((i32[candidate + M_GEN] & 1) === 0) {
          s = candidate;
          if (k + 1 > i32[this.base + A_HIGH]) Atomics.store(i32, this.base + A_HIGH, k + 1);
          break;
        }
      }
      if (s < 0) fail("ENOMEM", `no more than ${this.capacity} mappings`);
      const start = this.findGap(length, 2 ** shift);
      i32[s + M_KIND] = kind;
      i32[s + M_PROT] = prot;
      i32[s + M_FLAGS] = flags;
      i32[s + M_SHIFT] = shift;
      i32[s + M_TABLE] = table;
      i32[s + M_FILE] = file;
      i32[s + M_CACHE] = cache;
      i32[s + M_PGOFF] = pgoff;
      Atomics.store(i32, s + M_MAPPED, 0);
      Atomics.store(i32, s + M_UFFD_MODE, 0);
      i32[s + M_UFFD_CONTEXT] = 0;
      i32[s + M_UFFD_FIRST] = 0;
      i32[s + M_UFFD_END] = 0;
      this.f64[(s >> 1) + 8] = start;
      this.f64[(s >> 1) + 9] = length;
      Atomics.add(i32, s + M_GEN, 1); // odd: live
      i32[this.base + A_LIVE]++;
      return start;
    } finally {
      unlock(i32, this.base + A_LOCK);
    }
  }

  /** The highest free range of `length` bytes aligned to `align`, below MMAP_TOP. Under the lock. */
  private findGap(length: number, align: number): number {
    const ranges: Array<[number, number]> = [];
    const high = this.i32[this.base + A_HIGH];
    for (let k = 0; k < high; k++) {
      const s = this.slots + k * SLOT_WORDS;
      if ((this.i32[s + M_GEN] & 1) === 0) continue;
      const start = this.f64[(s >> 1) + 8];
      ranges.push([start, start + this.f64[(s >> 1) + 9]]);
    }
    ranges.sort((a, b) => b[0] - a[0]);
    let top = MMAP_TOP;
    for (const [start, end] of ranges) {
      if (end <= top) {
        const candidate = Math.floor((top - length) / align) * align;
        if (candidate >= end) return candidate;
      }
      top = Math.min(top, start);
    }
    const candidate = Math.floor((top - length) / align) * align;
    if (candidate < MMAP_BOTTOM) fail("ENOMEM", `no room for a mapping of ${length} bytes`);
    return candidate;
  }

  /**
   * munmap(2) of one whole mapping: `hva` must be where a mapping starts and
   * `length` (rounded up to its page size) its length, EINVAL otherwise. The
   * mapping disappears at once for every thread; its pages are unmapped
   * (listeners told), private ones freed, and the file reference dropped.
   */
  munmap(hva: number, length: number): void {
    if (!Number.isSafeInteger(length) || length <= 0) fail("EINVAL", `bad length ${length}`);
    const i32 = this.i32;
    let file = 0;
    lock(i32, this.base + A_LOCK);
    try {
      const high = i32[this.base + A_HIGH];
      let s = -1;
      for (let k = 0; k < high && s < 0; k++) {
        const candidate = this.slots + k * SLOT_WORDS;
        if ((i32[candidate + M_GEN] & 1) !== 0 && this.f64[(candidate >> 1) + 8] === hva) {
          s = candidate;
        }
      }
      if (s < 0) fail("EINVAL", `no mapping starts at ${hex(hva)}`);
      const size = this.f64[(s >> 1) + 9];
      if (roundUp(length, 2 ** i32[s + M_SHIFT]) !== size) {
        fail("EINVAL", `munmap of ${length} bytes of a ${size}-byte mapping`);
      }
      file = this.teardown(s);
    } finally {
      unlock(i32, this.base + A_LOCK);
    }
    if (file !== 0) putFile(this.host, file);
  }

  /** Retire a live slot and free what it holds; returns its file object, still referenced. */
  private teardown(s: number): number {
    const i32 = this.i32;
    Atomics.add(i32, s + M_GEN, 1); // even: gone for every reader
    for (;;) {
      const users = Atomics.load(i32, s + M_USERS);
      if (users === 0) break;
      Atomics.wait(i32, s + M_USERS, users);
    }
    const start = this.f64[(s >> 1) + 8];
    const length = this.f64[(s >> 1) + 9];
    this.notifyInvalidate(start, start + length);
    const table = i32[s + M_TABLE];
    const order = i32[s + M_SHIFT] - PAGE_SHIFT;
    const anonymous = i32[s + M_KIND] === KIND_ANON;
    pfnTableDrain(i32, table, 0, length / 2 ** i32[s + M_SHIFT], (_, pte) => {
      if (anonymous) this.memory.freeFrames(pte & PTE_PFN_MASK, order as 0 | 9 | 18);
    });
    destroyPfnTable(i32, this.host.heap, table);
    const file = i32[s + M_FILE];
    i32.fill(0, s + M_KIND, s + SLOT_WORDS);
    i32[this.base + A_LIVE]--;
    return file;
  }

  // ---------------------------------------------------------------- faults

  /**
   * The host fault path: the pfn of the 4 KiB page at `hva`, populating it
   * if absent. FAULT_WRITE for a write (a read-only mapping gives EFAULT);
   * FAULT_ATOMIC when the caller cannot sleep. Unmapped: EFAULT.
   */
  faultIn(hva: number, flags: number): number {
    const pfn = this.tryFaultIn(hva, flags);
    if (pfn > 0) return pfn;
    throw this.faultError(pfn, hva);
  }

  /**
   * `faultIn` without exceptions: the pfn, or a negative FAULT_* code. The
   * hot path (page present): no allocation, three loads.
   */
  tryFaultIn(hva: number, flags: number): number {
    if (
      !(hva >= this.cStart && hva < this.cEnd) ||
      Atomics.load(this.i32, this.cSlot + M_GEN) !== this.cGen
    ) {
      if (this.find(hva) < 0) return FAULT_EFAULT;
    }
    const s = this.cSlot;
    const gen = this.cGen;
    if ((flags & FAULT_WRITE) !== 0 ? (this.cProt & PROT_WRITE) === 0 : this.cProt === PROT_NONE) {
      return FAULT_EFAULT;
    }
    const page = ((hva - this.cStart) / PAGE_SIZE) | 0;
    const pte = Atomics.load(this.i32, this.cEntries + (page >>> this.cPieceShift));
    if (
      pte !== 0 &&
      ((pte & PTE_UFFD_WP) === 0 || (flags & FAULT_WRITE) === 0) &&
      Atomics.load(this.i32, s + M_GEN) === gen
    ) {
      return (pte & PTE_PFN_MASK) + (page & this.cPieceMask);
    }
    return this.slowFault(s, gen, hva, page, flags);
  }

  /**
   * Whether a write through the mapping at `hva` would go ahead without a
   * fault: the mapping is writable and the page is present and not
   * write-protected for userfaultfd. The hypervisor maps a read fault's page
   * writable at stage 2 only then (KVM asks for a writable page only
   * opportunistically), so a guest's later write still reaches userfaultfd
   * WP. No fault, no allocation.
   */
  writableAt(hva: number): boolean {
    if (
      !(hva >= this.cStart && hva < this.cEnd) ||
      Atomics.load(this.i32, this.cSlot + M_GEN) !== this.cGen
    ) {
      if (this.find(hva) < 0) return false;
    }
    if ((this.cProt & PROT_WRITE) === 0) return false;
    const page = ((hva - this.cStart) / PAGE_SIZE) | 0;
    const pte = Atomics.load(this.i32, this.cEntries + (page >>> this.cPieceShift));
    return (
      pte !== 0 &&
      (pte & PTE_UFFD_WP) === 0 &&
      Atomics.load(this.i32, this.cSlot + M_GEN) === this.cGen
    );
  }

  /** The pfn mapped at `hva`, or 0: no fault, nothing populated. */
  lookupPfn(hva: number): number {
    if (
      !(hva >= this.cStart && hva < this.cEnd) ||
      Atomics.load(this.i32, this.cSlot + M_GEN) !== this.cGen
    ) {
      if (this.find(hva) < 0) return 0;
    }
    const page = ((hva - this.cStart) / PAGE_SIZE) | 0;
    const pte = Atomics.load(this.i32, this.cEntries + (page >>> this.cPieceShift));
    if (pte === 0 || Atomics.load(this.i32, this.cSlot + M_GEN) !== this.cGen) return 0;
    return (pte & PTE_PFN_MASK) + (page & this.cPieceMask);
  }

  private slowFault(s: number, gen: number, hva: number, page: number, flags: number): number {
    for (;;) {
      let result: number;
      Atomics.add(this.i32, s + M_USERS, 1);
      try {
        result =
          Atomics.load(this.i32, s + M_GEN) === gen ? this.populate(s, page, flags) : FAULT_EFAULT;
      } finally {
        this.leave(s, gen);
      }
      if (result > NEED_USERFAULT) return result;
      // The userfaultfd hook point: the page is absent (or write-protected) in a registered range.
      if ((flags & FAULT_ATOMIC) !== 0) return FAULT_EAGAIN;
      const handler = userfaultHandler;
      if (handler === null) {
        throw new Error(
          "a userfaultfd range faulted, but no userfault handler is set on this thread",
        );
      }
      const outcome = handler(this, s, gen, hva, NEED_USERFAULT - result, flags);
      if (outcome < 0) return outcome;
    }
  }

  /** Map the page of `page` (a 4 KiB index in the mapping); inside the slot's users section. */
  private populate(s: number, page: number, flags: number): number {
    const i32 = this.i32;
    const shift = i32[s + M_SHIFT] - PAGE_SHIFT;
    const piece = page & ((1 << shift) - 1);
    const entry = page >>> shift;
    const table = i32[s + M_TABLE];
    const at = pfnTableEntries(table) + entry;
    const anonymous = i32[s + M_KIND] === KIND_ANON;
    const cache = anonymous ? null : this.host.pageCache(i32[s + M_CACHE]);
    const fileIndex = i32[s + M_PGOFF] + page - piece;
    for (;;) {
      const pte = Atomics.load(i32, at);
      if (pte !== 0) {
        if ((flags & FAULT_WRITE) !== 0 && (pte & PTE_UFFD_WP) !== 0) {
          if (this.userfaultCovers(s, page, UFFD_WP)) return NEED_USERFAULT - UFFD_WP;
          // No longer registered for write protection: drop the stale marker.
          Atomics.compareExchange(i32, at, pte, pte & PTE_PFN_MASK);
          continue;
        }
        return (pte & PTE_PFN_MASK) + piece;
      }
      let head: number;
      if (cache === null) {
        if (this.userfaultCovers(s, page, UFFD_MISSING)) return NEED_USERFAULT - UFFD_MISSING;
        head = this.allocate(shift);
      } else {
        if (fileIndex >= cache.pages) return FAULT_EFAULT; // past the end of the file: SIGBUS
        head = cache.lookupHead(fileIndex);
        const reason = head === 0 ? UFFD_MISSING : UFFD_MINOR;
        if (this.userfaultCovers(s, page, reason)) return NEED_USERFAULT - reason;
        if (head === 0) head = this.fileHead(cache, fileIndex);
      }
      if (head < 0) return head;
      if (!pfnTableSet(i32, table, entry, 0, head)) {
        // Another thread mapped it first: use theirs.
        if (cache === null) this.memory.freeFrames(head, shift as 0 | 9 | 18);
        continue;
      }
      Atomics.add(i32, s + M_MAPPED, 1 << shift);
      if (cache !== null && cache.lookupHead(fileIndex) !== head) {
        // The file dropped the page (hole punched) while we mapped it: undo and retry.
        if (pfnTableSet(i32, table, entry, head, 0)) Atomics.sub(i32, s + M_MAPPED, 1 << shift);
        continue;
      }
      return head + piece;
    }
  }

  private allocate(order: number): number {
    try {
      return this.memory.allocateFrames(order as 0 | 9 | 18, true);
    } catch (error) {
      if (error instanceof ErrnoError && error.errno === "ENOMEM") return FAULT_ENOMEM;
      throw error;
    }
  }

  private fileHead(cache: PageCache, index: number): number {
    try {
      return (
        cache.getOrAllocate(index, true) - (index & ((1 << (cache.pageShift - PAGE_SHIFT)) - 1))
      );
    } catch (error) {
      if (error instanceof ErrnoError && error.errno === "ENOMEM") return FAULT_ENOMEM;
      if (error instanceof ErrnoError && error.errno === "EINVAL") return FAULT_EFAULT; // truncated
      throw error;
    }
  }

  private userfaultCovers(s: number, page: number, reason: number): boolean {
    const i32 = this.i32;
    return (
      (Atomics.load(i32, s + M_UFFD_MODE) & reason) !== 0 &&
      page >= i32[s + M_UFFD_FIRST] &&
      page < i32[s + M_UFFD_END]
    );
  }

  /** Become a user of a live slot (its page table cannot be freed meanwhile); false if it is gone. */
  private enter(s: number, gen: number): boolean {
    Atomics.add(this.i32, s + M_USERS, 1);
    if (Atomics.load(this.i32, s + M_GEN) === gen) return true;
    this.leave(s, gen);
    return false;
  }

  private leave(s: number, gen: number): void {
    if (Atomics.sub(this.i32, s + M_USERS, 1) === 1 && Atomics.load(this.i32, s + M_GEN) !== gen) {
      Atomics.notify(this.i32, s + M_USERS);
    }
  }

  /** Find the live slot containing `hva` and make it this thread's cached one; -1 when unmapped. */
  private find(hva: number): number {
    const i32 = this.i32;
    const f64 = this.f64;
    const high = Atomics.load(i32, this.base + A_HIGH);
    for (let k = 0; k < high; k++) {
      const s = this.slots + k * SLOT_WORDS;
      const gen = Atomics.load(i32, s + M_GEN);
      if ((gen & 1) === 0) continue;
      const start = f64[(s >> 1) + 8];
      const end = start + f64[(s >> 1) + 9];
      if (!(hva >= start && hva < end)) continue;
      const prot = i32[s + M_PROT];
      const shift = i32[s + M_SHIFT] - PAGE_SHIFT;
      const table = i32[s + M_TABLE];
      if (Atomics.load(i32, s + M_GEN) !== gen) continue;
      this.cSlot = s;
      this.cGen = gen;
      this.cStart = start;
      this.cEnd = end;
      this.cProt = prot;
      this.cEntries = pfnTableEntries(table);
      this.cPieceShift = shift;
      this.cPieceMask = (1 << shift) - 1;
      return s;
    }
    return -1;
  }

  private faultError(code: number, hva: number): ErrnoError {
    const errno = FAULT_ERRNO[code] ?? "EFAULT";
    const why =
      code === FAULT_EAGAIN
        ? "would wait for userfaultfd in an atomic fault"
        : code === FAULT_ENOMEM
          ? "out of memory"
          : "bad address";
    return new ErrnoError(errno, `fault at ${hex(hva)}: ${why}`);
  }

  private notifyInvalidate(start: number, end: number): void {
    for (const listener of this.listeners) listener(start, end);
  }

  // ---------------------------------------------------------------- user copies

  /** Copy `data` to the process's memory at `hva`, faulting each page in for writing. */
  copyToUser(hva: number, data: Uint8Array): void {
    const chunks = this.memory.chunkU8;
    for (let done = 0; done < data.length;) {
      const at = hva + done;
      const inPage = at % PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - inPage, data.length - done);
      const pfn = this.faultIn(at, FAULT_WRITE);
      chunks[HostMemory.chunkOf(pfn)].set(
        data.subarray(done, done + n),
        HostMemory.offsetOf(pfn) + inPage,
      );
      done += n;
    }
  }

  /** Copy `length` bytes from the process's memory at `hva`, faulting each page in for reading. */
  copyFromUser(hva: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    this.copyFromUserInto(hva, out);
    return out;
  }

  /** Fill `target` from the process's memory at `hva`. */
  copyFromUserInto(hva: number, target: Uint8Array): void {
    const chunks = this.memory.chunkU8;
    for (let done = 0; done < target.length;) {
      const at = hva + done;
      const inPage = at % PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - inPage, target.length - done);
      const pfn = this.faultIn(at, 0);
      const from = HostMemory.offsetOf(pfn) + inPage;
      target.set(chunks[HostMemory.chunkOf(pfn)].subarray(from, from + n), done);
      done += n;
    }
  }

  // ---------------------------------------------------------------- zapping

  /**
   * madvise(2) within one mapping: MADV_DONTNEED unmaps the range (private
   * pages are freed and come back zeroed; shared ones stay in the file, so
   * the next touch is a MINOR fault); MADV_REMOVE also frees the file's pages
   * (shared mappings only). The range must be aligned to the mapping's page
   * size and lie inside one mapping (EINVAL); unmapped: ENOMEM.
   */
  madvise(hva: number, length: number, advice: number): void {
    if (advice !== MADV_DONTNEED && advice !== MADV_REMOVE) fail("EINVAL", `advice ${advice}`);
    if (!Number.isSafeInteger(length) || length < 0) fail("EINVAL", `bad length ${length}`);
    const s = this.find(hva);
    if (s < 0) fail("ENOMEM", `${hex(hva)} is not mapped`);
    const gen = this.cGen;
    const i32 = this.i32;
    const pageSize = 2 ** i32[s + M_SHIFT];
    const offset = hva - this.cStart;
    if (offset % pageSize !== 0) fail("EINVAL", `${hex(hva)} is not aligned to ${pageSize}`);
    const end = offset + roundUp(length, pageSize);
    if (end > this.cEnd - this.cStart) fail("EINVAL", "range runs past the mapping");
    if (length === 0) return;
    const anonymous = i32[s + M_KIND] === KIND_ANON;
    if (advice === MADV_REMOVE && anonymous) fail("EINVAL", "MADV_REMOVE of private memory");
    if (!this.enter(s, gen)) fail("ENOMEM", `${hex(hva)} is not mapped`);
    try {
      const first = offset / PAGE_SIZE;
      const last = end / PAGE_SIZE;
      if (advice === MADV_DONTNEED) this.zapPages(s, first, last);
      else {
        const pgoff = i32[s + M_PGOFF];
        this.host.pageCache(i32[s + M_CACHE]).punchHole(pgoff + first, last - first);
      }
    } finally {
      this.leave(s, gen);
    }
  }

  /**
   * Unmap 4 KiB pages [first, first + count) of page cache `cache` from every
   * mapping of it (the page cache is about to free them). Called by the Host
   * when a file's pages go (hole punched, truncated).
   */
  zapFile(cache: number, first: number, count: number): void {
    const i32 = this.i32;
    const high = Atomics.load(i32, this.base + A_HIGH);
    for (let k = 0; k < high; k++) {
      const s = this.slots + k * SLOT_WORDS;
      const gen = Atomics.load(i32, s + M_GEN);
      if ((gen & 1) === 0 || i32[s + M_CACHE] !== cache) continue;
      if (!this.enter(s, gen)) continue;
      try {
        const pgoff = i32[s + M_PGOFF];
        const pages = this.f64[(s >> 1) + 9] / PAGE_SIZE;
        const lo = Math.max(first, pgoff) - pgoff;
        const hi = Math.min(first + count, pgoff + pages) - pgoff;
        if (hi > lo) this.zapPages(s, lo, hi);
      } finally {
        this.leave(s, gen);
      }
    }
  }

  /** Clear the page table over 4 KiB pages [first, end) of a slot we are a user of. */
  private zapPages(s: number, first: number, end: number): void {
    const i32 = this.i32;
    const shift = i32[s + M_SHIFT] - PAGE_SHIFT;
    const anonymous = i32[s + M_KIND] === KIND_ANON;
    const freed: number[] = [];
    const cleared = pfnTableDrain(
      i32,
      i32[s + M_TABLE],
      first >>> shift,
      Math.ceil(end / (1 << shift)),
      (_, pte) => {
        if (anonymous) freed.push(pte & PTE_PFN_MASK);
      },
    );
    if (cleared === 0) return;
    Atomics.sub(i32, s + M_MAPPED, cleared << shift);
    const start = this.f64[(s >> 1) + 8];
    this.notifyInvalidate(start + first * PAGE_SIZE, start + end * PAGE_SIZE);
    for (const pfn of freed) this.memory.freeFrames(pfn, shift as 0 | 9 | 18);
  }

  // ---------------------------------------------------------------- userfaultfd support

  /**
   * Register (mode: UFFD_MISSING | UFFD_WP | UFFD_MINOR) or unregister (0)
   * [hva, hva + length) of one mapping for userfaultfd `context` (an arena
   * offset the handler understands: the userfaultfd module's handler takes
   * only its own file objects; tests that install their own handler may
   * name anything). One range per mapping. MINOR needs a shared mapping.
   * Not mapped, or spanning mappings: EINVAL.
   */
  setUserfaultRange(hva: number, length: number, mode: number, context: number): void {
    if ((mode & ~(UFFD_MISSING | UFFD_WP | UFFD_MINOR)) !== 0) fail("EINVAL", `mode ${mode}`);
    const s = this.find(hva);
    if (s < 0) fail("EINVAL", `${hex(hva)} is not mapped`);
    const i32 = this.i32;
    const pageSize = 2 ** i32[s + M_SHIFT];
    const offset = hva - this.cStart;
    if (offset % pageSize !== 0 || length <= 0 || length % pageSize !== 0) {
      fail("EINVAL", `range not aligned to ${pageSize}-byte pages`);
    }
    if (offset + length > this.cEnd - this.cStart) fail("EINVAL", "range runs past the mapping");
    if ((mode & UFFD_MINOR) !== 0 && i32[s + M_KIND] === KIND_ANON) {
      fail("EINVAL", "MINOR faults need a shared mapping");
    }
    Atomics.store(i32, s + M_UFFD_MODE, 0);
    i32[s + M_UFFD_FIRST] = offset / PAGE_SIZE;
    i32[s + M_UFFD_END] = (offset + length) / PAGE_SIZE;
    i32[s + M_UFFD_CONTEXT] = mode === 0 ? 0 : context;
    Atomics.store(i32, s + M_UFFD_MODE, mode);
  }

  /**
   * The live mappings overlapping [start, end), lowest first, with their
   * userfaultfd registrations: the walk UFFDIO_REGISTER, UNREGISTER and
   * WRITEPROTECT make over the VMAs of a range.
   */
  mappingsIn(start: number, end: number): UserfaultMappingInfo[] {
    const i32 = this.i32;
    const found: UserfaultMappingInfo[] = [];
    const high = Atomics.load(i32, this.base + A_HIGH);
    for (let k = 0; k < high; k++) {
      const s = this.slots + k * SLOT_WORDS;
      const gen = Atomics.load(i32, s + M_GEN);
      if ((gen & 1) === 0) continue;
      const mStart = this.f64[(s >> 1) + 8];
      const length = this.f64[(s >> 1) + 9];
      if (!(mStart < end && start < mStart + length)) continue;
      const info: UserfaultMappingInfo = {
        start: mStart,
        length,
        prot: i32[s + M_PROT],
        flags: i32[s + M_FLAGS],
        pageSize: 2 ** i32[s + M_SHIFT],
        shared: i32[s + M_KIND] === KIND_FILE,
        fileOffset: i32[s + M_PGOFF] * PAGE_SIZE,
        residentFrames: Atomics.load(i32, s + M_MAPPED),
        fileType: i32[s + M_FILE] === 0 ? 0 : i32[(i32[s + M_FILE] >> 2) + OBJ_TYPE],
        uffdMode: Atomics.load(i32, s + M_UFFD_MODE),
        uffdContext: i32[s + M_UFFD_CONTEXT],
        uffdStart: mStart + i32[s + M_UFFD_FIRST] * PAGE_SIZE,
        uffdEnd: mStart + i32[s + M_UFFD_END] * PAGE_SIZE,
      };
      if (Atomics.load(i32, s + M_GEN) === gen) found.push(info);
    }
    return found.sort((a, b) => a.start - b.start);
  }

  /**
   * For the resolving ioctls (UFFDIO_COPY, ZEROPAGE, CONTINUE): the
   * registration mode of the mapping that holds all of [hva, hva + length)
   * inside its registered range, 0 when there is none (ENOENT). Leaves that
   * mapping this thread's cached one, so `pageSizeAt(hva)` is then a few
   * loads. Allocates nothing.
   */
  userfaultRangeMode(hva: number, length: number): number {
    const s = this.find(hva);
    if (s < 0) return 0;
    const i32 = this.i32;
    const mode = Atomics.load(i32, s + M_UFFD_MODE);
    const first = this.cStart + i32[s + M_UFFD_FIRST] * PAGE_SIZE;
    const end = this.cStart + i32[s + M_UFFD_END] * PAGE_SIZE;
    if (mode === 0 || hva < first || hva + length > end) return 0;
    return Atomics.load(i32, s + M_GEN) === this.cGen ? mode : 0;
  }

  /** Unregister every range registered for userfaultfd `context` (its file is being released). */
  clearUserfaultContext(context: number): void {
    const i32 = this.i32;
    const high = Atomics.load(i32, this.base + A_HIGH);
    for (let k = 0; k < high; k++) {
      const s = this.slots + k * SLOT_WORDS;
      if ((Atomics.load(i32, s + M_GEN) & 1) === 0 || i32[s + M_UFFD_CONTEXT] !== context) continue;
      Atomics.store(i32, s + M_UFFD_MODE, 0);
      i32[s + M_UFFD_CONTEXT] = 0;
    }
  }

  /**
   * Whether a fault handed to the userfault handler must still sleep, checked
   * after it has queued its message (userfaultfd_must_wait): the mapping is
   * live, the range still registered for `reason`, and the page still absent
   * (or, for WP, still write-protected). A resolver installs the page before
   * it wakes the range, so a fault that sees the page here never sleeps, and
   * one that does not is already queued where the wake-up will find it.
   */
  userfaultMustWait(slot: number, gen: number, hva: number, reason: number): boolean {
    if (!this.enter(slot, gen)) return false;
    try {
      const i32 = this.i32;
      const start = this.f64[(slot >> 1) + 8];
      const page = ((hva - start) / PAGE_SIZE) | 0;
      if (!this.userfaultCovers(slot, page, reason)) return false;
      const entry = page >>> (i32[slot + M_SHIFT] - PAGE_SHIFT);
      const pte = Atomics.load(i32, pfnTableEntries(i32[slot + M_TABLE]) + entry);
      return reason === UFFD_WP ? (pte & PTE_UFFD_WP) !== 0 : pte === 0;
    } finally {
      this.leave(slot, gen);
    }
  }

  /**
   * Set or clear the userfaultfd write-protect marker on the present pages
   * of [hva, hva + length) inside one mapping (UFFDIO_WRITEPROTECT; absent
   * pages are left alone). Protecting tells the invalidate listeners, so the
   * hypervisor drops its writable stage-2 mappings of those pages.
   */
  writeProtectRange(hva: number, length: number, protect: boolean): void {
    const s = this.find(hva);
    if (s < 0) fail("ENOENT", `${hex(hva)} is not mapped`);
    const gen = this.cGen;
    const start = this.cStart;
    if (hva + length > this.cEnd) fail("ENOENT", "range runs past the mapping");
    if (!this.enter(s, gen)) fail("ENOENT", `${hex(hva)} is not mapped`);
    try {
      const i32 = this.i32;
      const shift = i32[s + M_SHIFT] - PAGE_SHIFT;
      const entries = pfnTableEntries(i32[s + M_TABLE]);
      const first = ((hva - start) / PAGE_SIZE) >>> shift;
      const end = Math.ceil((hva + length - start) / PAGE_SIZE / (1 << shift));
      let changed = false;
      for (let e = first; e < end; e++) {
        for (;;) {
          const pte = Atomics.load(i32, entries + e);
          if (pte === 0) break;
          const next = protect ? pte | PTE_UFFD_WP : pte & PTE_PFN_MASK;
          if (next === pte || Atomics.compareExchange(i32, entries + e, pte, next) === pte) {
            changed ||= next !== pte;
            break;
          }
        }
      }
      if (changed && protect) this.notifyInvalidate(hva, hva + length);
    } finally {
      this.leave(s, gen);
    }
  }

  /** The userfaultfd context registered on the mapping in `slot` (0 when none). */
  userfaultContext(slot: number): number {
    return this.i32[slot + M_UFFD_CONTEXT];
  }

  /** Whether the mapping a fault found in `slot` with generation `gen` is still mapped. */
  isLive(slot: number, gen: number): boolean {
    return Atomics.load(this.i32, slot + M_GEN) === gen;
  }

  /**
   * Resolve a fault by installing the page at `hva` (aligned to the mapping's
   * page size) without the userfault check: MFILL_COPY copies a whole page
   * from `source`, MFILL_ZEROPAGE installs zeros, MFILL_CONTINUE maps the
   * page the file already has (shared mappings only); | MFILL_WP maps it
   * write-protected. Already mapped (or, for COPY/ZEROPAGE on a shared
   * mapping, already in the file): EEXIST. CONTINUE without a page in the
   * file, or past the end of the file: EFAULT. Not mapped: ENOENT. Returns
   * the page's first pfn. It does not wake anyone: that is userfaultfd's job.
   */
  mfill(
    hva: number,
    operation: number,
    source: Uint8Array | null = null,
    sourceOffset = 0,
  ): number {
    const mode = operation & 0xff;
    if (mode !== MFILL_COPY && mode !== MFILL_ZEROPAGE && mode !== MFILL_CONTINUE) {
      fail("EINVAL", `mfill operation ${operation}`);
    }
    const s = this.find(hva);
    if (s < 0) fail("ENOENT", `${hex(hva)} is not mapped`);
    const gen = this.cGen;
    const i32 = this.i32;
    const shift = i32[s + M_SHIFT] - PAGE_SHIFT;
    const pageSize = PAGE_SIZE << shift;
    const page = ((hva - this.cStart) / PAGE_SIZE) | 0;
    if ((hva - this.cStart) % pageSize !== 0) fail("EINVAL", `${hex(hva)} not page aligned`);
    if (mode === MFILL_COPY && (source === null || source.length - sourceOffset < pageSize)) {
      fail("EINVAL", `COPY needs ${pageSize} bytes of data`);
    }
    const marker = (operation & MFILL_WP) !== 0 ? PTE_UFFD_WP : 0;
    if (!this.enter(s, gen)) fail("ENOENT", `${hex(hva)} is not mapped`);
    try {
      const table = i32[s + M_TABLE];
      const entry = page >>> shift;
      if (Atomics.load(i32, pfnTableEntries(table) + entry) !== 0) {
        fail("EEXIST", `${hex(hva)} is already mapped`);
      }
      let head: number;
      if (i32[s + M_KIND] === KIND_ANON) {
        if (mode === MFILL_CONTINUE) fail("EINVAL", "CONTINUE needs a shared mapping");
        head = this.memory.allocateFrames(shift as 0 | 9 | 18, mode === MFILL_ZEROPAGE);
        if (source !== null && mode === MFILL_COPY) {
          // A source holding exactly the page is copied without making a view of it.
          const whole = sourceOffset === 0 && source.length === pageSize;
          this.memory.chunkU8[HostMemory.chunkOf(head)].set(
            whole ? source : source.subarray(sourceOffset, sourceOffset + pageSize),
            HostMemory.offsetOf(head),
          );
        }
        if (!pfnTableSet(i32, table, entry, 0, head | marker)) {
          this.memory.freeFrames(head, shift as 0 | 9 | 18);
          fail("EEXIST", `${hex(hva)} is already mapped`);
        }
      } else {
        const cache = this.host.pageCache(i32[s + M_CACHE]);
        const fileIndex = i32[s + M_PGOFF] + page;
        if (fileIndex >= cache.pages) fail("EFAULT", `${hex(hva)} is past the end of the file`);
        if (mode === MFILL_CONTINUE) {
          head = cache.lookupHead(fileIndex);
          if (head === 0) fail("EFAULT", `no page in the file for ${hex(hva)}`);
        } else {
          head = cache.insert(fileIndex, mode === MFILL_COPY ? source : null, sourceOffset);
          if (head === 0) fail("EEXIST", `the file already has the page for ${hex(hva)}`);
        }
        if (!pfnTableSet(i32, table, entry, 0, head | marker)) {
          fail("EEXIST", `${hex(hva)} is already mapped`);
        }
      }
      Atomics.add(i32, s + M_MAPPED, 1 << shift);
      return head;
    } finally {
      this.leave(s, gen);
    }
  }

  // ---------------------------------------------------------------- accounting

  /** The mapping containing `hva`, or null. */
  mapping(hva: number): MappingInfo | null {
    const s = this.find(hva);
    if (s < 0) return null;
    const i32 = this.i32;
    return {
      start: this.cStart,
      length: this.cEnd - this.cStart,
      prot: this.cProt,
      flags: i32[s + M_FLAGS],
      pageSize: 2 ** i32[s + M_SHIFT],
      shared: i32[s + M_KIND] === KIND_FILE,
      fileOffset: i32[s + M_PGOFF] * PAGE_SIZE,
      residentFrames: Atomics.load(i32, s + M_MAPPED),
    };
  }

  /** Page size of the mapping containing `hva`, 0 when unmapped; no allocation (for stage-2 sizing). */
  pageSizeAt(hva: number): number {
    if (
      !(hva >= this.cStart && hva < this.cEnd) ||
      Atomics.load(this.i32, this.cSlot + M_GEN) !== this.cGen
    ) {
      if (this.find(hva) < 0) return 0;
    }
    return PAGE_SIZE << this.cPieceShift;
  }

  /** 4 KiB frames mapped by the mapping containing `hva` (EFAULT when unmapped). */
  residentFrames(hva: number): number {
    const s = this.find(hva);
    if (s < 0) fail("EFAULT", `${hex(hva)} is not mapped`);
    return Atomics.load(this.i32, s + M_MAPPED);
  }

  /** Number of live mappings. */
  get mappingCount(): number {
    return Atomics.load(this.i32, this.base + A_LIVE);
  }
}
