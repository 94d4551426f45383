import { TASK_SIZE } from "../host/address-space.js";
import { ErrnoError, fail } from "../host/errno.js";
import { TIMEBASE_FREQUENCY } from "../riscv/cpu/constants.js";
import { FILE_EVENTFD, FILE_GUEST_MEMFD, putFile } from "../host/files.js";
import type { Host } from "../host/host.js";
import type { HostMemory } from "../host/host-memory.js";
import { PAGE_SIZE } from "../host/host-memory.js";
import { lock, unlock } from "../host/sync.js";
import { MemslotBacking } from "./backing.js";
import { GuestMemfd } from "./guest-memfd.js";
import { GfnBitmap, GFN_LIMIT } from "./gfn-bitmap.js";
import { IoBus } from "./io-bus.js";
// The in-kernel devices register their bus types on every thread that attaches a VM.
import "./virtio/blk.js";
import { Memslot, MemslotTable } from "./memslots.js";
import { Stage2, STAGE2_GFN_LIMIT } from "./stage2.js";
import {
  CAP_DIRTY_LOG,
  CAP_GUEST_MEMFD,
  CAP_MANUAL_DIRTY_LOG_PROTECT2,
  CAP_MAX_VCPUS,
  CAP_MEMORY_ATTRIBUTES,
  CAP_MEMORY_FAULT_INFO,
  CAP_NR_MEMSLOTS,
  CAP_NR_VCPUS,
  CAP_READONLY_MEM,
  CAP_USER_MEMORY2,
  CAP_USERFAULT,
  hasInvalidFlags,
  MAX_MEMSLOTS,
  MAX_VCPUS,
  MEM_GUEST_MEMFD,
  MEM_LOG_DIRTY_PAGES,
  MEM_READONLY,
  MEM_USERFAULT,
  MEMORY_ATTRIBUTE_PRIVATE,
  MEMORY_ATTRIBUTE_USERFAULT,
  USERFAULT_ASYNC_ALL,
  USERFAULT_DISABLE,
  USERFAULT_ENABLE,
} from "./uapi.js";
import { UserfaultContext } from "./userfault.js";
import { Sbi } from "./sbi/sbi.js";
import { REQ_SYSTEM_EVENT, REQ_TLB_FLUSH, requestAllAndWait, VcpuShared } from "./vcpu-shared.js";
import {
  VM_ATTR_PRIVATE,
  VM_ATTR_USERFAULT,
  VM_DESTROYED,
  VM_IO_BUS,
  VM_MANUAL_DIRTY_PROTECT,
  VM_MMU_LOCK,
  VM_MMU_SEQ,
  VM_FAULT_SLOTS,
  VM_FAULT_SLOT_NEXT,
  FAULT_SLOTS,
  FAULT_SLOT_WORDS,
  VM_RECORD_BYTES,
  VM_SLOTS_LOCK,
  VM_STAGE2_ROOT,
  VM_STAGE2_STATS,
  VM_SYSTEM_EVENT,
  VM_SYSTEM_EVENT_REASON,
  VM_TIME_EPOCH,
  VM_VCPU_COUNT,
  VM_VCPUS,
} from "./vm-layout.js";

/** Whether the system (no VM) or a VM supports a capability; the value checkExtension returns. */
export function capabilityValue(cap: number, userfaultEnabled: boolean | null): number {
  switch (cap) {
    case CAP_USERFAULT:
    case CAP_GUEST_MEMFD:
    case CAP_USER_MEMORY2:
    case CAP_MEMORY_FAULT_INFO:
    case CAP_READONLY_MEM:
    case CAP_DIRTY_LOG:
      return 1;
    case CAP_MANUAL_DIRTY_LOG_PROTECT2:
      return 1;
    case CAP_MEMORY_ATTRIBUTES:
      // As kvm_supported_mem_attributes: the system answers for any VM; a VM
      // lists USERFAULT only while userfault is enabled on it.
      return (
        MEMORY_ATTRIBUTE_PRIVATE |
        (userfaultEnabled === null || userfaultEnabled ? MEMORY_ATTRIBUTE_USERFAULT : 0)
      );
    case CAP_NR_VCPUS:
    case CAP_MAX_VCPUS:
      return MAX_VCPUS;
    case CAP_NR_MEMSLOTS:
      return MAX_MEMSLOTS;
    default:
      return 0;
  }
}

export interface EnableCapArgs {
  cap: number;
  flags: number;
  args: number[];
}

export interface UserMemoryRegion2 {
  slot: number;
  flags: number;
  guestPhysAddr: number;
  memorySize: number;
  userspaceAddr: number;
  guestMemfd?: number;
  guestMemfdOffset?: number;
  /** MEM_USERFAULT: hva of the VMM's bitmap, one bit per page of the slot. */
  userfaultBitmap?: number;
}

export interface ClearDirtyLogArgs {
  slot: number;
  firstPage: number;
  numPages: number;
  bitmap: Uint8Array;
}

/** A hypervisor access found a userfault page and could not wait (the RFC's *_ERR_USERFAULT). */
export class UserfaultError extends ErrnoError {
  constructor(readonly gfn: number) {
    super("EFAULT", `gfn 0x${gfn.toString(16)} is userfault`);
  }
}

export interface MemoryAttributesArgs {
  address: number;
  size: number;
  attributes: number;
  flags: number;
}

export interface MemoryAttributesDeltaArgs {
  address: number;
  size: number;
  set: number;
  clear: number;
}

/**
 * A virtual machine, attached on one thread. Its state is in the arena (see
 * vm-layout.ts), so several threads can attach the same VM and make UAPI
 * calls on it concurrently, as threads of a VMM make ioctls on one VM fd.
 */
export class Vm {
  readonly memory: HostMemory;
  readonly words: Int32Array;
  readonly base: number;
  readonly memslots: MemslotTable;
  readonly stage2: Stage2;
  readonly userfaultBits: GfnBitmap;
  readonly privateBits: GfnBitmap;
  readonly userfault: UserfaultContext;
  readonly sbi: Sbi;
  readonly ioBus: IoBus;
  private readonly vcpuCache: VcpuShared[] = [];
  /** See faultSlot(); -2 until this thread's first fault. */
  private faultSlotWord = -2;

  readonly backing: MemslotBacking;

  constructor(
    readonly host: Host,
    readonly offset: number,
  ) {
    const memory = host.memory;
    this.memory = memory;
    this.backing = new MemslotBacking(host);
    this.words = memory.arenaI32;
    this.base = offset >> 2;
    this.memslots = new MemslotTable(memory, this.words, this.base);
    this.stage2 = new Stage2(memory, this.base + VM_STAGE2_ROOT, this.base + VM_STAGE2_STATS);
    this.userfaultBits = new GfnBitmap(memory, this.words[this.base + VM_ATTR_USERFAULT]);
    this.privateBits = new GfnBitmap(memory, this.words[this.base + VM_ATTR_PRIVATE]);
    this.userfault = new UserfaultContext(memory, offset, this.userfaultBits, (eventfd) =>
      host.eventfds.signalObject(eventfd),
    );
    this.sbi = new Sbi(this);
    this.ioBus = new IoBus(this, this.words[this.base + VM_IO_BUS]);
  }

  /** KVM_CREATE_VM: allocate the VM's state; returns its arena offset. */
  static allocate(memory: HostMemory): number {
    const offset = memory.arenaAllocate(VM_RECORD_BYTES, 64);
    const w = offset >> 2;
    memory.arenaI32[w + VM_STAGE2_ROOT] = Stage2.allocateRoot(memory);
    memory.arenaI32[w + VM_ATTR_USERFAULT] = GfnBitmap.allocate(memory);
    memory.arenaI32[w + VM_ATTR_PRIVATE] = GfnBitmap.allocate(memory);
    memory.arenaI32[w + VM_IO_BUS] = IoBus.allocate(memory);
    memory.arenaI32[w + VM_FAULT_SLOTS] = memory.arenaAllocate(
      FAULT_SLOTS * FAULT_SLOT_WORDS * 4,
      64,
    );
    memory.arenaF64[(w + VM_TIME_EPOCH) >> 1] = performance.timeOrigin + performance.now();
    return offset;
  }

  /** Host wall-clock ms of guest time 0: every vCPU's `time` CSR counts from here. */
  get timeEpochMs(): number {
    return this.memory.arenaF64[(this.base + VM_TIME_EPOCH) >> 1];
  }

  /** Move guest time 0 (setting the timer's time register moves it for the whole VM, as in KVM). */
  set timeEpochMs(ms: number) {
    this.memory.arenaF64[(this.base + VM_TIME_EPOCH) >> 1] = ms;
  }

  /**
   * KVM_GET_CLOCK: the guest's time counter now, in timebase ticks. With
   * setClock, a VMM carries guest time across a migration or a snapshot from
   * any thread, before any vCPU runs (the VM-wide twin of the timer's time
   * register).
   */
  getClock(): bigint {
    const ms = performance.timeOrigin + performance.now() - this.timeEpochMs;
    return BigInt(Math.floor(ms * (TIMEBASE_FREQUENCY / 1000)));
  }

  /** KVM_SET_CLOCK: make the guest's time counter read `ticks` now; vCPUs count on from there. */
  setClock(ticks: bigint): void {
    if (ticks < 0n || ticks >= 1n << 63n) fail("EINVAL", `clock ${ticks} is out of range`);
    this.timeEpochMs =
      performance.timeOrigin + performance.now() - Number(ticks) / (TIMEBASE_FREQUENCY / 1000);
  }

  /**
   * A system event (SBI SRST or legacy shutdown): recorded once for the VM,
   * and every vCPU leaves KVM_RUN with EXIT_SYSTEM_EVENT.
   */
  raiseSystemEvent(type: number, reason: number): void {
    if (Atomics.compareExchange(this.words, this.base + VM_SYSTEM_EVENT, 0, type) === 0) {
      Atomics.store(this.words, this.base + VM_SYSTEM_EVENT_REASON, reason);
    }
    for (const v of this.vcpuList()) v.request(REQ_SYSTEM_EVENT);
  }

  /** The pending system event as (type, reason); type 0 when none. */
  systemEvent(): { type: number; reason: number } {
    return {
      type: Atomics.load(this.words, this.base + VM_SYSTEM_EVENT),
      reason: Atomics.load(this.words, this.base + VM_SYSTEM_EVENT_REASON),
    };
  }

  get destroyed(): boolean {
    return Atomics.load(this.words, this.base + VM_DESTROYED) !== 0;
  }

  checkExtension(cap: number): number {
    return capabilityValue(cap, this.userfault.enabled);
  }

  /** KVM_ENABLE_CAP on the VM. */
  enableCap({ cap, flags, args }: EnableCapArgs): void {
    if (cap === CAP_MANUAL_DIRTY_LOG_PROTECT2) {
      if (flags !== 0 || hasInvalidFlags(args[0] ?? 0, 1)) {
        fail("EINVAL", "unknown dirty-log options");
      }
      Atomics.store(this.words, this.base + VM_MANUAL_DIRTY_PROTECT, (args[0] ?? 0) & 1);
      return;
    }
    if (cap !== CAP_USERFAULT) fail("EINVAL", `capability ${cap} cannot be enabled`);
    if (flags !== 0) fail("EINVAL", "enableCap(USERFAULT) takes no flags");
    const options = args[0] ?? 0;
    const known = USERFAULT_ENABLE | USERFAULT_DISABLE | USERFAULT_ASYNC_ALL;
    if (hasInvalidFlags(options, known)) {
      fail("EINVAL", `unknown userfault options 0x${options.toString(16)}`);
    }
    const enable = (options & USERFAULT_ENABLE) !== 0;
    const disable = (options & USERFAULT_DISABLE) !== 0;
    if (enable === disable) fail("EINVAL", "exactly one of USERFAULT_ENABLE and USERFAULT_DISABLE");
    if (disable && options !== USERFAULT_DISABLE) {
      fail("EINVAL", "USERFAULT_DISABLE takes no other option");
    }
    this.withSlotsLock(() => {
      if (disable) {
        if (!this.userfault.enabled) return;
        // The context holds a reference to the eventfd; dropped once no accessor uses it.
        const eventfd = this.userfault.eventfd;
        this.userfault.disable();
        putFile(this.host, eventfd);
        return;
      }
      if (this.userfault.enabled) fail("EEXIST", "userfault is already enabled on this VM");
      const eventfd = this.host.files.get(args[1] ?? -1, FILE_EVENTFD);
      this.userfault.enable(options, eventfd);
      this.unmapUserfaultPages();
    });
  }

  /**
   * On enable: USERFAULT bits that survived a disable name pages the vCPUs
   * may have mapped meanwhile; unmap them so that they fault again. Callers
   * hold the slots lock.
   */
  private unmapUserfaultPages(): void {
    const slot = new Memslot();
    let start = -1;
    let end = -1;
    this.beginInvalidate();
    try {
      for (let id = 0; id < MAX_MEMSLOTS; id++) {
        if (!this.memslots.get(id, slot)) continue;
        this.userfaultBits.forEachSet(slot.baseGfn, slot.npages, (gfn) => {
          if (gfn === end) {
            end++;
            return;
          }
          if (start >= 0) this.stage2.unmapRange(start, end - start);
          start = gfn;
          end = gfn + 1;
        });
      }
      if (start >= 0) this.stage2.unmapRange(start, end - start);
    } finally {
      this.endInvalidate();
    }
    this.flushAllTlbs();
  }

  withSlotsLock<T>(body: () => T): T {
    lock(this.words, this.base + VM_SLOTS_LOCK);
    try {
      return body();
    } finally {
      unlock(this.words, this.base + VM_SLOTS_LOCK);
    }
  }

  checkAttributeRange(address: number, size: number): void {
    if (!Number.isSafeInteger(address) || !Number.isSafeInteger(size) || address < 0 || size <= 0) {
      fail("EINVAL", "memory attribute range must be a positive size at a non-negative address");
    }
    if (address % PAGE_SIZE !== 0 || size % PAGE_SIZE !== 0) {
      fail("EINVAL", "memory attribute range must be page aligned");
    }
    if ((address + size) / PAGE_SIZE > GFN_LIMIT) {
      fail("EINVAL", "memory attribute range beyond the guest-physical space");
    }
  }

  private checkAttributeBits(attributes: number): void {
    const supported = this.checkExtension(CAP_MEMORY_ATTRIBUTES);
    if (hasInvalidFlags(attributes, supported)) {
      fail("EINVAL", `unsupported memory attributes 0x${attributes.toString(16)}`);
    }
  }

  /** KVM_SET_MEMORY_ATTRIBUTES: the exact attribute set of every page in the range. */
  setMemoryAttributes({ address, size, attributes, flags }: MemoryAttributesArgs): void {
    if (flags !== 0) fail("EINVAL", "setMemoryAttributes takes no flags");
    this.checkAttributeRange(address, size);
    this.checkAttributeBits(attributes);
    this.applyAttributes(address, size, attributes, ~attributes & ATTRIBUTES_ALL);
  }

  /** faultline's delta form: set and clear chosen attributes, leave the others alone. */
  setMemoryAttributesDelta({ address, size, set, clear }: MemoryAttributesDeltaArgs): void {
    this.checkAttributeRange(address, size);
    this.checkAttributeBits(set);
    this.checkAttributeBits(clear);
    if ((set & clear) !== 0) fail("EINVAL", "an attribute cannot be both set and cleared");
    this.applyAttributes(address, size, set, clear);
  }

  private applyAttributes(address: number, size: number, set: number, clear: number): void {
    const gfn = address / PAGE_SIZE;
    const count = size / PAGE_SIZE;
    if (set & MEMORY_ATTRIBUTE_PRIVATE) this.privateBits.setRange(gfn, count);
    if (clear & MEMORY_ATTRIBUTE_PRIVATE) this.privateBits.clearRange(gfn, count);
    if (set & MEMORY_ATTRIBUTE_USERFAULT) {
      // Bits first, then the unmap: a racing fault either sees the bit or
      // finds the mmu sequence moved and retries (see the fault path).
      this.userfaultBits.setRange(gfn, count);
      this.unmapGfnRange(gfn, count);
    }
    if (clear & MEMORY_ATTRIBUTE_USERFAULT) {
      // Releasing unmaps nothing: it is the bit flip plus a wake-up.
      if (this.userfaultBits.clearRange(gfn, count)) this.userfault.released(gfn, count);
    }
  }

  /** The attribute set of one page (not a KVM ioctl; for tests and the VMM's bookkeeping). */
  memoryAttributes(address: number): number {
    const gfn = Math.floor(address / PAGE_SIZE);
    return (
      (this.privateBits.test(gfn) ? MEMORY_ATTRIBUTE_PRIVATE : 0) |
      (this.userfaultBits.test(gfn) ? MEMORY_ATTRIBUTE_USERFAULT : 0)
    );
  }

  /**
   * Zap stage-2 mappings of a range and flush every vCPU's TLB before
   * returning (kvm_unmap_gfn_range + kvm_flush_remote_tlbs).
   */
  unmapGfnRange(gfn: number, count: number, collapse = false): void {
    this.beginInvalidate();
    try {
      this.stage2.unmapRange(gfn, count);
      if (collapse) this.stage2.pruneEmptyTables(gfn, count);
    } finally {
      this.endInvalidate();
    }
    this.flushAllTlbs();
  }

  flushAllTlbs(): void {
    requestAllAndWait(this.vcpuList(), REQ_TLB_FLUSH);
  }

  /**
   * Start a stage-2 invalidation (zap or write-protect): the mmu lock, the
   * sequence made odd (faults that read it from now on retry once the lock
   * is free), then a wait for every fault already installing a leaf, so
   * that the walk that follows sees its leaf. Faults take no lock and write
   * nothing shared: each marks its own fault slot (see fault.ts).
   */
  private beginInvalidate(): void {
    lock(this.words, this.base + VM_MMU_LOCK);
    Atomics.add(this.words, this.base + VM_MMU_SEQ, 1);
    const used = Math.min(Atomics.load(this.words, this.base + VM_FAULT_SLOT_NEXT), FAULT_SLOTS);
    const first = this.words[this.base + VM_FAULT_SLOTS] >> 2;
    for (let i = 0; i < used; i++) {
      const at = first + i * FAULT_SLOT_WORDS;
      const counter = Atomics.load(this.words, at);
      if ((counter & 1) === 0) continue;
      Atomics.add(this.words, at + 1, 1);
      while (Atomics.load(this.words, at) === counter) Atomics.wait(this.words, at, counter);
      Atomics.sub(this.words, at + 1, 1);
    }
  }

  /** End it: the sequence even again (and moved), the lock released. */
  private endInvalidate(): void {
    Atomics.add(this.words, this.base + VM_MMU_SEQ, 1);
    unlock(this.words, this.base + VM_MMU_LOCK);
  }

  /**
   * This thread's fault slot (the arena word index of its counter), taken
   * at its first fault; -1 once all are taken: that thread's faults install
   * under the mmu lock instead.
   */
  faultSlot(): number {
    if (this.faultSlotWord === -2) {
      const i = Atomics.add(this.words, this.base + VM_FAULT_SLOT_NEXT, 1);
      this.faultSlotWord =
        i < FAULT_SLOTS ? (this.words[this.base + VM_FAULT_SLOTS] >> 2) + i * FAULT_SLOT_WORDS : -1;
    }
    return this.faultSlotWord;
  }

  get mmuSequence(): number {
    return Atomics.load(this.words, this.base + VM_MMU_SEQ);
  }

  /** KVM_READ_USERFAULT: the guest-physical address of the next asynchronous userfault. */
  readUserfault(): { gpa: number } {
    return { gpa: this.userfault.read() * PAGE_SIZE };
  }

  /** Register a vCPU record created by createVcpu (shared by all attached threads). */
  vcpuList(): VcpuShared[] {
    const count = Atomics.load(this.words, this.base + VM_VCPU_COUNT);
    for (let id = this.vcpuCache.length; id < count; id++) {
      this.vcpuCache.push(new VcpuShared(this.memory, this.words[this.base + VM_VCPUS + id]));
    }
    return this.vcpuCache;
  }

  /** KVM_CREATE_VCPU: ids are dense from 0, as the VMM creates them in order. */
  createVcpuRecord(id: number): number {
    return this.withSlotsLock(() => {
      const count = Atomics.load(this.words, this.base + VM_VCPU_COUNT);
      if (!Number.isInteger(id) || id < 0 || id >= MAX_VCPUS) fail("EINVAL", `vCPU id ${id}`);
      if (id < count) fail("EEXIST", `vCPU ${id} exists`);
      if (id !== count) fail("EINVAL", `vCPU ids are created in order; next is ${count}`);
      const record = VcpuShared.allocate(this.memory);
      this.words[this.base + VM_VCPUS + id] = record;
      Atomics.store(this.words, this.base + VM_VCPU_COUNT, count + 1);
      return record;
    });
  }

  /** KVM_CREATE_GUEST_MEMFD: a guest_memfd of this VM; returns its fd. */
  createGuestMemfd({ size, flags }: { size: number; flags: number }): number {
    return GuestMemfd.create(this.host, this.offset, size, flags);
  }

  /**
   * KVM_SET_USER_MEMORY_REGION2: create, change the flags of, or (size 0)
   * delete a memslot, with KVM's validation. Changing a slot zaps its old
   * mappings on every vCPU before the call returns.
   */
  setUserMemoryRegion2(region: UserMemoryRegion2): void {
    const r = { guestMemfd: -1, guestMemfdOffset: 0, userfaultBitmap: 0, ...region };
    const id = r.slot;
    if (!Number.isInteger(id) || id < 0 || id >= MAX_MEMSLOTS) {
      fail("EINVAL", `memslot ${id} out of range (address space 0, slots 0-${MAX_MEMSLOTS - 1})`);
    }
    const valid = MEM_LOG_DIRTY_PAGES | MEM_READONLY | MEM_GUEST_MEMFD | MEM_USERFAULT;
    if (hasInvalidFlags(r.flags, valid)) {
      fail("EINVAL", `unknown memslot flags 0x${r.flags.toString(16)}`);
    }
    if ((r.flags & MEM_GUEST_MEMFD) !== 0 && (r.flags & MEM_READONLY) !== 0) {
      fail("EINVAL", "a guest_memfd memslot cannot be read-only");
    }
    for (const [name, value] of [
      ["guestPhysAddr", r.guestPhysAddr],
      ["memorySize", r.memorySize],
      ["userspaceAddr", r.userspaceAddr],
      // As KVM, the guest_memfd fields mean nothing without MEM_GUEST_MEMFD.
      ["guestMemfdOffset", (r.flags & MEM_GUEST_MEMFD) !== 0 ? r.guestMemfdOffset : 0],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < 0 || value % PAGE_SIZE !== 0) {
        fail("EINVAL", `${name} must be a page-aligned non-negative integer`);
      }
    }
    // KVM's access_ok(): the host range must lie in user space.
    if (r.userspaceAddr + r.memorySize > TASK_SIZE) {
      fail("EINVAL", "userspaceAddr + memorySize past the top of user space");
    }
    if ((r.guestPhysAddr + r.memorySize) / PAGE_SIZE > STAGE2_GFN_LIMIT) {
      fail("EINVAL", "memslot beyond the guest-physical address space");
    }
    if (
      (r.flags & MEM_USERFAULT) !== 0 &&
      (r.userfaultBitmap <= 0 || r.userfaultBitmap % 8 !== 0)
    ) {
      fail("EINVAL", "MEM_USERFAULT needs an 8-byte aligned userfaultBitmap address");
    }
    this.withSlotsLock(() => {
      const old = new Memslot();
      const exists = this.memslots.get(id, old);
      if (r.memorySize === 0) {
        if (!exists) fail("EINVAL", `memslot ${id} does not exist`);
        this.deleteSlot(old);
        return;
      }
      const next = new Memslot();
      next.id = id;
      next.flags = r.flags;
      next.baseGfn = r.guestPhysAddr / PAGE_SIZE;
      next.npages = r.memorySize / PAGE_SIZE;
      next.userspaceAddr = r.userspaceAddr;
      next.userfaultBitmap = (r.flags & MEM_USERFAULT) !== 0 ? r.userfaultBitmap : 0;
      if (exists) {
        if (
          next.baseGfn !== old.baseGfn ||
          next.npages !== old.npages ||
          next.userspaceAddr !== old.userspaceAddr ||
          ((next.flags ^ old.flags) & (MEM_READONLY | MEM_GUEST_MEMFD)) !== 0 ||
          // A guest_memfd slot keeps its file and offset (when the caller names them).
          ((old.flags & MEM_GUEST_MEMFD) !== 0 &&
            region.guestMemfd !== undefined &&
            (r.guestMemfd !== old.gmemFd || r.guestMemfdOffset !== old.gmemOffset))
        ) {
          fail("EINVAL", `memslot ${id} exists: only its flags may change`);
        }
        this.changeSlotFlags(old, next);
        return;
      }
      for (const other of this.memslots.others(id)) {
        if (
          next.baseGfn < other.baseGfn + other.npages &&
          other.baseGfn < next.baseGfn + next.npages
        ) {
          fail("EEXIST", `memslot ${id} overlaps memslot ${other.id}`);
        }
      }
      if (next.flags & MEM_GUEST_MEMFD) this.bindGuestMemfd(next, r.guestMemfd, r.guestMemfdOffset);
      if (next.flags & MEM_LOG_DIRTY_PAGES) next.dirtyBitmap = GfnBitmap.allocate(this.memory);
      this.memslots.write(id, next);
    });
  }

  private bindGuestMemfd(slot: Memslot, fd: number, offset: number): void {
    const object = this.host.files.get(fd, FILE_GUEST_MEMFD);
    try {
      const gmem = this.backing.guestMemfd(object);
      if (gmem.vmOffset !== this.offset) fail("EINVAL", "guest_memfd belongs to another VM");
      if (offset + slot.npages * PAGE_SIZE > gmem.size) {
        fail("EINVAL", "memslot extends past the end of its guest_memfd");
      }
      gmem.bind(slot.id, offset / PAGE_SIZE, slot.npages);
    } catch (error) {
      putFile(this.host, object);
      throw error;
    }
    // The slot keeps its reference to the file until it is deleted.
    slot.gmem = object;
    slot.gmemFd = fd;
    slot.gmemOffset = offset;
  }

  private deleteSlot(old: Memslot): void {
    this.memslots.write(old.id, null);
    this.unmapGfnRange(old.baseGfn, old.npages);
    if (old.flags & MEM_GUEST_MEMFD) {
      this.backing.guestMemfd(old.gmem).unbind(old.id);
      putFile(this.host, old.gmem);
    }
  }

  private changeSlotFlags(old: Memslot, next: Memslot): void {
    next.gmem = old.gmem;
    next.gmemFd = old.gmemFd;
    next.gmemOffset = old.gmemOffset;
    next.dirtyBitmap = old.dirtyBitmap;
    const enabling = next.flags & ~old.flags;
    const disabling = old.flags & ~next.flags;
    if (enabling & MEM_LOG_DIRTY_PAGES && next.dirtyBitmap === 0) {
      next.dirtyBitmap = GfnBitmap.allocate(this.memory);
    }
    this.memslots.write(next.id, next);
    if (enabling & MEM_USERFAULT) {
      // Every page must fault again (and then only in 4 KiB pieces).
      this.unmapGfnRange(next.baseGfn, next.npages);
    } else if (enabling & MEM_LOG_DIRTY_PAGES) {
      this.writeProtectGfnRange(next.baseGfn, next.npages);
    } else if (disabling & (MEM_USERFAULT | MEM_LOG_DIRTY_PAGES)) {
      // Rebuild huge mappings where the backing allows (they fault back in whole).
      this.unmapGfnRange(next.baseGfn, next.npages, true);
    }
  }

  private writeProtectGfnRange(gfn: number, count: number): void {
    this.beginInvalidate();
    try {
      this.stage2.writeProtectRange(gfn, count);
    } finally {
      this.endInvalidate();
    }
    this.flushAllTlbs();
  }

  /** Record a guest write to gfn in its slot's dirty log. */
  markDirty(slot: Memslot, gfn: number): void {
    if (slot.dirtyBitmap !== 0) new GfnBitmap(this.memory, slot.dirtyBitmap).setRange(gfn, 1);
  }

  /**
   * KVM_GET_DIRTY_LOG: the slot's dirty bitmap (bit i = page i of the slot).
   * Without manual protection the log is cleared and the dirty pages
   * write-protected again, as KVM does; with KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2
   * enabled that is left to clearDirtyLog.
   */
  getDirtyLog(slotId: number): Uint8Array {
    const slot = this.dirtyLoggedSlot(slotId);
    const bits = new GfnBitmap(this.memory, slot.dirtyBitmap);
    const out = new Uint8Array(Math.ceil(slot.npages / 64) * 8);
    bits.forEachSet(slot.baseGfn, slot.npages, (gfn) => {
      const i = gfn - slot.baseGfn;
      out[i >> 3] |= 1 << (i & 7);
    });
    if (!this.manualDirtyLogProtect) this.clearDirtyPages(slot, 0, slot.npages, out);
    return out;
  }

  /** KVM_CLEAR_DIRTY_LOG: clear the given bits and write-protect those pages again. */
  clearDirtyLog({ slot: slotId, firstPage, numPages, bitmap }: ClearDirtyLogArgs): void {
    // KVM checks the alignment before it looks for the slot.
    if (!Number.isInteger(firstPage) || firstPage < 0 || firstPage % 64 !== 0) {
      fail("EINVAL", "firstPage must be a multiple of 64");
    }
    const slot = this.dirtyLoggedSlot(slotId);
    if (!Number.isInteger(numPages) || numPages < 0 || firstPage + numPages > slot.npages) {
      fail("EINVAL", "range beyond the memslot");
    }
    if (numPages % 64 !== 0 && firstPage + numPages !== slot.npages) {
      fail("EINVAL", "numPages must be a multiple of 64 unless it reaches the end of the slot");
    }
    if (bitmap.length * 8 < numPages) fail("EINVAL", "bitmap shorter than numPages");
    this.clearDirtyPages(slot, firstPage, numPages, bitmap);
  }

  private clearDirtyPages(slot: Memslot, first: number, count: number, bitmap: Uint8Array): void {
    const bits = new GfnBitmap(this.memory, slot.dirtyBitmap);
    this.beginInvalidate();
    try {
      for (let i = 0; i < count; i++) {
        if ((bitmap[i >> 3] & (1 << (i & 7))) === 0) continue;
        const gfn = slot.baseGfn + first + i;
        bits.clearRange(gfn, 1);
        this.stage2.writeProtectRange(gfn, 1);
      }
    } finally {
      this.endInvalidate();
    }
    this.flushAllTlbs();
  }

  private dirtyLoggedSlot(slotId: number): Memslot {
    const slot = new Memslot();
    if (!Number.isInteger(slotId) || slotId < 0 || slotId >= MAX_MEMSLOTS) {
      fail("EINVAL", `memslot ${slotId} out of range`);
    }
    if (!this.memslots.get(slotId, slot)) fail("ENOENT", `memslot ${slotId} does not exist`);
    if ((slot.flags & MEM_LOG_DIRTY_PAGES) === 0 || slot.dirtyBitmap === 0) {
      fail("ENOENT", `memslot ${slotId} does not log dirty pages`);
    }
    return slot;
  }

  get manualDirtyLogProtect(): boolean {
    return Atomics.load(this.words, this.base + VM_MANUAL_DIRTY_PROTECT) !== 0;
  }

  /**
   * Rebuild huge stage-2 mappings over a range once userfault is off (the RFC
   * left KVM_COLLAPSE_PAGE_TABLES undone): the 4 KiB mappings are zapped and
   * the next faults map whole 2 MiB / 1 GiB pages wherever the backing has
   * them. EBUSY while userfault is still enabled.
   */
  collapsePageTables({ address, size }: { address: number; size: number }): void {
    this.checkAttributeRange(address, size);
    if (this.userfault.enabled) fail("EBUSY", "userfault is still enabled");
    this.unmapGfnRange(address / PAGE_SIZE, size / PAGE_SIZE, true);
  }

  /**
   * The host frame of gfn for a hypervisor access that is not a vCPU's
   * stage-2 fault (kvm_vcpu_map, kvm_read_guest): -1 for a userfault page,
   * which such an access must not touch. Only the RFC's USERFAULT attribute
   * counts here: the upstream shape's memslot bitmap catches vCPU faults
   * alone, and the hypervisor's own accesses go through the backing as
   * usual. `write` marks the page dirty. An `atomic` caller never sleeps in
   * the host fault path either (userfaultfd on a traditional slot's
   * mapping): it gets EAGAIN.
   */
  guestPfnForKernel(gfn: number, write: boolean, atomic = false): number {
    const slot = new Memslot();
    if (!this.findMemslot(gfn, slot)) fail("EFAULT", `no memslot at gfn 0x${gfn.toString(16)}`);
    if (this.userfault.enabled && this.userfaultBits.test(gfn)) return -1;
    const pfn = this.backing.pfnFor(slot, gfn, write, atomic);
    if (write && slot.flags & MEM_LOG_DIRTY_PAGES) this.markDirty(slot, gfn);
    return pfn;
  }

  /**
   * The host frame of gfn for a hypervisor access that may have to wait for
   * the VMM: an `atomic` caller gets EFAULT (userfault) for a userfault page
   * and never waits; any other caller takes an asynchronous userfault and
   * sleeps until the VMM releases the page (EFAULT if userfault is disabled
   * or the VM dies first). `write` marks the page dirty.
   */
  guestPfnForAccess(gfn: number, write: boolean, atomic: boolean): number {
    for (;;) {
      const pfn = this.guestPfnForKernel(gfn, write, atomic);
      if (pfn >= 0) return pfn;
      if (atomic) throw new UserfaultError(gfn);
      if (this.userfault.waitForRelease(gfn) !== "released") {
        fail(
          "EFAULT",
          `gfn 0x${gfn.toString(16)}: userfault disabled or VM destroyed while waiting`,
        );
      }
    }
  }

  /**
   * Copy guest memory in or out on behalf of the hypervisor, page by page
   * through guestPfnForAccess (so with its userfault semantics).
   */
  accessGuest(gpa: number, data: Uint8Array, write: boolean, atomic: boolean): void {
    let done = 0;
    while (done < data.length) {
      const at = gpa + done;
      const inPage = at % PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - inPage, data.length - done);
      const frame = this.memory.frameBytes(
        this.guestPfnForAccess(Math.floor(at / PAGE_SIZE), write, atomic),
      );
      if (write) frame.set(data.subarray(done, done + n), inPage);
      else data.set(frame.subarray(inPage, inPage + n), done);
      done += n;
    }
  }

  /** An 8-byte little-endian read by the hypervisor (legacy SBI hart masks). */
  readGuestU64(gpa: number): bigint {
    const bytes = new Uint8Array(8);
    this.accessGuest(gpa, bytes, false, false);
    return new DataView(bytes.buffer).getBigUint64(0, true);
  }

  findMemslot(gfn: number, out: Memslot): boolean {
    return this.memslots.find(gfn, out);
  }

  /** Mark the VM destroyed: every asynchronous sleeper wakes and fails. */
  destroy(): void {
    Atomics.store(this.words, this.base + VM_DESTROYED, 1);
    this.userfault.bumpGeneration();
  }
}

const ATTRIBUTES_ALL = MEMORY_ATTRIBUTE_PRIVATE | MEMORY_ATTRIBUTE_USERFAULT;
