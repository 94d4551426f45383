import { CTRL_IRQ_PENDING } from "../../riscv/cpu/hart-control.js";
import {
  V_HSM_OPAQUE,
  V_HSM_START_ADDR,
  V_HSM_STATE,
  V_STEAL_ADDR,
  V_STEAL_ENABLED,
} from "../../kvm/vcpu-shared.js";
import type { Vcpu } from "../../kvm/vcpu.js";

/**
 * The architectural state of one vCPU as a migration carries it (what
 * KVM_GET_ONE_REG / KVM_SET_ONE_REG move on RISC-V: core registers, the
 * supervisor CSRs, the timer) plus the hypervisor's SBI state of the vCPU
 * (HSM state and start arguments, the steal-time registration), read from
 * and written to the vCPU on its own thread while it is out of KVM_RUN.
 *
 * The timer compare value travels as "ticks from now" and is re-armed
 * against the destination's clock, so a pending timer fires as far in the
 * future as it would have; the guest's time counter itself restarts from the
 * destination VM's epoch (the UAPI has no KVM_REG_RISCV_TIMER_REG(time) yet).
 */
export interface VcpuState {
  pc: number;
  /** x0..x31. */
  regs: bigint[];
  priv: number;
  sstatus: number;
  sie: number;
  stvecBase: number;
  stvecMode: number;
  scounteren: number;
  senvcfg: number;
  sepc: number;
  /** sscratch, scause, stval, satp as (lo, hi) pairs. */
  csrPairs: number[];
  /** Pending interrupt bits (sip as the platform sets it). */
  irqPending: number;
  /** Ticks until the timer fires; null when no timer is set. */
  timerInTicks: number | null;
  hsm: { state: number; startAddr: bigint; opaque: bigint };
  stealTime: { enabled: boolean; addr: bigint };
}

/** Read a vCPU's state (on its thread, outside KVM_RUN). */
export function saveVcpuState(vcpu: Vcpu): VcpuState {
  const hart = vcpu.hart;
  const regs: bigint[] = [0n];
  for (let r = 1; r < 32; r++) regs.push(hart.getRegister(r));
  const shared = vcpu.shared;
  return {
    pc: hart.pc,
    regs,
    priv: hart.priv,
    sstatus: hart.sstatus,
    sie: hart.sie,
    stvecBase: hart.stvecBase,
    stvecMode: hart.stvecMode,
    scounteren: hart.scounteren,
    senvcfg: hart.senvcfg,
    sepc: hart.sepc,
    csrPairs: Array.from(hart.csrPairs),
    irqPending: Atomics.load(hart.control, CTRL_IRQ_PENDING),
    timerInTicks: Number.isFinite(hart.timecmp) ? hart.timecmp - hart.readTime() : null,
    hsm: {
      state: shared.word(V_HSM_STATE),
      startAddr: shared.pair(V_HSM_START_ADDR),
      opaque: shared.pair(V_HSM_OPAQUE),
    },
    stealTime: { enabled: shared.word(V_STEAL_ENABLED) !== 0, addr: shared.pair(V_STEAL_ADDR) },
  };
}

/** Load saved state into a vCPU that has not run yet (on its thread). */
export function restoreVcpuState(vcpu: Vcpu, state: VcpuState): void {
  const hart = vcpu.hart;
  hart.pc = state.pc;
  for (let r = 1; r < 32; r++) hart.setRegister(r, state.regs[r]);
  hart.priv = state.priv;
  hart.sstatus = state.sstatus;
  hart.sie = state.sie;
  hart.stvecBase = state.stvecBase;
  hart.stvecMode = state.stvecMode;
  hart.scounteren = state.scounteren;
  hart.senvcfg = state.senvcfg;
  hart.sepc = state.sepc;
  hart.csrPairs.set(state.csrPairs);
  Atomics.or(hart.control, CTRL_IRQ_PENDING, state.irqPending);
  hart.timecmp = state.timerInTicks === null ? Infinity : hart.readTime() + state.timerInTicks;
  const shared = vcpu.shared;
  shared.setWord(V_HSM_STATE, state.hsm.state);
  shared.setPair(V_HSM_START_ADDR, state.hsm.startAddr);
  shared.setPair(V_HSM_OPAQUE, state.hsm.opaque);
  shared.setPair(V_STEAL_ADDR, state.stealTime.addr);
  shared.setWord(V_STEAL_ENABLED, state.stealTime.enabled ? 1 : 0);
}

/** Boot state: pc at the entry, a0 = hart id, everything else reset. */
export function bootVcpuState(pc: number, hartId: number): VcpuState {
  const regs = new Array<bigint>(32).fill(0n);
  regs[10] = BigInt(hartId);
  return {
    pc,
    regs,
    priv: 1,
    sstatus: 0,
    sie: 0,
    stvecBase: 0,
    stvecMode: 0,
    scounteren: 0,
    senvcfg: 0,
    sepc: 0,
    csrPairs: new Array<number>(8).fill(0),
    irqPending: 0,
    timerInTicks: null,
    hsm: { state: 0, startAddr: 0n, opaque: 0n },
    stealTime: { enabled: false, addr: 0n },
  };
}

/** JSON-safe form (bigints as decimal strings). */
export function vcpuStateToJson(state: VcpuState): unknown {
  return {
    ...state,
    regs: state.regs.map((r) => r.toString()),
    hsm: {
      state: state.hsm.state,
      startAddr: state.hsm.startAddr.toString(),
      opaque: state.hsm.opaque.toString(),
    },
    stealTime: { enabled: state.stealTime.enabled, addr: state.stealTime.addr.toString() },
  };
}

export function vcpuStateFromJson(raw: unknown): VcpuState {
  const v = raw as Omit<VcpuState, "regs" | "hsm" | "stealTime"> & {
    regs: string[];
    hsm: { state: number; startAddr: string; opaque: string };
    stealTime: { enabled: boolean; addr: string };
  };
  if (typeof v !== "object" || v === null || !Array.isArray(v.regs) || v.regs.length !== 32) {
    throw new Error("malformed vCPU state");
  }
  return {
    ...v,
    regs: v.regs.map((r) => BigInt(r)),
    hsm: { state: v.hsm.state, startAddr: BigInt(v.hsm.startAddr), opaque: BigInt(v.hsm.opaque) },
    stealTime: { enabled: v.stealTime.enabled, addr: BigInt(v.stealTime.addr) },
  };
}
