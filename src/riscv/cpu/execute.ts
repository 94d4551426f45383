import { executeAtomic } from "./atomic.js";
import {
  ACCESS_FETCH,
  CAUSE_FETCH_ACCESS,
  CAUSE_ILLEGAL_INSTRUCTION,
  CAUSE_MISALIGNED_FETCH,
  PAGE_SIZE,
} from "./constants.js";
import { executeCsr } from "./csr.js";
import { scratchDouble, scratchWords } from "./doubleword.js";
import type { Hart } from "./hart.js";
import { EXIT_BUDGET, EXIT_GUEST_PAGE_FAULT, STEP_DONE, STEP_EXIT, STEP_TRAP } from "./hart.js";
import {
  divrem32,
  divrem64,
  divremu64,
  mul64,
  mulh64,
  mulhsu64,
  mulhu64,
  pairIsSafe,
  pairToNumber,
  result,
} from "./int64.js";
import { loadSlow, storeSlow } from "./memory-access.js";
import { executeSystem } from "./system.js";
import { TLB_MASK } from "./tlb.js";

const TWO32 = 4294967296;
/** Major opcodes, inst[6:2], as in the spec's opcode map. */
const LOAD = 0x00;
const MISC_MEM = 0x03;
const OP_IMM = 0x04;
const AUIPC = 0x05;
const OP_IMM_32 = 0x06;
const STORE = 0x08;
const AMO = 0x0b;
const OP = 0x0c;
const LUI = 0x0d;
const OP_32 = 0x0e;
const BRANCH = 0x18;
const JALR = 0x19;
const JAL = 0x1b;
const SYSTEM = 0x1c;
/** Not a major opcode: the low bits mark a compressed (RVC) encoding. */
const NOT_32_BIT = 0x1f;

const EMPTY_PAGE = new Int32Array(0);
/** An offset past any page: pc = fetchBase + REFILL makes the next fetch translate. */
const REFILL = 1 << 16;

function sll64(x: Int32Array, d: number, lo: number, hi: number, sh: number): void {
  if (sh === 0) {
    x[d] = lo;
    x[d + 1] = hi;
  } else if (sh < 32) {
    x[d + 1] = (hi << sh) | (lo >>> (32 - sh));
    x[d] = lo << sh;
  } else {
    x[d + 1] = lo << (sh - 32);
    x[d] = 0;
  }
}

function srl64(x: Int32Array, d: number, lo: number, hi: number, sh: number): void {
  if (sh === 0) {
    x[d] = lo;
    x[d + 1] = hi;
  } else if (sh < 32) {
    x[d] = (lo >>> sh) | (hi << (32 - sh));
    x[d + 1] = hi >>> sh;
  } else {
    x[d] = hi >>> (sh - 32);
    x[d + 1] = 0;
  }
}

function sra64(x: Int32Array, d: number, lo: number, hi: number, sh: number): void {
  if (sh === 0) {
    x[d] = lo;
    x[d + 1] = hi;
  } else if (sh < 32) {
    x[d] = (lo >>> sh) | (hi << (32 - sh));
    x[d + 1] = hi >> sh;
  } else {
    x[d] = hi >> (sh - 32);
    x[d + 1] = hi >> 31;
  }
}

/** Signed 64-bit less-than on (lo, hi) pairs. */
function lt64(aLo: number, aHi: number, bLo: number, bHi: number): boolean {
  return aHi < bHi || (aHi === bHi && aLo >>> 0 < bLo >>> 0);
}

/** Unsigned 64-bit less-than on (lo, hi) pairs. */
function ltu64(aLo: number, aHi: number, bLo: number, bHi: number): boolean {
  return aHi >>> 0 < bHi >>> 0 || (aHi === bHi && aLo >>> 0 < bLo >>> 0);
}

/** Write a double-held address (|v| < 2^53) into register pair d. */
function writeAddress(x: Int32Array, d: number, v: number): void {
  x[d] = v | 0;
  x[d + 1] = v >= 0 && v < TWO32 ? 0 : Math.floor(v / TWO32);
}

/**
 * The interpreter loop: executes up to `limit` instructions of `hart` and
 * returns how many it consumed. It stops early when an instruction exits to
 * the layer above (hart.exitReason set) or changes state that gates
 * interrupts. Common instructions are handled inline on locals; rare or
 * trapping ones go to helpers that work on the hart with `hart.pc` in sync.
 */
export function execute(hart: Hart, limit: number): number {
  const x = hart.x;
  const tlb = hart.tlb;
  const readLo = tlb.readLo;
  const readHi = tlb.readHi;
  const writeLo = tlb.writeLo;
  const writeHi = tlb.writeHi;
  const fetchLo = tlb.fetchLo;
  const fetchHi = tlb.fetchHi;
  const offsets = tlb.offset;
  const u8s = tlb.u8;
  const i16s = tlb.i16;
  const i32s = tlb.i32;
  const f64s = tlb.f64;

  // pc = fetchBase + off: the guest address of the page being fetched from
  // and an int32 offset into it, so that sequential code and short branches
  // stay in integer arithmetic. An offset outside the page forces a refill.
  let fetchBase = hart.pc - REFILL;
  let off = REFILL;
  let fetchMem: Int32Array = EMPTY_PAGE;
  let fetchIndex = 0;
  let n = 0;
  let traps = 0;

  interpret: while (n < limit) {
    n++;
    x[0] = 0;
    x[1] = 0;
    if (off >>> 0 >= PAGE_SIZE) {
      const pc = fetchBase + off;
      const plo = pc | 0;
      const phi = Math.floor(pc / TWO32);
      let e = (plo >>> 12) & TLB_MASK;
      if (fetchLo[e] !== (plo & -PAGE_SIZE) || fetchHi[e] !== phi) {
        hart.pc = pc;
        e = hart.translate(plo, phi, ACCESS_FETCH);
        if (e < 0) {
          if (hart.exitReason !== EXIT_BUDGET) {
            n--;
            break;
          }
          fetchBase = hart.pc - REFILL;
          off = REFILL;
          traps++;
          continue;
        }
      }
      off = plo & (PAGE_SIZE - 1);
      fetchBase = pc - off;
      fetchMem = i32s[e];
      fetchIndex = offsets[e] >> 2;
    }
    const inst = fetchMem[fetchIndex + (off >> 2)];
    const rd2 = (inst >> 6) & 62;

    switch ((inst & 3) === 3 ? (inst >>> 2) & 31 : NOT_32_BIT) {
      case OP_IMM: {
        const a = (inst >> 14) & 62;
        const lo = x[a];
        const hi = x[a + 1];
        const imm = inst >> 20;
        switch ((inst >> 12) & 7) {
          case 0: {
            const r = (lo + imm) | 0;
            x[rd2] = r;
            x[rd2 + 1] = (hi + (imm >> 31) + (r >>> 0 < lo >>> 0 ? 1 : 0)) | 0;
            off += 4;
            continue;
          }
          case 1:
            if (inst >>> 26 !== 0) break;
            sll64(x, rd2, lo, hi, imm & 63);
            off += 4;
            continue;
          case 2:
            x[rd2] = lt64(lo, hi, imm, imm >> 31) ? 1 : 0;
            x[rd2 + 1] = 0;
            off += 4;
            continue;
          case 3:
            x[rd2] = ltu64(lo, hi, imm, imm >> 31) ? 1 : 0;
            x[rd2 + 1] = 0;
            off += 4;
            continue;
          case 4:
            x[rd2] = lo ^ imm;
            x[rd2 + 1] = hi ^ (imm >> 31);
            off += 4;
            continue;
          case 5: {
            const f6 = inst >>> 26;
            if (f6 === 0) srl64(x, rd2, lo, hi, imm & 63);
            else if (f6 === 0x10) sra64(x, rd2, lo, hi, imm & 63);
            else break;
            off += 4;
            continue;
          }
          case 6:
            x[rd2] = lo | imm;
            x[rd2 + 1] = hi | (imm >> 31);
            off += 4;
            continue;
          case 7:
            x[rd2] = lo & imm;
            x[rd2 + 1] = hi & (imm >> 31);
            off += 4;
            continue;
        }
        break;
      }

      case OP: {
        const a = (inst >> 14) & 62;
        const b = (inst >> 19) & 62;
        const alo = x[a];
        const ahi = x[a + 1];
        const blo = x[b];
        const bhi = x[b + 1];
        const f7 = inst >>> 25;
        const f3 = (inst >> 12) & 7;
        if (f7 === 0) {
          switch (f3) {
            case 0: {
              const r = (alo + blo) | 0;
              x[rd2] = r;
              x[rd2 + 1] = (ahi + bhi + (r >>> 0 < alo >>> 0 ? 1 : 0)) | 0;
              break;
            }
            case 1:
              sll64(x, rd2, alo, ahi, blo & 63);
              break;
            case 2:
              x[rd2] = lt64(alo, ahi, blo, bhi) ? 1 : 0;
              x[rd2 + 1] = 0;
              break;
            case 3:
              x[rd2] = ltu64(alo, ahi, blo, bhi) ? 1 : 0;
              x[rd2 + 1] = 0;
              break;
            case 4:
              x[rd2] = alo ^ blo;
              x[rd2 + 1] = ahi ^ bhi;
              break;
            case 5:
              srl64(x, rd2, alo, ahi, blo & 63);
              break;
            case 6:
              x[rd2] = alo | blo;
              x[rd2 + 1] = ahi | bhi;
              break;
            case 7:
              x[rd2] = alo & blo;
              x[rd2 + 1] = ahi & bhi;
              break;
          }
          off += 4;
          continue;
        }
        if (f7 === 0x20) {
          if (f3 === 0) {
            const r = (alo - blo) | 0;
            x[rd2] = r;
            x[rd2 + 1] = (ahi - bhi - (alo >>> 0 < blo >>> 0 ? 1 : 0)) | 0;
          } else if (f3 === 5) {
            sra64(x, rd2, alo, ahi, blo & 63);
          } else break;
          off += 4;
          continue;
        }
        if (f7 === 1) {
          switch (f3) {
            case 0:
              mul64(alo, ahi, blo, bhi);
              break;
            case 1:
              mulh64(alo, ahi, blo, bhi);
              break;
            case 2:
              mulhsu64(alo, ahi, blo, bhi);
              break;
            case 3:
              mulhu64(alo, ahi, blo, bhi);
              break;
            case 4:
              divrem64(alo, ahi, blo, bhi, false);
              break;
            case 5:
              divremu64(alo, ahi, blo, bhi, false);
              break;
            case 6:
              divrem64(alo, ahi, blo, bhi, true);
              break;
            case 7:
              divremu64(alo, ahi, blo, bhi, true);
              break;
          }
          x[rd2] = result[0];
          x[rd2 + 1] = result[1];
          off += 4;
          continue;
        }
        break;
      }

      case LOAD: {
        const a = (inst >> 14) & 62;
        const imm = inst >> 20;
        const base = x[a];
        const alo = (base + imm) | 0;
        const ahi = (x[a + 1] + (imm >> 31) + (alo >>> 0 < base >>> 0 ? 1 : 0)) | 0;
        const e = (alo >>> 12) & TLB_MASK;
        if (readLo[e] === (alo & -PAGE_SIZE) && readHi[e] === ahi) {
          const at = offsets[e] + (alo & (PAGE_SIZE - 1));
          switch ((inst >> 12) & 7) {
            case 0: {
              const v = (u8s[e][at] << 24) >> 24;
              x[rd2] = v;
              x[rd2 + 1] = v >> 31;
              off += 4;
              continue;
            }
            case 1:
              if ((at & 1) === 0) {
                const v = i16s[e][at >> 1];
                x[rd2] = v;
                x[rd2 + 1] = v >> 31;
                off += 4;
                continue;
              }
              break;
            case 2:
              if ((at & 3) === 0) {
                const v = i32s[e][at >> 2];
                x[rd2] = v;
                x[rd2 + 1] = v >> 31;
                off += 4;
                continue;
              }
              break;
            case 3:
              if ((at & 7) === 0) {
                scratchDouble[0] = f64s[e][at >> 3];
                x[rd2] = scratchWords[0];
                x[rd2 + 1] = scratchWords[1];
                off += 4;
                continue;
              }
              break;
            case 4:
              x[rd2] = u8s[e][at];
              x[rd2 + 1] = 0;
              off += 4;
              continue;
            case 5:
              if ((at & 1) === 0) {
                x[rd2] = i16s[e][at >> 1] & 0xffff;
                x[rd2 + 1] = 0;
                off += 4;
                continue;
              }
              break;
            case 6:
              if ((at & 3) === 0) {
                x[rd2] = i32s[e][at >> 2];
                x[rd2 + 1] = 0;
                off += 4;
                continue;
              }
              break;
          }
        }
        hart.pc = fetchBase + off;
        const status = loadSlow(hart, inst, alo, ahi);
        if (status === STEP_DONE) {
          off += 4;
          continue;
        }
        fetchBase = hart.pc - REFILL;
        off = REFILL;
        if (status === STEP_EXIT) {
          n--;
          break interpret;
        }
        traps++;
        continue;
      }

      case STORE: {
        const a = (inst >> 14) & 62;
        const b = (inst >> 19) & 62;
        const imm = ((inst >> 25) << 5) | ((inst >> 7) & 31);
        const base = x[a];
        const alo = (base + imm) | 0;
        const ahi = (x[a + 1] + (imm >> 31) + (alo >>> 0 < base >>> 0 ? 1 : 0)) | 0;
        const e = (alo >>> 12) & TLB_MASK;
        if (writeLo[e] === (alo & -PAGE_SIZE) && writeHi[e] === ahi) {
          const at = offsets[e] + (alo & (PAGE_SIZE - 1));
          switch ((inst >> 12) & 7) {
            case 0:
              u8s[e][at] = x[b];
              off += 4;
              continue;
            case 1:
              if ((at & 1) === 0) {
                i16s[e][at >> 1] = x[b];
                off += 4;
                continue;
              }
              break;
            case 2:
              if ((at & 3) === 0) {
                i32s[e][at >> 2] = x[b];
                off += 4;
                continue;
              }
              break;
            case 3:
              if ((at & 7) === 0) {
                scratchWords[0] = x[b];
                scratchWords[1] = x[b + 1];
                f64s[e][at >> 3] = scratchDouble[0];
                off += 4;
                continue;
              }
              break;
          }
        }
        hart.pc = fetchBase + off;
        const status = storeSlow(hart, inst, alo, ahi);
        if (status === STEP_DONE) {
          off += 4;
          continue;
        }
        fetchBase = hart.pc - REFILL;
        off = REFILL;
        if (status === STEP_EXIT) {
          n--;
          break interpret;
        }
        traps++;
        continue;
      }

      case BRANCH: {
        const a = (inst >> 14) & 62;
        const b = (inst >> 19) & 62;
        const alo = x[a];
        const ahi = x[a + 1];
        const blo = x[b];
        const bhi = x[b + 1];
        let taken: boolean;
        switch ((inst >> 12) & 7) {
          case 0:
            taken = alo === blo && ahi === bhi;
            break;
          case 1:
            taken = alo !== blo || ahi !== bhi;
            break;
          case 4:
            taken = lt64(alo, ahi, blo, bhi);
            break;
          case 5:
            taken = !lt64(alo, ahi, blo, bhi);
            break;
          case 6:
            taken = ltu64(alo, ahi, blo, bhi);
            break;
          case 7:
            taken = !ltu64(alo, ahi, blo, bhi);
            break;
          default:
            taken = false;
            break;
        }
        const f3 = (inst >> 12) & 7;
        if (f3 === 2 || f3 === 3) break;
        if (!taken) {
          off += 4;
          continue;
        }
        const imm =
          ((inst >> 31) << 12) |
          (((inst >> 7) & 1) << 11) |
          (((inst >> 25) & 0x3f) << 5) |
          (((inst >> 8) & 0xf) << 1);
        if ((imm & 2) !== 0) {
          const target = fetchBase + off + imm;
          hart.pc = fetchBase + off;
          hart.raiseException(CAUSE_MISALIGNED_FETCH, target | 0, Math.floor(target / TWO32));
          fetchBase = hart.pc - REFILL;
          off = REFILL;
          traps++;
          continue;
        }
        off += imm;
        continue;
      }

      case LUI:
        x[rd2] = inst & 0xfffff000;
        x[rd2 + 1] = inst >> 31;
        off += 4;
        continue;

      case AUIPC:
        writeAddress(x, rd2, fetchBase + off + (inst & 0xfffff000));
        off += 4;
        continue;

      case JAL: {
        const imm =
          ((inst >> 31) << 20) |
          (inst & 0xff000) |
          (((inst >> 20) & 1) << 11) |
          (((inst >> 21) & 0x3ff) << 1);
        if ((imm & 2) !== 0) {
          const target = fetchBase + off + imm;
          hart.pc = fetchBase + off;
          hart.raiseException(CAUSE_MISALIGNED_FETCH, target | 0, Math.floor(target / TWO32));
          fetchBase = hart.pc - REFILL;
          off = REFILL;
          traps++;
          continue;
        }
        writeAddress(x, rd2, fetchBase + off + 4);
        off += imm;
        continue;
      }

      case JALR: {
        if (((inst >> 12) & 7) !== 0) break;
        const a = (inst >> 14) & 62;
        const imm = inst >> 20;
        const base = x[a];
        const tlo = ((base + imm) | 0) & ~1;
        const thi = (x[a + 1] + (imm >> 31) + (((base + imm) | 0) >>> 0 < base >>> 0 ? 1 : 0)) | 0;
        if ((tlo & 2) !== 0 || !pairIsSafe(thi)) {
          hart.pc = fetchBase + off;
          hart.raiseException(
            (tlo & 2) !== 0 ? CAUSE_MISALIGNED_FETCH : CAUSE_FETCH_ACCESS,
            tlo,
            thi,
          );
          fetchBase = hart.pc - REFILL;
          off = REFILL;
          traps++;
          continue;
        }
        writeAddress(x, rd2, fetchBase + off + 4);
        const target = pairToNumber(tlo, thi);
        const delta = target - fetchBase;
        if (delta >= 0 && delta < PAGE_SIZE) {
          off = delta | 0;
        } else {
          fetchBase = target - REFILL;
          off = REFILL;
        }
        continue;
      }

      case OP_IMM_32: {
        const v = x[(inst >> 14) & 62];
        const f3 = (inst >> 12) & 7;
        let r: number;
        if (f3 === 0) {
          r = (v + (inst >> 20)) | 0;
        } else if (f3 === 1) {
          if (inst >>> 25 !== 0) break;
          r = v << ((inst >> 20) & 31);
        } else if (f3 === 5) {
          const f7 = inst >>> 25;
          if (f7 === 0) r = (v >>> ((inst >> 20) & 31)) | 0;
          else if (f7 === 0x20) r = v >> ((inst >> 20) & 31);
          else break;
        } else break;
        x[rd2] = r;
        x[rd2 + 1] = r >> 31;
        off += 4;
        continue;
      }

      case OP_32: {
        const a = x[(inst >> 14) & 62];
        const b = x[(inst >> 19) & 62];
        const f7 = inst >>> 25;
        const f3 = (inst >> 12) & 7;
        let r: number;
        if (f7 === 0) {
          if (f3 === 0) r = (a + b) | 0;
          else if (f3 === 1) r = a << (b & 31);
          else if (f3 === 5) r = (a >>> (b & 31)) | 0;
          else break;
        } else if (f7 === 0x20) {
          if (f3 === 0) r = (a - b) | 0;
          else if (f3 === 5) r = a >> (b & 31);
          else break;
        } else if (f7 === 1) {
          if (f3 === 0) r = Math.imul(a, b);
          else if (f3 >= 4) r = divrem32(a, b, (f3 & 1) !== 0, f3 >= 6);
          else break;
        } else break;
        x[rd2] = r;
        x[rd2 + 1] = r >> 31;
        off += 4;
        continue;
      }

      case MISC_MEM: {
        // FENCE orders this hart's accesses for other workers; the
        // fetch path reads memory afresh, so FENCE.I has nothing to flush.
        const f3 = (inst >> 12) & 7;
        if (f3 === 0) Atomics.add(hart.control, 3, 0);
        else if (f3 !== 1) break;
        off += 4;
        continue;
      }

      case AMO:
      case SYSTEM: {
        hart.pc = fetchBase + off;
        const opcode = inst & 0x7f;
        const status =
          opcode === 0x2f
            ? executeAtomic(hart, inst)
            : ((inst >> 12) & 7) === 0
              ? executeSystem(hart, inst)
              : executeCsr(hart, inst, hart.instret + n - 1 - traps);
        if (status === STEP_DONE) {
          off += 4;
          continue;
        }
        fetchBase = hart.pc - REFILL;
        off = REFILL;
        if (status === STEP_TRAP) {
          traps++;
          continue;
        }
        // An exit, or a completed instruction that asked to end the slice.
        if (status === STEP_EXIT && hart.exitReason === EXIT_GUEST_PAGE_FAULT) n--;
        break interpret;
      }
    }
    // Anything that breaks out of the switch above is an illegal instruction.
    // stval gets the instruction's own bits: only 16 for a compressed encoding.
    hart.pc = fetchBase + off;
    hart.raiseException(CAUSE_ILLEGAL_INSTRUCTION, (inst & 3) === 3 ? inst : inst & 0xffff, 0);
    fetchBase = hart.pc - REFILL;
    off = REFILL;
    traps++;
  }

  x[0] = 0;
  x[1] = 0;
  hart.pc = fetchBase + off;
  hart.instret += n - traps;
  return n;
}
