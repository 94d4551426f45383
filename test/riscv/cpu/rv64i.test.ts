/**
 * RV64I: every base instruction, checked against an independent BigInt model
 * or hand-computed values.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { EXIT_GUEST_PAGE_FAULT, EXIT_SBI } from "../../../src/riscv/cpu/hart.js";
import { FlatMemory } from "../../../src/riscv/testing/flat-memory.js";
import { ACCESS_READ, ACCESS_WRITE } from "../../../src/riscv/cpu/constants.js";
import {
  hex,
  Kernel,
  makeGuest,
  MASK64,
  operands,
  RAM_BASE,
  RAM_SIZE,
  runGuest,
  runToEnd,
  s64,
  sext32,
  u64,
} from "./guest.js";

const M32 = 0xffff_ffffn;

/** The BigInt model of each register-register instruction (operands and result unsigned). */
const REG_OPS: Record<string, (a: bigint, b: bigint) => bigint> = {
  add: (a, b) => u64(a + b),
  sub: (a, b) => u64(a - b),
  sll: (a, b) => u64(a << (b & 63n)),
  srl: (a, b) => a >> (b & 63n),
  sra: (a, b) => u64(s64(a) >> (b & 63n)),
  slt: (a, b) => (s64(a) < s64(b) ? 1n : 0n),
  sltu: (a, b) => (a < b ? 1n : 0n),
  xor: (a, b) => a ^ b,
  or: (a, b) => a | b,
  and: (a, b) => a & b,
  addw: (a, b) => sext32(a + b),
  subw: (a, b) => sext32(a - b),
  sllw: (a, b) => sext32((a & M32) << (b & 31n)),
  srlw: (a, b) => sext32((a & M32) >> (b & 31n)),
  sraw: (a, b) => sext32(BigInt.asIntN(32, a) >> (b & 31n)),
};

/** Immediate forms: the model takes the sign-extended immediate (or shamt). */
const IMM_OPS: Record<string, (a: bigint, imm: bigint) => bigint> = {
  addi: (a, i) => u64(a + i),
  slti: (a, i) => (s64(a) < i ? 1n : 0n),
  sltiu: (a, i) => (a < u64(i) ? 1n : 0n),
  xori: (a, i) => a ^ u64(i),
  ori: (a, i) => a | u64(i),
  andi: (a, i) => a & u64(i),
  addiw: (a, i) => sext32(a + i),
};
const SHIFT_IMM_OPS: Record<string, (a: bigint, sh: bigint) => bigint> = {
  slli: (a, s) => u64(a << s),
  srli: (a, s) => a >> s,
  srai: (a, s) => u64(s64(a) >> s),
};
const SHIFT_IMM_W_OPS: Record<string, (a: bigint, sh: bigint) => bigint> = {
  slliw: (a, s) => sext32((a & M32) << s),
  srliw: (a, s) => sext32((a & M32) >> s),
  sraiw: (a, s) => sext32(BigInt.asIntN(32, a) >> s),
};

/** Registers free for results (not a0/a1, the inputs, nor t6 which holds the result pointer). */
const RESULT_REGS = [
  "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "a2", "a3",
  "a4", "a5", "a6", "a7", "t0", "t1", "t2", "s0", "s1",
]; // prettier-ignore

void describe("RV64I register-register arithmetic", () => {
  const names = Object.keys(REG_OPS);
  const kernel = new Kernel(names.map((op, i) => `${op} ${RESULT_REGS[i]}, a0, a1`).join("\n"));
  const values = operands(48);
  // Shift amounts: every interesting low-6-bit pattern, with junk in the upper bits.
  const shifts = [0n, 1n, 31n, 32n, 33n, 63n, 64n, 65n, 0xffffn, 0xffff_ffff_ffff_ffc1n, 0x1fn];

  void test("match the BigInt model for every operand pair", () => {
    for (const a of values) {
      for (const b of [...values, ...shifts]) {
        const g = kernel.call({ a0: a, a1: b });
        names.forEach((op, i) => {
          const got = g.reg(RESULT_REGS[i]);
          assert.equal(hex(got), hex(REG_OPS[op](a, b)), `${op} ${hex(a)}, ${hex(b)}`);
        });
      }
    }
  });

  void test("hand-computed edge cases", () => {
    const cases: [string, bigint, bigint, bigint][] = [
      ["add", MASK64, 1n, 0n],
      ["sub", 0n, 1n, MASK64],
      ["addw", 0x7fff_ffffn, 1n, 0xffff_ffff_8000_0000n],
      ["addw", 0x1_0000_0000n, 0x1_0000_0000n, 0n],
      ["subw", 0x8000_0000n, 1n, 0x7fff_ffffn],
      ["sll", 1n, 63n, 0x8000_0000_0000_0000n],
      ["sll", 1n, 64n, 1n],
      ["sll", 1n, 65n, 2n],
      ["srl", 0x8000_0000_0000_0000n, 63n, 1n],
      ["sra", 0x8000_0000_0000_0000n, 63n, MASK64],
      ["sra", 0x8000_0000_0000_0000n, 0x7fn, MASK64],
      ["sllw", 1n, 31n, 0xffff_ffff_8000_0000n],
      ["sllw", 1n, 32n, 1n],
      ["srlw", 0xffff_ffff_8000_0000n, 31n, 1n],
      ["srlw", 0xffff_ffff_8000_0000n, 0n, 0xffff_ffff_8000_0000n],
      ["srlw", 0x8000_0000n, 1n, 0x4000_0000n],
      ["sraw", 0x8000_0000n, 31n, MASK64],
      ["sraw", 0x1_8000_0000n, 4n, 0xffff_ffff_f800_0000n],
      ["slt", MASK64, 0n, 1n],
      ["slt", 0n, MASK64, 0n],
      ["sltu", MASK64, 0n, 0n],
      ["sltu", 0n, MASK64, 1n],
      ["slt", 0x8000_0000_0000_0000n, 0x7fff_ffff_ffff_ffffn, 1n],
      ["sltu", 0x8000_0000_0000_0000n, 0x7fff_ffff_ffff_ffffn, 0n],
      ["slt", 0xffff_ffff_0000_0000n, 0xffff_ffff_0000_0001n, 1n],
    ];
    for (const [op, a, b, want] of cases) {
      const g = kernel.call({ a0: a, a1: b });
      const got = g.reg(RESULT_REGS[names.indexOf(op)]);
      assert.equal(hex(got), hex(want), `${op} ${hex(a)}, ${hex(b)}`);
    }
  });
});

void describe("RV64I register-immediate arithmetic", () => {
  const imms = [0n, 1n, -1n, 2047n, -2048n, 0x555n, -0x556n, 0x7fn, -0x80n, 0x100n, 42n, -42n];
  const items: { op: string; imm: bigint }[] = [];
  for (const op of Object.keys(IMM_OPS)) for (const imm of imms) items.push({ op, imm });
  for (const op of Object.keys(SHIFT_IMM_OPS)) {
    for (const imm of [0n, 1n, 5n, 31n, 32n, 33n, 62n, 63n]) items.push({ op, imm });
  }
  for (const op of Object.keys(SHIFT_IMM_W_OPS)) {
    for (const imm of [0n, 1n, 5n, 15n, 16n, 30n, 31n]) items.push({ op, imm });
  }
  // Every result is stored to `results`, 8 bytes apart; t6 walks the array.
  const body = items.map(({ op, imm }) => `${op} t0, a0, ${imm}\nsd t0, 0(t6)\naddi t6, t6, 8`);
  const kernel = new Kernel(
    `la t6, results\n${body.join("\n")}\n.data\n.balign 8\nresults: .zero ${items.length * 8}\n`,
  );
  const model = (op: string, a: bigint, imm: bigint): bigint =>
    (IMM_OPS[op] ?? SHIFT_IMM_OPS[op] ?? SHIFT_IMM_W_OPS[op])(a, imm);

  void test("match the BigInt model (sign-extended 12-bit immediates, shamt forms)", () => {
    const results = kernel.guest.sym("results");
    for (const a of operands(40, 77n)) {
      const g = kernel.call({ a0: a });
      items.forEach(({ op, imm }, i) => {
        const got = g.load64(results + 8 * i);
        assert.equal(hex(got), hex(model(op, a, imm)), `${op} ${hex(a)}, ${imm}`);
      });
    }
  });

  void test("hand-computed edge cases", () => {
    const g = runToEnd(`
      li a0, -1
      sltiu s2, a0, -1      # unsigned compare with 0xffff...ffff: equal, so 0
      sltiu s3, zero, -1    # 0 < 0xffff...ffff: 1
      slti s4, a0, 0        # -1 < 0: 1
      sltiu s5, a0, 0       # never less than 0: 0
      li a1, 0x7fffffff
      addiw s6, a1, 1       # wraps to -2^31, sign-extended
      li a2, 0x100000000
      addiw s7, a2, -1      # low word 0 - 1 = -1
      xori s8, zero, -1     # not 0 = all ones
      andi s9, a0, -2048    # 0xffff...f800
      li a3, 0x80000000
      srliw s10, a3, 0      # the W form of a zero shift still sign-extends
      slliw s11, a3, 0
      sraiw t3, a3, 31
      li a4, 0x8000000000000001
      srai t4, a4, 63
      srli t5, a4, 63
      slli t1, a4, 63
    `);
    assert.equal(g.reg("s2"), 0n);
    assert.equal(g.reg("s3"), 1n);
    assert.equal(g.reg("s4"), 1n);
    assert.equal(g.reg("s5"), 0n);
    assert.equal(hex(g.reg("s6")), "0xffffffff80000000");
    assert.equal(hex(g.reg("s7")), "0xffffffffffffffff");
    assert.equal(g.reg("s8"), MASK64);
    assert.equal(hex(g.reg("s9")), "0xfffffffffffff800");
    assert.equal(hex(g.reg("s10")), "0xffffffff80000000");
    assert.equal(hex(g.reg("s11")), "0xffffffff80000000");
    assert.equal(g.reg("t3"), MASK64);
    assert.equal(g.reg("t4"), MASK64);
    assert.equal(g.reg("t5"), 1n);
    assert.equal(hex(g.reg("t1")), "0x8000000000000000");
  });
});

void describe("LUI and AUIPC", () => {
  void test("LUI sign-extends bit 31 into the upper word", () => {
    const g = runToEnd(`
      lui a0, 0x80000
      lui a1, 0x7ffff
      lui a2, 0xfffff
      lui a3, 0x12345
      lui a4, 0
    `);
    assert.equal(hex(g.reg("a0")), "0xffffffff80000000");
    assert.equal(hex(g.reg("a1")), "0x7ffff000");
    assert.equal(hex(g.reg("a2")), "0xfffffffffffff000");
    assert.equal(hex(g.reg("a3")), "0x12345000");
    assert.equal(g.reg("a4"), 0n);
  });

  void test("AUIPC adds the sign-extended upper immediate to its own pc", () => {
    const g = runToEnd(`
      l0: auipc a0, 0
      l1: auipc a1, 0x80000
      l2: auipc a2, 0xfffff
      l3: auipc a3, 0x7ffff
      l4: auipc a4, 1
    `);
    const pc = (l: string) => BigInt(g.sym(l));
    assert.equal(g.reg("a0"), pc("l0"));
    assert.equal(hex(g.reg("a1")), hex(u64(pc("l1") - 0x8000_0000n)));
    assert.equal(hex(g.reg("a2")), hex(pc("l2") - 0x1000n));
    assert.equal(hex(g.reg("a3")), hex(pc("l3") + 0x7fff_f000n));
    assert.equal(hex(g.reg("a4")), hex(pc("l4") + 0x1000n));
  });
});

void describe("JAL and JALR", () => {
  void test("JAL links pc+4 and jumps forward and backward", () => {
    const g = runToEnd(`
      li s2, 0
      jal ra, fwd
      after_fwd:
      j done
      back:
      addi s2, s2, 10
      jalr zero, 0(s3)
      fwd:
      addi s2, s2, 1
      mv s4, ra
      jal s3, back
      after_back:
      jr s4
      done:
    `);
    assert.equal(g.reg("s4"), BigInt(g.sym("after_fwd")));
    assert.equal(g.reg("s3"), BigInt(g.sym("after_back")));
    assert.equal(g.reg("s2"), 11n);
  });

  void test("JALR adds the offset, clears bit 0 and links pc+4, also when rd = rs1", () => {
    const g = runToEnd(`
      la t0, target1
      addi t0, t0, 1          # odd address: bit 0 is ignored
      jalr ra, 0(t0)
      link1:
      la t1, target2 + 16
      jalr t1, -16(t1)        # rd = rs1: the target uses the old value
      link2:
      la t2, target3 - 7
      jalr a7, 8(t2)          # -7 + 8 = +1: odd again
      link3:
      j done
      target1: mv s2, ra
      jr s2
      target2: mv s3, t1
      jr t1
      target3: mv s4, a7
      jr a7
      done:
    `);
    assert.equal(g.reg("s2"), BigInt(g.sym("link1")));
    assert.equal(g.reg("s3"), BigInt(g.sym("link2")));
    assert.equal(g.reg("s4"), BigInt(g.sym("link3")));
  });
});

void describe("conditional branches", () => {
  const BRANCHES: Record<string, (a: bigint, b: bigint) => boolean> = {
    beq: (a, b) => a === b,
    bne: (a, b) => a !== b,
    blt: (a, b) => s64(a) < s64(b),
    bge: (a, b) => s64(a) >= s64(b),
    bltu: (a, b) => a < b,
    bgeu: (a, b) => a >= b,
  };
  const names = Object.keys(BRANCHES);
  // Each branch sets its result register to 1 when taken, 2 when not.
  const kernel = new Kernel(
    names
      .map(
        (op, i) => `
      ${op} a0, a1, 1f
      li ${RESULT_REGS[i]}, 2
      j 2f
      1: li ${RESULT_REGS[i]}, 1
      2:`,
      )
      .join("\n"),
  );
  const values = [
    0n, 1n, MASK64, MASK64 - 1n, 0x8000_0000_0000_0000n, 0x7fff_ffff_ffff_ffffn,
    0x8000_0000n, 0xffff_ffff_8000_0000n, 0x1_0000_0000n, 0xffff_ffffn, 0x1_ffff_ffffn,
  ]; // prettier-ignore

  void test("taken and not taken, signed and unsigned, for every pair", () => {
    let taken = 0;
    let notTaken = 0;
    for (const a of values) {
      for (const b of values) {
        const g = kernel.call({ a0: a, a1: b });
        names.forEach((op, i) => {
          const want = BRANCHES[op](a, b);
          if (want) taken++;
          else notTaken++;
          assert.equal(g.reg(RESULT_REGS[i]), want ? 1n : 2n, `${op} ${hex(a)}, ${hex(b)}`);
        });
      }
    }
    assert.ok(taken > 100 && notTaken > 100);
  });

  void test("backward branches loop the right number of times", () => {
    const g = runToEnd(`
      li a0, 0
      li a1, 1000
      1: addi a0, a0, 3
      addi a1, a1, -1
      bnez a1, 1b
      li a2, -5
      li a3, 0
      2: addi a3, a3, 1
      addi a2, a2, 1
      blt a2, zero, 2b
    `);
    assert.equal(g.reg("a0"), 3000n);
    assert.equal(g.reg("a3"), 5n);
  });

  void test("a branch across a page boundary lands on the right instruction", () => {
    const g = runToEnd(`
      li a0, 0
      j 1f
      .balign 4096
      .skip 4096 - 8
      1: addi a0, a0, 1     # last two words of a page
      beqz zero, 2f
      2: addi a0, a0, 2     # first word of the next page
      bnez a0, 3f
      .skip 64
      3: addi a0, a0, 4
    `);
    assert.equal(g.reg("a0"), 7n);
  });
});

void describe("loads and stores", () => {
  const DATA = "0x80 0x81 0x7f 0xff 0x01 0x80 0xfe 0x7f 0x11 0x22 0x33 0x44 0x55 0x66 0x77 0x88";
  const bytes = DATA.split(" ").map(Number);
  const view = new DataView(new Uint8Array([...bytes, ...bytes]).buffer);
  const LOADS: [string, (at: number) => bigint][] = [
    ["lb", (at) => u64(BigInt(view.getInt8(at)))],
    ["lbu", (at) => BigInt(view.getUint8(at))],
    ["lh", (at) => u64(BigInt(view.getInt16(at, true)))],
    ["lhu", (at) => BigInt(view.getUint16(at, true))],
    ["lw", (at) => u64(BigInt(view.getInt32(at, true)))],
    ["lwu", (at) => BigInt(view.getUint32(at, true))],
    ["ld", (at) => view.getBigUint64(at, true)],
  ];

  void test("every width with sign and zero extension, at every alignment (misaligned emulated)", () => {
    // The data is repeated twice so every offset 0..7 has 8 valid bytes after it.
    const body: string[] = ["la t6, data", "la t5, results"];
    for (let at = 0; at < 8; at++) {
      for (const [op] of LOADS) body.push(`${op} t0, ${at}(t6)`, "sd t0, 0(t5)", "addi t5, t5, 8");
    }
    const g = runToEnd(
      `${body.join("\n")}
      .data
      .balign 8
      data: .byte ${bytes.join(", ")}, ${bytes.join(", ")}
      results: .zero ${8 * 7 * 8}
    `,
    );
    const results = g.sym("results");
    let i = 0;
    for (let at = 0; at < 8; at++) {
      for (const [op, model] of LOADS) {
        assert.equal(hex(g.load64(results + 8 * i++)), hex(model(at)), `${op} at +${at}`);
      }
    }
  });

  void test("negative offsets and a base register that is also rd", () => {
    const g = runToEnd(`
      la a0, data + 2048
      ld a0, -2048(a0)
      la a1, data + 16
      lw a2, -12(a1)
      lbu a3, -1(a1)
      .data
      .balign 8
      data: .dword 0x1122334455667788, 0xf0e0d0c0b0a09080
    `);
    assert.equal(hex(g.reg("a0")), "0x1122334455667788");
    assert.equal(hex(g.reg("a2")), "0x11223344");
    assert.equal(hex(g.reg("a3")), "0xf0");
  });

  void test("stores write exactly their width, at every alignment", () => {
    const STORES: [string, number][] = [
      ["sb", 1],
      ["sh", 2],
      ["sw", 4],
      ["sd", 8],
    ];
    const value = 0x8877_6655_4433_2211n;
    for (const [op, width] of STORES) {
      for (let at = 0; at < 8; at++) {
        const g = runToEnd(`
          la t6, buf
          li t0, ${value}
          ${op} t0, ${at + 8}(t6)
          .data
          .balign 8
          buf: .space 32, 0xaa
        `);
        const got = g.memory.read(g.sym("buf"), 32);
        const want = new Uint8Array(32).fill(0xaa);
        for (let k = 0; k < width; k++) want[8 + at + k] = Number((value >> BigInt(8 * k)) & 0xffn);
        assert.deepEqual(got, want, `${op} at +${at}`);
      }
    }
  });

  void test("misaligned loads and stores across a page boundary", () => {
    const page = RAM_BASE + 0x10_0000; // an otherwise unused page boundary
    for (const [op, ld, width] of [
      ["sh", "lh", 2],
      ["sw", "lw", 4],
      ["sd", "ld", 8],
    ] as const) {
      for (let before = 1; before < width; before++) {
        const addr = page - before;
        const g = runToEnd(`
          li t6, ${addr}
          li t0, 0x8899aabbccddeeff
          ${op} t0, 0(t6)
          ${ld} a0, 0(t6)
          lbu a1, ${before}(t6)   # first byte of the second page
        `);
        const mask = (1n << BigInt(8 * width)) - 1n;
        const stored = 0x8899_aabb_ccdd_eeffn & mask;
        const bytes = g.memory.read(addr, width);
        let fromMemory = 0n;
        for (let k = width - 1; k >= 0; k--) fromMemory = (fromMemory << 8n) | BigInt(bytes[k]);
        assert.equal(hex(fromMemory), hex(stored), `${op} at page - ${before}`);
        assert.equal(hex(g.reg("a0")), hex(u64(BigInt.asIntN(8 * width, stored))), ld);
        assert.equal(g.reg("a1"), (stored >> BigInt(8 * before)) & 0xffn);
      }
    }
  });

  void test("a misaligned store whose second page misses exits before writing anything", () => {
    const end = RAM_BASE + RAM_SIZE;
    const g = runGuest(`
      li t6, ${end - 4}
      li t0, -1
      sd t0, 0(t6)
    `);
    assert.equal(g.exit, EXIT_GUEST_PAGE_FAULT);
    assert.equal(g.hart.fault.gpa, end);
    assert.equal(g.hart.fault.access, ACCESS_WRITE);
    assert.deepEqual(g.memory.read(end - 4, 4), new Uint8Array(4));
  });

  void test("a misaligned load whose second page misses exits without writing rd", () => {
    const end = RAM_BASE + RAM_SIZE;
    const g = runGuest(`
      li t6, ${end - 2}
      li a0, 1234
      lw a0, 0(t6)
    `);
    assert.equal(g.exit, EXIT_GUEST_PAGE_FAULT);
    assert.equal(g.hart.fault.gpa, end);
    assert.equal(g.hart.fault.access, ACCESS_READ);
    assert.equal(g.reg("a0"), 1234n);
  });
});

void describe("x0", () => {
  void test("is never written, by any kind of instruction", () => {
    const g = runToEnd(`
      la s0, data
      addi x0, x0, 5
      lui x0, 0x12345
      auipc x0, 1
      add x0, s0, s0
      addw x0, s0, s0
      slli x0, s0, 3
      mul x0, s0, s0
      div x0, s0, s0
      ld x0, 0(s0)
      lw x0, 1(s0)          # misaligned: the slow path
      amoadd.d x0, s0, (s0)
      lr.d x0, (s0)
      csrrw x0, sscratch, s0
      csrr x0, sscratch
      jal x0, 1f
      1: la t0, 2f
      jalr x0, 0(t0)
      2: mv a0, x0
      addi a1, x0, 0
      .data
      .balign 8
      data: .dword 0x0123456789abcdef
    `);
    assert.equal(g.reg(0), 0n);
    assert.equal(g.reg("a0"), 0n);
    assert.equal(g.reg("a1"), 0n);
  });
});

void describe("addresses above 4 GiB", () => {
  // RAM from 0xffff_f000 to 0x1_0000_2000: code runs across the 4 GiB line.
  const BASE = 0xffff_f000;
  const source = `
    .globl _start
    _start:
    j cross
    .skip 4096 - 20
    cross:                    # 0xffff_fff0
    li a5, 0
    li a4, 3
    loop:                     # 0xffff_fff8
    addi a5, a5, 1
    addi a4, a4, -1
    bnez a4, loop             # 0x1_0000_0000: a backward branch across the line
    here: auipc a0, 0         # 0x1_0000_0004
    auipc a1, 0xfffff
    jal ra, far
    link:
    la s0, data
    ld s1, 0(s0)
    sd a0, 8(s0)
    li t0, 0x100000004
    ld a2, -8(t0)             # 0xffff_fffc: a negative offset borrowing from the upper word
    li t1, 0xfffffffe
    li t2, 0x1122334455667788
    sd t2, 0(t1)              # misaligned store across the line (over code already run)
    ld a3, 0(t1)
    lw a4, 2(t1)              # 0x1_0000_0000
    ecall
    far:
    mv s2, ra
    la t3, back
    jalr s3, 0(t3)
    back:
    ret
    .data
    .balign 8
    data: .dword 0x0123456789abcdef, 0
  `;

  void test("fetch, branches, links, AUIPC and (misaligned) accesses across the line", () => {
    const memory = new FlatMemory(BASE, 0x3000);
    const g = makeGuest(source, { raw: true, memory, textAddress: BASE });
    assert.equal(g.sym("cross"), 0xffff_fff0, "layout");
    const codeAcross = g.memory.read(0xffff_fffc, 8);
    g.run();
    assert.equal(g.exit, EXIT_SBI);
    assert.equal(g.reg("a5"), 3n, "the loop across the line ran three times");
    assert.equal(hex(g.reg("a0")), "0x100000004");
    assert.equal(hex(g.reg("a1")), hex(0x1_0000_0008n - 0x1000n));
    assert.equal(g.reg("ra"), BigInt(g.sym("link")));
    assert.equal(g.reg("s2"), BigInt(g.sym("link")));
    assert.equal(g.reg("s3"), BigInt(g.sym("back")));
    assert.ok(g.sym("link") > 0x1_0000_0000);
    assert.equal(hex(g.reg("s1")), "0x123456789abcdef");
    assert.equal(g.load64(g.sym("data") + 8), 0x1_0000_0004n);
    const view = new DataView(codeAcross.buffer);
    assert.equal(hex(g.reg("a2")), hex(view.getBigUint64(0, true)));
    assert.equal(hex(g.reg("a3")), "0x1122334455667788");
    assert.equal(hex(g.reg("a4")), "0x33445566");
    assert.deepEqual(
      g.memory.read(0xffff_fffe, 8),
      new Uint8Array([0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]),
    );
  });
});

void describe("FENCE and FENCE.I", () => {
  void test("fences execute; code stored before FENCE.I is fetched", () => {
    const g = runToEnd(`
      fence
      fence rw, rw
      fence.tso
      fence.i
      la t0, patch
      li t1, ${0x02a0_0513}   # li a0, 42
      sw t1, 0(t0)
      fence.i
      patch: li a0, 1
    `);
    assert.equal(g.reg("a0"), 42n);
  });
});

void describe("constants", () => {
  void test("li materializes any 64-bit constant (LUI/ADDIW/SLLI/ADDI chains)", () => {
    const values = [
      ...operands(120, 99n),
      0x7fff_ffff_8000_0000n,
      0xffff_ffff_7fff_ffffn,
      0x7fff_f800n,
      0x7fff_f7ffn,
      0xffff_ffff_f800n,
    ];
    // Signed decimal operands, stored 8 bytes apart (offsets stay below 2048).
    const body = values.map((v, i) => `li a0, ${s64(v)}\nsd a0, ${8 * i}(t6)`);
    const g = runToEnd(
      `la t6, out\n${body.join("\n")}\n.data\n.balign 8\nout: .zero ${8 * values.length}\n`,
    );
    values.forEach((v, i) => {
      assert.equal(hex(g.load64(g.sym("out") + 8 * i)), hex(v), `li ${hex(v)}`);
    });
  });
});
