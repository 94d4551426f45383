import { fail } from "../host/errno.js";
import { OBJ_PAGE_CACHE } from "../host/files.js";
import type { Host } from "../host/host.js";
import { PAGE_SIZE } from "../host/host-memory.js";
import { lock, unlock } from "../host/sync.js";
import { Memslot } from "./memslots.js";
import { MAX_MEMSLOTS, MEM_GUEST_MEMFD } from "./uapi.js";
import { Vcpu } from "./vcpu.js";
import { capabilityValue, Vm } from "./vm.js";

const MAX_VMS = 64;
// Kvm record words: a lock, the VM count, then the VMs' arena offsets.
const K_LOCK = 0;
const K_COUNT = 1;
const K_VMS = 2;

/**
 * The hypervisor as a process sees it (/dev/kvm), attached on one thread.
 * It keeps the list of VMs so that host memory invalidations (munmap of a
 * VMM mapping, a hole punched in a guest_memfd) zap the stage-2 mappings of
 * every VM using those pages: KVM's MMU notifier and guest_memfd
 * invalidation, registered on each thread that attaches.
 */
export class Kvm {
  private readonly words: Int32Array;
  private readonly base: number;
  private readonly vms = new Map<number, Vm>();

  private constructor(
    readonly host: Host,
    readonly offset: number,
  ) {
    this.words = host.memory.arenaI32;
    this.base = offset >> 2;
    host.mm.addInvalidateListener((start, end) => this.invalidateHostRange(start, end));
    host.addPageCacheInvalidateListener((cache, first, count) =>
      this.invalidatePageCache(cache, first, count),
    );
  }

  /** Open the hypervisor on this host (the first thread); others attach with `offset`. */
  static open(host: Host): Kvm {
    return new Kvm(host, host.memory.arenaAllocate((K_VMS + MAX_VMS) * 4, 64));
  }

  static attach(host: Host, offset: number): Kvm {
    return new Kvm(host, offset);
  }

  /** KVM_CHECK_EXTENSION on the system. */
  checkExtension(cap: number): number {
    return capabilityValue(cap, null);
  }

  /** KVM_CREATE_VM. */
  createVm(): Vm {
    const offset = Vm.allocate(this.host.memory);
    lock(this.words, this.base + K_LOCK);
    try {
      const count = this.words[this.base + K_COUNT];
      if (count === MAX_VMS) fail("ENOMEM", `at most ${MAX_VMS} VMs`);
      this.words[this.base + K_VMS + count] = offset;
      Atomics.store(this.words, this.base + K_COUNT, count + 1);
    } finally {
      unlock(this.words, this.base + K_LOCK);
    }
    return this.attachVm(offset);
  }

  /** This thread's view of the VM at `offset` (from vm.offset on another thread). */
  attachVm(offset: number): Vm {
    let vm = this.vms.get(offset);
    if (vm === undefined) {
      vm = new Vm(this.host, offset);
      this.vms.set(offset, vm);
    }
    return vm;
  }

  /** KVM_CREATE_VCPU, attached on the calling thread, which is the one to run it. */
  createVcpu(vm: Vm, id: number): Vcpu {
    return new Vcpu(vm, id, vm.createVcpuRecord(id));
  }

  /** Attach an existing vCPU on the thread that will run it. */
  attachVcpu(vm: Vm, id: number): Vcpu {
    const record = vm.vcpuList()[id];
    if (record === undefined) fail("ENOENT", `vCPU ${id} does not exist`);
    return new Vcpu(vm, id, record.offset);
  }

  private allVms(): Vm[] {
    const count = Atomics.load(this.words, this.base + K_COUNT);
    const result: Vm[] = [];
    for (let i = 0; i < count; i++) result.push(this.attachVm(this.words[this.base + K_VMS + i]));
    return result;
  }

  private forEachSlot(visit: (vm: Vm, slot: Memslot) => void): void {
    const slot = new Memslot();
    for (const vm of this.allVms()) {
      for (let id = 0; id < MAX_MEMSLOTS; id++) if (vm.memslots.get(id, slot)) visit(vm, slot);
    }
  }

  private invalidateHostRange(start: number, end: number): void {
    this.forEachSlot((vm, slot) => {
      if (slot.flags & MEM_GUEST_MEMFD) return;
      const from = Math.max(start, slot.userspaceAddr);
      const to = Math.min(end, slot.userspaceAddr + slot.npages * PAGE_SIZE);
      if (from >= to) return;
      const first = slot.baseGfn + Math.floor((from - slot.userspaceAddr) / PAGE_SIZE);
      vm.unmapGfnRange(first, Math.ceil((to - from) / PAGE_SIZE));
    });
  }

  private invalidatePageCache(cache: number, first: number, count: number): void {
    const i32 = this.host.memory.arenaI32;
    this.forEachSlot((vm, slot) => {
      if ((slot.flags & MEM_GUEST_MEMFD) === 0) return;
      if (i32[(slot.gmem >> 2) + OBJ_PAGE_CACHE] !== cache) return;
      const start = slot.gmemOffset / PAGE_SIZE;
      const from = Math.max(first, start);
      const to = Math.min(first + count, start + slot.npages);
      if (from < to) vm.unmapGfnRange(slot.baseGfn + (from - start), to - from);
    });
  }
}
