import {
  CORE_MODE,
  CORE_PC,
  coreReg,
  KVM_MP_STATE_RUNNABLE,
  KVM_RISCV_MODE_S,
  TIMER_REG_TIME,
  timerReg,
} from "../../kvm/one-reg.js";
import type { Vcpu } from "../../kvm/vcpu.js";

/**
 * The state of one vCPU as a migration carries it, through the KVM UAPI as
 * a VMM saves and restores a vCPU: KVM_GET_ONE_REG of every register that
 * KVM_GET_REG_LIST names (core registers and pc, the privilege mode, the
 * supervisor CSRs with pending interrupts, the timer's compare value and
 * state, the SBI steal-time registration) and KVM_GET_MP_STATE (the SBI HSM
 * state). Guest time is the VM's, not a vCPU's: it travels once, with
 * KVM_GET_CLOCK / KVM_SET_CLOCK (see the switchover), and every vCPU counts
 * from the VM's clock when it next runs.
 */
export interface VcpuState {
  /** [register id, value] for every register but the VM-wide time. */
  regs: [bigint, bigint][];
  mpState: number;
}

const TIME = timerReg(TIMER_REG_TIME);

/** Read a vCPU's state (on its thread, outside KVM_RUN). */
export function saveVcpuState(vcpu: Vcpu): VcpuState {
  const regs: [bigint, bigint][] = [];
  for (const id of vcpu.getRegList()) if (id !== TIME) regs.push([id, vcpu.getOneReg(id)]);
  return { regs, mpState: vcpu.getMpState() };
}

/** Load saved state into a vCPU that has not run yet (on its thread). */
export function restoreVcpuState(vcpu: Vcpu, state: VcpuState): void {
  for (const [id, value] of state.regs) vcpu.setOneReg(id, value);
  vcpu.setMpState(state.mpState);
}

/** Boot state: pc at the entry, a0 = hart id, S-mode, everything else as reset. */
export function bootVcpuState(pc: number, hartId: number): VcpuState {
  return {
    regs: [
      [coreReg(CORE_PC), BigInt(pc)],
      [coreReg(10), BigInt(hartId)],
      [coreReg(CORE_MODE), KVM_RISCV_MODE_S],
    ],
    mpState: KVM_MP_STATE_RUNNABLE,
  };
}

/** General register x`index` of a saved state (0 when not saved). */
export function savedRegister(state: VcpuState, index: number): bigint {
  const id = coreReg(index);
  return state.regs.find(([r]) => r === id)?.[1] ?? 0n;
}

/** JSON-safe form (hex strings). */
export function vcpuStateToJson(state: VcpuState): unknown {
  return {
    regs: state.regs.map(([id, value]) => [id.toString(16), value.toString(16)]),
    mpState: state.mpState,
  };
}

export function vcpuStateFromJson(raw: unknown): VcpuState {
  const v = raw as { regs: [string, string][]; mpState: number };
  if (typeof v !== "object" || v === null || !Array.isArray(v.regs)) {
    throw new Error("malformed vCPU state");
  }
  return {
    regs: v.regs.map(([id, value]) => [BigInt(`0x${id}`), BigInt(`0x${value}`)]),
    mpState: v.mpState,
  };
}
