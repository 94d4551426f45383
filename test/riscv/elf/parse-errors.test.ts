/** Every validation in parseElf, each triggered by corrupting one field of a valid file. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ElfFormatError, parseElf } from "../../../src/riscv/elf/parse.js";
import { writeElf } from "../../../src/riscv/elf/write.js";
import { sampleImage } from "./samples.js";

const VALID = writeElf(sampleImage());
const PHDR = 64; // first program header (e_phoff of writeElf output)
const PHDR1 = PHDR + 56;

/** A copy of the valid file with `edit` applied. */
function corrupt(edit: (view: DataView, bytes: Uint8Array) => void): Uint8Array {
  const bytes = VALID.slice();
  edit(new DataView(bytes.buffer), bytes);
  return bytes;
}

function assertRejected(bytes: Uint8Array, message: RegExp): void {
  assert.throws(
    () => parseElf(bytes),
    (error: unknown) => {
      assert.ok(error instanceof ElfFormatError, `not an ElfFormatError: ${String(error)}`);
      assert.match(error.message, /^ELF: /);
      assert.match(error.message, message);
      return true;
    },
  );
}

describe("parseElf rejects", () => {
  const cases: [string, (view: DataView, bytes: Uint8Array) => void, RegExp][] = [
    ["bad magic", (_, b) => (b[1] = 0x46), /bad magic: not an ELF file/],
    ["32-bit class", (_, b) => (b[4] = 1), /32-bit ELF \(ELFCLASS32\)/],
    ["invalid class", (_, b) => (b[4] = 7), /invalid EI_CLASS 7/],
    ["big-endian", (_, b) => (b[5] = 2), /EI_DATA is 2; RISC-V guests must be little-endian/],
    ["bad EI_VERSION", (_, b) => (b[6] = 0), /EI_VERSION is 0, expected 1/],
    ["ET_DYN", (v) => v.setUint16(16, 3, true), /ET_DYN .*link the guest as a static non-PIE/],
    ["ET_REL", (v) => v.setUint16(16, 1, true), /ET_REL \(relocatable object file\); link it/],
    ["ET_CORE", (v) => v.setUint16(16, 4, true), /ET_CORE \(core dump\)/],
    ["ET_NONE", (v) => v.setUint16(16, 0, true), /ET_NONE/],
    ["unknown type", (v) => v.setUint16(16, 0xfe00, true), /e_type is 65024, expected ET_EXEC/],
    [
      "another machine",
      (v) => v.setUint16(18, 62, true),
      /e_machine is 62, expected EM_RISCV \(243\)/,
    ],
    ["bad e_version", (v) => v.setUint32(20, 2, true), /e_version is 2, expected 1/],
    ["RVC", (v) => v.setUint32(48, 1, true), /EF_RISCV_RVC.*no C extension.*rv64ima without C/],
    ["e_ehsize", (v) => v.setUint16(52, 52, true), /e_ehsize is 52, expected 64/],
    ["e_phentsize", (v) => v.setUint16(54, 32, true), /e_phentsize is 32, expected 56/],
    ["no program headers", (v) => v.setUint16(56, 0, true), /no program headers/],
    ["PN_XNUM", (v) => v.setUint16(56, 0xffff, true), /PN_XNUM/],
    [
      "zero e_phoff",
      (v) => v.setBigUint64(32, 0n, true),
      /program header table .* is outside the file/,
    ],
    [
      "e_phoff past the end",
      (v) => v.setBigUint64(32, BigInt(VALID.length - 60), true),
      /program header table \(e_phoff 0x[0-9a-f]+, 2 entries of 56 bytes\) is outside the file/,
    ],
    [
      "huge e_phoff",
      (v) => v.setBigUint64(32, 0xffffffffffffff00n, true),
      /program header table .* is outside the file/,
    ],
    [
      "segment past the end of the file",
      (v) => v.setBigUint64(PHDR1 + 32, 0x10000n, true),
      /program header 1 extends past end of file \(offset 0x2000, size 0x10000, file is 0x[0-9a-f]+ bytes\)/,
    ],
    [
      "segment offset overflowing",
      (v) => v.setBigUint64(PHDR + 8, 0xfffffffffffffff0n, true),
      /program header 0 extends past end of file \(offset 0xfffffffffffffff0/,
    ],
    [
      "p_filesz > p_memsz",
      (v) => v.setBigUint64(PHDR1 + 40, 4n, true),
      /program header 1 has p_filesz 0x8 larger than p_memsz 0x4/,
    ],
    [
      "virtual range beyond 2^53",
      (v) => v.setBigUint64(PHDR1 + 16, 1n << 60n, true),
      /program header 1 p_vaddr range \[0x1000000000000000, .*\) goes beyond 2\^53/,
    ],
    [
      "physical range beyond 2^53",
      (v) => v.setBigUint64(PHDR1 + 24, (1n << 53n) - 8n, true),
      /program header 1 p_paddr range .* goes beyond 2\^53/,
    ],
    [
      "PT_INTERP",
      (v) => v.setUint32(PHDR1, 3, true),
      /program header 1 is PT_INTERP: dynamically linked/,
    ],
    ["PT_DYNAMIC", (v) => v.setUint32(PHDR1, 2, true), /program header 1 is PT_DYNAMIC/],
    [
      "no PT_LOAD",
      (v) => {
        v.setUint32(PHDR, 0, true);
        v.setUint32(PHDR1, 4, true); // PT_NOTE
      },
      /no PT_LOAD program header/,
    ],
    [
      "physically overlapping segments",
      (v) => v.setBigUint64(PHDR1 + 24, 0x8020_0010n, true),
      /PT_LOAD program headers 0 and 1 overlap in physical memory \(\[0x80200000, 0x80200018\) and \[0x80200010, 0x80200030\)\)/,
    ],
    [
      "virtually overlapping segments",
      (v) => v.setBigUint64(PHDR + 16, 0x8020_1010n, true),
      /PT_LOAD program headers 1 and 0 overlap in virtual memory/,
    ],
    [
      "entry outside every segment",
      (v) => v.setBigUint64(24, 0x1000n, true),
      /entry point 0x1000 is not inside an executable PT_LOAD segment/,
    ],
    [
      "entry in a data segment",
      (v) => v.setBigUint64(24, 0x8020_1000n, true),
      /entry point 0x80201000 is not inside an executable/,
    ],
    [
      "entry in a segment without PF_X",
      (v) => v.setUint32(PHDR + 4, 4, true),
      /entry point 0x80200000 is not inside an executable/,
    ],
    ["empty file", (_, b) => b.fill(0), /bad magic/],
  ];
  for (const [name, edit, message] of cases) {
    test(name, () => assertRejected(corrupt(edit), message));
  }

  test("files too short for a header", () => {
    assertRejected(new Uint8Array(0), /bad magic/);
    assertRejected(VALID.subarray(0, 3), /bad magic/);
    assertRejected(VALID.subarray(0, 5), /file truncated inside e_ident/);
    assertRejected(
      VALID.subarray(0, 63),
      /file is 63 bytes, too short for the 64-byte ELF64 header/,
    );
  });
});

describe("parseElf tolerates", () => {
  test("a missing or broken section header table (symbols are optional)", () => {
    for (const edit of [
      (v: DataView) => v.setBigUint64(40, 0n, true), // no section headers
      (v: DataView) => v.setBigUint64(40, 0xffffffffn, true), // table outside the file
      (v: DataView) => v.setUint16(58, 40, true), // wrong e_shentsize
      (v: DataView) => v.setUint16(62, 0xfff0, true), // bad e_shstrndx
    ]) {
      const image = parseElf(corrupt(edit));
      assert.equal(image.segments.length, 2);
      assert.equal(image.entry, 0x8020_0000);
    }
    assert.equal(parseElf(corrupt((v) => v.setBigUint64(40, 0n, true))).symbols.size, 0);
  });

  test("other program header types", () => {
    const image = parseElf(corrupt((v) => v.setUint32(PHDR1, 0x70000003, true))); // PT_RISCV_ATTRIBUTES
    assert.equal(image.segments.length, 1);
  });

  test("flags other than RVC (float ABI, TSO) are accepted", () => {
    assert.doesNotThrow(() => parseElf(corrupt((v) => v.setUint32(48, 0x10 | 0x2, true))));
  });

  test("input that is a view into a larger buffer", () => {
    const padded = new Uint8Array(VALID.length + 16);
    padded.set(VALID, 16);
    assert.deepEqual(parseElf(padded.subarray(16)), parseElf(VALID));
  });
});
