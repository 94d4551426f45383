import { fail } from "../host/errno.js";
import {
  CSR_SATP,
  CSR_SCAUSE,
  CSR_SCOUNTEREN,
  CSR_SENVCFG,
  CSR_SEPC,
  CSR_SIE,
  CSR_SIP,
  CSR_SSCRATCH,
  CSR_SSTATUS,
  CSR_STVAL,
  CSR_STVEC,
  PRIV_S,
  PRIV_U,
  SUPERVISOR_INTERRUPTS,
  TIMEBASE_FREQUENCY,
} from "../riscv/cpu/constants.js";
import { getCsr, setCsr } from "../riscv/cpu/csr.js";
import { CTRL_IRQ_PENDING } from "../riscv/cpu/hart-control.js";
import {
  CORE_MODE,
  CORE_PC,
  CSR_REG_SIP,
  decodeReg,
  KVM_MP_STATE_RUNNABLE,
  KVM_MP_STATE_STOPPED,
  KVM_REG_RISCV_CORE,
  KVM_REG_RISCV_CSR,
  KVM_REG_RISCV_TIMER,
  KVM_RISCV_MODE_S,
  KVM_RISCV_MODE_U,
  KVM_RISCV_TIMER_STATE_OFF,
  KVM_RISCV_TIMER_STATE_ON,
  STA_REG_SHMEM_LO,
  TIMER_REG_COMPARE,
  TIMER_REG_FREQUENCY,
  TIMER_REG_STATE,
  TIMER_REG_TIME,
} from "./one-reg.js";
import {
  HSM_STARTED,
  HSM_STOPPED,
  HSM_START_PENDING,
  REQ_HSM,
  V_HSM_STATE,
  V_STEAL_ADDR,
  V_STEAL_ENABLED,
} from "./vcpu-shared.js";
import type { Vcpu } from "./vcpu.js";

/**
 * KVM_GET_ONE_REG / KVM_SET_ONE_REG and KVM_GET/SET_MP_STATE for RISC-V
 * (kvm/vcpu_onereg.c): the state a VMM saves and restores, called on the
 * vCPU's own thread while it is outside run(). Unknown ids are ENOENT,
 * values a register cannot hold EINVAL, as in KVM.
 */

const ALL_ONES = (1n << 64n) - 1n;

/** struct kvm_riscv_csr order → CSR number. */
const CSR_NUMBERS = [
  CSR_SSTATUS,
  CSR_SIE,
  CSR_STVEC,
  CSR_SSCRATCH,
  CSR_SEPC,
  CSR_SCAUSE,
  CSR_STVAL,
  CSR_SIP,
  CSR_SATP,
  CSR_SCOUNTEREN,
  CSR_SENVCFG,
];

function decode(id: bigint) {
  const reg = decodeReg(id);
  if (reg === null) fail("ENOENT", `no vCPU register 0x${id.toString(16)}`);
  return reg;
}

export function getOneReg(vcpu: Vcpu, id: bigint): bigint {
  const { type, index } = decode(id);
  const hart = vcpu.hart;
  if (type === KVM_REG_RISCV_CORE) {
    if (index === CORE_PC) return BigInt.asUintN(64, BigInt(hart.pc));
    if (index === CORE_MODE) return hart.priv === PRIV_S ? KVM_RISCV_MODE_S : KVM_RISCV_MODE_U;
    return hart.getRegister(index);
  }
  if (type === KVM_REG_RISCV_CSR) {
    const value = getCsr(hart, CSR_NUMBERS[index]);
    if (value === null)
      fail("ENOENT", `CSR 0x${CSR_NUMBERS[index].toString(16)} is not implemented`);
    return value;
  }
  if (type === KVM_REG_RISCV_TIMER) {
    if (index === TIMER_REG_FREQUENCY) return BigInt(TIMEBASE_FREQUENCY);
    if (index === TIMER_REG_TIME) return vcpu.vm.getClock();
    if (index === TIMER_REG_COMPARE)
      return hart.timecmp === Infinity ? ALL_ONES : BigInt(hart.timecmp);
    return hart.timecmp === Infinity ? KVM_RISCV_TIMER_STATE_OFF : KVM_RISCV_TIMER_STATE_ON;
  }
  const shared = vcpu.shared;
  if (index === STA_REG_SHMEM_LO) {
    return shared.word(V_STEAL_ENABLED) !== 0 ? shared.pair(V_STEAL_ADDR) : ALL_ONES;
  }
  // On RV64 the whole address is in shmem_lo.
  return shared.word(V_STEAL_ENABLED) !== 0 ? 0n : ALL_ONES;
}

export function setOneReg(vcpu: Vcpu, id: bigint, value: bigint): void {
  const { type, index } = decode(id);
  if (value < 0n || value > ALL_ONES) fail("EINVAL", `${value} is not a 64-bit register value`);
  const hart = vcpu.hart;
  if (type === KVM_REG_RISCV_CORE) {
    if (index === CORE_PC) {
      if (value >= 1n << 53n && value < ALL_ONES - (1n << 53n)) {
        fail("EINVAL", `pc 0x${value.toString(16)} is outside the addresses the hart keeps`);
      }
      hart.pc = Number(BigInt.asIntN(64, value));
    } else if (index === CORE_MODE) {
      if (value !== KVM_RISCV_MODE_S && value !== KVM_RISCV_MODE_U) fail("EINVAL", `mode ${value}`);
      hart.setPrivilege(value === KVM_RISCV_MODE_S ? PRIV_S : PRIV_U);
    } else {
      hart.setRegister(index, value);
    }
    return;
  }
  if (type === KVM_REG_RISCV_CSR) {
    if (index === CSR_REG_SIP) {
      // The VMM restores every pending interrupt, not only what a guest may write.
      Atomics.store(hart.control, CTRL_IRQ_PENDING, Number(value) & SUPERVISOR_INTERRUPTS);
    } else {
      setCsr(hart, CSR_NUMBERS[index], value);
    }
    return;
  }
  if (type === KVM_REG_RISCV_TIMER) {
    if (index === TIMER_REG_FREQUENCY) {
      if (value !== BigInt(TIMEBASE_FREQUENCY)) fail("EINVAL", "the timebase frequency is fixed");
    } else if (index === TIMER_REG_TIME) {
      // Guest time is the VM's: every vCPU counts from the moved epoch.
      vcpu.vm.setClock(value);
      hart.timeEpochMs = vcpu.vm.timeEpochMs;
    } else if (index === TIMER_REG_COMPARE) {
      hart.timecmp = value === ALL_ONES ? Infinity : Number(value);
    } else if (index === TIMER_REG_STATE) {
      if (value === KVM_RISCV_TIMER_STATE_OFF) hart.timecmp = Infinity;
      else if (value !== KVM_RISCV_TIMER_STATE_ON) fail("EINVAL", `timer state ${value}`);
    }
    return;
  }
  const shared = vcpu.shared;
  if (index === STA_REG_SHMEM_LO) {
    if (value === ALL_ONES) {
      shared.setWord(V_STEAL_ENABLED, 0);
      return;
    }
    if ((value & 63n) !== 0n) fail("EINVAL", "the steal-time record must be 64-byte aligned");
    shared.setPair(V_STEAL_ADDR, value);
    shared.setWord(V_STEAL_ENABLED, 1);
  } else if (value !== 0n && value !== ALL_ONES) {
    fail("EINVAL", "shmem_hi is 0 on RV64");
  }
}

/** KVM_GET_MP_STATE. A start another hart asked for is applied first, so the registers show it. */
export function getMpState(vcpu: Vcpu): number {
  if (vcpu.shared.word(V_HSM_STATE) === HSM_START_PENDING) {
    vcpu.vm.sbi.processRequests(vcpu, REQ_HSM);
  }
  return vcpu.shared.word(V_HSM_STATE) === HSM_STOPPED
    ? KVM_MP_STATE_STOPPED
    : KVM_MP_STATE_RUNNABLE;
}

/** KVM_SET_MP_STATE: RUNNABLE or STOPPED. */
export function setMpState(vcpu: Vcpu, state: number): void {
  if (state === KVM_MP_STATE_RUNNABLE) vcpu.shared.setWord(V_HSM_STATE, HSM_STARTED);
  else if (state === KVM_MP_STATE_STOPPED) vcpu.shared.setWord(V_HSM_STATE, HSM_STOPPED);
  else fail("EINVAL", `mp_state ${state} is not RUNNABLE or STOPPED`);
}
