import { PAGE_SIZE } from "../../host/host-memory.js";
import { ErrnoError } from "../../host/errno.js";
import { Memslot } from "../memslots.js";
import { MEM_READONLY, MEMORY_EXIT_FLAG_USERFAULT, MEMORY_EXIT_FLAG_WRITE } from "../uapi.js";
import type { Vcpu } from "../vcpu.js";
import { V_STEAL_ADDR, V_STEAL_ENABLED } from "../vcpu-shared.js";
import type { Vm } from "../vm.js";

/** The record's memslot, looked up on each update (modules are per thread; never re-entered). */
const scratchSlot = new Memslot();

/**
 * The SBI STA steal-time update, done each time the vCPU is scheduled in
 * (KVM_REQ_RECORD_STEAL on vcpu load). The record is struct sbi_sta_struct:
 * a sequence counter made odd around the update, then the steal time in
 * nanoseconds. faultline counts as stolen the time a vCPU spent outside
 * KVM_RUN, the closest it can see to a host scheduler's run delay.
 *
 * If the record's page is userfault, the update is not written: run() exits
 * with a write MEMORY_FAULT on that page instead (the RFC's arm64 steal-time
 * patch), and the update is retried on the next entry.
 */
export function updateStealTime(vm: Vm, vcpu: Vcpu): boolean {
  const gpa = Number(vcpu.shared.pair(V_STEAL_ADDR));
  const gfn = Math.floor(gpa / PAGE_SIZE);
  let pfn: number;
  try {
    pfn =
      vm.findMemslot(gfn, scratchSlot) && (scratchSlot.flags & MEM_READONLY) === 0
        ? vm.guestPfnForKernel(gfn, true)
        : Number.NaN;
  } catch (error) {
    if (!(error instanceof ErrnoError)) throw error;
    pfn = Number.NaN;
  }
  if (Number.isNaN(pfn)) {
    // The memory went away (memslot deleted, host mapping gone, poisoned):
    // as KVM, stop updating the record rather than fail KVM_RUN.
    vcpu.shared.setWord(V_STEAL_ENABLED, 0);
    return true;
  }
  if (pfn < 0) {
    vcpu.prepareMemoryFaultExit(
      gfn * PAGE_SIZE,
      MEMORY_EXIT_FLAG_USERFAULT | MEMORY_EXIT_FLAG_WRITE,
    );
    return false;
  }
  const bytes = vm.memory.frameBytes(pfn);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const at = gpa % PAGE_SIZE;
  const sequence = view.getUint32(at, true);
  view.setUint32(at, sequence + 1, true);
  const steal = view.getBigUint64(at + 8, true) + BigInt(Math.round(vcpu.takeTimeOutsideRunNs()));
  view.setBigUint64(at + 8, steal, true);
  view.setUint32(at, sequence + 2, true);
  return true;
}
