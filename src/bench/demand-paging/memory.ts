import {
  FAULT_WRITE,
  MAP_ANONYMOUS,
  MAP_NORESERVE,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from "../../host/address-space.js";
import type { Host } from "../../host/host.js";
import { HostMemory, PAGE_SIZE } from "../../host/host-memory.js";
import { GUEST_MEMFD_FLAG_MMAP, MEM_GUEST_MEMFD } from "../../kvm/uapi.js";
import type { Vm } from "../../kvm/vm.js";
import { type BackingSource, backingPageSize } from "./options.js";
import { TEST_GPA, TEST_SLOT } from "./shared.js";

/** The test memory as the VMM set it up: the memslot and the VMM's mappings of it. */
export interface TestMemory {
  bytes: number;
  pages: number;
  /** The slot's host mapping (several adjoining mappings when each vCPU has its own userfaultfd); 0 for guest_memfd. */
  slotHva: number;
  /** Where the mappings the slot (or userfaultfd) uses start: one per piece. */
  pieces: { hva: number; bytes: number }[];
  /** A second mapping of the whole file (memfd, guest_memfd) for filling its page cache; 0 for private memory. */
  aliasHva: number;
  /** The file behind the memory, -1 for private memory. */
  fd: number;
}

export interface TestMemoryOptions {
  backing: BackingSource;
  bytes: number;
  /** Separate adjoining mappings, one per userfaultfd (1: one mapping). */
  pieces: number;
  /** Map a second, alias mapping of the file. */
  alias: boolean;
  /** Extra memslot flags (MEM_USERFAULT) and the bitmap it takes. */
  slotFlags: number;
  userfaultBitmap?: number;
}

/**
 * Create the test memory of one VM at TEST_GPA: a guest_memfd (mappable), a
 * shared memfd, or private anonymous memory in 4 KiB, 2 MiB or 1 GiB pages,
 * mapped into the VMM, and the memslot over it. Nothing is touched: the
 * memory is in the state a migration destination's starts in.
 */
export function createTestMemory(host: Host, vm: Vm, o: TestMemoryOptions): TestMemory {
  const pageSize = backingPageSize(o.backing);
  const hugePageSize = pageSize === PAGE_SIZE ? undefined : pageSize;
  const pieceBytes = o.bytes / o.pieces;
  if (!Number.isInteger(pieceBytes) || pieceBytes % pageSize !== 0) {
    throw new RangeError(`test memory of ${o.bytes} bytes cannot be split in ${o.pieces}`);
  }
  let fd = -1;
  if (o.backing === "guest_memfd") {
    fd = vm.createGuestMemfd({ size: o.bytes, flags: GUEST_MEMFD_FLAG_MMAP });
  } else if (o.backing === "shmem") {
    fd = host.memfdCreate("demand-paging", o.bytes);
  }
  const map = (bytes: number, offset: number): number =>
    fd >= 0
      ? host.mmap({ length: bytes, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED, fd, offset })
      : host.mmap({
          length: bytes,
          prot: PROT_READ | PROT_WRITE,
          flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
          hugePageSize,
        });
  // Mappings are placed top-down: map the last piece first so that they adjoin in order.
  const pieces: { hva: number; bytes: number }[] = [];
  for (let i = o.pieces - 1; i >= 0; i--) {
    pieces[i] = { hva: map(pieceBytes, i * pieceBytes), bytes: pieceBytes };
  }
  for (let i = 1; i < o.pieces; i++) {
    if (pieces[i].hva !== pieces[0].hva + i * pieceBytes) {
      throw new Error("the per-vCPU mappings of the test memory do not adjoin");
    }
  }
  const aliasHva = o.alias && fd >= 0 ? map(o.bytes, 0) : 0;
  const gmem = o.backing === "guest_memfd";
  vm.setUserMemoryRegion2({
    slot: TEST_SLOT,
    flags: (gmem ? MEM_GUEST_MEMFD : 0) | o.slotFlags,
    guestPhysAddr: TEST_GPA,
    memorySize: o.bytes,
    userspaceAddr: gmem ? 0 : pieces[0].hva,
    guestMemfd: gmem ? fd : undefined,
    guestMemfdOffset: 0,
    userfaultBitmap: o.userfaultBitmap,
  });
  return {
    bytes: o.bytes,
    pages: o.bytes / PAGE_SIZE,
    slotHva: gmem ? 0 : pieces[0].hva,
    pieces,
    aliasHva,
    fd,
  };
}

/**
 * The host touches every 4 KiB page of [hva, hva + pages) with one store
 * (the page is allocated and the OS commits it): prefaulted memory.
 */
export function touchPages(host: Host, hva: number, pages: number): void {
  const chunks = host.memory.chunkI32;
  for (let i = 0; i < pages; i++) {
    const pfn = host.faultIn(hva + i * PAGE_SIZE, FAULT_WRITE);
    chunks[HostMemory.chunkOf(pfn)][HostMemory.offsetOf(pfn) >> 2] = 0;
  }
}

/** A private anonymous mapping of VMM memory (the userfault bitmap). */
export function mapAnonymous(host: Host, bytes: number): number {
  return host.mmap({
    length: bytes,
    prot: PROT_READ | PROT_WRITE,
    flags: MAP_PRIVATE | MAP_ANONYMOUS,
  });
}

/** The memslot-bitmap shape's bitmap: one bit per test page, all set. */
export function createUserfaultBitmap(host: Host, pages: number): number {
  const bytes = Math.ceil(pages / 8);
  const mapped = Math.ceil(bytes / PAGE_SIZE) * PAGE_SIZE;
  const hva = mapAnonymous(host, mapped);
  const bits = new Uint8Array(mapped);
  bits.fill(0xff, 0, Math.floor(pages / 8));
  if (pages % 8 !== 0) bits[Math.floor(pages / 8)] = (1 << (pages % 8)) - 1;
  host.copyToUser(hva, bits);
  return hva;
}
