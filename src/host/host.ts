import { AddressSpace, type MmapOptions } from "./address-space.js";
import { ArenaHeap } from "./arena-heap.js";
import { fail } from "./errno.js";
import { EventFds } from "./eventfd.js";
import { FileTable, OBJ_PAGE_CACHE, putFile } from "./files.js";
import { HostMemory, type HostMemoryShare } from "./host-memory.js";
import { type MemfdOptions, Memfds } from "./memfd.js";
import { PageCache, type PageCacheOwner } from "./page-cache.js";
import { Userfaultfds } from "./userfaultfd.js";

/**
 * One process's host kernel: its memory (HostMemory), file table, address
 * space, eventfds, memfds and userfaultfds. The VMM and the hypervisor stand on it.
 *
 * All of its state lives in host memory (frames and arena), so the Host the
 * main thread creates and the Hosts that worker threads attach with
 * `Host.attach(host.share())` are the same kernel: any thread may make any
 * system call on the same descriptors and mappings. A Host object itself
 * holds only per-thread views and caches.
 */

export interface HostOptions {
  /** Host RAM to reserve (committed only when touched); default 128 GiB. */
  ramBytes?: number;
  /** Kernel arena for object state and page tables; default 1 GiB (also committed on touch). */
  arenaBytes?: number;
  /** File descriptor table size (default 1024). */
  maxFiles?: number;
  /** Mapping table size (default 1024). */
  maxMappings?: number;
}

/** What a worker needs to attach: the memory share and where the kernel's root is. */
export interface HostShare {
  memory: HostMemoryShare;
  root: number;
}

// Root block words.
const R_MAGIC = 0;
const R_HEAP = 1;
const R_FILES = 2;
const R_MM = 3;
const R_UFFD = 4;
const ROOT_MAGIC = 0x466c486f; // "FlHo"

/** Called when pages of a page cache are about to be freed: the hypervisor zaps them too. */
export type PageCacheInvalidateListener = (cache: number, first: number, count: number) => void;

export class Host implements PageCacheOwner {
  readonly memory: HostMemory;
  readonly heap: ArenaHeap;
  readonly files: FileTable;
  readonly mm: AddressSpace;
  readonly eventfds: EventFds;
  readonly memfds: Memfds;
  readonly userfaultfds: Userfaultfds;
  private readonly caches = new Map<number, PageCache>();
  private readonly cacheListeners: PageCacheInvalidateListener[] = [];

  private constructor(
    memory: HostMemory,
    readonly root: number,
  ) {
    this.memory = memory;
    const w = root >> 2;
    const i32 = memory.arenaI32;
    if (i32[w + R_MAGIC] !== ROOT_MAGIC) throw new Error(`no host kernel at arena offset ${root}`);
    this.heap = new ArenaHeap(memory, i32[w + R_HEAP]);
    this.files = new FileTable(this, i32[w + R_FILES]);
    this.mm = new AddressSpace(this, i32[w + R_MM]);
    this.eventfds = new EventFds(this);
    this.memfds = new Memfds(this);
    this.userfaultfds = new Userfaultfds(this, i32[w + R_UFFD]);
  }

  static create(options: HostOptions = {}): Host {
    const memory = HostMemory.create({
      ramBytes: options.ramBytes,
      arenaBytes: options.arenaBytes,
    });
    const root = memory.arenaAllocate(64, 64);
    const w = root >> 2;
    const i32 = memory.arenaI32;
    i32[w + R_HEAP] = ArenaHeap.allocate(memory);
    i32[w + R_FILES] = FileTable.allocate(memory, options.maxFiles);
    i32[w + R_MM] = AddressSpace.allocate(memory, options.maxMappings);
    i32[w + R_UFFD] = Userfaultfds.allocate(memory);
    Atomics.store(i32, w + R_MAGIC, ROOT_MAGIC);
    return new Host(memory, root);
  }

  /** Attach this thread to the host kernel another thread created. */
  static attach(share: HostShare): Host {
    return new Host(HostMemory.attach(share.memory), share.root);
  }

  share(): HostShare {
    return { memory: this.memory.share(), root: this.root };
  }

  /** This thread's view of the page cache whose header is at arena offset `offset`. */
  pageCache(offset: number): PageCache {
    let cache = this.caches.get(offset);
    if (cache === undefined) {
      cache = new PageCache(this, offset);
      this.caches.set(offset, cache);
    }
    return cache;
  }

  /**
   * The page cache of the file open at `fd`, whatever its type (memfd,
   * guest_memfd): EBADF when not open, ENODEV when the file has none.
   */
  pageCacheOf(fd: number): PageCache {
    const object = this.files.getAny(fd);
    try {
      const offset = this.memory.arenaI32[(object >> 2) + OBJ_PAGE_CACHE];
      if (offset === 0) fail("ENODEV", `fd ${fd} has no page cache`);
      return this.pageCache(offset);
    } finally {
      putFile(this, object);
    }
  }

  /** PageCacheOwner: unmap pages a page cache is about to free, from the address space and the hypervisor. */
  invalidatePageCache(cache: number, first: number, count: number): void {
    this.mm.zapFile(cache, first, count);
    for (const listener of this.cacheListeners) listener(cache, first, count);
  }

  /** Be told (on this thread) before pages of any page cache are freed: guest_memfd's invalidation. */
  addPageCacheInvalidateListener(listener: PageCacheInvalidateListener): void {
    this.cacheListeners.push(listener);
  }

  // ------------------------------------------------------------ system calls

  close(fd: number): void {
    this.files.close(fd);
  }

  eventfd(initval: number | bigint = 0, flags = 0): number {
    return this.eventfds.create(initval, flags);
  }

  memfdCreate(name: string, size: number, options: MemfdOptions = {}): number {
    return this.memfds.create(name, size, options);
  }

  /** userfaultfd(2); the ioctls and read() are on `userfaultfds`. */
  userfaultfd(flags = 0): number {
    return this.userfaultfds.create(flags);
  }

  mmap(options: MmapOptions): number {
    return this.mm.mmap(options);
  }

  munmap(hva: number, length: number): void {
    this.mm.munmap(hva, length);
  }

  /** The host fault path (see AddressSpace.faultIn). */
  faultIn(hva: number, flags: number): number {
    return this.mm.faultIn(hva, flags);
  }

  lookupPfn(hva: number): number {
    return this.mm.lookupPfn(hva);
  }

  copyToUser(hva: number, data: Uint8Array): void {
    this.mm.copyToUser(hva, data);
  }

  copyFromUser(hva: number, length: number): Uint8Array {
    return this.mm.copyFromUser(hva, length);
  }
}
