import { PAGE_SIZE } from "../../host/host-memory.js";
import { assemble } from "../../riscv/asm/index.js";
import type { ProgramImage } from "../../riscv/elf/image.js";
import { physicalEntry } from "../../riscv/elf/index.js";
import { type GuestRam, RAM_BASE } from "../../vmm/guest-ram.js";
import { UART_BASE } from "../../vmm/uart16550.js";
import { UCALL_DONE, UCALL_EID, UCALL_SYNC } from "../../vmm/ucall.js";

/**
 * The migration workload: every vCPU dirties pages of its own region of
 * guest RAM as fast as it can and keeps a running checksum of what it reads
 * there, reporting each iteration with a sync ucall. The checksum folds in
 * every value read back, so it comes out right only if every page the vCPU
 * touched held exactly what it wrote there last (or the initial pattern):
 * a page lost, stale or applied twice by a migration changes it.
 *
 * vCPU 0 also drives the VM's devices, so that a migration must carry their
 * state and serve the hypervisor's own accesses to guest memory:
 *
 * - the UART: it sets LCR and the scratch register at boot and folds both
 *   into its checksum at the end (after a migration, on the destination);
 * - a read-only virtio-blk disk: every `ioEvery` iterations it reads one
 *   disk page into a random page of its region with a polling driver. The
 *   device's worker thread writes guest memory there: on a post-copy
 *   destination that is an asynchronous userfault when the page has not
 *   arrived yet. The checksum folds in the request's status, the device's
 *   Status register and the page's first word, and later stores read the
 *   rest of it.
 *
 * All its state lives in s-registers between ucalls, so a vCPU stopped at a
 * ucall is captured by its registers and pc; no disk request is ever in
 * flight there. Arithmetic is 32-bit (the *w instructions) so that
 * `expectedChecksums` computes the same values natively.
 */

/** RAM before this holds the program (linked at RAM_BASE + 2 MiB); the vCPUs' regions follow. */
export const DIRTIER_DATA_OFFSET = 3 << 20;

/** Guest-physical address of the virtio-blk register window (after the UART's). */
export const DIRTIER_BLK_BASE = UART_BASE + 0x1000;
/** The disk: 1 MiB of a pattern both ends of a migration generate (shared storage). */
export const DIRTIER_DISK_PAGES = 256;
/** The commands' default disk read period: often enough to meet post-copy a few hundred times a second. */
export const DEFAULT_IO_EVERY = 256;
/** What vCPU 0 writes to the UART's LCR (8N1) and scratch register. */
const UART_LCR_VALUE = 0x03;
const UART_SCR_VALUE = 0xa5;
/** The virtio-blk Status a running driver reads back: ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK. */
const BLK_STATUS_RUNNING = 15;

export interface DirtierParams {
  memBytes: number;
  vcpus: number;
  /** Iterations per vCPU before it reports done. */
  iterations: number;
  /** Words written per iteration. */
  storesPerIteration: number;
  /** vCPU 0 reads a disk page every this many iterations (0: never). */
  ioEvery: number;
}

const SOURCE = `
        .equ    QSIZE, 8
        .text
        .globl _start
_start:
        la      t0, params
        ld      s1, 0(t0)               # iterations
        ld      s2, 8(t0)               # stores per iteration
        ld      s3, 16(t0)              # pages per region
        li      s9, 0                   # disk read period (vCPU 0 only)
        li      s11, 0                  # vCPU 0: the virtio-blk registers
        bnez    a0, 1f
        ld      s9, 24(t0)
        li      s11, ${DIRTIER_BLK_BASE}
        li      t1, ${UART_BASE}
        li      t2, ${UART_LCR_VALUE}
        sb      t2, 3(t1)               # LCR
        li      t2, ${UART_SCR_VALUE}
        sb      t2, 7(t1)               # SCR
        beqz    s9, 1f
        call    blk_init
1:      mv      s10, s9                 # iterations until the next disk read
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
        beqz    s9, stores
        addi    s10, s10, -1
        bnez    s10, stores
        mv      s10, s9
        call    disk_read
stores:
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
        beqz    s11, done
        li      t1, ${UART_BASE}
        lbu     t3, 7(t1)               # SCR
        call    fold
        lbu     t3, 3(t1)               # LCR
        call    fold
done:
        mv      a0, s6
        li      a6, ${UCALL_DONE}
        li      a7, ${UCALL_EID}
        ecall
1:      j       1b

# s6 = s6 * 31 + t3 (32-bit)
fold:
        slliw   t4, s6, 5
        subw    t4, t4, s6
        addw    s6, t4, t3
        ret

# virtio-mmio setup (virtio 1.2, 4.2.3.1): VERSION_1 only, one queue of
# QSIZE, used-buffer interrupts off (the driver polls). Descriptors 0 and 2
# (request header, status byte) never change; 1 points at the data page.
blk_init:
        sw      zero, 0x070(s11)        # reset
1:      lw      t1, 0x070(s11)
        bnez    t1, 1b
        li      t1, 1
        sw      t1, 0x070(s11)          # ACKNOWLEDGE
        li      t1, 3
        sw      t1, 0x070(s11)          # DRIVER
        sw      zero, 0x024(s11)        # DriverFeaturesSel 0
        sw      zero, 0x020(s11)
        li      t1, 1
        sw      t1, 0x024(s11)          # DriverFeaturesSel 1
        sw      t1, 0x020(s11)          # VERSION_1
        li      t1, 11
        sw      t1, 0x070(s11)          # FEATURES_OK
        sw      zero, 0x030(s11)        # QueueSel 0
        li      t1, QSIZE
        sw      t1, 0x038(s11)          # QueueNum
        la      t1, desc
        la      t2, req
        sd      t2, 0(t1)
        li      t2, 16
        sw      t2, 8(t1)
        li      t2, 1                   # NEXT
        sh      t2, 12(t1)
        sh      t2, 14(t1)              # next: 1
        li      t2, 4096
        sw      t2, 24(t1)
        li      t2, 3                   # NEXT | WRITE
        sh      t2, 28(t1)
        li      t2, 2
        sh      t2, 30(t1)              # next: 2
        la      t2, status
        sd      t2, 32(t1)
        li      t2, 1
        sw      t2, 40(t1)
        li      t2, 2                   # WRITE
        sh      t2, 44(t1)
        la      t2, avail
        li      t3, 1                   # VIRTQ_AVAIL_F_NO_INTERRUPT
        sh      t3, 0(t2)
        sw      t1, 0x080(s11)
        srli    t1, t1, 32
        sw      t1, 0x084(s11)
        sw      t2, 0x090(s11)
        srli    t2, t2, 32
        sw      t2, 0x094(s11)
        la      t1, used
        sw      t1, 0x0a0(s11)
        srli    t1, t1, 32
        sw      t1, 0x0a4(s11)
        li      t1, 1
        sw      t1, 0x044(s11)          # QueueReady
        li      t1, 15
        sw      t1, 0x070(s11)          # DRIVER_OK
        ret

# One disk page into a random page of this region, both chosen from the
# xorshift state: the page from its bits 9 and up (its low bits chose the
# page of the last store, which is surely here), the disk page from bits 12
# and up.
disk_read:
        mv      s8, ra
        srliw   t1, s5, 9
        remuw   t1, t1, s3
        slli    t1, t1, 12
        add     t1, t1, s4
        la      t0, params
        ld      t2, 32(t0)              # disk pages
        srliw   t3, s5, 12
        remuw   t3, t3, t2
        slli    t3, t3, 3               # its first sector
        la      t0, req
        sw      zero, 0(t0)             # VIRTIO_BLK_T_IN
        sw      zero, 4(t0)
        sd      t3, 8(t0)
        la      t0, desc
        sd      t1, 16(t0)
        la      t5, status
        li      t2, 0xff
        sb      t2, 0(t5)
        la      t0, avail
        lhu     t2, 2(t0)
        andi    t3, t2, QSIZE - 1
        slli    t3, t3, 1
        add     t3, t3, t0
        sh      zero, 4(t3)             # ring[idx % QSIZE] = descriptor 0
        addi    t2, t2, 1
        slli    t2, t2, 48
        srli    t2, t2, 48
        fence   w, w
        sh      t2, 2(t0)               # idx + 1
        fence   w, o
        sw      zero, 0x050(s11)        # QueueNotify 0
        la      t0, used
1:      lhu     t3, 2(t0)
        bne     t3, t2, 1b
        fence   r, r
        lwu     t3, 0(t1)
        call    fold
        lbu     t3, 0(t5)
        call    fold
        lw      t3, 0x070(s11)
        call    fold
        mv      ra, s8
        ret

        .data
        .balign 4096
desc:   .zero   16 * QSIZE
avail:  .zero   6 + 2 * QSIZE
        .balign 4
used:   .zero   6 + 8 * QSIZE
        .balign 8
req:    .zero   16
status: .zero   8
params: .dword  0, 0, 0, 0, 0
`;

export function dirtierImage(): ProgramImage {
  return assemble(SOURCE, { fileName: "dirtier.s" }).image;
}

/** Write the program and its params into guest RAM; returns the entry point. */
export function loadDirtier(ram: GuestRam, params: DirtierParams): number {
  const image = dirtierImage();
  for (const segment of image.segments) {
    const bytes = new Uint8Array(segment.memSize);
    bytes.set(segment.data);
    ram.write(segment.physAddr, bytes);
  }
  ram.write(Number(image.symbols.get("params")), dirtierParamsBytes(params));
  return physicalEntry(image);
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
  const bytes = new Uint8Array(40);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, BigInt(p.iterations), true);
  view.setBigUint64(8, BigInt(p.storesPerIteration), true);
  view.setBigUint64(16, BigInt(regionPages(p)), true);
  view.setBigUint64(24, BigInt(p.ioEvery), true);
  view.setBigUint64(32, BigInt(DIRTIER_DISK_PAGES), true);
  return bytes;
}

/** Word `word` of disk page `page`: every word differs, so a misplaced read shows. */
export function diskWord(page: number, word: number): number {
  return (Math.imul(page + 1, 0x2c1b_3c6d) ^ Math.imul(word + 1, 0x297a_2d39)) >>> 0;
}

/** The disk's contents. */
export function dirtierDisk(): Uint8Array {
  const words = new Uint32Array(DIRTIER_DISK_PAGES * 1024);
  for (let page = 0; page < DIRTIER_DISK_PAGES; page++) {
    for (let w = 0; w < 1024; w++) words[page * 1024 + w] = diskWord(page, w);
  }
  return new Uint8Array(words.buffer);
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

/** The parameters a migration's two ends must agree on, in words. */
export function dirtierWorkload(
  p: Pick<DirtierParams, "iterations" | "storesPerIteration" | "ioEvery">,
): string {
  return `${p.iterations} iterations of ${p.storesPerIteration} stores, a disk read every ${p.ioEvery}`;
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
    const fold = (value: number) => (sum = (Math.imul(sum, 31) + value) | 0);
    const ioEvery = hart === 0 ? p.ioEvery : 0;
    let untilRead = ioEvery;
    for (let it = 0; it < p.iterations; it++) {
      if (ioEvery > 0 && --untilRead === 0) {
        untilRead = ioEvery;
        const page = (x >>> 9) % pages;
        const diskPage = (x >>> 12) % DIRTIER_DISK_PAGES;
        for (let w = 0; w < 1024; w++) {
          values[page * 1024 + w] = diskWord(diskPage, w);
          written[(page * 1024 + w) >>> 5] |= 1 << (w & 31);
        }
        fold(values[page * 1024]);
        fold(0); // VIRTIO_BLK_S_OK
        fold(BLK_STATUS_RUNNING);
      }
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
    if (hart === 0) {
      fold(UART_SCR_VALUE);
      fold(UART_LCR_VALUE);
    }
    checksums.push(sum >>> 0);
  }
  return checksums;
}
