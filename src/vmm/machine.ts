import { Worker } from "node:worker_threads";
import { Host } from "../host/host.js";
import type { BackingPageSize } from "../host/page-cache.js";
import { Kvm } from "../kvm/kvm.js";
import { KVM_MP_STATE_RUNNABLE, KVM_MP_STATE_STOPPED } from "../kvm/one-reg.js";
import { SYSTEM_EVENT_CRASH, SYSTEM_EVENT_RESET, SYSTEM_EVENT_SHUTDOWN } from "../kvm/uapi.js";
import type { Vcpu } from "../kvm/vcpu.js";
import type { Vm } from "../kvm/vm.js";
import type { ProgramImage } from "../riscv/elf/image.js";
import { buildPlatformDeviceTree, placeDeviceTree } from "./fdt/platform.js";
import { GuestRam, RAM_BASE, type RamBacking } from "./guest-ram.js";
import type { UcallType } from "./ucall.js";
import { createUartState, UART_BASE } from "./uart16550.js";
import type { VcpuStop } from "./vcpu-loop.js";
import type { VcpuThreadData, VcpuThreadMessage } from "./vcpu-thread.js";

export interface MachineConfig {
  memBytes: number;
  vcpus: number;
  backing: RamBacking;
  pageSize: BackingPageSize;
  /** Start every vCPU at the entry (KVM selftest style) instead of vCPU 0 alone. */
  startAllHarts?: boolean;
}

export interface MachineEvents {
  console?(text: string): void;
  warning?(text: string): void;
  ucall?(vcpu: number, type: UcallType, args: bigint[]): void;
}

/** How a run ended. */
export interface MachineResult {
  /** shutdown / reset / crash: a system event; ucall: a vCPU made a done or abort ucall. */
  end: "shutdown" | "reset" | "crash" | "ucall" | "error";
  /** The done or abort ucall that ended the run. */
  ucall?: { vcpu: number; type: UcallType; args: bigint[] };
  /** SRST reason for a system event (0 none, 1 system failure). */
  reason: number;
  /** Per-vCPU stops, by id. */
  stops: VcpuStop[];
  message: string;
}

/**
 * One VM as the VMM builds and runs it: the host kernel of this process,
 * the VM with its RAM, the console UART, and a worker thread per vCPU.
 */
export class Machine {
  readonly host: Host;
  readonly kvm: Kvm;
  readonly vm: Vm;
  readonly ram: GuestRam;
  private readonly uartState = createUartState();
  private readonly vcpus: Vcpu[] = [];
  /** Guest-physical ranges the loaded program occupies, [start, end). */
  private readonly loaded: [number, number][] = [];

  constructor(readonly config: MachineConfig) {
    if (!Number.isInteger(config.vcpus) || config.vcpus < 1 || config.vcpus > 256) {
      throw new RangeError(`--vcpus must be 1 to 256 (got ${config.vcpus})`);
    }
    this.host = Host.create();
    this.kvm = Kvm.open(this.host);
    this.vm = this.kvm.createVm();
    this.ram = GuestRam.create(this.host, this.vm, {
      backing: config.backing,
      bytes: config.memBytes,
      pageSize: config.pageSize,
    });
    // The main thread's handles on the vCPUs (as a VMM keeps vCPU fds); each runs on its own thread.
    for (let id = 0; id < config.vcpus; id++) this.vcpus.push(this.kvm.createVcpu(this.vm, id));
  }

  /** Copy a program's segments into guest RAM (after checking they fit). */
  load(image: ProgramImage): void {
    for (const segment of image.segments) {
      if (!this.ram.contains(segment.physAddr, segment.memSize)) {
        throw new RangeError(
          `segment at 0x${segment.physAddr.toString(16)} (0x${segment.memSize.toString(16)} bytes) ` +
            `does not fit guest RAM 0x${RAM_BASE.toString(16)}-0x${(RAM_BASE + this.ram.bytes).toString(16)}`,
        );
      }
    }
    for (const segment of image.segments) {
      const bytes = new Uint8Array(segment.memSize);
      bytes.set(segment.data);
      this.ram.write(segment.physAddr, bytes);
      this.loaded.push([segment.physAddr, segment.physAddr + segment.memSize]);
    }
  }

  /**
   * Write the platform's device tree (RAM, harts, UART) as high in RAM as it
   * fits, where QEMU's virt machine also puts it, and return its address
   * for a1. Call after `load`: a program that reaches up there is refused.
   */
  loadDeviceTree(): number {
    const ram = { base: RAM_BASE, size: this.ram.bytes };
    const dtb = buildPlatformDeviceTree({
      memory: [ram],
      harts: this.config.vcpus,
      uart: { base: UART_BASE },
    });
    const at = placeDeviceTree(dtb.length, ram);
    for (const [start, end] of this.loaded) {
      if (start < at + dtb.length && at < end) {
        throw new RangeError(
          `the program (0x${start.toString(16)}-0x${end.toString(16)}) leaves no room for ` +
            `the ${dtb.length}-byte device tree at the top of RAM: give the guest more --mem`,
        );
      }
    }
    this.ram.write(at, dtb);
    return at;
  }

  /** Boot at `entry` (a0 = hart id, a1 = device tree) and run until the guest stops. */
  run(entry: number, deviceTree: number, events: MachineEvents = {}): Promise<MachineResult> {
    const stops: VcpuStop[] = [];
    const workers: Worker[] = [];
    return new Promise<MachineResult>((resolve) => {
      let running = this.config.vcpus;
      let finished = false;
      const finish = (result: MachineResult) => {
        if (finished) return;
        finished = true;
        for (const w of workers) void w.terminate();
        resolve(result);
      };
      const onStop = (id: number, stop: VcpuStop) => {
        stops[id] = stop;
        running--;
        if (stop.kind === "error" || stop.kind === "memory-fault") {
          const detail =
            stop.kind === "error" ? stop.message : `memory fault at 0x${stop.gpa.toString(16)}`;
          finish({ end: "error", reason: 0, stops, message: `vCPU ${id}: ${detail}` });
        } else if (stop.kind === "system-event") {
          const end =
            stop.type === SYSTEM_EVENT_SHUTDOWN
              ? "shutdown"
              : stop.type === SYSTEM_EVENT_RESET
                ? "reset"
                : stop.type === SYSTEM_EVENT_CRASH
                  ? "crash"
                  : "error";
          if (running === 0) finish({ end, reason: stop.reason, stops, message: end });
        }
      };
      for (let id = 0; id < this.config.vcpus; id++) {
        const starts = id === 0 || this.config.startAllHarts === true;
        // Set before any thread runs, so that hart 0's HSM start never races it.
        this.vcpus[id].setMpState(starts ? KVM_MP_STATE_RUNNABLE : KVM_MP_STATE_STOPPED);
        const data: VcpuThreadData = {
          host: this.host.share(),
          kvm: this.kvm.offset,
          vm: this.vm.offset,
          id,
          ram: this.ram.share,
          uart: this.uartState,
          start: starts ? { pc: entry, a0: BigInt(id), a1: BigInt(deviceTree) } : null,
        };
        const worker = new Worker(new URL("./vcpu-thread.js", import.meta.url), {
          workerData: data,
        });
        workers.push(worker);
        worker.on("message", (message: VcpuThreadMessage) => {
          if (message.type === "console") events.console?.(message.text);
          else if (message.type === "warning") events.warning?.(message.text);
          else if (message.type === "ucall") {
            events.ucall?.(message.id, message.ucall, message.args);
            // As in KVM selftests, a done or abort ucall ends the run.
            if (message.ucall !== "sync") {
              const ucall = { vcpu: message.id, type: message.ucall, args: message.args };
              const text = `vCPU ${message.id}: ${message.ucall}`;
              finish({ end: "ucall", reason: 0, stops, ucall, message: text });
            }
          } else onStop(message.id, message.stop);
        });
        worker.on("error", (error) =>
          finish({
            end: "error",
            reason: 0,
            stops,
            message: `vCPU ${id} thread: ${error.message}`,
          }),
        );
      }
    });
  }
}
