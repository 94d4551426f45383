/**
 * Executables built by GNU as + ld parse, and what parseElf reports matches
 * what GNU readelf reports for the same file. Skipped without the tools,
 * except under CI where it fails.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ElfFormatError, parseElf } from "../../../src/riscv/elf/parse.js";
import { gnuBuild, gnuToolStatus, inspectElf } from "../asm/gnu-toolchain.js";

const status = gnuToolStatus();
const skip = status.available || process.env.CI ? false : `skipped: ${status.reason}`;

function requireTools(): void {
  if (!status.available) assert.fail(`GNU binutils are required under CI: ${status.reason}`);
}

const SOURCE = `
  .globl _start, table
  .equ CONSTANT, 0x1234
_start:
  la a0, table
  ld a1, 0(a0)
  call helper
  j .
helper:
  ret
  .section .rodata
message: .asciz "read-only"
  .data
  .balign 8
table: .dword 1, 2, 3
  .bss
  .balign 16
buffer: .space 0x2000
`;

interface ReadelfSegment {
  offset: number;
  vaddr: number;
  paddr: number;
  filesz: number;
  memsz: number;
  flags: string;
}

/** PT_LOAD rows of `readelf -lW`. */
function readelfSegments(elf: Uint8Array): ReadelfSegment[] {
  const { stdout } = inspectElf("readelf", ["-lW"], elf);
  const rows = [
    ...stdout.matchAll(/^\s*LOAD\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+([RWE ]+?)\s+0x\S+$/gm),
  ];
  return rows.map((m) => ({
    offset: Number(m[1]),
    vaddr: Number(m[2]),
    paddr: Number(m[3]),
    filesz: Number(m[4]),
    memsz: Number(m[5]),
    flags: m[6].replace(/ /g, ""),
  }));
}

/** Defined, named symbols of `readelf -sW` (no sections, files or mapping symbols). */
function readelfSymbols(elf: Uint8Array): Map<string, bigint> {
  const { stdout } = inspectElf("readelf", ["-sW"], elf);
  const symbols = new Map<string, bigint>();
  for (const m of stdout.matchAll(
    /^\s*\d+:\s+([0-9a-f]+)\s+\d+\s+(\w+)\s+\w+\s+\w+\s+(\w+)\s+(\S+)$/gm,
  )) {
    const [, value, type, ndx, name] = m;
    if (type === "SECTION" || type === "FILE" || ndx === "UND" || name.startsWith("$")) continue;
    symbols.set(name, BigInt(`0x${value}`));
  }
  return symbols;
}

function readelfEntry(elf: Uint8Array): number {
  const { stdout } = inspectElf("readelf", ["-hW"], elf);
  const match = /Entry point address:\s+(0x[0-9a-f]+)/.exec(stdout);
  assert.ok(match);
  return Number(match[1]);
}

const flagString = (flags: number) =>
  `${flags & 4 ? "R" : ""}${flags & 2 ? "W" : ""}${flags & 1 ? "E" : ""}`;

function assertMatchesReadelf(elf: Uint8Array): void {
  const image = parseElf(elf);
  const segments = readelfSegments(elf);
  assert.ok(segments.length > 0);
  assert.deepEqual(
    image.segments.map((s) => [
      s.virtAddr,
      s.physAddr,
      s.data.length,
      s.memSize,
      flagString(s.flags),
    ]),
    segments.map((s) => [s.vaddr, s.paddr, s.filesz, s.memsz, s.flags]),
  );
  image.segments.forEach((segment, i) => {
    const { offset, filesz } = segments[i];
    assert.deepEqual(segment.data, elf.slice(offset, offset + filesz));
  });
  assert.equal(image.entry, readelfEntry(elf));
  assert.deepEqual(image.symbols, readelfSymbols(elf));
}

describe("GNU ld executables", { skip }, () => {
  test("default linker script", () => {
    requireTools();
    const elf = gnuBuild(SOURCE, { ldFlags: ["-Ttext=0x80200000"] });
    assertMatchesReadelf(elf);
    const image = parseElf(elf);
    assert.equal(image.symbols.get("CONSTANT"), 0x1234n);
    assert.ok(image.globalSymbols?.has("table"));
    assert.ok(!image.globalSymbols?.has("helper"));
    assert.ok(image.sections?.some((s) => s.name === ".bss" && s.noBits && s.size >= 0x2000));
  });

  test("load addresses different from link addresses (AT)", () => {
    requireTools();
    const script = `ENTRY(_start)
SECTIONS {
  . = 0x80200000;
  .text : { *(.text) }
  .rodata : { *(.rodata) }
  . = 0xc0000000;
  .data : AT(0x80400000) { *(.data) }
  .bss : { *(.bss) }
}`;
    const elf = gnuBuild(SOURCE, { linkerScript: script });
    assertMatchesReadelf(elf);
    const data = parseElf(elf).segments.find((s) => s.virtAddr === 0xc000_0000);
    assert.equal(data?.physAddr, 0x8040_0000);
  });

  test("an RVC executable is rejected", () => {
    requireTools();
    const elf = gnuBuild(SOURCE, {
      asFlags: ["-march=rv64imac_zicsr"],
      ldFlags: ["-Ttext=0x80200000"],
    });
    assert.throws(
      () => parseElf(elf),
      (error: unknown) => error instanceof ElfFormatError && /EF_RISCV_RVC/.test(error.message),
    );
  });

  test("a relocatable object is rejected", () => {
    requireTools();
    const object = gnuBuild(SOURCE, { ldFlags: ["-r"] });
    assert.throws(() => parseElf(object), /ET_REL \(relocatable object file\)/);
  });
});
