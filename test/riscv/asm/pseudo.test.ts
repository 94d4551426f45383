/**
 * Pseudo-instruction expansions: each must produce exactly the real
 * instructions written out (whose encodings encoding.test.ts pins down), with
 * the choices GNU as makes (scratch registers, li sequences).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { hexWords } from "./helpers.js";

function assertExpands(pseudo: string, real: string): void {
  assert.deepEqual(hexWords(pseudo), hexWords(real), `${pseudo}  ==>  ${real}`);
}

describe("one-instruction pseudo-instructions", () => {
  const cases: [string, string][] = [
    ["nop", "addi zero, zero, 0"],
    ["mv a0, a1", "addi a0, a1, 0"],
    ["not a0, a1", "xori a0, a1, -1"],
    ["neg a0, a1", "sub a0, zero, a1"],
    ["negw a0, a1", "subw a0, zero, a1"],
    ["sext.w a0, a1", "addiw a0, a1, 0"],
    ["zext.b a0, a1", "andi a0, a1, 255"],
    ["seqz a0, a1", "sltiu a0, a1, 1"],
    ["snez a0, a1", "sltu a0, zero, a1"],
    ["sltz a0, a1", "slt a0, a1, zero"],
    ["sgtz a0, a1", "slt a0, zero, a1"],
    ["sgt a0, a1, a2", "slt a0, a2, a1"],
    ["sgtu a0, a1, a2", "sltu a0, a2, a1"],
    ["add a0, a1, 5", "addi a0, a1, 5"],
    ["and a0, a1, 5", "andi a0, a1, 5"],
    ["or a0, a1, 5", "ori a0, a1, 5"],
    ["xor a0, a1, 5", "xori a0, a1, 5"],
    ["slt a0, a1, 5", "slti a0, a1, 5"],
    ["sltu a0, a1, 5", "sltiu a0, a1, 5"],
    ["sll a0, a1, 5", "slli a0, a1, 5"],
    ["srl a0, a1, 5", "srli a0, a1, 5"],
    ["sra a0, a1, 5", "srai a0, a1, 5"],
    ["addw a0, a1, 5", "addiw a0, a1, 5"],
    ["sllw a0, a1, 5", "slliw a0, a1, 5"],
    ["srlw a0, a1, 5", "srliw a0, a1, 5"],
    ["sraw a0, a1, 5", "sraiw a0, a1, 5"],
    ["jr a0", "jalr zero, 0(a0)"],
    ["jr a0, 8", "jalr zero, 8(a0)"],
    ["jr 8(a0)", "jalr zero, 8(a0)"],
    ["jalr a0", "jalr ra, 0(a0)"],
    ["jalr t0, a0", "jalr t0, 0(a0)"],
    ["jalr 4(a0)", "jalr ra, 4(a0)"],
    ["jalr t0, a0, 12", "jalr t0, 12(a0)"],
    ["ret", "jalr zero, 0(ra)"],
    ["j .+8", "jal zero, .+8"],
    ["jal .+8", "jal ra, .+8"],
    ["beqz a0, .+8", "beq a0, zero, .+8"],
    ["bnez a0, .+8", "bne a0, zero, .+8"],
    ["blez a0, .+8", "bge zero, a0, .+8"],
    ["bgez a0, .+8", "bge a0, zero, .+8"],
    ["bltz a0, .+8", "blt a0, zero, .+8"],
    ["bgtz a0, .+8", "blt zero, a0, .+8"],
    ["bgt a0, a1, .+8", "blt a1, a0, .+8"],
    ["ble a0, a1, .+8", "bge a1, a0, .+8"],
    ["bgtu a0, a1, .+8", "bltu a1, a0, .+8"],
    ["bleu a0, a1, .+8", "bgeu a1, a0, .+8"],
    ["csrr a0, sstatus", "csrrs a0, sstatus, zero"],
    ["csrw stvec, a0", "csrrw zero, stvec, a0"],
    ["csrs sie, a0", "csrrs zero, sie, a0"],
    ["csrc sip, a0", "csrrc zero, sip, a0"],
    ["csrwi sscratch, 3", "csrrwi zero, sscratch, 3"],
    ["csrsi sstatus, 2", "csrrsi zero, sstatus, 2"],
    ["csrci sstatus, 2", "csrrci zero, sstatus, 2"],
    ["csrw sscratch, 7", "csrrwi zero, sscratch, 7"],
    ["csrrw a0, sscratch, 7", "csrrwi a0, sscratch, 7"],
    ["rdcycle a0", "csrrs a0, cycle, zero"],
    ["rdtime a0", "csrrs a0, time, zero"],
    ["rdinstret a0", "csrrs a0, instret, zero"],
    ["csrr a0, 0x100", "csrrs a0, sstatus, zero"],
    ["li a0, 2047", "addi a0, zero, 2047"],
    ["li a0, -2048", "addi a0, zero, -2048"],
    ["li a0, 0xffffffffffffffff", "addi a0, zero, -1"],
    ["li a0, 'A'", "addi a0, zero, 65"],
  ];
  for (const [pseudo, real] of cases) test(pseudo, () => assertExpands(pseudo, real));
});

describe("li follows GNU as's load_const", () => {
  const cases: [string, string[]][] = [
    ["li a0, 2048", ["lui a0, 0x1", "addiw a0, a0, -2048"]],
    ["li a0, 0x1000", ["lui a0, 0x1"]],
    ["li a0, 0x12345678", ["lui a0, 0x12345", "addiw a0, a0, 0x678"]],
    ["li a0, 0x7ffff800", ["lui a0, 0x80000", "addiw a0, a0, -2048"]],
    ["li a0, -0x80000000", ["lui a0, 0x80000"]],
    ["li a0, 0x80000000", ["addiw a0, zero, 1", "slli a0, a0, 31"]],
    ["li a0, 0x100000000", ["addiw a0, zero, 1", "slli a0, a0, 32"]],
    ["li a0, 0xffffffff", ["addiw a0, zero, 1", "slli a0, a0, 32", "addi a0, a0, -1"]],
    ["li a0, 0x7fffffffffffffff", ["addiw a0, zero, -1", "slli a0, a0, 63", "addi a0, a0, -1"]],
    ["li a0, 0x8000000000000000", ["addiw a0, zero, -1", "slli a0, a0, 63"]],
    [
      "li a0, 0x123456789abcdef0",
      [
        "lui a0, 0x247",
        "addiw a0, a0, -1875",
        "slli a0, a0, 14",
        "addi a0, a0, -947",
        "slli a0, a0, 12",
        "addi a0, a0, 1511",
        "slli a0, a0, 13",
        "addi a0, a0, -272",
      ],
    ],
    // GNU as tests "did lui write a register other than x0", so x0 always gets the addiw.
    ["li zero, 0x1000", ["lui zero, 0x1", "addiw zero, zero, 0"]],
    ["li a0, BIG", ["addiw a0, zero, 1", "slli a0, a0, 32"]],
  ];
  for (const [pseudo, real] of cases) {
    test(pseudo, () => {
      const prefix = ".equ BIG, 1 << 32\n";
      assertExpands(prefix + pseudo, prefix + real.join("\n"));
    });
  }
});

describe("pc-relative pseudo-instructions", () => {
  // The data label sits 0x1000 - 8 bytes after the first instruction (.data starts on the next page).
  const data = "\n.data\nvalue: .dword 0\n";
  const cases: [string, string][] = [
    ["la a0, value", "auipc a0, 1\naddi a0, a0, 0"],
    ["lla a0, value", "auipc a0, 1\naddi a0, a0, 0"],
    ["nop\nla a0, value", "nop\nauipc a0, 1\naddi a0, a0, -4"],
    ["lw a1, value", "auipc a1, 1\nlw a1, 0(a1)"],
    ["ld a1, value + 8", "auipc a1, 1\nld a1, 8(a1)"],
    ["sw a1, value, t0", "auipc t0, 1\nsw a1, 0(t0)"],
    ["sd a1, value, t0", "auipc t0, 1\nsd a1, 0(t0)"],
    ["call value", "auipc ra, 1\njalr ra, 0(ra)"],
    ["call t0, value", "auipc t1, 1\njalr t0, 0(t1)"],
    ["tail value", "auipc t1, 1\njalr zero, 0(t1)"],
    ["jump value, t2", "auipc t2, 1\njalr zero, 0(t2)"],
    ["1: auipc a0, %pcrel_hi(value)\naddi a0, a0, %pcrel_lo(1b)", "auipc a0, 1\naddi a0, a0, 0"],
    [
      "1: auipc a0, %pcrel_hi(value)\nnop\nld a1, %pcrel_lo(1b)(a0)",
      "auipc a0, 1\nnop\nld a1, 0(a0)",
    ],
    [".Lx: auipc a0, %pcrel_hi(value + 4)\nsd a1, %pcrel_lo(.Lx)(a0)", "auipc a0, 1\nsd a1, 4(a0)"],
    // A constant address is materialised like li (without li's single-addi shortcut).
    ["la a0, 0x1000", "lui a0, 1"],
    ["la a0, 5", "addiw a0, zero, 5"],
  ];
  for (const [pseudo, real] of cases) {
    test(pseudo.replace(/\n/g, "; "), () => assertExpands(pseudo + data, real + data));
  }

  test("la reaches backwards with a negative offset", () => {
    assert.deepEqual(hexWords("x: nop\nla a0, x"), hexWords("nop\nauipc a0, 0\naddi a0, a0, -4"));
  });
});

describe("%hi and %lo", () => {
  test("absolute addressing of a low address", () => {
    const source = ".equ ADDR, 0x12345fff\nlui a0, %hi(ADDR)\naddi a0, a0, %lo(ADDR)";
    assert.deepEqual(hexWords(source), hexWords("lui a0, 0x12346\naddi a0, a0, -1"));
  });
  test("%lo in a load and a store offset", () => {
    const source = ".equ ADDR, 0x801\nlw a0, %lo(ADDR)(a1)\nsw a0, %lo(ADDR)(a1)";
    assert.deepEqual(hexWords(source), hexWords("lw a0, -2047(a1)\nsw a0, -2047(a1)"));
  });
});
