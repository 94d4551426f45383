import {
  ACCESS_READ,
  ACCESS_WRITE,
  type AccessType,
  CAUSE_ILLEGAL_INSTRUCTION,
} from "./constants.js";
import { scratchDouble, scratchWords } from "./doubleword.js";
import type { Hart } from "./hart.js";
import { EXIT_GUEST_PAGE_FAULT, STEP_DONE, STEP_EXIT, STEP_TRAP } from "./hart.js";
import { TLB_MASK } from "./tlb.js";

/**
 * The slow paths of loads and stores: TLB misses, misaligned accesses (done
 * byte by byte, also across a page boundary, as QEMU and OpenSBI make them
 * appear to a guest) and accesses that leave guest RAM.
 */

/** TLB entry for the page holding (lo, hi), translating on a miss; -1 if none. */
export function entryFor(hart: Hart, lo: number, hi: number, access: AccessType): number {
  const tlb = hart.tlb;
  const e = (lo >>> 12) & TLB_MASK;
  const pageLo = lo & -4096;
  const tagLo = access === ACCESS_WRITE ? tlb.writeLo : tlb.readLo;
  const tagHi = access === ACCESS_WRITE ? tlb.writeHi : tlb.readHi;
  if (tagLo[e] === pageLo && tagHi[e] === hi) return e;
  return hart.translate(lo, hi, access);
}

/** Status after entryFor failed: an exit for a guest page fault, else a trap. */
export function failedAccessStatus(hart: Hart): number {
  return hart.exitReason === EXIT_GUEST_PAGE_FAULT ? STEP_EXIT : STEP_TRAP;
}

/** Byte i of an access starting at (lo, hi): its address as (lo, hi). */
function byteHi(lo: number, hi: number, i: number): number {
  return (lo + i) >>> 0 < lo >>> 0 ? (hi + 1) | 0 : hi;
}

/**
 * Resolve the one or two pages an access touches, before any byte moves, so
 * that a fault on the second page leaves memory untouched. Returns the entries
 * packed as first + second * 65536, or -1.
 */
function resolvePages(
  hart: Hart,
  lo: number,
  hi: number,
  size: number,
  access: AccessType,
): number {
  const first = entryFor(hart, lo, hi, access);
  if (first < 0) return -1;
  const lastLo = (lo + size - 1) | 0;
  if ((lastLo & -4096) === (lo & -4096)) return first + first * 65536;
  const lastPageLo = lastLo & -4096;
  const second = entryFor(hart, lastPageLo, byteHi(lo, hi, size - 1), access);
  if (second < 0) return -1;
  return first + second * 65536;
}

function byteAt(hart: Hart, entries: number, lo: number, i: number): number {
  const tlb = hart.tlb;
  const a = (lo + i) | 0;
  const e = (a & -4096) === (lo & -4096) ? entries & 0xffff : entries >>> 16;
  return tlb.u8[e][tlb.offset[e] + (a & 4095)];
}

function setByteAt(hart: Hart, entries: number, lo: number, i: number, value: number): void {
  const tlb = hart.tlb;
  const a = (lo + i) | 0;
  const e = (a & -4096) === (lo & -4096) ? entries & 0xffff : entries >>> 16;
  tlb.u8[e][tlb.offset[e] + (a & 4095)] = value;
}

export function loadSlow(hart: Hart, inst: number, lo: number, hi: number): number {
  const f3 = (inst >> 12) & 7;
  if (f3 === 7) {
    hart.raiseException(CAUSE_ILLEGAL_INSTRUCTION, inst, 0);
    return STEP_TRAP;
  }
  const size = 1 << (f3 & 3);
  const unsigned = f3 >= 4;
  const rd = (inst >> 7) & 31;
  const entries = resolvePages(hart, lo, hi, size, ACCESS_READ);
  if (entries < 0) {
    const f = hart.fault;
    f.size = size;
    f.rd = rd;
    f.unsigned = unsigned;
    return failedAccessStatus(hart);
  }
  let vlo = 0;
  let vhi = 0;
  if ((lo & (size - 1)) === 0) {
    // Naturally aligned (a TLB miss): one element access, like the fast path,
    // so that other harts never see it torn.
    const tlb = hart.tlb;
    const e = entries & 0xffff;
    const at = tlb.offset[e] + (lo & 4095);
    if (size === 1) vlo = tlb.u8[e][at];
    else if (size === 2) vlo = tlb.i16[e][at >> 1];
    else if (size === 4) vlo = tlb.i32[e][at >> 2];
    else {
      scratchDouble[0] = tlb.f64[e][at >> 3];
      vlo = scratchWords[0];
      vhi = scratchWords[1];
    }
  } else {
    for (let i = 0; i < size; i++) {
      const byte = byteAt(hart, entries, lo, i);
      if (i < 4) vlo |= byte << (8 * i);
      else vhi |= byte << (8 * (i - 4));
    }
  }
  if (size < 8) {
    const shift = 32 - 8 * size;
    if (size < 4) vlo = unsigned ? (vlo << shift) >>> shift : (vlo << shift) >> shift;
    vhi = unsigned ? 0 : vlo >> 31;
  }
  if (rd !== 0) {
    hart.x[2 * rd] = vlo;
    hart.x[2 * rd + 1] = vhi;
  }
  hart.pc += 4;
  return STEP_DONE;
}

export function storeSlow(hart: Hart, inst: number, lo: number, hi: number): number {
  const f3 = (inst >> 12) & 7;
  if (f3 > 3) {
    hart.raiseException(CAUSE_ILLEGAL_INSTRUCTION, inst, 0);
    return STEP_TRAP;
  }
  const size = 1 << f3;
  const rs2 = (inst >> 20) & 31;
  const vlo = hart.x[2 * rs2];
  const vhi = hart.x[2 * rs2 + 1];
  const entries = resolvePages(hart, lo, hi, size, ACCESS_WRITE);
  if (entries < 0) {
    const f = hart.fault;
    f.size = size;
    // Only the bytes the store writes, like storeHi for narrow stores.
    f.storeLo = size >= 4 ? vlo : vlo & (size === 1 ? 0xff : 0xffff);
    f.storeHi = size === 8 ? vhi : 0;
    return failedAccessStatus(hart);
  }
  if ((lo & (size - 1)) === 0) {
    // Naturally aligned (a TLB miss): one element access, as in loadSlow.
    const tlb = hart.tlb;
    const e = entries & 0xffff;
    const at = tlb.offset[e] + (lo & 4095);
    if (size === 1) tlb.u8[e][at] = vlo;
    else if (size === 2) tlb.i16[e][at >> 1] = vlo;
    else if (size === 4) tlb.i32[e][at >> 2] = vlo;
    else {
      scratchWords[0] = vlo;
      scratchWords[1] = vhi;
      tlb.f64[e][at >> 3] = scratchDouble[0];
    }
  } else {
    for (let i = 0; i < size; i++) {
      const byte = i < 4 ? (vlo >>> (8 * i)) & 0xff : (vhi >>> (8 * (i - 4))) & 0xff;
      setByteAt(hart, entries, lo, i, byte);
    }
  }
  hart.pc += 4;
  return STEP_DONE;
}
