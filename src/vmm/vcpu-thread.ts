import { parentPort, workerData } from "node:worker_threads";
import { Host, type HostShare } from "../host/host.js";
import { Kvm } from "../kvm/kvm.js";
import { CORE_PC, coreReg } from "../kvm/one-reg.js";
import { GuestRam, type GuestRamShare } from "./guest-ram.js";
import type { UcallType } from "./ucall.js";
import { Uart16550 } from "./uart16550.js";
import { runVcpuLoop, type VcpuStop } from "./vcpu-loop.js";

/** What the main thread hands a vCPU thread. */
export interface VcpuThreadData {
  host: HostShare;
  kvm: number;
  vm: number;
  id: number;
  ram: GuestRamShare;
  uart: SharedArrayBuffer;
  /** Boot registers; a vCPU without them (HSM-stopped by the main thread) waits for SBI HSM. */
  start: { pc: number; a0: bigint; a1: bigint } | null;
}

export type VcpuThreadMessage =
  | { type: "console"; text: string }
  | { type: "warning"; text: string }
  | { type: "ucall"; id: number; ucall: UcallType; args: bigint[] }
  | { type: "stopped"; id: number; stop: VcpuStop };

const CONSOLE_FLUSH_BYTES = 4096;

/**
 * A vCPU thread of the VMM: attach to the process's host and VM, then run
 * KVM_RUN's loop for one vCPU until it stops. Console output is buffered and
 * sent to the main thread a line at a time.
 */
function main(data: VcpuThreadData, port: NonNullable<typeof parentPort>): void {
  const post = (message: VcpuThreadMessage) => port.postMessage(message);
  const host = Host.attach(data.host);
  const kvm = Kvm.attach(host, data.kvm);
  const vm = kvm.attachVm(data.vm);
  const vcpu = kvm.attachVcpu(vm, data.id);
  const ram = GuestRam.attach(host, data.ram);
  let pending = "";
  const flush = () => {
    if (pending.length > 0) post({ type: "console", text: pending });
    pending = "";
  };
  const uart = new Uart16550(data.uart, (byte) => {
    pending += String.fromCharCode(byte);
    if (byte === 10 || pending.length >= CONSOLE_FLUSH_BYTES) flush();
  });
  if (data.start) {
    vcpu.setOneReg(coreReg(CORE_PC), BigInt(data.start.pc));
    vcpu.setOneReg(coreReg(10), data.start.a0);
    vcpu.setOneReg(coreReg(11), data.start.a1);
  }
  const stop = runVcpuLoop(vcpu, ram, uart, {
    console: (text) => {
      pending += text;
      if (text.includes("\n") || pending.length >= CONSOLE_FLUSH_BYTES) flush();
    },
    ucall: (ucall, args) => {
      flush();
      post({ type: "ucall", id: data.id, ucall, args });
      return ucall === "sync";
    },
    warning: (text) => post({ type: "warning", text }),
  });
  flush();
  post({ type: "stopped", id: data.id, stop });
}

if (parentPort) main(workerData as VcpuThreadData, parentPort);
