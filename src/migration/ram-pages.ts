import { FAULT_WRITE } from "../host/address-space.js";
import type { Host } from "../host/host.js";
import { HostMemory, PAGE_SIZE } from "../host/host-memory.js";
import type { PageCache } from "../host/page-cache.js";
import type { GuestRamShare } from "../vmm/guest-ram.js";

/**
 * Guest RAM page by page, as migration moves it: read a page into an
 * outgoing batch (or hand out a view of it, for RAM that no longer
 * changes) and install a received one, with one copy each way (and
 * one small view per copy: Node 20's Buffer.copy makes a Uint8Array for a
 * sub-range, and so would subarray; no buffer is allocated). A guest_memfd
 * or shmem RAM is reached through its file's page cache (as QEMU reads
 * RAMBlocks through its mapping); anonymous RAM through the VMM's mapping.
 * Page i is the i-th 4 KiB page of RAM.
 */
export class RamPages {
  readonly pages: number;
  private readonly cache: PageCache | null;
  private readonly chunks: Buffer[];

  constructor(
    private readonly host: Host,
    private readonly share: GuestRamShare,
  ) {
    this.pages = share.config.bytes / PAGE_SIZE;
    this.cache = share.fd >= 0 ? host.pageCacheOf(share.fd) : null;
    // Buffers over the frame chunks, made once.
    this.chunks = host.memory.chunks.map((c) => Buffer.from(c));
  }

  /** The host frame holding page `index`, 0 when the page was never touched (reads as zeros). */
  pfn(index: number): number {
    if (this.cache) return this.cache.lookup(index);
    return this.host.lookupPfn(this.share.hva + index * PAGE_SIZE);
  }

  /** Copy page `index` to `out` at `at`; false (nothing copied) for a page never touched. */
  copyOut(index: number, out: Buffer, at = 0): boolean {
    const page = this.view(index);
    if (page === null) return false;
    page.copy(out, at);
    return true;
  }

  /**
   * Page `index` where it lies in host memory (a view, no copy), or null
   * for a page never touched. The view shows whatever the page holds when
   * it is read, so it is for RAM that no longer changes.
   */
  view(index: number): Buffer | null {
    const pfn = this.pfn(index);
    if (pfn === 0) return null;
    const from = HostMemory.offsetOf(pfn);
    return this.chunks[HostMemory.chunkOf(pfn)].subarray(from, from + PAGE_SIZE);
  }

  /** Write page `index` from `data` (4 KiB at `at`), allocating it if needed. */
  install(index: number, data: Buffer, at = 0): void {
    // A file page is allocated (unzeroed) and written in place: the page is
    // not yet visible to the guest (USERFAULT, or the VM not running), so no
    // one sees it half written.
    const pfn = this.cache
      ? this.cache.getOrAllocate(index, false)
      : this.host.faultIn(this.share.hva + index * PAGE_SIZE, FAULT_WRITE);
    data.copy(this.chunks[HostMemory.chunkOf(pfn)], HostMemory.offsetOf(pfn), at, at + PAGE_SIZE);
  }

  /**
   * Allocate every page of RAM and have the OS commit it now, before the
   * guest needs it (QEMU's prealloc=on): a later install copies into memory
   * that is there, without a first-touch fault of the host on its path.
   * Contents are kept (a read-modify-write of nothing commits a page).
   */
  preallocate(): void {
    const words = this.host.memory.chunkI32;
    for (let index = 0; index < this.pages; index++) {
      const pfn = this.cache
        ? this.cache.getOrAllocate(index, true)
        : this.host.faultIn(this.share.hva + index * PAGE_SIZE, FAULT_WRITE);
      Atomics.add(words[HostMemory.chunkOf(pfn)], HostMemory.offsetOf(pfn) >> 2, 0);
    }
  }

  /** Make page `index` read as zeros (a page never touched already does). */
  zero(index: number): void {
    const pfn = this.pfn(index);
    if (pfn === 0) return;
    const from = HostMemory.offsetOf(pfn);
    this.chunks[HostMemory.chunkOf(pfn)].fill(0, from, from + PAGE_SIZE);
  }
}
