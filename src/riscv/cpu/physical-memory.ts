import type { AccessType } from "./constants.js";

/**
 * Where a guest-physical page lives in host memory: a byte offset (4 KiB
 * aligned) into one of the regions the memory hook hands out. The hook fills a
 * caller-owned object so that a translation allocates nothing.
 */
export class Translation {
  region = 0;
  offset = 0;
  /** False for a read-only or write-protected (dirty-logged) mapping. */
  writable = false;
}

/**
 * The translation hook supplied by the layer above (the hypervisor's stage-2
 * MMU, or a flat test memory). The CPU knows nothing of memslots: it asks for
 * a page and caches the answer in its TLB until told to flush.
 */
export interface GuestPhysicalMemory {
  /**
   * Resolve the page containing `gpa` for an access. Returns false on a miss:
   * the CPU then stops with a guest page fault exit naming the address and
   * the access, without executing the instruction.
   */
  translate(gpa: number, access: AccessType, out: Translation): boolean;
  /** The buffer behind a region index returned by `translate`. */
  regionBuffer(region: number): ArrayBufferLike;
}
