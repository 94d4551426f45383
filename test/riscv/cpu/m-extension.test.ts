/**
 * The M extension against a BigInt model written from the spec's tables,
 * including division by zero and signed overflow.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { hex, Kernel, MASK64, operands, rng, s64, sext32, u64 } from "./guest.js";

const M32 = 0xffff_ffffn;
const MIN64 = 1n << 63n;
const MIN32 = -(1n << 31n);

const MODEL: Record<string, (a: bigint, b: bigint) => bigint> = {
  mul: (a, b) => u64(a * b),
  mulh: (a, b) => u64((s64(a) * s64(b)) >> 64n),
  mulhsu: (a, b) => u64((s64(a) * b) >> 64n),
  mulhu: (a, b) => (a * b) >> 64n,
  mulw: (a, b) => sext32(a * b),
  div: (a, b) => {
    if (b === 0n) return MASK64;
    if (a === MIN64 && b === MASK64) return MIN64;
    return u64(s64(a) / s64(b)); // BigInt division truncates toward zero, as RISC-V does
  },
  divu: (a, b) => (b === 0n ? MASK64 : a / b),
  rem: (a, b) => {
    if (b === 0n) return a;
    if (a === MIN64 && b === MASK64) return 0n;
    return u64(s64(a) % s64(b)); // the sign follows the dividend, as RISC-V requires
  },
  remu: (a, b) => (b === 0n ? a : a % b),
  divw: (a, b) => {
    const x = BigInt.asIntN(32, a);
    const y = BigInt.asIntN(32, b);
    if (y === 0n) return MASK64;
    if (x === MIN32 && y === -1n) return sext32(x);
    return sext32(x / y);
  },
  divuw: (a, b) => ((b & M32) === 0n ? MASK64 : sext32((a & M32) / (b & M32))),
  remw: (a, b) => {
    const x = BigInt.asIntN(32, a);
    const y = BigInt.asIntN(32, b);
    if (y === 0n) return sext32(x);
    if (x === MIN32 && y === -1n) return 0n;
    return sext32(x % y);
  },
  remuw: (a, b) => ((b & M32) === 0n ? sext32(a) : sext32((a & M32) % (b & M32))),
};

const OPS = Object.keys(MODEL);
const REGS = ["s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5"];

void describe("M extension", () => {
  const kernel = new Kernel(OPS.map((op, i) => `${op} ${REGS[i]}, a0, a1`).join("\n"));

  const check = (a: bigint, b: bigint) => {
    const g = kernel.call({ a0: a, a1: b });
    OPS.forEach((op, i) => {
      assert.equal(hex(g.reg(REGS[i])), hex(MODEL[op](a, b)), `${op} ${hex(a)}, ${hex(b)}`);
    });
  };

  void test("every operation on edge and random operand pairs matches BigInt", () => {
    const values = operands(64, 0xfeed_beefn);
    for (const a of values) for (const b of values) check(a, b);
  });

  void test("full-width random operands", () => {
    const next = rng(0x5eed_1234n);
    for (let i = 0; i < 3000; i++) check(next(), next());
  });

  void test("small divisors and dividends, all sign combinations", () => {
    const small = [-9n, -7n, -3n, -2n, -1n, 0n, 1n, 2n, 3n, 7n, 9n].map(u64);
    for (const a of small) for (const b of small) check(a, b);
  });

  void test("hand-computed values from the spec", () => {
    const cases: [string, bigint, bigint, bigint][] = [
      ["mulhu", MASK64, MASK64, 0xffff_ffff_ffff_fffen],
      ["mul", MASK64, MASK64, 1n],
      ["mulh", MASK64, MASK64, 0n],
      ["mulh", MIN64, MIN64, 0x4000_0000_0000_0000n],
      ["mulh", MIN64, 2n, MASK64],
      ["mulhsu", MASK64, MASK64, MASK64],
      ["mulhsu", 1n, MASK64, 0n],
      ["mulhsu", MIN64, MASK64, MIN64],
      ["mulw", 0x1_0000_0001n, 0x8000_0000n, 0xffff_ffff_8000_0000n],
      ["mulw", 0x10000n, 0x10000n, 0n],
      // Division by zero: quotient all ones, remainder the dividend.
      ["div", 7n, 0n, MASK64],
      ["divu", 7n, 0n, MASK64],
      ["rem", u64(-7n), 0n, u64(-7n)],
      ["remu", 7n, 0n, 7n],
      ["divw", 0x1_0000_0007n, 0x1_0000_0000n, MASK64],
      ["divuw", 7n, 0n, MASK64],
      ["remw", 0x1_8000_0000n, 0n, 0xffff_ffff_8000_0000n],
      ["remuw", 0x1_8000_0000n, 0x1_0000_0000n, 0xffff_ffff_8000_0000n],
      // Signed overflow: the quotient is the dividend, the remainder 0.
      ["div", MIN64, MASK64, MIN64],
      ["rem", MIN64, MASK64, 0n],
      ["divw", 0x8000_0000n, MASK64, 0xffff_ffff_8000_0000n],
      ["remw", 0x8000_0000n, MASK64, 0n],
      // Truncation toward zero.
      ["div", u64(-7n), 2n, u64(-3n)],
      ["rem", u64(-7n), 2n, MASK64],
      ["div", 7n, u64(-2n), u64(-3n)],
      ["rem", 7n, u64(-2n), 1n],
      ["divu", u64(-7n), 2n, 0x7fff_ffff_ffff_fffcn],
      ["divw", 0xffff_fff9n, 2n, u64(-3n)],
      ["divuw", 0xffff_fff9n, 2n, 0x7fff_fffcn],
      ["remuw", 0xffff_fff9n, 0x10n, 9n],
      // The W forms ignore the upper words of both operands.
      ["divw", 0xdead_0000_0000_0064n, 0xbeef_0000_0000_0005n, 20n],
      ["mulw", 0xdead_0000_0000_0003n, 0xbeef_0000_0000_0005n, 15n],
      // -2^31 / -1 in 64 bits is no overflow: +2^31.
      ["div", 0xffff_ffff_8000_0000n, MASK64, 0x8000_0000n],
      ["rem", 0xffff_ffff_8000_0000n, MASK64, 0n],
    ];
    for (const [op, a, b, want] of cases) {
      const g = kernel.call({ a0: a, a1: b });
      assert.equal(hex(g.reg(REGS[OPS.indexOf(op)])), hex(want), `${op} ${hex(a)}, ${hex(b)}`);
    }
  });
});
