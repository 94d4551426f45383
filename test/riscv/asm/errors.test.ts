/** Diagnostics: location format, multiple errors, ranges and every kind of mistake. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { assemble, AssemblerError } from "../../../src/riscv/asm/index.js";
import { Random } from "./corpus.js";
import { assemblyError, assertAsmError } from "./helpers.js";

describe("diagnostic format", () => {
  test("file:line:column: message", () => {
    const source = "# header\n".repeat(11) + "        addd a0, a1, a2\n";
    const error = assemblyError(source, { fileName: "file.s" });
    assert.ok(error instanceof AssemblerError);
    assert.equal(error.message, "file.s:12:9: unknown instruction 'addd'");
    assert.equal(error.fileName, "file.s");
    assert.equal(error.line, 12);
    assert.equal(error.column, 9);
    assert.equal(error.reason, "unknown instruction 'addd'");
  });

  test("every error is reported, in source order", () => {
    const error = assemblyError("nop\nfoo\naddi a0, a0\n  bar a0\n", { fileName: "m.s" });
    assert.deepEqual(
      error.diagnostics.map((d) => `${d.line}:${d.column}`),
      ["2:1", "3:1", "4:3"],
    );
    assert.equal(error.message.split("\n").length, 3);
    assert.match(error.message, /^m\.s:2:1: unknown instruction 'foo'\nm\.s:3:1: 'addi' takes 3/);
  });

  test("errors found after layout are all reported too", () => {
    const error = assemblyError("addi a0, a0, 4096\nj nowhere\n.data\n.byte 300\n");
    assert.deepEqual(
      error.diagnostics.map((d) => `${d.line}:${d.column}`),
      ["1:14", "2:3", "4:7"],
    );
  });

  test("errors found after layout carry their line and operand column", () => {
    const error = assemblyError("nop\nnop\n  beq a0, a1, nowhere\n");
    assert.equal(error.line, 3);
    assert.equal(error.column, 15);
    assert.equal(error.reason, "undefined symbol 'nowhere'");
  });

  test("the default file name", () => {
    assert.match(assemblyError("bogus").message, /^<source>:1:1: /);
  });
});

describe("immediates at their limits", () => {
  const limits: [string, string, string][] = [
    // [fits, one past, error]
    [
      "addi a0, a0, 2047",
      "addi a0, a0, 2048",
      "addi: immediate 2048 is out of range (-2048..2047)",
    ],
    ["addi a0, a0, -2048", "addi a0, a0, -2049", "out of range"],
    ["ld a0, 2047(a1)", "ld a0, 2048(a1)", "ld: immediate 2048 is out of range"],
    ["sd a0, -2048(a1)", "sd a0, -2049(a1)", "sd: offset -2049 is out of range"],
    ["jalr a0, 2047(a1)", "jalr a0, 2048(a1)", "out of range"],
    ["slli a0, a0, 63", "slli a0, a0, 64", "slli: shift amount 64 is out of range (0..63)"],
    ["srai a0, a0, 63", "srai a0, a0, -1", "shift amount -1"],
    ["slliw a0, a0, 31", "slliw a0, a0, 32", "slliw: shift amount 32 is out of range (0..31)"],
    ["sraiw a0, a0, 31", "sraiw a0, a0, 32", "out of range (0..31)"],
    ["lui a0, 0xfffff", "lui a0, 0x100000", "lui: immediate 1048576 is out of range (0..1048575)"],
    ["auipc a0, 0", "auipc a0, -1", "auipc: immediate -1 is out of range"],
    [
      "csrrwi a0, 0x100, 31",
      "csrrwi a0, 0x100, 32",
      "csrrwi: immediate 32 is out of range (0..31)",
    ],
    [
      "csrrs a0, 4095, a1",
      "csrrs a0, 4096, a1",
      "csrrs: CSR number 4096 is out of range (0..4095)",
    ],
    ["beq a0, a1, .+4092", "beq a0, a1, .+4096", "beq: target out of range (offset 4096"],
    ["beq a0, a1, .-4096", "beq a0, a1, .-4100", "target out of range"],
    ["jal .+0xffffc", "jal .+0x100000", "jal: target out of range (offset 1048576"],
    ["jal .-0x100000", "jal .-0x100004", "target out of range"],
    [".byte 255, -128", ".byte 256", "value 256 does not fit in 1 byte(s)"],
    [".byte 0", ".byte -129", "value -129 does not fit"],
    [".half 65535, -32768", ".half 65536", "does not fit in 2 byte(s)"],
    [".word 0xffffffff", ".word 0x100000000", "does not fit in 4 byte(s)"],
    [".word -0x80000000", ".word -0x80000001", "does not fit in 4 byte(s)"],
    [".dword 0xffffffffffffffff", ".dword 0x10000000000000000", "does not fit in 8 byte(s)"],
    ["li a0, 0xffffffffffffffff", "li a0, 0x10000000000000000", "does not fit in 64 bits"],
    ["li a0, -0x8000000000000000", "li a0, -0x8000000000000001", "does not fit in 64 bits"],
  ];
  for (const [fits, past, message] of limits) {
    test(`${fits} / ${past}`, () => {
      assert.doesNotThrow(() => assemble(fits));
      assertAsmError(past, message);
    });
  }

  test("branch and jump targets must be 4-byte aligned", () => {
    assertAsmError("beq a0, a1, .+6", "beq: misaligned target (offset 6 is not a multiple of 4");
    assertAsmError("jal .+2", "jal: misaligned target");
    assertAsmError("bnez a0, .+1", "misaligned target");
  });
});

describe("source mistakes", () => {
  const cases: [string, string, string | RegExp][] = [
    ["unknown instruction", "addd a0, a1, a2", "unknown instruction 'addd'"],
    [
      "too few operands",
      "add a0, a1",
      /'add' takes 3 operand\(s\), got 2 \(add rd, rs1, rs2 \| add rd, rs1, imm\)/,
    ],
    ["too many operands", "ecall a0", "'ecall' takes 0 operand(s), got 1"],
    [
      "register expected",
      "add a0, 5, a1",
      "operand 2 of 'add' must be a register, not an immediate or symbol",
    ],
    [
      "immediate expected",
      "addi a0, a1, a2",
      "operand 3 of 'addi' must be an immediate or symbol, not a register",
    ],
    [
      "memory operand expected",
      "sd a0, a1",
      "operand 2 of 'sd' must be a memory operand like offset(reg)",
    ],
    ["undefined symbol", "j nowhere", "undefined symbol 'nowhere'"],
    ["duplicate label", "x: nop\nx: nop", "symbol 'x' is already defined (line 1)"],
    ["label redefined by .equ", "x: nop\n.equ x, 1", "symbol 'x' is already defined"],
    ["undefined backward local label", "j 1b", "local label '1' is not defined before '1b'"],
    ["undefined forward local label", "1: j 1f", "undefined symbol '1f'"],
    [
      "li of an address",
      "x: li a0, x",
      "li needs a constant defined before this line (use la for addresses)",
    ],
    [
      "li of a later constant",
      "li a0, K\n.equ K, 5",
      "li needs a constant defined before this line",
    ],
    ["unknown CSR name", "csrr a0, nosuchcsr", "undefined symbol 'nosuchcsr'"],
    ["bad fence set", "fence rw, x", "fence operands must be sets of i, o, r, w"],
    ["repeated fence letter", "fence rr, w", "fence operands must be sets of i, o, r, w"],
    ["atomic with an offset", "amoadd.w a0, a1, 4(a2)", "atomic instructions take no offset"],
    [
      "%pcrel_lo without %pcrel_hi",
      "x: nop\naddi a0, a0, %pcrel_lo(x)",
      "%pcrel_lo: no %pcrel_hi instruction at",
    ],
    [
      "%hi beyond 32 bits",
      "lui a0, %hi(0x80000000)",
      /%hi\(0x80000000\) does not fit a lui\/auipc \+ 12-bit pair/,
    ],
    ["unknown relocation operator", "lui a0, %high(1)", "unknown relocation operator '%high'"],
    ["division by zero", ".word 1 / 0", "division by zero"],
    ["adding two addresses", "a: .dword a + a", "cannot add two addresses"],
    [
      "address difference across sections",
      "a: nop\n.data\nb: .word b - a",
      "cannot subtract addresses in different sections",
    ],
    ["instructions in .bss", ".bss\nnop", "instructions are not allowed in .bss"],
    ["data in .bss", ".bss\n.word 1", ".bss holds no data: only zeros can be stored in it"],
    [
      "misaligned instruction",
      ".byte 1\nnop",
      "instruction at offset 0x1 in .text is not 4-byte aligned",
    ],
    ["unknown directive", ".frobnicate 3", "unknown directive '.frobnicate'"],
    ["compressed instructions", ".option rvc", "compressed instructions are not supported"],
    ["unsupported option", ".option pic", "unsupported .option 'pic'"],
    ["circular .equ", ".equ a, b\n.equ b, a\n.word a", "symbol 'a' is defined in terms of itself"],
    [".globl of nothing", ".globl missing\nnop", "'missing' is declared .globl but never defined"],
    [
      "_start outside code",
      "nop\n.data\n_start: .word 0",
      "_start (0x80201000) is not in an executable section",
    ],
    ["empty program", "# nothing\n.equ X, 1", "nothing to assemble: no code or data"],
    ["unterminated string", '.ascii "abc', "unterminated string"],
    ["invalid number", "li a0, 12z", "invalid number '12z'"],
    ["stray character", "li a0, 1 ? 2", "unexpected character '?'"],
    ["bad expression", "li a0, (1 + ", "expected an expression"],
    ["unbalanced parenthesis", "li a0, (1 + 2", "expected ')'"],
    ["trailing junk", "li a0, 1 2", "unexpected '2' in expression"],
    ["empty operand", "add a0, , a1", "missing operand before ','"],
    ["alignment not a power of two", ".balign 3", "alignment 3 is not a power of 2"],
    [
      "alignment from a later symbol",
      ".align N\n.equ N, 2",
      "alignment must be a constant known at this point, but 'N' is not defined yet",
    ],
    ["negative .space", ".space -1", "size -1 is not in 0.."],
    [".align exponent too large", ".align 17", "alignment exponent 17 is not in 0..16"],
    ["shift count", ".word 1 << 64", "shift count 64 is not in 0..63"],
    [
      "la of a wide constant",
      "la a0, 0x100000000",
      "la: constant address 4294967296 does not fit 32 bits",
    ],
    ["string in an expression", 'li a0, "x"', "a string is not allowed in an expression"],
    [
      "section type",
      '.section .x, "aw", progbits',
      "expected a section type such as @progbits or @nobits",
    ],
  ];
  for (const [name, source, message] of cases) {
    test(name, () => {
      assertAsmError(source, message);
    });
  }

  test("textAddress must be a multiple of 4", () => {
    assert.throws(() => assemble("nop", { textAddress: 2 }), RangeError);
  });
});

describe("robustness", () => {
  test("mangled source only ever produces AssemblerError", () => {
    const random = new Random(0xbad_5eedn);
    const pieces = [
      ",",
      "(",
      ")",
      "%hi(",
      "%pcrel_lo(",
      "1b",
      "2f",
      ".",
      ":",
      "0x",
      "'",
      '"',
      "-",
      "<<",
      "~",
      "a0",
      "x32",
      "/*",
      "#",
      ";",
      "=",
      "@",
      "99999999999999999999999",
      ".equ x,",
      ".section",
      ".align",
      "li",
      "la",
      "csrr",
      "fence",
      "sd",
      "amoadd.w",
      "lr.d",
      "\t",
      "\n",
    ];
    const lines = [
      "  .globl _start",
      "_start: li a0, 0x123456789",
      "1: addi a1, a0, -1",
      "  bnez a1, 1b",
      "  la t0, data",
      "  lw t1, 4(t0)",
      "  sd t1, data, t2",
      "  csrw sscratch, t1",
      "  amoadd.w a0, a1, (a2)",
      "  fence rw, rw",
      "  .data",
      "data: .word 1, 2, data",
      '  .asciz "hi"',
      "  .balign 8",
      "  .equ K, 3 * 4",
      "  .bss",
      "  .space K",
    ];
    for (let round = 0; round < 3000; round++) {
      const source = lines
        .map((line) => {
          let mangled = line;
          for (let edits = random.below(3); edits > 0; edits--) {
            const at = random.below(mangled.length + 1);
            mangled = random.below(2)
              ? mangled.slice(0, at) + random.pick(pieces) + mangled.slice(at)
              : mangled.slice(0, at) + mangled.slice(at + random.between(1, 4));
          }
          return mangled;
        })
        .join("\n");
      try {
        assemble(source);
      } catch (error) {
        assert.ok(error instanceof AssemblerError, `${String(error)}\nfor source:\n${source}`);
      }
    }
  });
});
