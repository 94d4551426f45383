import { FAULT_ATOMIC, FAULT_WRITE } from "../host/address-space.js";
import type { Host } from "../host/host.js";
import { HostMemory, PAGE_SIZE } from "../host/host-memory.js";
import { GuestMemfd } from "./guest-memfd.js";
import type { Memslot } from "./memslots.js";
import { FRAMES_AT_LEVEL, LEVEL_1G, LEVEL_2M, LEVEL_4K, type MappingLevel } from "./stage2.js";
import { MEM_GUEST_MEMFD } from "./uapi.js";

/** Huge mapping levels, largest first (a constant: the fault path allocates nothing). */
const HUGE_LEVELS = [LEVEL_1G, LEVEL_2M] as const;

/**
 * Where a memslot's pages come from: a guest_memfd's page cache (asked by
 * file offset, never through a host address) or the VMM's host mapping,
 * through the host's fault path (where userfaultfd sees the access).
 */
export class MemslotBacking {
  private readonly gmems = new Map<number, GuestMemfd>();

  constructor(private readonly host: Host) {}

  guestMemfd(object: number): GuestMemfd {
    let gmem = this.gmems.get(object);
    if (gmem === undefined) {
      gmem = new GuestMemfd(this.host, object);
      this.gmems.set(object, gmem);
    }
    return gmem;
  }

  /** File page of gfn in a guest_memfd slot. */
  static gmemIndex(slot: Memslot, gfn: number): number {
    return slot.gmemOffset / PAGE_SIZE + (gfn - slot.baseGfn);
  }

  static hvaOf(slot: Memslot, gfn: number): number {
    return slot.userspaceAddr + (gfn - slot.baseGfn) * PAGE_SIZE;
  }

  /**
   * The host frame of gfn (kvm_gmem_get_pfn / hva_to_pfn), populating it if
   * needed. Errors: EHWPOISON (poisoned guest_memfd page), EFAULT (no host
   * mapping), EAGAIN (atomic caller and the page needs userfaultfd).
   */
  pfnFor(slot: Memslot, gfn: number, write: boolean, atomic = false): number {
    if (slot.flags & MEM_GUEST_MEMFD) {
      return this.guestMemfd(slot.gmem).pfnFor(MemslotBacking.gmemIndex(slot, gfn));
    }
    return this.host.mm.faultIn(
      MemslotBacking.hvaOf(slot, gfn),
      (write ? FAULT_WRITE : 0) | (atomic ? FAULT_ATOMIC : 0),
    );
  }

  /**
   * Whether a read fault may map gfn writable at stage 2: always for a
   * guest_memfd; for a host mapping, only when a write there would not
   * fault (writable mapping, page present, no userfaultfd write protection).
   */
  hostWritable(slot: Memslot, gfn: number): boolean {
    if (slot.flags & MEM_GUEST_MEMFD) return true;
    return this.host.mm.writableAt(MemslotBacking.hvaOf(slot, gfn));
  }

  /** The largest stage-2 mapping the backing allows for gfn: huge pages, aligned alike, inside the slot. */
  maxLevel(slot: Memslot, gfn: number): MappingLevel {
    let pageSize: number;
    let index: number;
    if (slot.flags & MEM_GUEST_MEMFD) {
      const gmem = this.guestMemfd(slot.gmem);
      // A huge mapping could take in a poisoned page next to the one faulted on.
      if (gmem.hasPoison) return LEVEL_4K;
      pageSize = gmem.pageCache.pageSize;
      index = MemslotBacking.gmemIndex(slot, gfn);
    } else {
      const hva = MemslotBacking.hvaOf(slot, gfn);
      const mapping = this.host.mm.mapping(hva);
      if (mapping === null) return LEVEL_4K;
      pageSize = mapping.pageSize;
      index = hva / PAGE_SIZE;
    }
    for (const level of HUGE_LEVELS) {
      const span = FRAMES_AT_LEVEL[level];
      if (pageSize < span * PAGE_SIZE) continue;
      const head = gfn - (gfn % span);
      const aligned = (index - gfn) % span === 0;
      if (aligned && head >= slot.baseGfn && head + span <= slot.baseGfn + slot.npages)
        return level;
    }
    return LEVEL_4K;
  }

  /**
   * Bit gfn of the slot's VMM-owned userfault bitmap (the upstream shape),
   * read from VMM memory with an acquire load; an unpopulated page reads 0.
   */
  userfaultBitmapTest(slot: Memslot, gfn: number): boolean {
    const bit = gfn - slot.baseGfn;
    const hva = slot.userfaultBitmap + (bit >>> 5) * 4;
    const pfn = this.host.mm.lookupPfn(hva);
    if (pfn === 0) return false;
    const words = this.host.memory.chunkI32[HostMemory.chunkOf(pfn)];
    const word = (HostMemory.offsetOf(pfn) + (hva % PAGE_SIZE)) >> 2;
    return (Atomics.load(words, word) & (1 << (bit & 31))) !== 0;
  }
}
