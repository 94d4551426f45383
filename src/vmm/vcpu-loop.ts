import {
  EXT_DBCN,
  EXT_LEGACY_CONSOLE_GETCHAR,
  EXT_LEGACY_CONSOLE_PUTCHAR,
} from "../kvm/sbi/constants.js";
import {
  EXIT_INTERNAL_ERROR,
  EXIT_MEMORY_FAULT,
  EXIT_MMIO,
  EXIT_RISCV_SBI,
  EXIT_SYSTEM_EVENT,
} from "../kvm/uapi.js";
import type { Vcpu } from "../kvm/vcpu.js";
import type { GuestRam } from "./guest-ram.js";
import { ucallTypeName, UCALL_EID, type UcallType } from "./ucall.js";
import { type Uart16550, UART_BASE, UART_SIZE } from "./uart16550.js";

const DBCN_CONSOLE_WRITE = 0;
const DBCN_CONSOLE_READ = 1;
const DBCN_CONSOLE_WRITE_BYTE = 2;
const SBI_SUCCESS = 0n;
const SBI_ERR_INVALID_PARAM = BigInt.asUintN(64, -3n);

/** What the VMM does with a vCPU's exits; one instance per vCPU thread. */
export interface VcpuExitHandlers {
  console(text: string): void;
  /** A ucall from the guest; return true to keep running. */
  ucall(type: UcallType, args: bigint[]): boolean;
  /** A MEMORY_FAULT exit (userfault); return true once the page is ready to retry. */
  memoryFault?(gpa: number, flags: number): boolean;
  warning(text: string): void;
}

export type VcpuStop =
  | { kind: "system-event"; type: number; reason: number }
  | { kind: "ucall"; type: UcallType }
  | { kind: "memory-fault"; gpa: number; flags: number }
  | { kind: "error"; message: string };

/**
 * The VMM's vCPU loop (what kvmtool's and Firecracker's vCPU threads do):
 * call KVM_RUN, handle the exit, repeat. MMIO goes to the UART, console SBI
 * calls to the console, ucalls to the caller; a system event ends the loop.
 */
export function runVcpuLoop(
  vcpu: Vcpu,
  ram: GuestRam,
  uart: Uart16550,
  handlers: VcpuExitHandlers,
): VcpuStop {
  const run = vcpu.run;
  const unknownMmio = new Set<number>();
  for (;;) {
    try {
      vcpu.runGuest();
    } catch (error) {
      if (run.exitReason === EXIT_MEMORY_FAULT && vcpu.isMemoryFault(error)) {
        const { gpa, flags } = run.memoryFault;
        if (handlers.memoryFault?.(gpa, flags)) continue;
        return { kind: "memory-fault", gpa, flags };
      }
      const message = error instanceof Error ? error.message : String(error);
      return { kind: "error", message };
    }
    switch (run.exitReason) {
      case EXIT_MMIO: {
        const mmio = run.mmio;
        if (mmio.physAddr >= UART_BASE && mmio.physAddr < UART_BASE + UART_SIZE) {
          const offset = mmio.physAddr - UART_BASE;
          if (mmio.isWrite) uart.write(offset, Number(mmio.value & 0xffn));
          else mmio.value = BigInt(uart.read(offset));
        } else {
          // Nothing there: loads read zero and stores are dropped, as on an empty bus.
          if (!mmio.isWrite) mmio.value = 0n;
          if (!unknownMmio.has(mmio.physAddr)) {
            unknownMmio.add(mmio.physAddr);
            handlers.warning(`vCPU ${vcpu.id}: MMIO to nothing at 0x${mmio.physAddr.toString(16)}`);
          }
        }
        break;
      }
      case EXIT_RISCV_SBI: {
        const stop = handleSbi(vcpu, ram, handlers);
        if (stop) return stop;
        break;
      }
      case EXIT_SYSTEM_EVENT:
        return { kind: "system-event", type: run.systemEvent.type, reason: run.systemEvent.reason };
      case EXIT_INTERNAL_ERROR:
        return {
          kind: "error",
          message: `KVM internal error (suberror ${run.internal.suberror}): ${run.internal.message}`,
        };
      default:
        return { kind: "error", message: `unexpected exit reason ${run.exitReason}` };
    }
  }
}

function handleSbi(vcpu: Vcpu, ram: GuestRam, handlers: VcpuExitHandlers): VcpuStop | null {
  const sbi = vcpu.run.riscvSbi;
  const [a0, a1, a2] = sbi.args;
  switch (sbi.extensionId) {
    case EXT_LEGACY_CONSOLE_PUTCHAR:
      handlers.console(String.fromCharCode(Number(a0 & 0xffn)));
      sbi.ret[0] = 0n;
      return null;
    case EXT_LEGACY_CONSOLE_GETCHAR:
      sbi.ret[0] = BigInt.asUintN(64, -1n);
      return null;
    case EXT_DBCN:
      if (sbi.functionId === DBCN_CONSOLE_WRITE_BYTE) {
        handlers.console(String.fromCharCode(Number(a0 & 0xffn)));
        sbi.ret[0] = SBI_SUCCESS;
      } else if (sbi.functionId === DBCN_CONSOLE_WRITE) {
        const gpa = Number(((a2 & 0xffffffffn) << 32n) | (a1 & 0xffffffffn));
        const length = Number(a0 & 0xffffffffn);
        if (!ram.contains(gpa, length)) {
          sbi.ret[0] = SBI_ERR_INVALID_PARAM;
          sbi.ret[1] = 0n;
        } else {
          handlers.console(new TextDecoder("latin1").decode(ram.read(gpa, length)));
          sbi.ret[0] = SBI_SUCCESS;
          sbi.ret[1] = BigInt(length);
        }
      } else if (sbi.functionId === DBCN_CONSOLE_READ) {
        sbi.ret[0] = SBI_SUCCESS;
        sbi.ret[1] = 0n;
      }
      return null;
    case UCALL_EID: {
      const type = ucallTypeName(sbi.functionId);
      if (type === null) {
        return { kind: "error", message: `unknown ucall type ${sbi.functionId}` };
      }
      sbi.ret[0] = SBI_SUCCESS;
      return handlers.ucall(type, sbi.args.slice()) ? null : { kind: "ucall", type };
    }
    default:
      // Left as KVM prepared it: SBI_ERR_NOT_SUPPORTED.
      return null;
  }
}
