/**
 * The CPU's contract with the layer above: accesses that miss in the
 * translation hook exit with enough detail to emulate MMIO and resume, and the
 * software TLB sees a changed mapping once flushed, re-translating stores to
 * pages that were mapped read-only (dirty logging).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  ACCESS_FETCH,
  ACCESS_READ,
  ACCESS_WRITE,
  type AccessType,
  PAGE_SIZE,
} from "../../../src/riscv/cpu/constants.js";
import { EXIT_GUEST_PAGE_FAULT, EXIT_SBI } from "../../../src/riscv/cpu/hart.js";
import type { Translation } from "../../../src/riscv/cpu/physical-memory.js";
import { FlatMemory } from "../../../src/riscv/testing/flat-memory.js";
import { hex, makeGuest, RAM_BASE, regIndex } from "./guest.js";

const UART = 0x1000_0000;

void describe("MMIO exits", () => {
  const loads: [string, number, boolean, bigint, bigint][] = [
    // [instruction, size, unsigned, device value, expected rd]
    ["lb", 1, false, 0x1234_5680n, 0xffff_ffff_ffff_ff80n],
    ["lbu", 1, true, 0x1234_5680n, 0x80n],
    ["lh", 2, false, 0xabcd_8001n, 0xffff_ffff_ffff_8001n],
    ["lhu", 2, true, 0xabcd_8001n, 0x8001n],
    ["lw", 4, false, 0x1_8000_0001n, 0xffff_ffff_8000_0001n],
    ["lwu", 4, true, 0x1_8000_0001n, 0x8000_0001n],
    ["ld", 8, false, 0xfedc_ba98_7654_3210n, 0xfedc_ba98_7654_3210n],
    ["lb", 1, false, 0x7fn, 0x7fn],
  ];
  for (const [op, size, unsigned, device, want] of loads) {
    void test(`${op}: exit with gpa/size/rd/unsigned, completeMmioLoad extends and resumes`, () => {
      const g = makeGuest(`
        li t0, ${UART}
        li a3, 99
        rdinstret s2
        mmio: ${op} a3, 5(t0)
        rdinstret s3
      `);
      assert.equal(g.run(), EXIT_GUEST_PAGE_FAULT);
      const f = g.hart.fault;
      assert.equal(f.gpa, UART + 5);
      assert.equal(f.access, ACCESS_READ);
      assert.equal(f.size, size);
      assert.equal(f.rd, regIndex("a3"));
      assert.equal(f.unsigned, unsigned);
      assert.equal(f.atomic, false);
      assert.equal(g.hart.pc, g.sym("mmio"), "pc stays on the load");
      assert.equal(g.reg("a3"), 99n, "rd is written only on completion");
      g.hart.completeMmioLoad(device);
      assert.equal(g.hart.pc, g.sym("mmio") + 4);
      assert.equal(hex(g.reg("a3")), hex(want));
      g.run();
      g.expectEnd();
      assert.equal(hex(g.reg("a3")), hex(want));
      // Between the two reads: rdinstret and the load, retired exactly once.
      assert.equal(g.reg("s3") - g.reg("s2"), 2n);
    });
  }

  void test("an MMIO load into x0 completes without writing x0", () => {
    const g = makeGuest(`
      li t0, ${UART}
      lw zero, 0(t0)
      mv a0, zero
    `);
    assert.equal(g.run(), EXIT_GUEST_PAGE_FAULT);
    assert.equal(g.hart.fault.rd, 0);
    g.hart.completeMmioLoad(0x1234n);
    g.run();
    g.expectEnd();
    assert.equal(g.reg(0), 0n);
    assert.equal(g.reg("a0"), 0n);
  });

  const stores: [string, number, bigint][] = [
    ["sb", 1, 0xa5n],
    ["sh", 2, 0xbeefn],
    ["sw", 4, 0x8765_4321n],
    ["sd", 8, 0xfedc_ba98_7654_3210n],
  ];
  for (const [op, size, want] of stores) {
    void test(`${op}: exit with the store value, completeMmioStore resumes`, () => {
      const g = makeGuest(`
        li t0, ${UART}
        li a1, 0xfedcba9887654321
        li a2, 0xfedcba987654beef
        li a4, 0xfedcba98765432a5
        li a5, 0xfedcba9876543210
        rdinstret s2
        mmio: ${op} ${{ sb: "a4", sh: "a2", sw: "a1", sd: "a5" }[op]}, -8(t0)
        rdinstret s3
      `);
      assert.equal(g.run(), EXIT_GUEST_PAGE_FAULT);
      const f = g.hart.fault;
      assert.equal(f.gpa, UART - 8);
      assert.equal(f.access, ACCESS_WRITE);
      assert.equal(f.size, size);
      assert.equal(hex(g.hart.faultStoreValue()), hex(want));
      assert.equal(hex(BigInt(f.storeLo >>> 0)), hex(want & 0xffff_ffffn));
      if (size === 8) assert.equal(hex(BigInt(f.storeHi >>> 0)), hex(want >> 32n));
      assert.equal(g.hart.pc, g.sym("mmio"));
      g.hart.completeMmioStore();
      g.run();
      g.expectEnd();
      assert.equal(g.reg("s3") - g.reg("s2"), 2n, "the store retired exactly once");
    });
  }

  void test("an MMIO access not completed is re-executed: the same exit again", () => {
    const g = makeGuest(`
      li t0, ${UART}
      mmio: lw a0, 4(t0)
    `);
    assert.equal(g.run(), EXIT_GUEST_PAGE_FAULT);
    const instret = g.hart.instret;
    assert.equal(g.run(), EXIT_GUEST_PAGE_FAULT);
    assert.equal(g.hart.fault.gpa, UART + 4);
    assert.equal(g.hart.pc, g.sym("mmio"));
    assert.equal(g.hart.instret, instret, "an access that exits does not retire");
  });

  void test("atomics to MMIO exit flagged atomic", () => {
    for (const [inst, access, size] of [
      ["amoadd.w a0, a1, (t0)", ACCESS_WRITE, 4],
      ["amoswap.d a0, a1, (t0)", ACCESS_WRITE, 8],
      ["lr.d a0, (t0)", ACCESS_READ, 8],
      ["sc.w a0, a1, (t0)", ACCESS_WRITE, 4],
    ] as const) {
      const g = makeGuest(`
        li t0, ${UART + 8}
        mmio: ${inst}
      `);
      assert.equal(g.run(), EXIT_GUEST_PAGE_FAULT, inst);
      assert.equal(g.hart.fault.gpa, UART + 8);
      assert.equal(g.hart.fault.access, access);
      assert.equal(g.hart.fault.size, size);
      assert.equal(g.hart.fault.atomic, true, inst);
      assert.equal(g.hart.pc, g.sym("mmio"));
    }
  });

  void test("a plain load after an atomic exit is not flagged atomic", () => {
    const g = makeGuest(`
      li t0, ${UART}
      amoadd.w a0, a1, (t0)
      lw a0, 0(t0)
    `);
    g.run();
    assert.equal(g.hart.fault.atomic, true);
    g.hart.pc += 4; // skip the AMO
    g.run();
    assert.equal(g.hart.fault.atomic, false);
  });
});

/**
 * RAM at RAM_BASE whose translations a test can redirect page by page to a
 * second region, write-protect (dirty logging), and observe.
 */
class HookedMemory extends FlatMemory {
  readonly other = new SharedArrayBuffer(4 * PAGE_SIZE);
  /** gpa page -> page index in `other`. */
  readonly redirect = new Map<number, number>();
  /** Pages mapped read-only until a write asks for them. */
  readonly writeProtected = new Set<number>();
  readonly dirty = new Set<number>();
  readonly log: [number, AccessType][] = [];

  override translate(gpa: number, access: AccessType, out: Translation): boolean {
    this.log.push([gpa, access]);
    const page = this.redirect.get(gpa);
    if (page !== undefined) {
      out.region = 1;
      out.offset = page * PAGE_SIZE;
      out.writable = true;
      return true;
    }
    if (!super.translate(gpa, access, out)) return false;
    if (this.writeProtected.has(gpa)) {
      if (access === ACCESS_WRITE) {
        this.writeProtected.delete(gpa);
        this.dirty.add(gpa);
      } else {
        out.writable = false;
      }
    }
    return true;
  }

  override regionBuffer(region = 0): ArrayBufferLike {
    return region === 1 ? this.other : this.buffer;
  }

  translations(gpa: number, access?: AccessType): number {
    return this.log.filter(([g, a]) => g === gpa && (access === undefined || a === access)).length;
  }
}

void describe("the software TLB", () => {
  const DATA = RAM_BASE + 0x40_000; // away from the program

  const setup = (source: string) => {
    const memory = new HookedMemory(RAM_BASE, 1 << 20);
    const g = makeGuest(source, { memory });
    const other = new DataView(memory.other);
    return { g, memory, other };
  };

  void test("a page replaced in the hook is seen after flushTlbPage, and only then", () => {
    const { g, memory, other } = setup(`
      li t0, ${DATA}
      ld a0, 8(t0)
      ecall
      ld a1, 8(t0)
      ecall
      ld a2, 8(t0)
      sd a2, 16(t0)
    `);
    g.store64(DATA + 8, 111n);
    other.setBigUint64(PAGE_SIZE + 8, 222n, true);
    assert.equal(g.run(), EXIT_SBI);
    assert.equal(g.reg("a0"), 111n);
    memory.redirect.set(DATA, 1);
    assert.equal(g.run(), EXIT_SBI);
    assert.equal(g.reg("a1"), 111n, "the TLB still holds the old translation");
    g.hart.flushTlbPage(DATA);
    g.run();
    g.expectEnd();
    assert.equal(g.reg("a2"), 222n, "the new page is seen after the flush");
    assert.equal(other.getBigUint64(PAGE_SIZE + 16, true), 222n, "and written");
    assert.equal(g.load64(DATA + 16), 0n);
  });

  void test("flushTlb drops every page, including the one being fetched from", () => {
    const { g, memory, other } = setup(`
      li t0, ${DATA}
      ld a0, 0(t0)
      li t1, ${DATA + PAGE_SIZE}
      jalr ra, 0(t1)          # code in the next page
      ld a2, 0(t0)
    `);
    g.store64(DATA, 5n);
    g.store32(DATA + PAGE_SIZE, 0x0010_0593); // li a1, 1
    g.store32(DATA + PAGE_SIZE + 4, 0x0000_0073); // ecall
    other.setBigUint64(0, 6n, true);
    other.setUint32(PAGE_SIZE, 0x0020_0593, true); // li a1, 2
    other.setUint32(PAGE_SIZE + 4, 0x0000_0073, true); // ecall
    other.setUint32(PAGE_SIZE + 8, 0x0000_8067, true); // ret
    assert.equal(g.run(), EXIT_SBI);
    assert.equal(g.reg("a0"), 5n);
    assert.equal(g.reg("a1"), 1n);
    memory.redirect.set(DATA, 0);
    memory.redirect.set(DATA + PAGE_SIZE, 1);
    g.hart.flushTlb();
    g.hart.pc = DATA + PAGE_SIZE; // run the replaced code page from its start
    assert.equal(g.run(), EXIT_SBI);
    assert.equal(g.reg("a1"), 2n, "fetched from the new page");
    g.run();
    g.expectEnd();
    assert.equal(g.reg("a2"), 6n);
  });

  void test("a read-only translation makes the first store re-translate with ACCESS_WRITE", () => {
    const { g, memory } = setup(`
      li t0, ${DATA}
      ld a0, 0(t0)            # fills the TLB read-only
      li a1, 7
      sd a1, 8(t0)            # re-translates for write
      sd a1, 16(t0)           # hits
      sw a1, 24(t0)
      ecall
      sd a1, 32(t0)           # write-protected again: re-translates
      amoadd.d a2, a1, (t0)
    `);
    memory.writeProtected.add(DATA);
    g.store64(DATA, 100n);
    assert.equal(g.run(), EXIT_SBI);
    assert.equal(memory.translations(DATA, ACCESS_READ), 1);
    assert.equal(memory.translations(DATA, ACCESS_WRITE), 1);
    assert.deepEqual([...memory.dirty], [DATA]);
    assert.equal(g.load64(DATA + 8), 7n);
    assert.equal(g.load64(DATA + 16), 7n);
    assert.equal(g.load32(DATA + 24), 7);
    // The dirty log is harvested: protect again and flush.
    memory.dirty.clear();
    memory.writeProtected.add(DATA);
    g.hart.flushTlbPage(DATA);
    g.run();
    g.expectEnd();
    assert.equal(memory.translations(DATA, ACCESS_WRITE), 2);
    assert.deepEqual([...memory.dirty], [DATA]);
    assert.equal(g.load64(DATA + 32), 7n);
    assert.equal(g.load64(DATA), 107n);
  });

  void test("AMOs and misaligned stores on read-only pages ask for write access", () => {
    const { g, memory } = setup(`
      li t0, ${DATA}
      ld a0, 0(t0)
      li t2, ${DATA + PAGE_SIZE}
      ld a0, 0(t2)
      li a1, 1
      amoadd.w a2, a1, (t0)
      li t1, ${DATA + PAGE_SIZE - 2}
      li a3, -1
      sw a3, 0(t1)            # straddles both pages
    `);
    memory.writeProtected.add(DATA);
    memory.writeProtected.add(DATA + PAGE_SIZE);
    g.run();
    g.expectEnd();
    assert.equal(memory.translations(DATA, ACCESS_WRITE), 1);
    assert.equal(memory.translations(DATA + PAGE_SIZE, ACCESS_WRITE), 1);
    assert.equal(g.load32(DATA), 1);
    assert.equal(g.load32(DATA + PAGE_SIZE - 2), 0xffff_ffff);
    assert.equal(memory.translations(DATA, ACCESS_FETCH), 0);
  });
});
