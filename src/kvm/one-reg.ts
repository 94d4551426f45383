/**
 * Register ids of KVM_GET_ONE_REG / KVM_SET_ONE_REG for RISC-V, encoded as
 * arch/riscv/include/uapi/asm/kvm.h encodes them (all 64-bit here), so a VMM
 * saves and restores a vCPU (for migration or a snapshot) without knowing how
 * the hypervisor keeps it.
 */

export const KVM_REG_RISCV = 0x8000_0000_0000_0000n;
export const KVM_REG_SIZE_U64 = 0x0030_0000_0000_0000n;
const TYPE_SHIFT = 24n;
const SUBTYPE_SHIFT = 16n;
const TYPE_MASK = 0xffn << TYPE_SHIFT;
const SUBTYPE_MASK = 0xffn << SUBTYPE_SHIFT;
const INDEX_MASK = 0xffffn;

export const KVM_REG_RISCV_CORE = 0x02n << TYPE_SHIFT;
export const KVM_REG_RISCV_CSR = 0x03n << TYPE_SHIFT;
export const KVM_REG_RISCV_TIMER = 0x04n << TYPE_SHIFT;
export const KVM_REG_RISCV_SBI_STATE = 0x0an << TYPE_SHIFT;
export const KVM_REG_RISCV_CSR_GENERAL = 0x0n << SUBTYPE_SHIFT;
export const KVM_REG_RISCV_SBI_STA = 0x0n << SUBTYPE_SHIFT;

/** struct kvm_riscv_core: regs.pc, then x1..x31 at their numbers, then mode. */
export const CORE_PC = 0;
export const CORE_MODE = 32;
/** core.mode values. */
export const KVM_RISCV_MODE_U = 0n;
export const KVM_RISCV_MODE_S = 1n;

/** struct kvm_riscv_csr, in order. */
export const CSR_REG_SSTATUS = 0;
export const CSR_REG_SIE = 1;
export const CSR_REG_STVEC = 2;
export const CSR_REG_SSCRATCH = 3;
export const CSR_REG_SEPC = 4;
export const CSR_REG_SCAUSE = 5;
export const CSR_REG_STVAL = 6;
export const CSR_REG_SIP = 7;
export const CSR_REG_SATP = 8;
export const CSR_REG_SCOUNTEREN = 9;
export const CSR_REG_SENVCFG = 10;
const CSR_REG_COUNT = 11;

/** struct kvm_riscv_timer. */
export const TIMER_REG_FREQUENCY = 0;
export const TIMER_REG_TIME = 1;
export const TIMER_REG_COMPARE = 2;
export const TIMER_REG_STATE = 3;
export const KVM_RISCV_TIMER_STATE_OFF = 0n;
export const KVM_RISCV_TIMER_STATE_ON = 1n;

/** struct kvm_riscv_sbi_sta. */
export const STA_REG_SHMEM_LO = 0;
export const STA_REG_SHMEM_HI = 1;

/** KVM_GET_MP_STATE / KVM_SET_MP_STATE values RISC-V uses. */
export const KVM_MP_STATE_RUNNABLE = 0;
export const KVM_MP_STATE_STOPPED = 5;

const U64 = KVM_REG_RISCV | KVM_REG_SIZE_U64;

export function coreReg(index: number): bigint {
  return U64 | KVM_REG_RISCV_CORE | BigInt(index);
}

export function csrReg(index: number): bigint {
  return U64 | KVM_REG_RISCV_CSR | KVM_REG_RISCV_CSR_GENERAL | BigInt(index);
}

export function timerReg(index: number): bigint {
  return U64 | KVM_REG_RISCV_TIMER | BigInt(index);
}

export function staReg(index: number): bigint {
  return U64 | KVM_REG_RISCV_SBI_STATE | KVM_REG_RISCV_SBI_STA | BigInt(index);
}

/** A decoded id: which register file and which register, or null for an id no file has. */
export interface DecodedReg {
  type: bigint;
  index: number;
}

export function decodeReg(id: bigint): DecodedReg | null {
  if ((id & ~(TYPE_MASK | SUBTYPE_MASK | INDEX_MASK)) !== U64) return null;
  const type = id & TYPE_MASK;
  const subtype = id & SUBTYPE_MASK;
  const index = Number(id & INDEX_MASK);
  if (type === KVM_REG_RISCV_CORE && subtype === 0n && index <= CORE_MODE) return { type, index };
  if (
    type === KVM_REG_RISCV_CSR &&
    subtype === KVM_REG_RISCV_CSR_GENERAL &&
    index < CSR_REG_COUNT
  ) {
    return { type, index };
  }
  if (type === KVM_REG_RISCV_TIMER && subtype === 0n && index <= TIMER_REG_STATE) {
    return { type, index };
  }
  if (type === KVM_REG_RISCV_SBI_STATE && subtype === KVM_REG_RISCV_SBI_STA) {
    if (index <= STA_REG_SHMEM_HI) return { type, index };
  }
  return null;
}

/** Every register id a vCPU answers, as KVM_GET_REG_LIST lists them. */
export function regList(): bigint[] {
  const ids: bigint[] = [];
  for (let i = 0; i <= CORE_MODE; i++) ids.push(coreReg(i));
  for (let i = 0; i < CSR_REG_COUNT; i++) ids.push(csrReg(i));
  for (let i = 0; i <= TIMER_REG_STATE; i++) ids.push(timerReg(i));
  for (let i = 0; i <= STA_REG_SHMEM_HI; i++) ids.push(staReg(i));
  return ids;
}
