import { ErrnoError } from "../host/errno.js";
import { PAGE_SIZE } from "../host/host-memory.js";
import { lock, unlock } from "../host/sync.js";
import { ACCESS_WRITE, type AccessType } from "../riscv/cpu/constants.js";
import type { Memslot } from "./memslots.js";
import { FRAMES_AT_LEVEL, LEVEL_4K, type MappingLevel } from "./stage2.js";
import { MEM_LOG_DIRTY_PAGES, MEM_READONLY, MEM_USERFAULT, USERFAULT_ASYNC_ALL } from "./uapi.js";
import type { Vm } from "./vm.js";
import { VM_MMU_LOCK } from "./vm-layout.js";

/** What a stage-2 fault came to. */
export const FAULT_MAPPED = 0;
/** No memslot (or a write to a read-only one): the access is MMIO for the VMM. */
export const FAULT_MMIO = 1;
/** The page is userfault: the vCPU exits with MEMORY_FAULT. */
export const FAULT_USERFAULT = 2;
/** The backing's page is poisoned: MEMORY_FAULT exit, run() fails with EHWPOISON. */
export const FAULT_HWPOISON = 3;
/** The backing has no page (no host mapping, or not writable): MEMORY_FAULT exit with EFAULT. */
export const FAULT_EFAULT = 4;
export type FaultOutcome =
  | typeof FAULT_MAPPED
  | typeof FAULT_MMIO
  | typeof FAULT_USERFAULT
  | typeof FAULT_HWPOISON
  | typeof FAULT_EFAULT;

/**
 * True when gfn of `slot` must not be translated: the RFC's per-VM USERFAULT
 * attribute while userfault is enabled, or a set bit in the slot's VMM-owned
 * bitmap in the upstream shape.
 */
export function gfnHasUserfault(vm: Vm, slot: Memslot, gfn: number): boolean {
  if (vm.userfault.enabled && vm.userfaultBits.test(gfn)) return true;
  return (slot.flags & MEM_USERFAULT) !== 0 && vm.backing.userfaultBitmapTest(slot, gfn);
}

/**
 * The vCPU's stage-2 fault handler (user_mem_abort / kvm_tdp_page_fault),
 * run outside guest mode. The userfault check comes first (the RFC's fast
 * path), then the page is found in the slot's backing and mapped, 4 KiB only
 * while userfault or dirty logging is on, and retried if an invalidation ran
 * meanwhile (the mmu sequence moved).
 */
export function handleStage2Fault(
  vm: Vm,
  slot: Memslot,
  gpa: number,
  access: AccessType,
): FaultOutcome {
  const gfn = Math.floor(gpa / PAGE_SIZE);
  const write = access === ACCESS_WRITE;
  for (;;) {
    // Read before the memslot: a slot change (delete, MEM_USERFAULT or dirty
    // logging turned on) bumps it after writing the table, so a fault that
    // saw the old slot finds the sequence moved and retries.
    const sequence = vm.mmuSequence;
    if ((sequence & 1) !== 0) {
      // An invalidation is running: sleep on the mmu lock it holds, then retry.
      lock(vm.words, vm.base + VM_MMU_LOCK);
      unlock(vm.words, vm.base + VM_MMU_LOCK);
      continue;
    }
    if (!vm.findMemslot(gfn, slot)) return FAULT_MMIO;
    if (write && (slot.flags & MEM_READONLY) !== 0) return FAULT_MMIO;
    if (gfnHasUserfault(vm, slot, gfn)) {
      // Only the attribute has an asynchronous queue: a page that is
      // userfault by its slot's bitmap alone always exits (else this spins).
      if (
        (vm.userfault.options & USERFAULT_ASYNC_ALL) === 0 ||
        !vm.userfault.enabled ||
        !vm.userfaultBits.test(gfn)
      ) {
        return FAULT_USERFAULT;
      }
      // Under USERFAULT_ASYNC_ALL the handler lives elsewhere: sleep on the
      // asynchronous queue like any other accessor, then retry.
      const result = vm.userfault.waitForRelease(gfn);
      if (result === "destroyed") return FAULT_USERFAULT;
      continue;
    }
    let pfn: number;
    try {
      pfn = vm.backing.pfnFor(slot, gfn, write);
    } catch (error) {
      // As kvm_faultin_pfn: a page the backing cannot give is a memory fault exit.
      if (error instanceof ErrnoError && error.errno === "EHWPOISON") return FAULT_HWPOISON;
      if (error instanceof ErrnoError && error.errno === "EFAULT") return FAULT_EFAULT;
      throw error;
    }
    const dirtyLogging = (slot.flags & MEM_LOG_DIRTY_PAGES) !== 0;
    const forceSmall = dirtyLogging || vm.userfault.enabled || (slot.flags & MEM_USERFAULT) !== 0;
    const level: MappingLevel = forceSmall ? LEVEL_4K : vm.backing.maxLevel(slot, gfn);
    const span = FRAMES_AT_LEVEL[level];
    const headGfn = gfn - (gfn % span);
    // Read faults on a dirty-logged slot map read-only, so the first write faults again;
    // so do read faults on a host page a write would fault on (userfaultfd WP, read-only VMA).
    const writable =
      (slot.flags & MEM_READONLY) === 0 &&
      (!dirtyLogging || write) &&
      (write || vm.backing.hostWritable(slot, gfn));
    // As the TDP MMU, faults install leaves concurrently (compare-and-swap
    // into empty entries) without the mmu lock: the thread marks its own
    // fault slot odd, checks that no invalidation began since it read the
    // sequence, installs, and marks the slot even. An invalidation makes the
    // sequence odd and then waits for every odd slot before it walks, so a
    // leaf is either seen by its walk or never installed (both sides are
    // sequentially consistent atomics). Nothing shared is written here.
    const at = vm.faultSlot();
    const words = vm.words;
    let retry = false;
    let counter = 0;
    if (at >= 0) {
      counter = words[at];
      Atomics.store(words, at, counter + 1);
    } else {
      lock(words, vm.base + VM_MMU_LOCK);
    }
    try {
      if (vm.mmuSequence !== sequence) {
        retry = true;
      } else if (
        !vm.stage2.map(headGfn, pfn - (gfn - headGfn), level, writable) &&
        // A lower table still holds 4 KiB mappings here: map this page alone.
        (level === LEVEL_4K || !vm.stage2.map(gfn, pfn, LEVEL_4K, writable)) &&
        writable
      ) {
        // Already mapped (a racing vCPU, or write-protected for dirty logging).
        vm.stage2.makeWritable(gfn);
      }
    } finally {
      if (at >= 0) {
        Atomics.store(words, at, counter + 2);
        if (Atomics.load(words, at + 1) !== 0) Atomics.notify(words, at);
      } else {
        unlock(words, vm.base + VM_MMU_LOCK);
      }
    }
    if (retry) continue;
    if (write && dirtyLogging) vm.markDirty(slot, gfn);
    return FAULT_MAPPED;
  }
}
