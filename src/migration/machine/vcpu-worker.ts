/**
 * A vCPU thread of a migratable VM: KVM_RUN in a loop for one vCPU of the
 * dirtier workload. The thread attaches as soon as it is created and waits
 * for its state (so that a destination can start its vCPUs within the
 * downtime instead of paying for thread creation there). At each sync ucall
 * it records the guest's progress and, when the VM is being paused, parks
 * there and hands its state to the main thread (the vCPU state a migration
 * carries). On the destination, a MEMORY_FAULT exit on a page not yet
 * received waits in the fault ring until the page is in, then runs the vCPU
 * again. MMIO exits go to the VM's UART, whose registers all vCPU threads
 * share (its output to this process's stderr).
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { ErrnoError } from "../../host/errno.js";
import { Host, type HostShare } from "../../host/host.js";
import { PAGE_SIZE } from "../../host/host-memory.js";
import { Kvm } from "../../kvm/kvm.js";
import { EXIT_MMIO, EXIT_RISCV_SBI, MEMORY_EXIT_FLAG_USERFAULT } from "../../kvm/uapi.js";
import { RAM_BASE } from "../../vmm/guest-ram.js";
import { UART_BASE, UART_SIZE, Uart16550 } from "../../vmm/uart16550.js";
import { UCALL_DONE, UCALL_EID, UCALL_SYNC } from "../../vmm/ucall.js";
import { FaultRing, type FaultRingLayout } from "../fault-ring.js";
import { bootVcpuState, restoreVcpuState, saveVcpuState, type VcpuState } from "./vcpu-state.js";
import { VmControl } from "./vm-control.js";

export type { VcpuState } from "./vcpu-state.js";

export interface VcpuWorkerData {
  migrationVcpu: true;
  host: HostShare;
  kvm: number;
  vm: number;
  id: number;
  control: SharedArrayBuffer;
  uart: SharedArrayBuffer;
  /** A scratch VM to run the dirtier on before reporting ready (a destination's threads). */
  warmUp: { vm: number; entry: number } | null;
}

/** Iterations of the warm-up: by then the interpreter runs at its steady speed. */
const WARMUP_ITERATIONS = 2000;

/** Main thread → vCPU thread: run from this state (with this fault ring on a post-copy destination). */
export interface VcpuStartMessage {
  state: VcpuState;
  faultRing: FaultRingLayout | null;
  /** When its last iteration ended on a migration's source (wall-clock ms), or null at boot. */
  lastProgressWallMs: number | null;
}

export type VcpuWorkerMessage =
  | { type: "ready"; id: number }
  | { type: "parked"; id: number; state: VcpuState }
  | { type: "done"; id: number; checksum: number }
  | { type: "error"; id: number; message: string };

function run(
  data: VcpuWorkerData,
  start: VcpuStartMessage,
  port: NonNullable<typeof parentPort>,
): void {
  const post = (message: VcpuWorkerMessage) => port.postMessage(message);
  const host = Host.attach(data.host);
  const kvm = Kvm.attach(host, data.kvm);
  const vm = kvm.attachVm(data.vm);
  const vcpu = kvm.attachVcpu(vm, data.id);
  const control = new VmControl(data.control);
  const uart = new Uart16550(data.uart, (byte) => process.stderr.write(String.fromCharCode(byte)));
  const ring = start.faultRing ? new FaultRing(start.faultRing) : null;
  const run = vcpu.run;
  const id = data.id;
  restoreVcpuState(vcpu, start.state);
  // After a migration, the first gap spans the switchover as the guest saw it.
  control.progressStarted(id, start.lastProgressWallMs ?? undefined);
  for (;;) {
    let fault: ErrnoError | null;
    try {
      fault = vcpu.tryRunGuest();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      post({ type: "error", id, message: `vCPU ${id}: ${message}` });
      return;
    }
    if (fault !== null) {
      if (ring !== null && (run.memoryFault.flags & MEMORY_EXIT_FLAG_USERFAULT) !== 0) {
        ring.waitForPage(id, (run.memoryFault.gpa - RAM_BASE) / PAGE_SIZE);
        continue;
      }
      const at = `0x${run.memoryFault.gpa.toString(16)}`;
      post({ type: "error", id, message: `vCPU ${id}: ${fault.message} at ${at}` });
      return;
    }
    if (run.exitReason === EXIT_MMIO) {
      const mmio = run.mmio;
      if (mmio.physAddr < UART_BASE || mmio.physAddr >= UART_BASE + UART_SIZE) {
        post({
          type: "error",
          id,
          message: `vCPU ${id}: MMIO to nothing at 0x${mmio.physAddr.toString(16)}`,
        });
        return;
      }
      if (mmio.isWrite) uart.write(mmio.physAddr - UART_BASE, Number(mmio.value & 0xffn));
      else mmio.value = BigInt(uart.read(mmio.physAddr - UART_BASE));
      continue;
    }
    const sbi = run.riscvSbi;
    if (run.exitReason !== EXIT_RISCV_SBI || sbi.extensionId !== UCALL_EID) {
      post({ type: "error", id, message: `vCPU ${id}: unexpected exit ${run.exitReason}` });
      return;
    }
    sbi.ret[0] = 0n;
    if (sbi.functionId === UCALL_DONE) {
      post({ type: "done", id, checksum: Number(sbi.args[0] & 0xffff_ffffn) });
      return;
    }
    if (sbi.functionId !== UCALL_SYNC) {
      post({ type: "error", id, message: `vCPU ${id}: ucall ${sbi.functionId}` });
      return;
    }
    control.progress(id, Number(sbi.args[0]));
    if (control.pauseRequested) {
      post({ type: "parked", id, state: saveVcpuState(vcpu) });
      if (!control.park()) return;
      control.progressStarted(id);
    }
  }
}

/** Run the dirtier on this thread's vCPU of the scratch VM (hart id + 1: no devices). */
function warmUp(data: VcpuWorkerData, scratch: { vm: number; entry: number }): void {
  const kvm = Kvm.attach(Host.attach(data.host), data.kvm);
  const vcpu = kvm.attachVcpu(kvm.attachVm(scratch.vm), data.id);
  restoreVcpuState(vcpu, bootVcpuState(scratch.entry, data.id + 1));
  const run = vcpu.run;
  for (let done = 0; done < WARMUP_ITERATIONS; done++) {
    const fault = vcpu.tryRunGuest();
    if (fault !== null) throw fault;
    if (run.exitReason !== EXIT_RISCV_SBI || run.riscvSbi.extensionId !== UCALL_EID) {
      throw new Error(`vCPU ${data.id} warm-up: unexpected exit ${run.exitReason}`);
    }
    run.riscvSbi.ret[0] = 0n;
  }
}

const setup = workerData as Partial<VcpuWorkerData> | null;
if (!isMainThread && parentPort && setup?.migrationVcpu === true) {
  const port = parentPort;
  if (setup.warmUp) warmUp(setup as VcpuWorkerData, setup.warmUp);
  port.once("message", (start: VcpuStartMessage) => run(setup as VcpuWorkerData, start, port));
  port.postMessage({ type: "ready", id: (setup as VcpuWorkerData).id } satisfies VcpuWorkerMessage);
}
