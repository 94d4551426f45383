import {
  ACCESS_FETCH,
  ACCESS_READ,
  ACCESS_WRITE,
  type AccessType,
  CAUSE_FETCH_PAGE_FAULT,
  CAUSE_LOAD_PAGE_FAULT,
  CAUSE_STORE_PAGE_FAULT,
  PAGE_SIZE,
  PRIV_U,
  SSTATUS_MXR,
  SSTATUS_SUM,
} from "./constants.js";
import { scratchDouble, scratchWords } from "./doubleword.js";
import {
  accessFaultCause,
  CSR_PAIR_SATP,
  type Hart,
  PERMIT_FETCH,
  PERMIT_READ,
  PERMIT_WRITE,
} from "./hart.js";

/**
 * Sv39 (RISC-V privileged spec, "Sv39: Page-Based 39-bit Virtual-Memory
 * System"): the walk of the guest's three-level page table on a TLB miss.
 * Every PTE is read through the same translation hook as any guest access,
 * so a page table that stage 2 has not mapped yet (or that is USERFAULT)
 * stops the hart with a guest page fault exit on the PTE's address, and the
 * walk starts again once the hypervisor has resolved it. A and D are set by
 * the walk, atomically, as QEMU does (no Svade faults).
 */

const PTE_V = 1 << 0;
const PTE_R = 1 << 1;
const PTE_W = 1 << 2;
const PTE_X = 1 << 3;
const PTE_U = 1 << 4;
const PTE_A = 1 << 6;
const PTE_D = 1 << 7;
const TWO32 = 4294967296;
/** Physical addresses this machine can have: what a double holds exactly. */
const PHYSICAL_LIMIT = 2 ** 53;

function pageFault(hart: Hart, lo: number, hi: number, access: AccessType): number {
  const cause =
    access === ACCESS_FETCH
      ? CAUSE_FETCH_PAGE_FAULT
      : access === ACCESS_WRITE
        ? CAUSE_STORE_PAGE_FAULT
        : CAUSE_LOAD_PAGE_FAULT;
  hart.raiseException(cause, lo, hi);
  return -1;
}

function accessFault(hart: Hart, lo: number, hi: number, access: AccessType): number {
  hart.raiseException(accessFaultCause(access), lo, hi);
  return -1;
}

/** VPN[level] of the virtual address (lo, hi). */
function vpn(lo: number, hi: number, level: number): number {
  return level === 2 ? (lo >>> 30) | ((hi & 0x7f) << 2) : (lo >>> (12 + 9 * level)) & 0x1ff;
}

/** The accesses a leaf PTE grants at the hart's privilege, as PERMIT_* bits. */
function permissions(hart: Hart, pte: number): number {
  let permit = 0;
  if (pte & PTE_R || (pte & PTE_X && hart.sstatus & SSTATUS_MXR)) permit |= PERMIT_READ;
  if (pte & PTE_W) permit |= PERMIT_WRITE;
  if (pte & PTE_X) permit |= PERMIT_FETCH;
  if (hart.priv === PRIV_U) return pte & PTE_U ? permit : 0;
  // S-mode never executes user pages, and reads or writes them only with SUM.
  if (pte & PTE_U) return hart.sstatus & SSTATUS_SUM ? permit & ~PERMIT_FETCH : 0;
  return permit;
}

/**
 * Translate guest-virtual (lo, hi) for `access` through the page table satp
 * names and fill the TLB. Returns the TLB entry, or -1 after raising a page
 * or access fault in the guest or recording a guest page fault exit.
 */
export function translateSv39(hart: Hart, lo: number, hi: number, access: AccessType): number {
  // Bits 63:39 must all equal bit 38.
  const top = hi >> 6;
  if (top !== 0 && top !== -1) return pageFault(hart, lo, hi, access);
  const t = hart.translation;
  const satpLo = hart.csrPairs[CSR_PAIR_SATP];
  const satpHi = hart.csrPairs[CSR_PAIR_SATP + 1];
  walk: for (;;) {
    let table = ((satpHi & 0xfff) * TWO32 + (satpLo >>> 0)) * PAGE_SIZE;
    // Each level either descends, or ends the walk with a leaf or a fault.
    for (let level = 2; ; level--) {
      if (table >= PHYSICAL_LIMIT) return accessFault(hart, lo, hi, access);
      const index = vpn(lo, hi, level);
      const pteAddress = table + index * 8;
      if (!hart.memory.translate(table, ACCESS_READ, t)) {
        hart.recordGuestPageFault(pteAddress, ACCESS_READ, lo, hi, access, true);
        return -1;
      }
      const at = (t.offset + index * 8) >> 3;
      scratchDouble[0] = hart.regionFloat64(t.region)[at];
      const pte = scratchWords[0];
      const pteHi = scratchWords[1];
      // Bits 63:54 are reserved (no Svpbmt, no Svnapot); W without R is reserved.
      if ((pte & PTE_V) === 0 || pteHi >>> 22 !== 0 || (pte & (PTE_R | PTE_W)) === PTE_W) {
        return pageFault(hart, lo, hi, access);
      }
      // PPN: bits 53:10 of the PTE, as its low 32 bits and the 12 above.
      const ppnLo = (pte >>> 10) | (pteHi << 22);
      const ppnHi = (pteHi >>> 10) & 0xfff;
      if ((pte & (PTE_R | PTE_X)) === 0) {
        if (level === 0) return pageFault(hart, lo, hi, access);
        table = (ppnHi * TWO32 + (ppnLo >>> 0)) * PAGE_SIZE;
        continue;
      }
      let permit = permissions(hart, pte);
      if ((permit & (1 << access)) === 0) return pageFault(hart, lo, hi, access);
      // A superpage's PPN must be aligned to its size; the VPN supplies the rest.
      const superpageMask = (1 << (9 * level)) - 1;
      if ((ppnLo & superpageMask) !== 0) return pageFault(hart, lo, hi, access);
      const ppn = ppnHi * TWO32 + ((ppnLo | ((lo >>> 12) & superpageMask)) >>> 0);
      const wanted = pte | PTE_A | (access === ACCESS_WRITE ? PTE_D : 0);
      if (wanted !== pte) {
        // The walk writes the PTE: stage 2 must let it (a dirty-logged page
        // table is write-protected there, and this write makes it dirty).
        if (!t.writable && !hart.memory.translate(table, ACCESS_WRITE, t)) {
          hart.recordGuestPageFault(pteAddress, ACCESS_WRITE, lo, hi, access, true);
          return -1;
        }
        const expected = BigInt.asIntN(64, (BigInt(pteHi) << 32n) | BigInt(pte >>> 0));
        const updated = BigInt.asIntN(64, (BigInt(pteHi) << 32n) | BigInt(wanted >>> 0));
        const words = hart.regionBigInt64(t.region);
        // Another hart changed the PTE since it was read: walk again.
        if (Atomics.compareExchange(words, at, expected, updated) !== expected) continue walk;
      }
      // A page not yet dirty is writable only by a walk that marks it so.
      if ((wanted & PTE_D) === 0) permit &= ~PERMIT_WRITE;
      const gpaPage = ppn * PAGE_SIZE;
      if (gpaPage >= PHYSICAL_LIMIT) return accessFault(hart, lo, hi, access);
      return hart.mapPage(lo, hi, gpaPage, access, permit);
    }
  }
}
