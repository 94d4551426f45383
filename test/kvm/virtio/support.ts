import assert from "node:assert/strict";
import { PAGE_SIZE } from "../../../src/host/host-memory.js";
import {
  createVirtioBlk,
  startBlockDeviceWorker,
  type BlockDeviceWorker,
  type VirtioBlkDevice,
} from "../../../src/kvm/virtio/index.js";
import { EXIT_RISCV_SBI } from "../../../src/kvm/uapi.js";
import type { Vm } from "../../../src/kvm/vm.js";
import { CTRL_IRQ_PENDING, CTRL_WAKE } from "../../../src/riscv/cpu/hart-control.js";
import { createTestVm, type TestVm, UCALL_EID } from "../support.js";

export const BLK_BASE = 0x1000_1000;
export const QSIZE = 8;
/** The disk: 64 sectors (32 KiB) of a deterministic pattern. */
export const DISK_SECTORS = 64;

/** Operations of the guest driver's command loop (see GUEST_DRIVER). */
export const OP_INIT = 1;
export const OP_PREPARE = 2;
export const OP_PUBLISH = 3;
export const OP_WAIT = 4;
export const OP_CHECKSUM = 5;
export const OP_READ = 6;
export const OP_WRITE_REG = 7;
export const OP_WAIT_IRQ = 8;
export const OP_FILL = 9;

/**
 * A virtio-blk driver for the guest, in RISC-V assembly. It runs a command
 * loop: it reports the last result with a ucall (a0, a1), then executes the
 * command the test left in `cmd` (op and five arguments, doublewords):
 *
 * - INIT(features): reset, ACKNOWLEDGE, DRIVER, accept `features & offered`
 *   (low word) and VERSION_1, FEATURES_OK (checked), set up queue 0 of QSIZE
 *   entries, DRIVER_OK; enable SEIE and STIE. Result: the status read back.
 * - PREPARE(type, sector, buf, len, dataFlags): the request header and a
 *   three-descriptor chain at descriptors 0-2 (header, data, status; two
 *   when len is 0); the status byte is poisoned with 0xff.
 * - PUBLISH(head): the head into the available ring, idx + 1, QueueNotify.
 * - WAIT: sleep (WFI) until the used ring moves, with a watchdog timer; then
 *   acknowledge InterruptStatus. Result: status byte, used length.
 * - CHECKSUM(buf, len): FNV-1a over doublewords. READ(addr): lw.
 * - WRITE_REG(offset, value): sw into the register window.
 * - WAIT_IRQ: WFI until SEIP; result: InterruptStatus (then acknowledged), sip.
 * - FILL(buf, len, seed): doubleword i = seed + i * 0x9e3779b97f4a7c15.
 */
export const GUEST_DRIVER = `
        .equ    BASE, ${BLK_BASE}
        .equ    QSIZE, ${QSIZE}
        .equ    UCALL, ${UCALL_EID}
        .equ    SBI_TIME, 0x54494d45
        .equ    WATCHDOG, 50000000      # 5 s at 10 MHz

        .text
        .globl  _start
_start:
        li      s0, BASE
        li      s1, 0                   # next available index
        li      s2, 0                   # next used index to consume
        li      a0, 0
        li      a1, 0
loop:
        li      a7, UCALL
        ecall
        la      t0, cmd
        ld      t1, 0(t0)
        ld      a0, 8(t0)
        ld      a1, 16(t0)
        ld      a2, 24(t0)
        ld      a3, 32(t0)
        ld      a4, 40(t0)
        li      t2, ${OP_INIT}
        beq     t1, t2, op_init
        li      t2, ${OP_PREPARE}
        beq     t1, t2, op_prepare
        li      t2, ${OP_PUBLISH}
        beq     t1, t2, op_publish
        li      t2, ${OP_WAIT}
        beq     t1, t2, op_wait
        li      t2, ${OP_CHECKSUM}
        beq     t1, t2, op_checksum
        li      t2, ${OP_READ}
        beq     t1, t2, op_read
        li      t2, ${OP_WRITE_REG}
        beq     t1, t2, op_write_reg
        li      t2, ${OP_WAIT_IRQ}
        beq     t1, t2, op_wait_irq
        li      t2, ${OP_FILL}
        beq     t1, t2, op_fill
        li      a0, -1
        j       loop

op_init:
        li      t0, 0x74726976
        lw      t1, 0x000(s0)
        bne     t0, t1, init_fail
        li      t0, 2
        lw      t1, 0x004(s0)
        bne     t0, t1, init_fail
        lw      t1, 0x008(s0)
        bne     t0, t1, init_fail
        sw      zero, 0x070(s0)         # reset
1:      lw      t1, 0x070(s0)           # wait until it reads back 0
        bnez    t1, 1b
        li      t0, 1
        sw      t0, 0x070(s0)           # ACKNOWLEDGE
        li      t0, 3
        sw      t0, 0x070(s0)           # DRIVER
        sw      zero, 0x014(s0)         # DeviceFeaturesSel 0
        lw      t1, 0x010(s0)
        and     t1, t1, a0
        sw      zero, 0x024(s0)
        sw      t1, 0x020(s0)
        li      t0, 1
        sw      t0, 0x014(s0)           # DeviceFeaturesSel 1
        lw      t2, 0x010(s0)
        andi    t2, t2, 1               # VERSION_1
        sw      t0, 0x024(s0)
        sw      t2, 0x020(s0)
        li      t0, 11
        sw      t0, 0x070(s0)           # FEATURES_OK
        lw      t1, 0x070(s0)
        andi    t1, t1, 8
        beqz    t1, init_fail
        sw      zero, 0x030(s0)         # QueueSel 0
        lw      t1, 0x034(s0)
        li      t0, QSIZE
        blt     t1, t0, init_fail
        sw      t0, 0x038(s0)           # QueueNum
        # A fresh queue starts at index 0, and its rings are set before the
        # device may look at them (DRIVER_OK lets it serve at once).
        li      s1, 0
        li      s2, 0
        la      t0, avail
        sw      zero, 0(t0)
        la      t0, used
        sw      zero, 0(t0)
        la      t1, desc
        sw      t1, 0x080(s0)
        srli    t1, t1, 32
        sw      t1, 0x084(s0)
        la      t1, avail
        sw      t1, 0x090(s0)
        srli    t1, t1, 32
        sw      t1, 0x094(s0)
        la      t1, used
        sw      t1, 0x0a0(s0)
        srli    t1, t1, 32
        sw      t1, 0x0a4(s0)
        li      t0, 1
        sw      t0, 0x044(s0)           # QueueReady
        lw      t1, 0x044(s0)
        beqz    t1, init_fail
        li      t0, 15
        sw      t0, 0x070(s0)           # DRIVER_OK
        li      t0, 0x220               # SEIE | STIE
        csrs    sie, t0
        lw      a0, 0x070(s0)
        li      a1, 0
        j       loop
init_fail:
        li      a0, -2
        li      a1, 0
        j       loop

op_prepare:
        la      t0, req
        sw      a0, 0(t0)               # type
        sw      zero, 4(t0)
        sd      a1, 8(t0)               # sector
        la      t1, desc
        sd      t0, 0(t1)               # 0: header, device-readable
        li      t2, 16
        sw      t2, 8(t1)
        li      t2, 1                   # NEXT
        sh      t2, 12(t1)
        li      t2, 2
        beqz    a3, 1f
        li      t2, 1
1:      sh      t2, 14(t1)
        sd      a2, 16(t1)              # 1: data
        sw      a3, 24(t1)
        ori     t2, a4, 1
        sh      t2, 28(t1)
        li      t2, 2
        sh      t2, 30(t1)
        la      t3, status              # 2: status, device-writable
        li      t2, 0xff
        sb      t2, 0(t3)
        sd      t3, 32(t1)
        li      t2, 1
        sw      t2, 40(t1)
        li      t2, 2
        sh      t2, 44(t1)
        sh      zero, 46(t1)
        li      a0, 0
        li      a1, 0
        j       loop

op_publish:
        la      t0, avail
        andi    t1, s1, QSIZE - 1
        slli    t1, t1, 1
        add     t1, t1, t0
        sh      a0, 4(t1)               # ring[idx % QSIZE] = head
        fence
        addi    s1, s1, 1
        sh      s1, 2(t0)               # idx
        fence
        sw      zero, 0x050(s0)         # QueueNotify: queue 0
        li      a0, 0
        li      a1, 0
        j       loop

op_wait:
        rdtime  s3
        li      t0, WATCHDOG
        add     s3, s3, t0
        mv      a0, s3
        li      a6, 0
        li      a7, SBI_TIME
        ecall                           # set_timer(deadline)
        la      t0, used
        li      t4, 0xffff
1:      fence
        lhu     t1, 2(t0)
        and     t2, s2, t4
        bne     t1, t2, 2f
        rdtime  t3
        bgeu    t3, s3, watchdog
        wfi
        j       1b
2:      andi    t2, s2, QSIZE - 1
        slli    t2, t2, 3
        add     t2, t2, t0
        lw      s4, 8(t2)               # used length
        addi    s2, s2, 1
        lw      t3, 0x060(s0)           # InterruptStatus
        sw      t3, 0x064(s0)           # InterruptACK
        li      a0, -1
        li      a6, 0
        li      a7, SBI_TIME
        ecall                           # disarm the watchdog
        la      t0, status
        lbu     a0, 0(t0)
        mv      a1, s4
        j       loop
watchdog:
        li      a0, 0xdead
        li      a1, 0xdead
        j       loop

op_wait_irq:
        rdtime  s3
        li      t0, WATCHDOG
        add     s3, s3, t0
        mv      a0, s3
        li      a6, 0
        li      a7, SBI_TIME
        ecall
1:      csrr    t1, sip
        andi    t1, t1, 0x200
        bnez    t1, 2f
        rdtime  t3
        bgeu    t3, s3, watchdog
        wfi
        j       1b
2:      csrr    s5, sip                 # before the acknowledgement lowers SEIP
        lw      s4, 0x060(s0)
        sw      s4, 0x064(s0)
        li      a0, -1
        li      a6, 0
        li      a7, SBI_TIME
        ecall
        mv      a0, s4
        mv      a1, s5
        j       loop

op_checksum:
        li      t0, 0xcbf29ce484222325
        li      t1, 0x100000001b3
1:      beqz    a1, 2f
        ld      t2, 0(a0)
        xor     t0, t0, t2
        mul     t0, t0, t1
        addi    a0, a0, 8
        addi    a1, a1, -8
        j       1b
2:      mv      a0, t0
        li      a1, 0
        j       loop

op_read:
        lw      a0, 0(a0)
        li      a1, 0
        j       loop

op_write_reg:
        add     t0, s0, a0
        sw      a1, 0(t0)
        li      a0, 0
        li      a1, 0
        j       loop

op_fill:
        li      t1, 0x9e3779b97f4a7c15
        mv      t2, a2
1:      beqz    a1, 2f
        sd      t2, 0(a0)
        add     t2, t2, t1
        addi    a0, a0, 8
        addi    a1, a1, -8
        j       1b
2:      li      a0, 0
        li      a1, 0
        j       loop

        .data
        .balign 4096
desc:   .zero   4096
avail:  .zero   4096
used:   .zero   4096
req:    .zero   16
status: .zero   8
cmd:    .zero   64
        .balign 4096
buf0:   .zero   8192
buf1:   .zero   8192
`;

/** FNV-1a over little-endian doublewords, as the guest's CHECKSUM computes it. */
export function checksum(bytes: Uint8Array): bigint {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let h = 0xcbf29ce484222325n;
  for (let i = 0; i + 8 <= bytes.length; i += 8) {
    h = BigInt.asUintN(64, (h ^ view.getBigUint64(i, true)) * 0x100000001b3n);
  }
  return h;
}

/** The guest's FILL pattern. */
export function fillPattern(length: number, seed: bigint): Uint8Array {
  const out = new Uint8Array(length);
  const view = new DataView(out.buffer);
  let v = seed;
  for (let i = 0; i < length; i += 8) {
    view.setBigUint64(i, v, true);
    v = BigInt.asUintN(64, v + 0x9e3779b97f4a7c15n);
  }
  return out;
}

/** The prepared disk image: every byte depends on its sector and position. */
export function diskImage(sectors = DISK_SECTORS): Uint8Array {
  const image = new Uint8Array(sectors * 512);
  for (let i = 0; i < image.length; i++) image[i] = ((i >> 9) * 37 + (i & 511) * 11 + 5) & 0xff;
  return image;
}

export interface BlkTestVm extends TestVm {
  device: VirtioBlkDevice;
  disk: number;
  worker: BlockDeviceWorker;
  /** Guest addresses of the driver's areas. */
  at: (symbol: string) => number;
}

/**
 * A test VM running GUEST_DRIVER, with a virtio-blk device at BLK_BASE on a
 * memfd holding diskImage(), served by a block device worker thread.
 */
export async function createBlkTestVm(
  options: { readOnly?: boolean; sectors?: number } = {},
): Promise<BlkTestVm> {
  const t = createTestVm(GUEST_DRIVER);
  const image = diskImage(options.sectors);
  const disk = t.host.memfdCreate("disk", image.length);
  t.host.memfds.pwrite(disk, image, 0);
  const device = createVirtioBlk(t.vm, {
    gpa: BLK_BASE,
    memfd: disk,
    readOnly: options.readOnly,
    serial: "faultline-test-disk",
  });
  const worker = startBlockDeviceWorker(t.kvm, t.vm, device);
  await worker.online;
  const at = (symbol: string) => Number(t.symbols.get(symbol));
  // Run to the command loop's first report.
  guestStep(t, 0);
  return { ...t, device, disk, worker, at };
}

/** Leave a command for the guest driver and run it to its next report: (a0, a1). */
export function guestStep(t: TestVm, op: number, ...args: (number | bigint)[]): [bigint, bigint] {
  if (op !== 0) {
    const cmd = new Uint8Array(48);
    const view = new DataView(cmd.buffer);
    view.setBigUint64(0, BigInt(op), true);
    args.forEach((a, i) => view.setBigUint64(8 + 8 * i, BigInt.asUintN(64, BigInt(a)), true));
    t.vm.accessGuest(Number(t.symbols.get("cmd")), cmd, true, true);
  }
  t.vcpu.runGuest();
  assert.equal(t.vcpu.run.exitReason, EXIT_RISCV_SBI, "expected an SBI exit");
  const sbi = t.vcpu.run.riscvSbi;
  assert.equal(sbi.extensionId, UCALL_EID, "expected a ucall");
  sbi.ret[0] = 0n;
  return [sbi.args[0], sbi.args[1]];
}

/** A whole request through the guest driver: PREPARE, PUBLISH(0), WAIT. Returns (status, used length). */
export function guestRequest(
  t: TestVm,
  type: number,
  sector: number | bigint,
  buf: number,
  len: number,
  dataFlags: number,
): [number, number] {
  guestStep(t, OP_PREPARE, type, sector, buf, len, dataFlags);
  guestStep(t, OP_PUBLISH, 0);
  const [status, used] = guestStep(t, OP_WAIT);
  assert.notEqual(status, 0xdeadn, "the request did not complete within the watchdog");
  return [Number(status), Number(used)];
}

/** The used ring's idx as the guest sees it (read without waiting). */
export function usedIdx(t: BlkTestVm): number {
  const bytes = new Uint8Array(2);
  t.vm.accessGuest(t.at("used") + 2, bytes, false, true);
  return bytes[0] | (bytes[1] << 8);
}

/** Read guest memory (no waiting: the page must not be userfault). */
export function readGuest(vm: Vm, gpa: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  vm.accessGuest(gpa, out, false, true);
  return out;
}

export function writeGuest(vm: Vm, gpa: number, bytes: Uint8Array): void {
  vm.accessGuest(gpa, bytes, true, true);
}

/**
 * Wait (without blocking the event loop) until hart 0 has SEIP pending or
 * `timeoutMs` passes; true when it is pending.
 */
export async function waitForSeip(vm: Vm, timeoutMs = 5000): Promise<boolean> {
  const control = vm.vcpuList()[0].control;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const seq = Atomics.load(control, CTRL_WAKE);
    if ((Atomics.load(control, CTRL_IRQ_PENDING) & (1 << 9)) !== 0) return true;
    const left = deadline - performance.now();
    if (left <= 0) return false;
    const waiting = Atomics.waitAsync(control, CTRL_WAKE, seq, left);
    if (waiting.async) await waiting.value;
  }
}

export { PAGE_SIZE };

/** Poll `condition` every millisecond (tests only) until it holds; false after `timeoutMs`. */
export async function until(condition: () => boolean, timeoutMs = 5000): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return true;
}

/**
 * A driver written in TypeScript, for what the assembly one does not build:
 * it reaches the registers through the VM's MMIO bus and the rings through
 * guest memory (the guest driver's areas; the vCPU is not running).
 */
export class TsDriver {
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  private nextAvail = 0;
  private nextUsed = 0;

  constructor(
    readonly t: BlkTestVm,
    readonly qsize = QSIZE,
    readonly base = BLK_BASE,
  ) {
    this.desc = t.at("desc");
    this.avail = t.at("avail");
    this.used = t.at("used");
  }

  reg(offset: number, size = 4): number {
    return this.t.vm.ioBus.read(this.base + offset, size);
  }

  setReg(offset: number, value: number): void {
    this.t.vm.ioBus.write(this.base + offset, 4, value);
  }

  /** The initialization of 3.1.1 with `features` (low word) and VERSION_1; returns the status. */
  init(features = 0xffff_ffff): number {
    this.setReg(0x70, 0);
    assert.equal(this.reg(0x70), 0, "the reset completed at once (the worker was idle)");
    this.setReg(0x70, 1);
    this.setReg(0x70, 3);
    this.setReg(0x14, 0);
    this.setReg(0x24, 0);
    this.setReg(0x20, this.reg(0x10) & features);
    this.setReg(0x24, 1);
    this.setReg(0x20, 1);
    this.setReg(0x70, 11);
    this.setReg(0x30, 0);
    this.setReg(0x38, this.qsize);
    for (const [reg, at] of [
      [0x80, this.desc],
      [0x90, this.avail],
      [0xa0, this.used],
    ]) {
      this.setReg(reg, at % 2 ** 32);
      this.setReg(reg + 4, Math.floor(at / 2 ** 32));
    }
    writeGuest(this.t.vm, this.avail, new Uint8Array(4));
    writeGuest(this.t.vm, this.used, new Uint8Array(4));
    this.nextAvail = 0;
    this.nextUsed = 0;
    this.setReg(0x44, 1);
    this.setReg(0x70, 15);
    return this.reg(0x70);
  }

  /** Write descriptor `index` of the table at `table` (default: the queue's own). */
  writeDesc(index: number, addr: number, len: number, flags: number, next = 0, table = this.desc) {
    const bytes = new Uint8Array(16);
    const view = new DataView(bytes.buffer);
    view.setBigUint64(0, BigInt(addr), true);
    view.setUint32(8, len, true);
    view.setUint16(12, flags, true);
    view.setUint16(14, next, true);
    writeGuest(this.t.vm, table + 16 * index, bytes);
  }

  /** A request header at `at`. */
  writeHeader(at: number, type: number, sector: number): void {
    const bytes = new Uint8Array(16);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, type, true);
    view.setBigUint64(8, BigInt(sector), true);
    writeGuest(this.t.vm, at, bytes);
  }

  setAvailFlags(flags: number): void {
    writeGuest(this.t.vm, this.avail, new Uint8Array([flags & 0xff, flags >> 8]));
  }

  /** Put `head` on the available ring and notify. */
  publish(head: number): void {
    const entry = this.avail + 4 + 2 * (this.nextAvail % this.qsize);
    writeGuest(this.t.vm, entry, new Uint8Array([head & 0xff, head >> 8]));
    this.nextAvail = (this.nextAvail + 1) & 0xffff;
    writeGuest(
      this.t.vm,
      this.avail + 2,
      new Uint8Array([this.nextAvail & 0xff, this.nextAvail >> 8]),
    );
    this.setReg(0x50, 0);
  }

  /** Wait for the next used element: (id, len). */
  async nextUsedElement(timeoutMs = 5000): Promise<{ id: number; len: number }> {
    const view = () => new DataView(readGuest(this.t.vm, this.used, 4 + 8 * this.qsize).buffer);
    const ok = await until(() => view().getUint16(2, true) !== this.nextUsed, timeoutMs);
    assert.ok(ok, "no used element within the timeout");
    const v = view();
    const at = 4 + 8 * (this.nextUsed % this.qsize);
    this.nextUsed = (this.nextUsed + 1) & 0xffff;
    return { id: v.getUint32(at, true), len: v.getUint32(at + 4, true) };
  }

  /** Acknowledge every InterruptStatus bit; returns them. */
  acknowledge(): number {
    const bits = this.reg(0x60);
    this.setReg(0x64, bits);
    return bits;
  }
}
