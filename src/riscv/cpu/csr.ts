import {
  CAUSE_ILLEGAL_INSTRUCTION,
  CSR_CYCLE,
  CSR_HPMCOUNTER3,
  CSR_HPMCOUNTER31,
  CSR_INSTRET,
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
  CSR_TIME,
  MIP_SSIP,
  PRIV_U,
  SATP_MODE_BARE,
  SATP_MODE_SV39,
  SENVCFG_WRITABLE,
  SSTATUS_HI_UXL64,
  SSTATUS_MXR,
  SSTATUS_SUM,
  SSTATUS_WRITABLE,
  SUPERVISOR_INTERRUPTS,
} from "./constants.js";
import { CTRL_IRQ_PENDING } from "./hart-control.js";
import type { Hart } from "./hart.js";
import {
  CSR_PAIR_SATP,
  CSR_PAIR_SCAUSE,
  CSR_PAIR_SSCRATCH,
  CSR_PAIR_STVAL,
  STEP_DONE,
  STEP_RECHECK,
  STEP_TRAP,
} from "./hart.js";

const TWO32 = 4294967296;

/** The value read by `readCsr`, as (lo, hi). */
const value = new Int32Array(2);

function setFromNumber(v: number): void {
  value[0] = v | 0;
  value[1] = Math.floor(v / TWO32);
}

/**
 * Read a CSR into `value`. Returns false when the CSR does not exist or the
 * current privilege may not read it (the instruction is then illegal).
 * `retired` is the instret count before the reading instruction.
 */
function readCsr(hart: Hart, csr: number, retired: number): boolean {
  const p = hart.csrPairs;
  switch (csr) {
    case CSR_SSTATUS:
      value[0] = hart.sstatus;
      value[1] = SSTATUS_HI_UXL64;
      return true;
    case CSR_SIE:
      value[0] = hart.sie;
      value[1] = 0;
      return true;
    case CSR_SIP:
      value[0] = hart.readSip() & SUPERVISOR_INTERRUPTS;
      value[1] = 0;
      return true;
    case CSR_STVEC:
      setFromNumber(hart.stvecBase);
      value[0] |= hart.stvecMode;
      return true;
    case CSR_SCOUNTEREN:
      value[0] = hart.scounteren;
      value[1] = 0;
      return true;
    case CSR_SENVCFG:
      value[0] = hart.senvcfg;
      value[1] = 0;
      return true;
    case CSR_SEPC:
      setFromNumber(hart.sepc);
      return true;
    case CSR_SSCRATCH:
    case CSR_SCAUSE:
    case CSR_STVAL:
    case CSR_SATP: {
      const slot = pairSlot(csr);
      value[0] = p[slot];
      value[1] = p[slot + 1];
      return true;
    }
  }
  if (csr >= CSR_CYCLE && csr <= CSR_HPMCOUNTER31) {
    // U-mode reads of counters need their scounteren bit.
    if (hart.priv === PRIV_U && ((hart.scounteren >>> (csr - CSR_CYCLE)) & 1) === 0) return false;
    if (csr === CSR_CYCLE || csr === CSR_INSTRET) setFromNumber(retired);
    else if (csr === CSR_TIME) setFromNumber(hart.readTime());
    else if (csr >= CSR_HPMCOUNTER3) setFromNumber(0);
    return true;
  }
  return false;
}

function pairSlot(csr: number): number {
  switch (csr) {
    case CSR_SSCRATCH:
      return CSR_PAIR_SSCRATCH;
    case CSR_SCAUSE:
      return CSR_PAIR_SCAUSE;
    case CSR_STVAL:
      return CSR_PAIR_STVAL;
    default:
      return CSR_PAIR_SATP;
  }
}

/** Write a CSR known to exist and be writable; returns a STEP_* status. */
function writeCsr(hart: Hart, csr: number, lo: number, hi: number): number {
  const p = hart.csrPairs;
  switch (csr) {
    case CSR_SSTATUS: {
      const next = lo & SSTATUS_WRITABLE;
      // The TLB holds permissions computed with the old SUM and MXR.
      if ((next ^ hart.sstatus) & (SSTATUS_SUM | SSTATUS_MXR)) hart.flushTlb();
      hart.sstatus = next;
      return STEP_RECHECK;
    }
    case CSR_SIE:
      hart.sie = lo & SUPERVISOR_INTERRUPTS;
      return STEP_RECHECK;
    case CSR_SIP:
      // Only SSIP is writable from S-mode; STIP and SEIP belong to the platform.
      if (lo & MIP_SSIP) Atomics.or(hart.control, CTRL_IRQ_PENDING, MIP_SSIP);
      else Atomics.and(hart.control, CTRL_IRQ_PENDING, ~MIP_SSIP);
      return STEP_RECHECK;
    case CSR_STVEC:
      hart.setStvec(lo, hi);
      return STEP_DONE;
    case CSR_SCOUNTEREN:
      hart.scounteren = lo;
      return STEP_DONE;
    case CSR_SENVCFG:
      hart.senvcfg = lo & SENVCFG_WRITABLE;
      return STEP_DONE;
    case CSR_SEPC:
      hart.setSepc(lo, hi);
      return STEP_DONE;
    case CSR_SATP: {
      // Bare and Sv39; a write naming another mode has no effect at all, as
      // the spec requires. ASIDLEN is 0, so the TLB (untagged) is flushed.
      const mode = hi >>> 28;
      if (mode !== SATP_MODE_BARE && mode !== SATP_MODE_SV39) return STEP_DONE;
      p[CSR_PAIR_SATP] = lo;
      p[CSR_PAIR_SATP + 1] = (mode << 28) | (hi & 0xfff);
      hart.flushTlb();
      return STEP_RECHECK;
    }
    default: {
      const slot = pairSlot(csr);
      p[slot] = lo;
      p[slot + 1] = hi;
      return STEP_DONE;
    }
  }
}

/**
 * A CSR as the layer above reads it to save the hart (KVM_GET_ONE_REG): the
 * 64-bit value, or null when the hart has no such CSR.
 */
export function getCsr(hart: Hart, csr: number): bigint | null {
  if (!readCsr(hart, csr, hart.instret)) return null;
  return BigInt.asUintN(64, (BigInt(value[1]) << 32n) | BigInt(value[0] >>> 0));
}

/** Write a CSR as a guest instruction would (legalized, WARL), to restore the hart. */
export function setCsr(hart: Hart, csr: number, v: bigint): void {
  writeCsr(hart, csr, Number(BigInt.asIntN(32, v)), Number(BigInt.asIntN(32, v >> 32n)));
}

/** CSRRW/CSRRS/CSRRC and their immediate forms. */
export function executeCsr(hart: Hart, inst: number, retired: number): number {
  const f3 = (inst >> 12) & 7;
  const csr = inst >>> 20;
  const rd = (inst >> 7) & 31;
  const rs1 = (inst >> 15) & 31;
  const op = f3 & 3;
  const writes = op === 1 || rs1 !== 0;
  const x = hart.x;
  if (
    op === 0 ||
    ((csr >> 8) & 3) > hart.priv ||
    (writes && csr >>> 10 === 3) ||
    !readCsr(hart, csr, retired)
  ) {
    hart.raiseException(CAUSE_ILLEGAL_INSTRUCTION, inst, 0);
    return STEP_TRAP;
  }
  const oldLo = value[0];
  const oldHi = value[1];
  let status = STEP_DONE;
  if (writes) {
    const srcLo = f3 & 4 ? rs1 : x[2 * rs1];
    const srcHi = f3 & 4 ? 0 : x[2 * rs1 + 1];
    let lo = srcLo;
    let hi = srcHi;
    if (op === 2) {
      lo = oldLo | srcLo;
      hi = oldHi | srcHi;
    } else if (op === 3) {
      lo = oldLo & ~srcLo;
      hi = oldHi & ~srcHi;
    }
    status = writeCsr(hart, csr, lo, hi);
  }
  if (rd !== 0) {
    x[2 * rd] = oldLo;
    x[2 * rd + 1] = oldHi;
  }
  hart.pc += 4;
  return status;
}
