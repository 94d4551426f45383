import {
  CAUSE_BREAKPOINT,
  CAUSE_ILLEGAL_INSTRUCTION,
  CAUSE_USER_ECALL,
  PRIV_U,
} from "./constants.js";
import type { Hart } from "./hart.js";
import { EXIT_SBI, STEP_EXIT, STEP_RECHECK, STEP_TRAP } from "./hart.js";

const ECALL = 0x00000073;
const EBREAK = 0x00100073;
const SRET = 0x10200073;
const WFI = 0x10500073;
const SFENCE_VMA_FUNCT7 = 0x09;

const TWO32 = 4294967296;

function illegal(hart: Hart, inst: number): number {
  hart.raiseException(CAUSE_ILLEGAL_INSTRUCTION, inst, 0);
  return STEP_TRAP;
}

/** ECALL, EBREAK, SRET, WFI and SFENCE.VMA (SYSTEM with funct3 = 0). */
export function executeSystem(hart: Hart, inst: number): number {
  switch (inst) {
    case ECALL:
      if (hart.priv === PRIV_U) {
        hart.raiseException(CAUSE_USER_ECALL, 0, 0);
        return STEP_TRAP;
      }
      // From S-mode an ECALL is an SBI call: it leaves the guest.
      hart.pc += 4;
      hart.exitReason = EXIT_SBI;
      return STEP_EXIT;
    case EBREAK:
      hart.raiseException(CAUSE_BREAKPOINT, hart.pc | 0, Math.floor(hart.pc / TWO32));
      return STEP_TRAP;
    case SRET:
      if (hart.priv === PRIV_U) return illegal(hart, inst);
      hart.returnFromTrap();
      return STEP_RECHECK;
    case WFI:
      if (hart.priv === PRIV_U) return illegal(hart, inst);
      hart.pc += 4;
      hart.waitForInterrupt();
      return STEP_RECHECK;
  }
  if (inst >>> 25 === SFENCE_VMA_FUNCT7 && ((inst >> 7) & 31) === 0) {
    if (hart.priv === PRIV_U) return illegal(hart, inst);
    hart.flushTlb();
    hart.pc += 4;
    return STEP_RECHECK;
  }
  return illegal(hart, inst);
}
