import {
  MAP_ANONYMOUS,
  MAP_NORESERVE,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from "../host/address-space.js";
import { fail } from "../host/errno.js";
import type { Host } from "../host/host.js";
import { PAGE_SIZE } from "../host/host-memory.js";
import {
  type BackingPageSize,
  PAGE_SIZE_1G,
  PAGE_SIZE_2M,
  PAGE_SIZE_4K,
} from "../host/page-cache.js";
import { STAGE2_GFN_LIMIT } from "../kvm/stage2.js";
import {
  GUEST_MEMFD_FLAG_HUGE_1G,
  GUEST_MEMFD_FLAG_HUGE_2M,
  GUEST_MEMFD_FLAG_MMAP,
  MEM_GUEST_MEMFD,
} from "../kvm/uapi.js";
import type { Vm } from "../kvm/vm.js";

/** Where the guest's RAM comes from, as `faultline run --backing` names it. */
export type RamBacking = "guest_memfd" | "anonymous" | "shmem";

export const RAM_BASE = 0x8000_0000;
export const RAM_SLOT = 0;
/** The most RAM a guest can have: from RAM_BASE to the end of the guest-physical address space. */
export const MAX_GUEST_RAM_BYTES = STAGE2_GFN_LIMIT * PAGE_SIZE - RAM_BASE;

/** Refuse a guest RAM size before anything is made for it. */
export function checkGuestRamBytes(bytes: number, pageSize: BackingPageSize): void {
  if (!Number.isSafeInteger(bytes) || bytes <= 0 || bytes % pageSize !== 0) {
    fail("EINVAL", `guest memory must be a positive multiple of the ${pageSize}-byte page size`);
  }
  if (bytes > MAX_GUEST_RAM_BYTES) {
    fail(
      "EINVAL",
      `guest memory of ${bytes} bytes does not fit the guest-physical address space ` +
        `(at most ${MAX_GUEST_RAM_BYTES / 2 ** 30} GiB from 0x${RAM_BASE.toString(16)})`,
    );
  }
}

export interface GuestRamConfig {
  backing: RamBacking;
  bytes: number;
  pageSize: BackingPageSize;
}

/** What another thread needs to reach the same guest RAM. */
export interface GuestRamShare {
  config: GuestRamConfig;
  /** guest_memfd or memfd fd, -1 for anonymous memory. */
  fd: number;
  /** The VMM's host mapping of the RAM (0 for a guest_memfd, which it reaches by offset). */
  hva: number;
}

/**
 * The guest's RAM as the VMM sets it up and fills it: one memslot at
 * RAM_BASE backed by a guest_memfd (reached through its page cache, as the
 * hypervisor does), by private anonymous memory, or by a shared memfd
 * (both mapped into the VMM, as QEMU does). The VMM's own reads and writes
 * go through the same paths the hypervisor's do.
 */
export class GuestRam {
  private constructor(
    private readonly host: Host,
    readonly share: GuestRamShare,
  ) {}

  static create(host: Host, vm: Vm, config: GuestRamConfig): GuestRam {
    const { backing, bytes, pageSize } = config;
    checkGuestRamBytes(bytes, pageSize);
    let fd = -1;
    let hva = 0;
    if (backing === "guest_memfd") {
      const huge =
        pageSize === PAGE_SIZE_1G
          ? GUEST_MEMFD_FLAG_HUGE_1G
          : pageSize === PAGE_SIZE_2M
            ? GUEST_MEMFD_FLAG_HUGE_2M
            : 0;
      fd = vm.createGuestMemfd({ size: bytes, flags: GUEST_MEMFD_FLAG_MMAP | huge });
      vm.setUserMemoryRegion2({
        slot: RAM_SLOT,
        flags: MEM_GUEST_MEMFD,
        guestPhysAddr: RAM_BASE,
        memorySize: bytes,
        userspaceAddr: 0,
        guestMemfd: fd,
        guestMemfdOffset: 0,
      });
    } else {
      const hugePageSize = pageSize === PAGE_SIZE_4K ? undefined : pageSize;
      if (backing === "shmem") {
        fd = host.memfdCreate("guest-ram", bytes, { hugePageSize });
        hva = host.mmap({ length: bytes, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED, fd });
      } else {
        hva = host.mmap({
          length: bytes,
          prot: PROT_READ | PROT_WRITE,
          flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
          hugePageSize,
        });
      }
      vm.setUserMemoryRegion2({
        slot: RAM_SLOT,
        flags: 0,
        guestPhysAddr: RAM_BASE,
        memorySize: bytes,
        userspaceAddr: hva,
      });
    }
    return new GuestRam(host, { config, fd, hva });
  }

  static attach(host: Host, share: GuestRamShare): GuestRam {
    return new GuestRam(host, share);
  }

  get bytes(): number {
    return this.share.config.bytes;
  }

  contains(gpa: number, length: number): boolean {
    return gpa >= RAM_BASE && gpa + length <= RAM_BASE + this.bytes;
  }

  private check(gpa: number, length: number): void {
    if (!this.contains(gpa, length)) {
      fail("EFAULT", `0x${gpa.toString(16)}+${length} is outside guest RAM`);
    }
  }

  /** Write guest RAM as the VMM (loading images, installing pages). */
  write(gpa: number, data: Uint8Array): void {
    this.check(gpa, data.length);
    if (this.share.hva !== 0) {
      this.host.copyToUser(this.share.hva + (gpa - RAM_BASE), data);
      return;
    }
    const cache = this.host.pageCacheOf(this.share.fd);
    const page = new Uint8Array(PAGE_SIZE);
    for (let done = 0; done < data.length;) {
      const at = gpa + done - RAM_BASE;
      const inPage = at % PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - inPage, data.length - done);
      const index = (at - inPage) / PAGE_SIZE;
      const pfn = cache.lookup(index);
      if (pfn !== 0) {
        this.host.memory.frameBytes(pfn).set(data.subarray(done, done + n), inPage);
      } else {
        page.fill(0);
        page.set(data.subarray(done, done + n), inPage);
        cache.install(index, page);
      }
      done += n;
    }
  }

  /** Read guest RAM as the VMM. */
  read(gpa: number, length: number): Uint8Array {
    this.check(gpa, length);
    if (this.share.hva !== 0)
      return this.host.copyFromUser(this.share.hva + (gpa - RAM_BASE), length);
    const cache = this.host.pageCacheOf(this.share.fd);
    const out = new Uint8Array(length);
    for (let done = 0; done < length;) {
      const at = gpa + done - RAM_BASE;
      const inPage = at % PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - inPage, length - done);
      const pfn = cache.lookup((at - inPage) / PAGE_SIZE);
      if (pfn !== 0) out.set(this.host.memory.frameBytes(pfn).subarray(inPage, inPage + n), done);
      done += n;
    }
    return out;
  }
}
