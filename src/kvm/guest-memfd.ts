import { fail } from "../host/errno.js";
import {
  FILE_GUEST_MEMFD,
  FILE_HEADER_BYTES,
  FILE_MAPPABLE,
  initFileObject,
  OBJ_PAGE_CACHE,
  registerFileType,
} from "../host/files.js";
import type { Host } from "../host/host.js";
import { PAGE_SIZE } from "../host/host-memory.js";
import {
  type BackingPageSize,
  PageCache,
  PAGE_SIZE_1G,
  PAGE_SIZE_2M,
  PAGE_SIZE_4K,
} from "../host/page-cache.js";
import { lock, unlock } from "../host/sync.js";
import { GfnBitmap } from "./gfn-bitmap.js";
import {
  GUEST_MEMFD_FLAG_HUGE_1G,
  GUEST_MEMFD_FLAG_HUGE_2M,
  GUEST_MEMFD_FLAG_MMAP,
  hasInvalidFlags,
  MAX_MEMSLOTS,
} from "./uapi.js";

/**
 * guest_memfd: guest memory that belongs to one VM and that the hypervisor
 * reaches by file offset, never through a host virtual address. Its pages
 * live in a page cache; with GUEST_MEMFD_FLAG_MMAP the VMM may also map it
 * (to fill pages during post-copy), and then userfaultfd can watch the VMM's
 * mapping, but a vCPU's stage-2 fault still asks the file directly.
 */

// Words after the common file header.
const G_VM = 4;
const G_FLAGS = 5;
const G_POISON = 6;
const G_BIND_LOCK = 7;
/** Pages poisoned so far: while any is, the file is mapped at stage 2 in 4 KiB pieces only. */
const G_POISONED = 8;
const G_BINDINGS = 9;
const OBJECT_BYTES = FILE_HEADER_BYTES + (5 + 2 * MAX_MEMSLOTS) * 4;

const VALID_FLAGS = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_HUGE_2M | GUEST_MEMFD_FLAG_HUGE_1G;

registerFileType(FILE_GUEST_MEMFD, "guest_memfd", (host, object) => {
  new GuestMemfd(host, object).pageCache.destroy();
});

export class GuestMemfd {
  readonly pageCache: PageCache;
  private readonly words: Int32Array;
  private readonly base: number;
  private readonly poison: GfnBitmap;

  constructor(
    readonly host: Host,
    readonly object: number,
  ) {
    this.words = host.memory.arenaI32;
    this.base = object >> 2;
    this.pageCache = new PageCache(host, this.words[this.base + OBJ_PAGE_CACHE]);
    this.poison = new GfnBitmap(host.memory, this.words[this.base + G_POISON]);
  }

  /** KVM_CREATE_GUEST_MEMFD for the VM at `vmOffset`; returns the new fd. */
  static create(host: Host, vmOffset: number, size: number, flags: number): number {
    if (hasInvalidFlags(flags, VALID_FLAGS)) {
      fail("EINVAL", `unknown guest_memfd flags 0x${flags.toString(16)}`);
    }
    if ((flags & GUEST_MEMFD_FLAG_HUGE_2M) !== 0 && (flags & GUEST_MEMFD_FLAG_HUGE_1G) !== 0) {
      fail("EINVAL", "guest_memfd cannot be backed by both 2 MiB and 1 GiB pages");
    }
    if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE_SIZE !== 0) {
      fail("EINVAL", `guest_memfd size ${size} must be a positive multiple of 4 KiB`);
    }
    const pageSize: BackingPageSize =
      flags & GUEST_MEMFD_FLAG_HUGE_1G
        ? PAGE_SIZE_1G
        : flags & GUEST_MEMFD_FLAG_HUGE_2M
          ? PAGE_SIZE_2M
          : PAGE_SIZE_4K;
    const memory = host.memory;
    const cache = PageCache.create(host, size, pageSize);
    const object = memory.arenaAllocate(OBJECT_BYTES, 64);
    initFileObject(
      memory,
      object,
      FILE_GUEST_MEMFD,
      cache,
      flags & GUEST_MEMFD_FLAG_MMAP ? FILE_MAPPABLE : 0,
    );
    const w = object >> 2;
    memory.arenaI32[w + G_VM] = vmOffset;
    memory.arenaI32[w + G_FLAGS] = flags;
    memory.arenaI32[w + G_POISON] = GfnBitmap.allocate(memory);
    return host.files.install(FILE_GUEST_MEMFD, object);
  }

  get vmOffset(): number {
    return this.words[this.base + G_VM];
  }

  get flags(): number {
    return this.words[this.base + G_FLAGS];
  }

  get size(): number {
    return this.pageCache.size;
  }

  /**
   * Bind file pages [first, first + count) to memslot `slot`. A range already
   * bound to another slot is EINVAL, as in kvm_gmem_bind.
   */
  bind(slot: number, first: number, count: number): void {
    const w = this.words;
    lock(w, this.base + G_BIND_LOCK);
    try {
      for (let s = 0; s < MAX_MEMSLOTS; s++) {
        const at = this.base + G_BINDINGS + 2 * s;
        const n = w[at + 1];
        if (s === slot || n === 0) continue;
        if (first < w[at] + n && w[at] < first + count) {
          fail("EINVAL", `guest_memfd pages already bound to memslot ${s}`);
        }
      }
      w[this.base + G_BINDINGS + 2 * slot] = first;
      w[this.base + G_BINDINGS + 2 * slot + 1] = count;
    } finally {
      unlock(w, this.base + G_BIND_LOCK);
    }
  }

  unbind(slot: number): void {
    const w = this.words;
    lock(w, this.base + G_BIND_LOCK);
    w[this.base + G_BINDINGS + 2 * slot + 1] = 0;
    unlock(w, this.base + G_BIND_LOCK);
  }

  /**
   * The pfn of file page `index` for the hypervisor (kvm_gmem_get_pfn),
   * allocating it zeroed on first use; a poisoned page is EHWPOISON.
   */
  pfnFor(index: number): number {
    if (this.poison.test(index)) fail("EHWPOISON", `guest_memfd page ${index} is poisoned`);
    return this.pageCache.getOrAllocate(index, true);
  }

  /**
   * Mark a page poisoned, as a memory failure would (for tests), and unmap it
   * wherever it is mapped (kvm_gmem_error_folio), so that the next access
   * reports EHWPOISON instead of using the page.
   */
  poisonPage(index: number): void {
    if (!(index >= 0 && index < this.pageCache.pages)) fail("EINVAL", `page ${index} beyond file`);
    if (this.poison.test(index)) return;
    this.poison.setRange(index, 1);
    Atomics.add(this.words, this.base + G_POISONED, 1);
    this.host.invalidatePageCache(this.pageCache.offset, index, 1);
  }

  /** True once any page is poisoned: a huge mapping could cover it. */
  get hasPoison(): boolean {
    return Atomics.load(this.words, this.base + G_POISONED) !== 0;
  }

  isPoisoned(index: number): boolean {
    return this.poison.test(index);
  }
}
