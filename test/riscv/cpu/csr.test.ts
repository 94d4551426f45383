/**
 * Zicsr: the supervisor CSRs' read/write behaviour and WARL masks, the
 * read-only and privilege rules of CSR access, and the counters.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { EXIT_BUDGET, EXIT_SBI, Hart } from "../../../src/riscv/cpu/hart.js";
import { MIP_SEIP } from "../../../src/riscv/cpu/constants.js";
import { raiseInterrupt } from "../../../src/riscv/cpu/hart-control.js";
import { assemble } from "../../../src/riscv/asm/index.js";
import { loadProgram } from "../../../src/riscv/elf/index.js";
import { FlatMemory } from "../../../src/riscv/testing/flat-memory.js";
import {
  csrInst,
  enterUser,
  hex,
  MASK64,
  makeGuest,
  RAM_BASE,
  regIndex,
  runToEnd,
  runToTrap,
} from "./guest.js";

const SIE = 1n << 1n;
const SPIE = 1n << 5n;
const SPP = 1n << 8n;
const SUM = 1n << 18n;
const MXR = 1n << 19n;
const UXL_64 = 2n << 32n;

void describe("sstatus", () => {
  void test("only SIE, SPIE, SPP (and SUM, MXR) are writable; UXL reads 2 and is read-only", () => {
    const g = runToEnd(`
      csrr s1, sstatus
      li t0, -1
      csrw sstatus, t0
      csrr s2, sstatus
      csrw sstatus, zero
      csrr s3, sstatus
      li t0, 0x100000000      # UXL = 1: ignored
      csrw sstatus, t0
      csrr s4, sstatus
      csrsi sstatus, 2        # SIE
      csrr s5, sstatus
      li t0, 0x120
      csrs sstatus, t0        # SPIE and SPP
      csrr s6, sstatus
      csrci sstatus, 2
      csrr s7, sstatus
      csrrc s8, sstatus, t0   # returns the old value
      csrr s9, sstatus
    `);
    const all = g.reg("s2");
    assert.equal(all & UXL_64, UXL_64, "UXL = 2");
    assert.equal(all & (SIE | SPIE | SPP), SIE | SPIE | SPP);
    // Nothing else: no UBE, VS, FS, XS (no F or V), no SD, no reserved bits.
    assert.equal(hex(all & ~(SIE | SPIE | SPP | SUM | MXR | UXL_64)), "0x0");
    assert.equal(hex(g.reg("s3")), hex(UXL_64));
    assert.equal(hex(g.reg("s4")), hex(UXL_64));
    assert.equal(hex(g.reg("s5")), hex(UXL_64 | SIE));
    assert.equal(hex(g.reg("s6")), hex(UXL_64 | SIE | SPIE | SPP));
    assert.equal(hex(g.reg("s7")), hex(UXL_64 | SPIE | SPP));
    assert.equal(hex(g.reg("s8")), hex(UXL_64 | SPIE | SPP));
    assert.equal(hex(g.reg("s9")), hex(UXL_64));
    // The S-mode entry state: SIE, SPIE and SPP clear (as after reset).
    assert.equal(g.reg("s1") & (SIE | SPIE), 0n);
  });
});

void describe("sie and sip", () => {
  void test("sie holds SSIE, STIE and SEIE only", () => {
    const g = runToEnd(`
      li t0, -1
      csrw sie, t0
      csrr a0, sie
      csrw sie, zero
      csrr a1, sie
      li t0, 0x20
      csrs sie, t0
      csrr a2, sie
    `);
    assert.equal(hex(g.reg("a0")), "0x222");
    assert.equal(g.reg("a1"), 0n);
    assert.equal(hex(g.reg("a2")), "0x20");
  });

  void test("only SSIP is writable in sip; SEIP and STIP are read-only", () => {
    const g = makeGuest(`
      li t0, -1
      csrw sip, t0
      csrr a0, sip          # SSIP | SEIP (raised by the platform)
      csrw sip, zero
      csrr a1, sip          # SEIP stays
      csrsi sip, 2
      csrr a2, sip
      csrci sip, 2
      csrr a3, sip
    `);
    raiseInterrupt(g.hart.control, MIP_SEIP);
    g.run();
    g.expectEnd();
    assert.equal(hex(g.reg("a0")), "0x202");
    assert.equal(hex(g.reg("a1")), "0x200");
    assert.equal(hex(g.reg("a2")), "0x202");
    assert.equal(hex(g.reg("a3")), "0x200");
  });
});

void describe("stvec, sepc, sscratch, scause, stval", () => {
  void test("stvec keeps MODE 0/1 with a 4-byte aligned BASE and ignores MODE 2 and 3", () => {
    const g = runToEnd(`
      li t0, 0x80001001
      csrw stvec, t0
      csrr a0, stvec
      li t0, 0x80002002
      csrw stvec, t0        # reserved MODE: ignored
      csrr a1, stvec
      li t0, 0x80003003
      csrw stvec, t0
      csrr a2, stvec
      li t0, 0x80004000
      csrw stvec, t0
      csrr a3, stvec
      li t0, 0x80005005     # BASE low bits: only 4-byte aligned bases exist
      csrw stvec, t0
      csrr a4, stvec
      la t0, __trap
      csrw stvec, t0
    `);
    assert.equal(hex(g.reg("a0")), "0x80001001");
    assert.equal(hex(g.reg("a1")), "0x80001001");
    assert.equal(hex(g.reg("a2")), "0x80001001");
    assert.equal(hex(g.reg("a3")), "0x80004000");
    assert.equal(hex(g.reg("a4")), "0x80005005");
  });

  void test("sepc drops bits 1:0 (IALIGN = 32) and holds large addresses", () => {
    const g = runToEnd(`
      li t0, 0x80001003
      csrw sepc, t0
      csrr a0, sepc
      li t0, 0x123456789abe
      csrw sepc, t0
      csrr a1, sepc
      li t0, 0x80000006
      csrw sepc, t0
      csrr a2, sepc
    `);
    assert.equal(hex(g.reg("a0")), "0x80001000");
    assert.equal(hex(g.reg("a1")), "0x123456789abc");
    assert.equal(hex(g.reg("a2")), "0x80000004");
  });

  void test("sscratch, scause and stval hold 64-bit values; CSRRW/S/C return the old value", () => {
    const g = runToEnd(`
      li t0, 0xdeadbeefcafef00d
      csrw sscratch, t0
      li t1, 0x0f0f0f0f0f0f0f0f
      csrrw a0, sscratch, t1
      csrrs a1, sscratch, t0
      csrrc a2, sscratch, t1
      csrr a3, sscratch
      csrrwi a4, sscratch, 31
      csrrsi a5, sscratch, 16
      csrrci a6, sscratch, 1
      csrr a7, sscratch
      li t0, 0x8000000000000005
      csrw scause, t0
      csrr s2, scause
      li t0, 0xfedcba9876543210
      csrw stval, t0
      csrr s3, stval
    `);
    assert.equal(hex(g.reg("a0")), "0xdeadbeefcafef00d");
    assert.equal(hex(g.reg("a1")), "0xf0f0f0f0f0f0f0f");
    assert.equal(hex(g.reg("a2")), "0xdfafbfefcfffff0f");
    assert.equal(hex(g.reg("a3")), "0xd0a0b0e0c0f0f000");
    assert.equal(hex(g.reg("a4")), "0xd0a0b0e0c0f0f000");
    assert.equal(hex(g.reg("a5")), "0x1f");
    assert.equal(hex(g.reg("a6")), "0x1f");
    assert.equal(hex(g.reg("a7")), "0x1e");
    assert.equal(hex(g.reg("s2")), "0x8000000000000005");
    assert.equal(hex(g.reg("s3")), "0xfedcba9876543210");
  });
});

void describe("satp, scounteren, senvcfg", () => {
  void test("satp: Bare reads back 0; a write selecting unsupported Sv48 or Sv57 is ignored", () => {
    const g = runToEnd(`
      csrr a0, satp
      li t0, 0xa000000000080123   # Sv57
      csrw satp, t0
      csrr a1, satp
      li t0, 0x9000000000000001   # Sv48
      csrrw a2, satp, t0
      csrr a3, satp
      csrw satp, zero
      csrr a4, satp
      sfence.vma
      sfence.vma zero, zero
      addi a5, zero, 1          # still running after the fences
    `);
    for (const r of ["a0", "a1", "a2", "a3", "a4"]) assert.equal(g.reg(r), 0n, r);
    assert.equal(g.reg("a5"), 1n);
  });

  void test("scounteren is a 32-bit register with CY, TM and IR writable", () => {
    const g = runToEnd(`
      csrr a0, scounteren
      li t0, -1
      csrw scounteren, t0
      csrr a1, scounteren
      csrwi scounteren, 5
      csrr a2, scounteren
      csrci scounteren, 1
      csrr a3, scounteren
    `);
    assert.equal(g.reg("a0"), 0n);
    assert.equal(g.reg("a1") & 7n, 7n);
    assert.equal(g.reg("a1") >> 32n, 0n, "bits 63:32 do not exist");
    assert.equal(g.reg("a2"), 5n);
    assert.equal(g.reg("a3"), 4n);
  });

  void test("senvcfg: only FIOM is implemented (no Zicbom/Zicboz fields)", () => {
    const g = runToEnd(`
      li t0, -1
      csrw senvcfg, t0
      csrr a0, senvcfg
      csrw senvcfg, zero
      csrr a1, senvcfg
    `);
    assert.equal(hex(g.reg("a0")), "0x1");
    assert.equal(g.reg("a1"), 0n);
  });
});

void describe("CSR access rules", () => {
  void test("reading a read-only counter with CSRRS/CSRRC/CSRRSI/CSRRCI and x0 is legal", () => {
    const g = runToEnd(`
      csrrs a0, cycle, x0
      csrrc a1, time, x0
      csrrsi a2, instret, 0
      csrrci a3, cycle, 0
      csrr a4, hpmcounter3
      csrr a5, hpmcounter31
    `);
    assert.ok(g.reg("a0") <= g.reg("a3"));
    assert.ok(g.reg("a1") > 0n);
    assert.ok(g.reg("a2") > 0n);
    assert.equal(g.reg("a4"), 0n);
    assert.equal(g.reg("a5"), 0n);
  });

  // [source, funct3, rd, rs1, csr]: each must raise illegal instruction with stval = its bits.
  const illegal: [string, number, string, number, number][] = [
    ["csrrw a0, cycle, a1", 1, "a0", 11, 0xc00],
    ["csrrw zero, time, a1", 1, "zero", 11, 0xc01],
    ["csrrwi a0, instret, 0", 5, "a0", 0, 0xc02],
    ["csrrs a0, cycle, a1", 2, "a0", 11, 0xc00], // rs1 != x0 writes, even if a1 = 0
    ["csrrci a0, time, 1", 7, "a0", 1, 0xc01],
    ["csrrs a0, 0x300, zero", 2, "a0", 0, 0x300], // mstatus
    ["csrrs a0, 0x301, zero", 2, "a0", 0, 0x301], // misa
    ["csrrs a0, 0xf14, zero", 2, "a0", 0, 0xf14], // mhartid
    ["csrrw a0, 0x341, a1", 1, "a0", 11, 0x341], // mepc
    ["csrrs a0, 0x600, zero", 2, "a0", 0, 0x600], // hstatus
    ["csrrs a0, 0x680, zero", 2, "a0", 0, 0x680], // hgatp
    ["csrrs a0, 0x200, zero", 2, "a0", 0, 0x200], // vsstatus
    ["csrrs a0, 0x14d, zero", 2, "a0", 0, 0x14d], // stimecmp (no Sstc)
    ["csrrs a0, 0x5a8, zero", 2, "a0", 0, 0x5a8], // scontext
    ["csrrs a0, 0x10c, zero", 2, "a0", 0, 0x10c], // sstateen0 (no Smstateen)
    ["csrrs a0, 0xc80, zero", 2, "a0", 0, 0xc80], // cycleh: RV32 only
    ["csrrs a0, 0x000, zero", 2, "a0", 0, 0x000], // ustatus: N is gone
    ["csrrs a0, 0x7c0, zero", 2, "a0", 0, 0x7c0], // custom, nothing there
    ["csrrs a0, 0x5c0, zero", 2, "a0", 0, 0x5c0], // custom S-mode, nothing there
  ];
  for (const [source, f3, rd, rs1, csr] of illegal) {
    void test(`${source} is an illegal instruction with stval = its encoding`, () => {
      const { guest, trap } = runToTrap(`
        li a0, 77
        li a1, 0
        fault: ${source}
      `);
      assert.equal(trap.cause, 2n);
      assert.equal(hex(trap.tval), hex(csrInst(f3, regIndex(rd), rs1, csr)));
      assert.equal(trap.epc, BigInt(guest.sym("fault")));
      assert.equal(guest.reg("a0"), 77n, "rd is not written");
    });
  }
});

void describe("counters", () => {
  void test("time follows the host clock at the timebase frequency", () => {
    const g = makeGuest(`
      rdtime a0
      li t0, 200000
      1: addi t0, t0, -1
      bnez t0, 1b
      rdtime a1
    `);
    const before = g.hart.readTime();
    g.run(10_000_000);
    const after = g.hart.readTime();
    g.expectEnd();
    const t0 = Number(g.reg("a0"));
    const t1 = Number(g.reg("a1"));
    assert.ok(before <= t0 && t0 <= t1 && t1 <= after, `${before} ${t0} ${t1} ${after}`);
    assert.ok(t1 > t0, "time advances");
  });

  void test("U-mode reads a counter only when its scounteren bit is set", () => {
    const read = (counter: string, enable: number) => {
      const { guest, trap } = runToTrap(`
        csrwi scounteren, ${enable}
        ${enterUser("user")}
        user:
        li a0, -1
        fault: ${counter} a0
        ecall
      `);
      return { guest, trap };
    };
    for (const [counter, bit] of [
      ["rdcycle", 1],
      ["rdtime", 2],
      ["rdinstret", 4],
    ] as const) {
      for (const enable of [0, 7 & ~bit, bit, 7]) {
        const { guest, trap } = read(counter, enable);
        const what = `${counter} with scounteren = ${enable}`;
        if (enable & bit) {
          assert.equal(trap.cause, 8n, `${what}: reaches the U-mode ecall`);
          assert.notEqual(guest.reg("a0"), MASK64, what);
        } else {
          assert.equal(trap.cause, 2n, `${what}: illegal`);
          assert.equal(trap.epc, BigInt(guest.sym("fault")), what);
          assert.equal(guest.reg("a0"), MASK64, `${what}: rd not written`);
        }
      }
    }
  });

  void test("instret counts retired instructions exactly", () => {
    const g = runToEnd(`
      rdinstret a0
      nop
      addi t0, t0, 1
      add t0, t0, t0
      la t1, scratch
      sd t0, 0(t1)
      rdinstret a1
      rdcycle a2
      rdcycle a3
      .data
      .balign 8
      scratch: .dword 0
    `);
    // Between the reads: rdinstret, nop, addi, add, auipc+addi (la), sd = 7.
    assert.equal(g.reg("a1") - g.reg("a0"), 7n);
    assert.ok(g.reg("a3") > g.reg("a2"), "cycle advances");
  });

  void test("instret is exact across run() calls and budget exits", () => {
    // No prelude: the first instruction is number 0.
    const source = `
      .globl _start
      _start:
      nop
      nop
      nop
      nop
      nop
      rdinstret a0
      rdinstret a1
      ecall
    `;
    const memory = new FlatMemory(RAM_BASE, 1 << 20);
    const { image } = assemble(source, { textAddress: RAM_BASE });
    loadProgram(image, memory);
    const hart = new Hart({ hartId: 0, memory });
    hart.pc = image.entry;
    assert.equal(hart.run(3), EXIT_BUDGET);
    assert.equal(hart.instret, 3);
    assert.equal(hart.run(1), EXIT_BUDGET);
    assert.equal(hart.run(100), EXIT_SBI);
    assert.equal(hart.getRegister(10), 5n, "rdinstret reads the count before itself");
    assert.equal(hart.getRegister(11), 6n);
  });

  void test("trapping instructions do not retire; the handler's do", () => {
    const g = runToEnd(`
      la t0, handler
      csrw stvec, t0
      rdinstret a0
      ebreak
      rdinstret a1
      la t0, __trap
      csrw stvec, t0
      j 1f
      .balign 4
      handler:
      csrr t1, sepc
      addi t1, t1, 4
      csrw sepc, t1
      sret
      1:
    `);
    // rdinstret + the four handler instructions; the ebreak does not count.
    assert.equal(g.reg("a1") - g.reg("a0"), 5n);
  });
});
