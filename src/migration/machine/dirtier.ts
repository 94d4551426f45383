import { PAGE_SIZE } from "../../host/host-memory.js";
import { assemble } from "../../riscv/asm/index.js";
import type { ProgramImage } from "../../riscv/elf/image.js";
import { RAM_BASE } from "../../vmm/guest-ram.js";
import { UCALL_DONE, UCALL_EID, UCALL_SYNC } from "../../vmm/ucall.js";

/**
 * The migration workload: every vCPU dirties pages of its own region of
 * guest RAM as fast as it can and keeps a running checksum of what it reads
 * there, reporting each iteration with a sync ucall. The checksum folds in
 * every value read back, so it comes out right only if every page the vCPU
 * touched held exactly what it wrote there last (or the initial pattern):
 * a page lost, stale or applied twice by a migration changes it.
 *
 * All its state lives in s-registers between ucalls, so a vCPU stopped at a
 * ucall is captured by its registers and pc. Arithmetic is 32-bit (the *w
 * instructions) so that `expectedChecksums` computes the same values natively.
 */

/** RAM before this holds the program (linked at RAM_BASE + 2 MiB); the vCPUs' regions follow. */
export const DIRTIER_DATA_OFFSET = 3 << 20;

export interface DirtierParams {
  memBytes: number;
  vcpus: number;
  /** Iterations per vCPU before it reports done. */
  iterations: number;
  /** Words written per iteration. */
  storesPerIteration: number;
}

const SOURCE = `
        .text
        .globl _start
_start:
        la      t0, params
        ld      s1, 0(t0)               # iterations
        ld      s2, 8(t0)               # stores per iteration
        ld      s3, 16(t0)              # pages per region
        li      s4, ${RAM_BASE + DIRTIER_DATA_OFFSET}
        mul     t1, a0, s3
        slli    t1, t1, 12
        add     s4, s4, t1              # this vCPU's region
        li      t1, 0x9e3779b9
        addiw   s5, a0, 1
        mulw    s5, s5, t1              # xorshift state, never 0
        li      s6, 0                   # checksum
        li      s7, 0                   # iterations done
iteration:
        mv      s8, s2
store:
        sllw    t0, s5, 13
        xor     s5, s5, t0
        srliw   t0, s5, 17
        xor     s5, s5, t0
        sllw    t0, s5, 5
        xor     s5, s5, t0
        remuw   t1, s5, s3
        slli    t1, t1, 12
        srliw   t2, s5, 22
        slli    t2, t2, 2
        add     t1, t1, t2
        add     t1, t1, s4
        lwu     t3, 0(t1)
        slliw   t4, s6, 5
        subw    t4, t4, s6
        addw    s6, t4, t3
        xor     t5, s5, s7
        sw      t5, 0(t1)
        addi    s8, s8, -1
        bnez    s8, store
        addi    s7, s7, 1
        mv      a0, s7
        mv      a1, s6
        li      a6, ${UCALL_SYNC}
        li      a7, ${UCALL_EID}
        ecall
        bltu    s7, s1, iteration
        mv      a0, s6
        li      a6, ${UCALL_DONE}
        li      a7, ${UCALL_EID}
        ecall
1:      j       1b
        .data
        .balign 8
params: .dword  0, 0, 0
`;

export function dirtierImage(): ProgramImage {
  return assemble(SOURCE, { fileName: "dirtier.s" }).image;
}

/** Pages of each vCPU's region. */
export function regionPages(p: DirtierParams): number {
  const pages = Math.floor((p.memBytes - DIRTIER_DATA_OFFSET) / PAGE_SIZE / p.vcpus);
  if (pages < 1)
    throw new RangeError(`${p.memBytes} bytes of RAM leave no region for ${p.vcpus} vCPUs`);
  return pages;
}

/** The params block, little-endian doublewords, at symbol `params`. */
export function dirtierParamsBytes(p: DirtierParams): Uint8Array {
  const bytes = new Uint8Array(24);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, BigInt(p.iterations), true);
  view.setBigUint64(8, BigInt(p.storesPerIteration), true);
  view.setBigUint64(16, BigInt(regionPages(p)), true);
  return bytes;
}

/** The value every 32-bit word of data page `page` (counted from RAM_BASE) starts with. */
export function initialWord(page: number): number {
  return (Math.imul(page + 1, 0x9e37_79b1) | 1) >>> 0;
}

/** Fill `buffer` (whole pages) with the initial pattern of pages from `firstPage`. */
export function fillInitialPattern(buffer: Uint8Array, firstPage: number): void {
  const words = new Uint32Array(buffer.buffer, buffer.byteOffset, buffer.length >> 2);
  for (let p = 0; p < buffer.length / PAGE_SIZE; p++) {
    words.fill(initialWord(firstPage + p), p * 1024, (p + 1) * 1024);
  }
}

/**
 * What the guest computes, natively: every vCPU's checksum. One vCPU's region
 * at a time in a dense array of its words (with a bitmap of those written),
 * so a 1 GiB guest costs 256 MiB per vCPU at most, once.
 */
export function expectedChecksums(p: DirtierParams): number[] {
  const pages = regionPages(p);
  const words = pages * 1024;
  const values = new Uint32Array(words);
  const written = new Uint32Array(Math.ceil(words / 32));
  const checksums: number[] = [];
  for (let hart = 0; hart < p.vcpus; hart++) {
    if (hart > 0) written.fill(0);
    const firstPage = DIRTIER_DATA_OFFSET / PAGE_SIZE + hart * pages;
    let x = Math.imul(hart + 1, 0x9e37_79b9) | 0;
    let sum = 0;
    for (let it = 0; it < p.iterations; it++) {
      for (let s = 0; s < p.storesPerIteration; s++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        const page = (x >>> 0) % pages;
        const w = page * 1024 + (x >>> 22);
        const bit = 1 << (w & 31);
        const old = written[w >>> 5] & bit ? values[w] : initialWord(firstPage + page);
        sum = (Math.imul(sum, 31) + old) | 0;
        values[w] = (x ^ it) >>> 0;
        written[w >>> 5] |= bit;
      }
    }
    checksums.push(sum >>> 0);
  }
  return checksums;
}
