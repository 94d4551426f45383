/**
 * The A extension on one hart: LR/SC reservations, every AMO in both widths
 * with its returned old value and its memory result, and misaligned atomics.
 * (Atomicity between harts on several threads is in smp.test.ts.)
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { hex, Kernel, MASK64, operands, runToEnd, runToTrap, s64, sext32, u64 } from "./guest.js";

const M32 = 0xffff_ffffn;

/** New memory value of each AMO, on unsigned values of the access width. */
function amoModel(op: string, old: bigint, src: bigint, bits: 32 | 64): bigint {
  const mask = bits === 32 ? M32 : MASK64;
  const signed = (v: bigint) => BigInt.asIntN(bits, v);
  const o = old & mask;
  const s = src & mask;
  switch (op) {
    case "swap":
      return s;
    case "add":
      return (o + s) & mask;
    case "xor":
      return o ^ s;
    case "and":
      return o & s;
    case "or":
      return o | s;
    case "min":
      return signed(o) < signed(s) ? o : s;
    case "max":
      return signed(o) > signed(s) ? o : s;
    case "minu":
      return o < s ? o : s;
    case "maxu":
      return o > s ? o : s;
  }
  throw new Error(op);
}

const AMOS = ["swap", "add", "xor", "and", "or", "min", "max", "minu", "maxu"];
const RESULT_REGS = ["s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10"];

void describe("AMOs", () => {
  for (const width of ["w", "d"] as const) {
    const bits = width === "w" ? 32 : 64;
    // Slot i (16 bytes at data + 16 i) is operated on by the i-th AMO; its
    // second doubleword and, for .w, the upper word of the first are canaries.
    const kernel = new Kernel(
      `la t6, data
      ${AMOS.map((op, i) => `amo${op}.${width} ${RESULT_REGS[i]}, a1, (t6)\naddi t6, t6, 16`).join("\n")}
      .data
      .balign 16
      data: .zero ${16 * AMOS.length}`,
    );

    void test(`amo*.${width}: old value in rd (sign-extended) and the new value in memory`, () => {
      const g = kernel.guest;
      const data = g.sym("data");
      const values = operands(40, 0xa70n);
      const canary = 0x5a5a_5a5a_a5a5_a5a5n;
      let distinct = 0;
      for (const old of values) {
        for (const src of values.slice(0, 24)) {
          for (let i = 0; i < AMOS.length; i++) {
            const at = data + 16 * i;
            if (bits === 32) g.store64(at, (canary & ~M32) | (old & M32));
            else g.store64(at, old);
            g.store64(at + 8, canary);
          }
          kernel.call({ a1: src });
          AMOS.forEach((op, i) => {
            const at = data + 16 * i;
            const what = `amo${op}.${width} old ${hex(old)} src ${hex(src)}`;
            const want = amoModel(op, old, src, bits);
            if (want !== (old & (bits === 32 ? M32 : MASK64))) distinct++;
            const rd = g.reg(RESULT_REGS[i]);
            assert.equal(hex(rd), hex(bits === 32 ? sext32(old) : old), `${what}: rd`);
            if (bits === 32) {
              assert.equal(hex(g.load64(at)), hex((canary & ~M32) | want), `${what}: memory`);
            } else {
              assert.equal(hex(g.load64(at)), hex(want), `${what}: memory`);
            }
            assert.equal(g.load64(at + 8), canary, `${what}: neighbour untouched`);
          });
        }
      }
      assert.ok(distinct > 1000);
    });
  }

  void test("min/max compare signed, minu/maxu unsigned", () => {
    const g = runToEnd(`
      la t6, data
      li a1, 1
      amomin.w a2, a1, (t6)       # min(-1, 1) = -1: unchanged
      amominu.w a3, a1, (t6)      # minu(0xffffffff, 1) = 1
      addi t6, t6, 8
      amomax.d a4, a1, (t6)       # max(-2, 1) = 1
      addi t6, t6, 8
      amomaxu.d a5, a1, (t6)      # maxu(0xffff...fffe, 1): unchanged
      addi t6, t6, 8
      li a6, 0x80000000
      amomax.w a7, a6, (t6)       # max(0x7fffffff, INT32_MIN) = 0x7fffffff
      amomaxu.w s2, a6, (t6)      # maxu(0x7fffffff, 0x80000000) = 0x80000000
      .data
      .balign 8
      data: .word -1, 0
      .dword -2, -2
      .word 0x7fffffff, 0
    `);
    const data = g.sym("data");
    assert.equal(g.reg("a2"), MASK64);
    assert.equal(g.reg("a3"), MASK64);
    assert.equal(g.load32(data), 1);
    assert.equal(s64(g.reg("a4")), -2n);
    assert.equal(g.load64(data + 8), 1n);
    assert.equal(g.load64(data + 16), u64(-2n));
    assert.equal(g.reg("a7"), 0x7fff_ffffn);
    assert.equal(g.reg("s2"), 0x7fff_ffffn);
    assert.equal(g.load32(data + 24), 0x8000_0000);
  });

  void test("rd may equal rs2 or rs1: the operands are read before rd is written", () => {
    const g = runToEnd(`
      la s0, data
      li t0, 5
      amoadd.d t0, t0, (s0)       # rd = rs2
      addi s1, s0, 8
      amoswap.d s1, s1, (s1)      # rd = rs1 = rs2
      .data
      .balign 8
      data: .dword 100, 7
    `);
    const data = g.sym("data");
    assert.equal(g.reg("t0"), 100n);
    assert.equal(g.load64(data), 105n);
    assert.equal(g.reg("s1"), 7n);
    assert.equal(g.load64(data + 8), BigInt(data + 8));
  });

  void test("ordering suffixes assemble and behave like the plain forms", () => {
    const g = runToEnd(`
      la t6, data
      li a1, 5
      amoadd.w.aq a2, a1, (t6)
      amoadd.w.rl a2, a1, (t6)
      addi t5, t6, 8
      amoadd.d.aqrl a3, a1, (t5)
      .data
      .balign 8
      data: .word 10, 0
      .dword 100
    `);
    const data = g.sym("data");
    assert.equal(g.reg("a2"), 15n);
    assert.equal(g.reg("a3"), 100n);
    assert.equal(g.load64(data), 20n);
    assert.equal(g.load64(data + 8), 105n);
  });
});

void describe("LR/SC", () => {
  void test("LR.W sign-extends; SC.W succeeds with 0 and stores", () => {
    const g = runToEnd(`
      la s0, data
      lr.w a0, (s0)
      addi a0, a0, 1
      sc.w a1, a0, (s0)
      lr.d a2, (s0)
      .data
      .balign 8
      data: .word 0x80000000, 0x11111111
    `);
    assert.equal(hex(g.reg("a0")), "0xffffffff80000001");
    assert.equal(g.reg("a1"), 0n);
    assert.equal(g.load32(g.sym("data")), 0x8000_0001);
    assert.equal(g.load32(g.sym("data") + 4), 0x1111_1111, "only the word is written");
    assert.equal(hex(g.reg("a2")), "0x1111111180000001");
  });

  void test("LR.D/SC.D succeed on a doubleword", () => {
    const g = runToEnd(`
      la s0, data
      lr.d a0, (s0)
      addi a0, a0, 1
      sc.d a1, a0, (s0)
      .data
      .balign 8
      data: .dword 0xffffffffffffffff
    `);
    assert.equal(g.reg("a0"), 0n);
    assert.equal(g.reg("a1"), 0n);
    assert.equal(g.load64(g.sym("data")), 0n);
  });

  void test("SC fails without a reservation, after another SC, and to a different address", () => {
    // Both doublewords hold the same value, so only the address tells them apart.
    const g = runToEnd(`
      la s0, data
      addi s1, s0, 8
      li t0, 7
      sc.w a0, t0, (s0)          # never reserved
      sc.d a1, t0, (s0)
      lr.d t1, (s0)
      sc.d a4, t0, (s1)          # different address from the LR
      sc.d a5, t0, (s0)          # and that SC consumed the reservation
      lr.w t1, (s1)
      lr.w t1, (s0)              # a newer LR replaces the older reservation
      sc.w a6, t0, (s1)
      lr.w t1, (s0)
      sc.w a2, t0, (s0)          # succeeds: the low word becomes 7
      li t0, 8
      sc.w a3, t0, (s0)          # the reservation was used up
      .data
      .balign 8
      data: .dword 0x100000000, 0x100000000
    `);
    const data = g.sym("data");
    for (const r of ["a0", "a1", "a3", "a4", "a5", "a6"]) {
      assert.notEqual(g.reg(r), 0n, `${r}: this SC must fail`);
    }
    assert.equal(g.reg("a2"), 0n, "the SC right after LR succeeds");
    assert.equal(hex(g.load64(data)), "0x100000007");
    assert.equal(hex(g.load64(data + 8)), "0x100000000");
  });

  void test("an LR/SC increment loop gives the exact count", () => {
    const g = runToEnd(`
      la s0, data
      li s1, 500
      1: lr.d t0, (s0)
      addi t0, t0, 3
      sc.d t1, t0, (s0)
      bnez t1, 1b
      addi s1, s1, -1
      bnez s1, 1b
      .data
      .balign 8
      data: .dword 0
    `);
    assert.equal(g.load64(g.sym("data")), 1500n);
  });
});

void describe("misaligned atomics", () => {
  const cases: [string, bigint, number][] = [
    ["lr.w a0, (t6)", 4n, 2],
    ["lr.d a0, (t6)", 4n, 4],
    ["sc.w a0, a1, (t6)", 6n, 1],
    ["sc.d a0, a1, (t6)", 6n, 4],
    ["amoadd.w a0, a1, (t6)", 6n, 2],
    ["amoswap.d a0, a1, (t6)", 6n, 4],
    ["amomaxu.w a0, a1, (t6)", 6n, 3],
    ["amoor.d a0, a1, (t6)", 6n, 7],
  ];
  for (const [inst, cause, misalign] of cases) {
    void test(`${inst} at +${misalign} raises cause ${cause} with stval = the address`, () => {
      const { guest, trap } = runToTrap(`
        la t6, data + ${misalign}
        li a0, 1234
        li a1, -1
        fault: ${inst}
        .data
        .balign 16
        data: .zero 16
      `);
      assert.equal(trap.cause, cause);
      assert.equal(trap.tval, BigInt(guest.sym("data") + misalign));
      assert.equal(trap.epc, BigInt(guest.sym("fault")));
      assert.equal(guest.reg("a0"), 1234n, "rd is not written");
      assert.deepEqual(guest.memory.read(guest.sym("data"), 16), new Uint8Array(16));
    });
  }
});
