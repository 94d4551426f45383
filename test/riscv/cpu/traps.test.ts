/**
 * Synchronous exceptions: scause/stval/sepc of each, sstatus transitions on
 * trap entry and SRET, S <-> U round trips, and the exits to the caller
 * (SBI calls, fetches that miss guest memory).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ACCESS_FETCH } from "../../../src/riscv/cpu/constants.js";
import { EXIT_GUEST_PAGE_FAULT, EXIT_SBI } from "../../../src/riscv/cpu/hart.js";
import {
  csrInst,
  encode,
  enterUser,
  hex,
  MASK64,
  makeGuest,
  RAM_BASE,
  RAM_SIZE,
  runGuest,
  runToEnd,
  runToTrap,
} from "./guest.js";

const A0 = 10;
const A1 = 11;
const RA = 1;

const SIE = 1n << 1n;
const SPIE = 1n << 5n;
const SPP = 1n << 8n;

const CAUSE_MISALIGNED_FETCH = 0n;
const CAUSE_FETCH_ACCESS = 1n;
const CAUSE_ILLEGAL = 2n;
const CAUSE_BREAKPOINT = 3n;
const CAUSE_LOAD_ACCESS = 5n;
const CAUSE_STORE_ACCESS = 7n;
const CAUSE_USER_ECALL = 8n;

void describe("illegal instructions", () => {
  // Each word is reserved or belongs to an extension the hart does not have.
  const words: [string, number][] = [
    ["all-zero word", 0],
    ["all-ones word", 0xffff_ffff],
    ["compressed c.li a0, 1 (no C extension)", 0x0001_4505],
    ["compressed c.addi in the upper half too", 0x0505_0505],
    ["OP with funct7 = 0000010", encode.r(0x33, A0, 0, A0, A1, 0x02)],
    ["OP funct7 = 0100000 with funct3 = 1 (no 'sub' form of sll)", encode.r(0x33, A0, 1, A0, A1, 0x20)],
    ["OP funct7 = 0100000 with funct3 = 7", encode.r(0x33, A0, 7, A0, A1, 0x20)],
    ["OP-32 funct3 = 2", encode.r(0x3b, A0, 2, A0, A1, 0)],
    ["OP-32 M with funct3 = 1 (no mulhw)", encode.r(0x3b, A0, 1, A0, A1, 1)],
    ["OP-32 funct7 = 0000011", encode.r(0x3b, A0, 0, A0, A1, 3)],
    ["SLLIW with shamt[5] = 1", encode.i(0x1b, A0, 1, A0, 0x23)],
    ["SRLIW with shamt[5] = 1", encode.i(0x1b, A0, 5, A0, 0x21)],
    ["SRAIW with shamt[5] = 1", encode.i(0x1b, A0, 5, A0, 0x400 | 0x21)],
    ["OP-IMM-32 funct3 = 2", encode.i(0x1b, A0, 2, A0, 0)],
    ["SLLI with funct6 = 010000", encode.i(0x13, A0, 1, A0, 0x400 | 3)],
    ["SRLI with funct6 = 000010", encode.i(0x13, A0, 5, A0, 0x80 | 3)],
    ["LOAD funct3 = 7 (no LDU in RV64)", encode.i(0x03, A0, 7, A0, 0)],
    ["STORE funct3 = 4", encode.r(0x23, 0, 4, A0, A1, 0)],
    ["STORE funct3 = 7", encode.r(0x23, 4, 7, A0, A1, 0)],
    ["BRANCH funct3 = 2", encode.b(2, A0, A1, 8)],
    ["BRANCH funct3 = 3", encode.b(3, A0, A0, 8)],
    ["JALR funct3 = 1", encode.i(0x67, RA, 1, A0, 0)],
    ["MISC-MEM funct3 = 2 (cbo.*, no Zicbom)", encode.i(0x0f, 0, 2, A0, 0)],
    ["SYSTEM funct3 = 4", encode.i(0x73, A0, 4, 0, 0x600)],
    ["MRET", 0x3020_0073],
    ["URET", 0x0020_0073],
    ["ECALL with rd != 0", 0x0000_00f3],
    ["WFI with rd != 0", 0x1050_00f3],
    ["SFENCE.VMA with rd != 0", 0x1200_00f3],
    ["HFENCE.VVMA (no H)", 0x2200_0073],
    ["AMO funct3 = 0", encode.r(0x2f, A0, 0, A0, A1, 0)],
    ["AMO funct3 = 4", encode.r(0x2f, A0, 4, A0, A1, 0)],
    ["AMO funct5 = 00101", encode.r(0x2f, A0, 2, A0, A1, 0x05 << 2)],
    ["LR.W with rs2 != 0", encode.r(0x2f, A0, 2, A0, A1, 0x02 << 2)],
    ["FLW (no F)", encode.i(0x07, A0, 2, A0, 0)],
    ["OP-FP (no F)", encode.r(0x53, A0, 0, A0, A1, 0)],
    ["OP-V (no V)", encode.r(0x57, A0, 0, A0, A1, 0)],
    ["a 48-bit encoding", 0x0000_001f],
    ["opcode 1111111", 0x0000_007f],
  ]; // prettier-ignore
  for (const [what, word] of words) {
    void test(`${what}: 0x${word.toString(16).padStart(8, "0")}`, () => {
      const { guest, trap } = runToTrap(`
        la a0, data
        li a1, 0
        li ra, 0
        fault: .word ${word}
        .data
        .balign 8
        data: .dword 0
      `);
      // stval holds the faulting instruction: 16 bits for a compressed encoding.
      const want = (word & 3) === 3 ? BigInt(word) : BigInt(word & 0xffff);
      assert.equal(trap.cause, CAUSE_ILLEGAL);
      assert.equal(hex(trap.tval), hex(want));
      assert.equal(trap.epc, BigInt(guest.sym("fault")));
      assert.equal(guest.reg("a0"), BigInt(guest.sym("data")), "rd is not written");
      assert.equal(guest.reg("ra"), 0n, "rd is not written");
      assert.equal(guest.load64(guest.sym("data")), 0n, "memory is not written");
    });
  }
});

void describe("breakpoints and environment calls", () => {
  void test("EBREAK: cause 3 with stval = sepc = its pc", () => {
    const { guest, trap } = runToTrap(`fault: ebreak`);
    assert.equal(trap.cause, CAUSE_BREAKPOINT);
    assert.equal(trap.epc, BigInt(guest.sym("fault")));
    assert.equal(trap.tval, trap.epc);
  });

  void test("ECALL from U-mode: cause 8, stval 0, sepc = the ecall, SPP = U", () => {
    const { guest, trap } = runToTrap(`
      li t0, -1
      csrw stval, t0
      ${enterUser("user")}
      user: li a0, 5
      fault: ecall
    `);
    assert.equal(trap.cause, CAUSE_USER_ECALL);
    assert.equal(trap.tval, 0n);
    assert.equal(trap.epc, BigInt(guest.sym("fault")));
    assert.equal(trap.status & SPP, 0n);
  });

  void test("ECALL from S-mode exits to the caller with pc past it and no trap state", () => {
    const g = makeGuest(`
      li t0, 0x80001234
      csrw sepc, t0
      li a7, 0x10
      call_site: ecall
      csrr s2, sepc
      csrr s3, scause
    `);
    assert.equal(g.run(), EXIT_SBI);
    assert.equal(g.hart.pc, g.sym("call_site") + 4);
    assert.equal(g.hart.priv, 1);
    assert.equal(g.reg("a7"), 0x10n);
    g.hart.setRegister(10, 0n); // the SBI answer
    g.run();
    g.expectEnd();
    assert.equal(hex(g.reg("s2")), "0x80001234");
    assert.equal(g.reg("s3"), 0n);
  });
});

void describe("misaligned jump and branch targets", () => {
  void test("JAL to pc + 6: cause 0, stval = target, sepc = the jal, rd not written", () => {
    const { guest, trap } = runToTrap(`
      li ra, 77
      fault: .word ${encode.jal(RA, 6)}
    `);
    const pc = BigInt(guest.sym("fault"));
    assert.equal(trap.cause, CAUSE_MISALIGNED_FETCH);
    assert.equal(trap.tval, pc + 6n);
    assert.equal(trap.epc, pc);
    assert.equal(guest.reg("ra"), 77n);
  });

  void test("JAL backwards to pc - 2", () => {
    const { guest, trap } = runToTrap(`
      nop
      fault: .word ${encode.jal(RA, -2)}
    `);
    assert.equal(trap.cause, CAUSE_MISALIGNED_FETCH);
    assert.equal(trap.tval, BigInt(guest.sym("fault")) - 2n);
  });

  void test("a taken branch to pc + 6 traps; a not-taken one does not", () => {
    const { guest, trap } = runToTrap(`
      li a0, 1
      li a1, 2
      .word ${encode.b(0, A0, A1, 6)}   # beq: not taken, no exception
      li a1, 1
      fault: .word ${encode.b(0, A0, A1, 6)}
    `);
    const pc = BigInt(guest.sym("fault"));
    assert.equal(trap.cause, CAUSE_MISALIGNED_FETCH);
    assert.equal(trap.tval, pc + 6n);
    assert.equal(trap.epc, pc);
  });

  void test("JALR to a target with bit 1 set (after clearing bit 0); rd = rs1 not written", () => {
    for (const [offset, extra] of [
      [2, 2],
      [3, 2],
      [-2, -2],
    ]) {
      const { guest, trap } = runToTrap(`
        la t0, target
        li ra, 77
        fault: jalr t0, ${offset}(t0)
        target: nop
      `);
      const target = BigInt(guest.sym("target"));
      assert.equal(trap.cause, CAUSE_MISALIGNED_FETCH);
      assert.equal(trap.tval, target + BigInt(extra), `offset ${offset}`);
      assert.equal(trap.epc, BigInt(guest.sym("fault")));
      assert.equal(guest.reg("t0"), target, "rd is not written");
    }
  });
});

void describe("access faults and exits outside RAM", () => {
  void test("loads and stores to addresses beyond the physical address space fault", () => {
    for (const [access, cause] of [
      ["ld a0, 0(t0)", CAUSE_LOAD_ACCESS],
      ["lbu a0, 0(t0)", CAUSE_LOAD_ACCESS],
      ["sd a0, 0(t0)", CAUSE_STORE_ACCESS],
      ["sw a0, 0(t0)", CAUSE_STORE_ACCESS],
    ] as const) {
      for (const address of [0xffff_ffff_ffff_fff8n, 0x0020_0000_0000_0000n, 1n << 62n]) {
        const { guest, trap } = runToTrap(`
          li t0, ${address}
          li a0, 0
          fault: ${access}
        `);
        assert.equal(trap.cause, cause, `${access} at ${hex(address)}`);
        assert.equal(trap.tval, address);
        assert.equal(trap.epc, BigInt(guest.sym("fault")));
      }
    }
  });

  void test("a jump to a negative address faults on the fetch there", () => {
    const { guest, trap } = runToTrap(`
      li t0, -8
      jump: jalr ra, 0(t0)
    `);
    assert.equal(trap.cause, CAUSE_FETCH_ACCESS);
    assert.equal(trap.tval, MASK64 - 7n);
    assert.equal(trap.epc, MASK64 - 7n);
    assert.equal(guest.reg("ra"), BigInt(guest.sym("jump")) + 4n, "the jalr itself retired");
  });

  void test("a fetch from unmapped guest memory exits with a guest page fault", () => {
    const g = runGuest(`
      li t0, 0x10000
      jalr ra, 0(t0)
    `);
    assert.equal(g.exit, EXIT_GUEST_PAGE_FAULT);
    assert.equal(g.hart.fault.gpa, 0x10000);
    assert.equal(g.hart.fault.access, ACCESS_FETCH);
    assert.equal(g.hart.pc, 0x10000);
    assert.equal(g.trap.count, 0n, "no guest-visible trap");
  });

  void test("falling off the end of RAM exits at the first byte past it", () => {
    const end = RAM_BASE + RAM_SIZE;
    const g = makeGuest(`
      li t0, ${end - 8}
      jr t0
    `);
    g.store32(end - 8, 0x0010_0513); // li a0, 1
    g.store32(end - 4, 0x0015_0513); // addi a0, a0, 1
    g.run();
    assert.equal(g.exit, EXIT_GUEST_PAGE_FAULT);
    assert.equal(g.hart.fault.gpa, end);
    assert.equal(g.hart.fault.access, ACCESS_FETCH);
    assert.equal(g.hart.pc, end);
    assert.equal(g.reg("a0"), 2n);
  });
});

void describe("privilege transitions", () => {
  void test("trap entry from S saves SIE in SPIE, clears SIE and sets SPP", () => {
    for (const sie of [0n, 1n]) {
      const { trap } = runToTrap(`
        csrci sstatus, 0x2
        ${sie ? "csrsi sstatus, 0x2" : ""}
        li t0, 0x20
        ${sie ? "csrc" : "csrs"} sstatus, t0    # SPIE starts as the opposite
        ebreak
      `);
      assert.equal(trap.status & SIE, 0n);
      assert.equal(trap.status & SPIE, sie ? SPIE : 0n, `SIE was ${sie}`);
      assert.equal(trap.status & SPP, SPP);
    }
  });

  void test("trap entry from U clears SPP and saves U's SIE in SPIE", () => {
    for (const spie of [0n, 1n]) {
      const { trap } = runToTrap(`
        li t0, 0x20
        ${spie ? "csrs" : "csrc"} sstatus, t0   # SRET copies SPIE to SIE
        ${enterUser("user")}
        user: ecall
      `);
      assert.equal(trap.cause, CAUSE_USER_ECALL);
      assert.equal(trap.status & SPP, 0n);
      assert.equal(trap.status & SPIE, spie ? SPIE : 0n);
      assert.equal(trap.status & SIE, 0n);
    }
  });

  void test("SRET sets SIE = SPIE, SPIE = 1, SPP = 0 and returns to the mode in SPP", () => {
    const g = runToEnd(`
      li t0, 0x122            # SPP = S, SPIE = 1, SIE = 1
      csrw sstatus, t0
      csrci sstatus, 2        # SIE = 0
      la t0, 1f
      csrw sepc, t0
      sret
      1: csrr s2, sstatus     # SIE = 1, SPIE = 1, SPP = 0
      li t0, 0x102            # SPP = S, SPIE = 0, SIE = 1
      csrw sstatus, t0
      la t0, second
      csrw sepc, t0
      sret
      second: csrr s3, sstatus     # SIE = 0, SPIE = 1, SPP = 0
      csrr s4, sepc
    `);
    const mask = SIE | SPIE | SPP;
    assert.equal(hex(g.reg("s2") & mask), hex(SIE | SPIE));
    assert.equal(hex(g.reg("s3") & mask), hex(SPIE));
    assert.equal(g.reg("s4"), BigInt(g.sym("second")), "SRET leaves sepc as it was");
    assert.equal(g.hart.priv, 1, "still in S-mode: the final ecall was an SBI call");
  });

  void test("S -> U -> S round trips through SRET and ECALL", () => {
    const g = runToEnd(`
      la t0, handler
      csrw stvec, t0
      li s2, 0                # U-mode work done
      li s3, 0                # ecalls taken
      ${enterUser("user")}
      .balign 4
      handler:
      csrr t1, scause
      li t2, 8
      bne t1, t2, fail
      addi s3, s3, 1
      csrr t1, sstatus
      andi t1, t1, 0x100
      bnez t1, fail           # must come from U
      li t2, 3
      beq s3, t2, back_to_s
      csrr t1, sepc
      addi t1, t1, 4
      csrw sepc, t1
      sret                    # SPP = 0: back to U after the ecall
      back_to_s:
      li t1, 0x100
      csrs sstatus, t1
      la t1, in_s
      csrw sepc, t1
      sret
      fail: ebreak
      user:
      addi s2, s2, 1
      ecall
      addi s2, s2, 10
      ecall
      addi s2, s2, 100
      ecall
      ebreak                  # never reached
      in_s:
      la t0, __trap
      csrw stvec, t0
      csrr s4, sscratch       # S-mode only: would trap in U
    `);
    assert.equal(g.reg("s2"), 111n);
    assert.equal(g.reg("s3"), 3n);
    assert.equal(g.hart.priv, 1);
  });

  const userIllegal: [string, bigint][] = [
    ["sret", 0x1020_0073n],
    ["wfi", 0x1050_0073n],
    ["sfence.vma", 0x1200_0073n],
    ["sfence.vma a0, a1", BigInt((0x09 << 25) | (11 << 20) | (10 << 15) | 0x73)],
    ["csrr a0, sstatus", csrInst(2, 10, 0, 0x100)],
    ["csrw sscratch, a0", csrInst(1, 0, 10, 0x140)],
    ["csrr a0, satp", csrInst(2, 10, 0, 0x180)],
    ["csrr a0, sip", csrInst(2, 10, 0, 0x144)],
  ];
  for (const [inst, bits] of userIllegal) {
    void test(`${inst} is illegal in U-mode`, () => {
      const { guest, trap } = runToTrap(`
        ${enterUser("user")}
        user:
        li a0, 0
        fault: ${inst}
      `);
      assert.equal(trap.cause, CAUSE_ILLEGAL);
      assert.equal(hex(trap.tval), hex(bits));
      assert.equal(trap.epc, BigInt(guest.sym("fault")));
      assert.equal(trap.status & SPP, 0n, "taken from U-mode");
    });
  }
});
