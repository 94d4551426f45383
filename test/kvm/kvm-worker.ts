/**
 * A worker thread for the KVM tests: it attaches to the test's host, KVM
 * and VM (Host.attach + Kvm.attach + attachVm, as every thread of a VMM
 * does) and then carries out orders: a hypervisor access to guest memory
 * (an in-kernel device worker's accessGuest) or a vCPU's KVM_RUN loop.
 * Does nothing when loaded as a main module (the test runner may load
 * every .js file under dist/test).
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { ErrnoError } from "../../src/host/errno.js";
import { Host, type HostShare } from "../../src/host/host.js";
import { HostMemory, PAGE_SIZE } from "../../src/host/host-memory.js";
import { Kvm } from "../../src/kvm/kvm.js";
import {
  EXIT_MEMORY_FAULT,
  EXIT_MMIO,
  EXIT_RISCV_SBI,
  EXIT_SYSTEM_EVENT,
  MEMORY_ATTRIBUTE_USERFAULT,
} from "../../src/kvm/uapi.js";
import type { Vcpu } from "../../src/kvm/vcpu.js";
import { UserfaultError, type Vm } from "../../src/kvm/vm.js";
import { UCALL_EID } from "./support.js";

export interface KvmWorkerSetup {
  kvmWorker: true;
  host: HostShare;
  kvm: number;
  vm: number;
  control: SharedArrayBuffer;
}

/** Control words shared with the test (Int32Array over `control`). */
export const W_RELEASE = 0;
/** Per-vCPU words start at vcpuWord(id, field). */
export const V_REPORTS = 0;
export const V_FAULTS = 1;
export const V_LAST_LO = 2;
export const V_LAST_HI = 3;
export const V_FAULT_GFN = 4;
export const V_FAULT_FLAGS = 5;
/** 1 once the worker is about to call run() the first time. */
export const V_STARTED = 6;
export const CONTROL_WORDS = 16 + 16 * 16;

export function vcpuWord(id: number, field: number): number {
  return 16 + 16 * id + field;
}

/** ucall kinds, in a1: report a0 and keep running, done, failed (a0, a2 describe it). */
export const UCALL_REPORT = 0;
export const UCALL_DONE = 1;
export const UCALL_FAIL = 2;

export interface AccessOrder {
  kind: "access";
  gpa: number;
  length: number;
  write: boolean;
  atomic: boolean;
  /** Byte written everywhere for a write. */
  fill?: number;
}

export interface AccessReply {
  ok: boolean;
  data?: Uint8Array;
  errno?: string;
  message?: string;
  userfaultError?: boolean;
  /** performance.now() of the worker when the access returned (its own time origin). */
  ms: number;
}

export interface VcpuOrder {
  kind: "vcpu";
  id: number;
  pc: number;
  a0?: bigint;
  a1?: bigint;
  /** The test trap handler (TestVm.trap). */
  stvec?: number;
  /**
   * On a MEMORY_FAULT exit: stop and reply, or (as a VMM's vCPU thread that
   * waits for its page) sleep until the page is released and run again.
   */
  onFault: "stop" | "wait-release";
  /** The upstream shape: the page is released when its bit in this VMM bitmap clears. */
  userfaultBitmap?: { hva: number; baseGfn: number };
}

export interface VcpuReply {
  stop: "done" | "fail" | "exit" | "error";
  exitReason: number;
  a0: bigint;
  a1: bigint;
  a2: bigint;
  errno?: string;
  message?: string;
  memoryFault: { flags: number; gpa: number; size: number };
  systemEvent: { type: number; reason: number };
  sbi: { extensionId: number; functionId: number; args: bigint[] };
  mmio: { physAddr: number; len: number; isWrite: boolean; value: bigint };
  /** Values of the first 10000 report ucalls. */
  reports: bigint[];
}

export type KvmOrder = AccessOrder | VcpuOrder;

function access(vm: Vm, order: AccessOrder): AccessReply {
  const data = new Uint8Array(order.length);
  if (order.write) data.fill(order.fill ?? 0);
  try {
    vm.accessGuest(order.gpa, data, order.write, order.atomic);
    return { ok: true, data, ms: performance.now() };
  } catch (error) {
    return {
      ok: false,
      errno: (error as ErrnoError).errno,
      message: String(error),
      userfaultError: error instanceof UserfaultError,
      ms: performance.now(),
    };
  }
}

function bitmapBitSet(host: Host, bitmap: { hva: number; baseGfn: number }, gfn: number) {
  const bit = gfn - bitmap.baseGfn;
  const hva = bitmap.hva + (bit >>> 5) * 4;
  const pfn = host.mm.lookupPfn(hva);
  if (pfn === 0) return false;
  const words = host.memory.chunkI32[HostMemory.chunkOf(pfn)];
  return (
    (Atomics.load(words, (HostMemory.offsetOf(pfn) + (hva % PAGE_SIZE)) >> 2) &
      (1 << (bit & 31))) !==
    0
  );
}

function runVcpu(host: Host, vm: Vm, vcpu: Vcpu, order: VcpuOrder, control: Int32Array) {
  const run = vcpu.run;
  const word = (field: number) => vcpuWord(order.id, field);
  const reports: bigint[] = [];
  const reply = (stop: VcpuReply["stop"], extra: Partial<VcpuReply> = {}): VcpuReply => ({
    stop,
    exitReason: run.exitReason,
    a0: run.riscvSbi.args[0],
    a1: run.riscvSbi.args[1],
    a2: run.riscvSbi.args[2],
    memoryFault: { ...run.memoryFault },
    systemEvent: { ...run.systemEvent },
    sbi: {
      extensionId: run.riscvSbi.extensionId,
      functionId: run.riscvSbi.functionId,
      args: [...run.riscvSbi.args],
    },
    mmio: {
      physAddr: run.mmio.physAddr,
      len: run.mmio.len,
      isWrite: run.mmio.isWrite,
      value: run.mmio.value,
    },
    reports,
    ...extra,
  });
  Atomics.store(control, word(V_STARTED), 1);
  Atomics.notify(control, word(V_STARTED));
  for (;;) {
    try {
      vcpu.runGuest();
    } catch (error) {
      if (run.exitReason !== EXIT_MEMORY_FAULT || !vcpu.isMemoryFault(error)) {
        return reply("error", {
          errno: (error as ErrnoError).errno,
          message: String(error),
        });
      }
      const gpa = run.memoryFault.gpa;
      const gfn = gpa / PAGE_SIZE;
      Atomics.store(control, word(V_FAULT_GFN), gfn);
      Atomics.store(control, word(V_FAULT_FLAGS), run.memoryFault.flags);
      Atomics.add(control, word(V_FAULTS), 1);
      Atomics.notify(control, word(V_FAULTS));
      if (order.onFault === "stop") return reply("exit", { errno: (error as ErrnoError).errno });
      // Sleep until the test releases the page: it clears the bit, then bumps W_RELEASE.
      for (;;) {
        const generation = Atomics.load(control, W_RELEASE);
        const set = order.userfaultBitmap
          ? bitmapBitSet(host, order.userfaultBitmap, gfn)
          : (vm.memoryAttributes(gpa) & MEMORY_ATTRIBUTE_USERFAULT) !== 0;
        if (!set || vm.destroyed) break;
        Atomics.wait(control, W_RELEASE, generation);
      }
      continue;
    }
    if (run.exitReason === EXIT_RISCV_SBI && run.riscvSbi.extensionId === UCALL_EID) {
      const [a0, a1] = run.riscvSbi.args;
      run.riscvSbi.ret[0] = 0n;
      if (a1 === BigInt(UCALL_REPORT)) {
        if (reports.length < 10000) reports.push(a0);
        Atomics.store(control, word(V_LAST_LO), Number(BigInt.asIntN(32, a0)));
        Atomics.store(control, word(V_LAST_HI), Number(BigInt.asIntN(32, a0 >> 32n)));
        Atomics.add(control, word(V_REPORTS), 1);
        Atomics.notify(control, word(V_REPORTS));
        continue;
      }
      return reply(a1 === BigInt(UCALL_DONE) ? "done" : "fail");
    }
    if (
      run.exitReason === EXIT_SYSTEM_EVENT ||
      run.exitReason === EXIT_MMIO ||
      run.exitReason === EXIT_RISCV_SBI
    ) {
      return reply("exit");
    }
    return reply("error", { message: `unexpected exit reason ${run.exitReason}` });
  }
}

const setup = workerData as Partial<KvmWorkerSetup> | null;
if (!isMainThread && parentPort && setup?.kvmWorker === true) {
  const port = parentPort;
  const host = Host.attach(setup.host!);
  const kvm = Kvm.attach(host, setup.kvm!);
  const vm = kvm.attachVm(setup.vm!);
  const control = new Int32Array(setup.control!);
  port.on("message", (order: KvmOrder) => {
    if (order.kind === "access") {
      port.postMessage(access(vm, order));
      return;
    }
    const vcpu = kvm.attachVcpu(vm, order.id);
    vcpu.hart.pc = order.pc;
    if (order.a0 !== undefined) vcpu.hart.setRegister(10, order.a0);
    if (order.a1 !== undefined) vcpu.hart.setRegister(11, order.a1);
    if (order.stvec !== undefined) vcpu.hart.setStvec(order.stvec | 0, 0);
    port.postMessage(runVcpu(host, vm, vcpu, order, control));
  });
}
