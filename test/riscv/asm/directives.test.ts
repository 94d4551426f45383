/** Data directives, alignment, sections and layout, symbols and the entry point. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { assemble } from "../../../src/riscv/asm/index.js";
import { PF_R, PF_W, PF_X } from "../../../src/riscv/elf/constants.js";
import type { ProgramImage } from "../../../src/riscv/elf/image.js";

const TEXT = 0x8020_0000;
const DATA = 0x8020_1000; // the next page after a small .text

function segmentAt(image: ProgramImage, address: number) {
  const segment = image.segments.find((s) => s.physAddr === address);
  assert.ok(segment, `no segment at 0x${address.toString(16)}`);
  return segment;
}

/** The bytes a `.data`-only source puts in the data segment. */
function dataBytes(directives: string): number[] {
  const { image } = assemble(`nop\n.data\n${directives}\n`);
  return [...segmentAt(image, DATA).data];
}

/** The bytes of the code segment. */
function textBytes(source: string): number[] {
  return [...assemble(source).image.segments[0].data];
}

describe("data directives", () => {
  test(".byte takes signed and unsigned bytes and character literals", () => {
    assert.deepEqual(
      dataBytes(".byte 1, 255, -1, -128, 'a', '\\n', 0x7f"),
      [1, 255, 255, 128, 97, 10, 127],
    );
  });

  test("16-, 32- and 64-bit values are little-endian", () => {
    assert.deepEqual(
      dataBytes(".half 0x1234\n.short -2\n.2byte 0xabcd"),
      [0x34, 0x12, 0xfe, 0xff, 0xcd, 0xab],
    );
    assert.deepEqual(
      dataBytes(".word 0x12345678\n.long -1\n.4byte 7"),
      [0x78, 0x56, 0x34, 0x12, 0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0],
    );
    assert.deepEqual(
      dataBytes(".dword 0x0102030405060708\n.quad -2\n.8byte 0xffffffffffffffff"),
      [
        8, 7, 6, 5, 4, 3, 2, 1, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff,
      ],
    );
  });

  test("strings: .ascii, .asciz, .string and escapes", () => {
    assert.deepEqual(dataBytes('.ascii "ab", "c"'), [97, 98, 99]);
    assert.deepEqual(dataBytes('.asciz "ab"'), [97, 98, 0]);
    assert.deepEqual(dataBytes('.string "a", "b"'), [97, 0, 98, 0]);
    assert.deepEqual(dataBytes('.ascii "\\t\\"\\\\\\101\\x42\\0"'), [9, 34, 92, 65, 66, 0]);
    assert.deepEqual(dataBytes('.ascii "#;"  # neither is a comment or separator here'), [35, 59]);
  });

  test(".space, .skip and .zero", () => {
    assert.deepEqual(
      dataBytes(".byte 1\n.space 3\n.skip 2, 0xee\n.zero 2\n.byte 2"),
      [1, 0, 0, 0, 0xee, 0xee, 0, 0, 2],
    );
  });

  test("a data value may refer to a later label or constant", () => {
    const { image } = assemble("nop\n.data\n.dword later, SIZE\nlater: .byte 1\n.equ SIZE, 3");
    const bytes = segmentAt(image, DATA).data;
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    assert.equal(view.getBigUint64(0, true), BigInt(DATA + 16));
    assert.equal(view.getBigUint64(8, true), 3n);
  });
});

describe("alignment", () => {
  test(".align is a power of two, .balign a byte count, .p2align like .align", () => {
    assert.deepEqual(dataBytes(".byte 1\n.align 2\n.byte 2"), [1, 0, 0, 0, 2]);
    assert.deepEqual(dataBytes(".byte 1\n.balign 4\n.byte 2"), [1, 0, 0, 0, 2]);
    assert.deepEqual(dataBytes(".byte 1\n.p2align 3\n.byte 2"), [1, 0, 0, 0, 0, 0, 0, 0, 2]);
    assert.deepEqual(dataBytes(".byte 1\n.align 0\n.byte 2"), [1, 2]);
  });

  test("fill value and maximum skip", () => {
    assert.deepEqual(dataBytes(".byte 1\n.balign 4, 0xaa\n.byte 2"), [1, 0xaa, 0xaa, 0xaa, 2]);
    // Padding of 3 exceeds the maximum of 2, so no alignment happens.
    assert.deepEqual(dataBytes(".byte 1\n.balign 4, 0, 2\n.byte 2"), [1, 2]);
    assert.deepEqual(dataBytes(".byte 1, 2\n.balign 4, 0, 2\n.byte 3"), [1, 2, 0, 0, 3]);
  });

  test("code is padded with nops, as GNU as does", () => {
    const nop = [0x13, 0, 0, 0];
    // (Each section also ends padded to its alignment, hence the trailing nops.)
    assert.deepEqual(textBytes("nop\n.align 3\nnop"), [...nop, ...nop, ...nop, ...nop]);
    // An odd gap starts with a zero byte, a 2-mod-4 gap uses the 2-byte c.nop (0x0001).
    assert.deepEqual(textBytes(".byte 7\n.balign 8\nnop"), [7, 0, 1, 0, ...nop, ...nop, ...nop]);
    assert.deepEqual(textBytes(".2byte 7\n.balign 4\nnop"), [7, 0, 1, 0, ...nop]);
    assert.deepEqual(textBytes("nop\n.balign 8, 0xff\nnop"), [
      ...nop,
      255,
      255,
      255,
      255,
      ...nop,
      ...nop,
    ]);
  });

  test("a code section ends padded to its alignment", () => {
    assert.deepEqual(textBytes(".align 3\nnop"), [0x13, 0, 0, 0, 0x13, 0, 0, 0]);
  });

  test("the section is aligned as strictly as its strictest .align", () => {
    const { image } = assemble("nop\n.section .rodata\n.byte 1\n.align 4\n.byte 2");
    const rodata = image.sections?.find((s) => s.name === ".rodata");
    assert.equal(rodata?.alignment, 16);
    assert.equal(rodata?.address, TEXT + 16);
  });
});

describe("sections and layout", () => {
  const source = `
    .globl _start
    .section .text.init
    init: nop
    .text
    _start: nop
    .data
    d: .word 1
    .section .mydata, "aw", @progbits
    m: .byte 2
    .bss
    b: .space 8
    .section .rodata
    r: .byte 3
    .section .rodata.extra, "a"
    r2: .byte 4
    .section .mybss, "aw", @nobits
    nb: .space 4
    .section .text.extra, "ax"
    x: nop
  `;
  const { image } = assemble(source);
  const address = (name: string) => Number(image.symbols.get(name));

  test(".text first, then other code, then read-only data", () => {
    assert.equal(address("_start"), TEXT);
    assert.equal(address("init"), TEXT + 4);
    assert.equal(address("x"), TEXT + 8);
    assert.equal(address("r"), TEXT + 12);
    assert.equal(address("r2"), TEXT + 13);
  });

  test("data starts on the next page, then other data, then bss", () => {
    assert.equal(address("d"), DATA);
    assert.equal(address("m"), DATA + 4);
    assert.equal(address("b"), DATA + 5);
    assert.equal(address("nb"), DATA + 13);
  });

  test("an R+X segment and an R+W segment whose bss is not in the file", () => {
    assert.deepEqual(
      image.segments.map((s) => [s.physAddr, s.virtAddr, s.data.length, s.memSize, s.flags]),
      [
        [TEXT, TEXT, 14, 14, PF_R | PF_X],
        [DATA, DATA, 5, 17, PF_R | PF_W],
      ],
    );
  });

  test("section descriptions for the ELF writer", () => {
    const sections = image.sections?.map((s) => [s.name, s.noBits, s.executable, s.writable]);
    assert.deepEqual(sections, [
      [".text", false, true, false],
      [".text.init", false, true, false],
      [".text.extra", false, true, false],
      [".rodata", false, false, false],
      [".rodata.extra", false, false, false],
      [".data", false, false, true],
      [".mydata", false, false, true],
      [".bss", true, false, true],
      [".mybss", true, false, true],
    ]);
  });

  test("a custom text address", () => {
    const low = assemble("nop\n.data\n.byte 1", { textAddress: 0x1_0000 }).image;
    assert.deepEqual(
      low.segments.map((s) => s.physAddr),
      [0x1_0000, 0x1_1000],
    );
  });

  test("a page-sized text pushes data one more page out", () => {
    const big = assemble(".space 4096\nnop\n.data\nd: .byte 1").image;
    assert.equal(big.symbols.get("d"), BigInt(TEXT + 0x2000));
  });
});

describe("symbols and entry point", () => {
  test("entry is _start when defined", () => {
    assert.equal(assemble("nop\n_start: nop").image.entry, TEXT + 4);
  });

  test("entry is the start of .text otherwise", () => {
    assert.equal(assemble(".section .text.a\nnop\n.text\nnop").image.entry, TEXT);
  });

  test("labels and constants are symbols; .L and numeric labels are not", () => {
    const { image } = assemble(
      ".globl main\nmain: nop\n.Lhidden: nop\n1: nop\n.equ SIZE, 0x40\nNEG = -1\n.set S2, SIZE*2",
    );
    assert.deepEqual(
      [...image.symbols].sort(),
      [
        ["NEG", 0xffffffffffffffffn],
        ["S2", 0x80n],
        ["SIZE", 0x40n],
        ["main", BigInt(TEXT)],
      ].sort(),
    );
    assert.deepEqual([...(image.globalSymbols ?? [])], ["main"]);
  });

  test(".equ with . captures the location where it is defined", () => {
    const { image } = assemble("nop\n.equ here, .\nnop\n.word here - 4");
    assert.equal(image.symbols.get("here"), BigInt(TEXT + 4));
    assert.equal(new DataView(image.segments[0].data.buffer).getUint32(8, true), TEXT);
  });

  test("ignored and harmless directives", () => {
    const source = [
      '.file "x.c"',
      ".option norvc",
      ".option norelax",
      ".option push",
      ".option pop",
      '.attribute arch, "rv64ima"',
      ".type f, @function",
      "f: ret",
      ".size f, .-f",
      ".cfi_startproc",
      ".cfi_endproc",
      '.ident "test"',
    ].join("\n");
    assert.equal(assemble(source).image.segments[0].data.length, 4);
  });
});

describe("labels and expressions", () => {
  const word = (expression: string) =>
    new DataView(dataBytesBuffer(`.dword ${expression}`)).getBigInt64(0, true);
  function dataBytesBuffer(directive: string): ArrayBuffer {
    return Uint8Array.from(dataBytes(directive)).buffer;
  }

  test("number syntaxes", () => {
    assert.equal(word("0x1F"), 31n);
    assert.equal(word("0b101"), 5n);
    assert.equal(word("017"), 15n);
    assert.equal(word("0"), 0n);
    assert.equal(word("'A'"), 65n);
    assert.equal(word("'\\''"), 39n);
  });

  test("GNU as precedence: * / % << >> over & | ^ over + -", () => {
    assert.equal(word("1 + 3 & 2"), 3n);
    assert.equal(word("7 - 2 << 1"), 3n);
    assert.equal(word("2 * 3 + 4 * 5"), 26n);
    assert.equal(word("(1 + 3) & 2"), 0n);
    assert.equal(word("10 - 3 - 2"), 5n);
    assert.equal(word("17 % 5 * 2"), 4n);
    assert.equal(word("~1 + 2"), 0n);
    assert.equal(word("-(3)"), -3n);
    assert.equal(word("1 | 6 ^ 3"), 4n);
  });

  test("division truncates toward zero; >> is logical on 64 bits", () => {
    assert.equal(word("-7 / 2"), -3n);
    assert.equal(word("-7 % 2"), -1n);
    assert.equal(word("-8 >> 60"), 15n);
    assert.equal(word("1 << 63"), -(1n << 63n));
  });

  test("numeric local labels", () => {
    const { image } = assemble("1: nop\nj 1b\nj 1f\n1: j 1b\n2: j 2b");
    const jal = (offset: number) => {
      // jal zero, offset: imm[20|10:1|11|19:12] rd opcode
      const imm = offset & 0x1fffff;
      return (
        (((imm >> 20) & 1) << 31) |
        (((imm >> 1) & 0x3ff) << 21) |
        (((imm >> 11) & 1) << 20) |
        (((imm >> 12) & 0xff) << 12) |
        0x6f
      );
    };
    const view = new DataView(image.segments[0].data.buffer);
    assert.equal(view.getUint32(4, true), jal(-4) >>> 0);
    assert.equal(view.getUint32(8, true), jal(4) >>> 0);
    assert.equal(view.getUint32(12, true), jal(0) >>> 0);
    assert.equal(view.getUint32(16, true), jal(0) >>> 0);
  });

  test("label differences across the whole file", () => {
    assert.deepEqual(dataBytes("a: .byte 1, 2\nb: .byte b - a, end - a\nend:"), [1, 2, 2, 4]);
  });

  test("multiple labels, statements separated by ;, comments", () => {
    const { image } = assemble("a: b: nop; c: nop # c\n/* multi\nline */ d: nop");
    assert.equal(image.symbols.get("a"), image.symbols.get("b"));
    assert.equal(image.symbols.get("c"), BigInt(TEXT + 4));
    assert.equal(image.symbols.get("d"), BigInt(TEXT + 8));
  });
});
