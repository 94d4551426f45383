/**
 * What KVM_RUN reports back: the shared kvm_run structure of one vCPU. The
 * VMM reads the exit, fills in any answer (MMIO load data, SBI return values)
 * and calls run() again, which completes the exit first.
 */

export class MmioExit {
  physAddr = 0;
  /** Little-endian bytes: the store's data, or where the VMM puts a load's result. */
  readonly data = new Uint8Array(8);
  len = 0;
  isWrite = false;

  /** The data as an unsigned value (a store's, or the one the VMM set). */
  get value(): bigint {
    return (
      new DataView(this.data.buffer).getBigUint64(0, true) & ((1n << BigInt(8 * this.len)) - 1n)
    );
  }

  set value(v: bigint) {
    new DataView(this.data.buffer).setBigUint64(0, BigInt.asUintN(64, v), true);
  }
}

export class SbiExit {
  extensionId = 0;
  functionId = 0;
  /** a0..a5 as unsigned 64-bit values. */
  readonly args: bigint[] = [0n, 0n, 0n, 0n, 0n, 0n];
  /** The values the VMM returns in a0 (error) and a1 (value). */
  readonly ret: bigint[] = [0n, 0n];
}

export class SystemEventExit {
  type = 0;
  /** For RISC-V, the SRST reset reason. */
  reason = 0;
}

export class MemoryFaultExit {
  flags = 0;
  gpa = 0;
  size = 0;
}

/** Why the hypervisor could not go on with the guest (kvm_run.internal). */
export class InternalErrorExit {
  /** INTERNAL_ERROR_* */
  suberror = 0;
  /** What failed, for the VMM to report (KVM gives raw data words instead). */
  message = "";
}

export class RunState {
  exitReason = 0;
  readonly mmio = new MmioExit();
  readonly riscvSbi = new SbiExit();
  readonly systemEvent = new SystemEventExit();
  readonly memoryFault = new MemoryFaultExit();
  readonly internal = new InternalErrorExit();
}
