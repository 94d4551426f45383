/** writeElf output: header fields, layout rules, and that parseElf reads it back exactly. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  EM_RISCV,
  ET_EXEC,
  PF_R,
  PF_W,
  PF_X,
  PT_LOAD,
  SHT_NOBITS,
  SHT_PROGBITS,
  SHT_STRTAB,
  SHT_SYMTAB,
} from "../../../src/riscv/elf/constants.js";
import type { ProgramImage } from "../../../src/riscv/elf/image.js";
import { parseElf } from "../../../src/riscv/elf/parse.js";
import { writeElf } from "../../../src/riscv/elf/write.js";
import { sampleImage } from "./samples.js";

function header(elf: Uint8Array) {
  const view = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  return {
    view,
    type: view.getUint16(16, true),
    machine: view.getUint16(18, true),
    entry: view.getBigUint64(24, true),
    phoff: Number(view.getBigUint64(32, true)),
    shoff: Number(view.getBigUint64(40, true)),
    flags: view.getUint32(48, true),
    phnum: view.getUint16(56, true),
    shnum: view.getUint16(60, true),
    shstrndx: view.getUint16(62, true),
  };
}

function programHeaders(elf: Uint8Array) {
  const h = header(elf);
  return Array.from({ length: h.phnum }, (_, i) => {
    const at = h.phoff + i * 56;
    return {
      type: h.view.getUint32(at, true),
      flags: h.view.getUint32(at + 4, true),
      offset: Number(h.view.getBigUint64(at + 8, true)),
      vaddr: Number(h.view.getBigUint64(at + 16, true)),
      paddr: Number(h.view.getBigUint64(at + 24, true)),
      filesz: Number(h.view.getBigUint64(at + 32, true)),
      memsz: Number(h.view.getBigUint64(at + 40, true)),
      align: Number(h.view.getBigUint64(at + 48, true)),
    };
  });
}

function sectionHeaders(elf: Uint8Array) {
  const h = header(elf);
  const all = Array.from({ length: h.shnum }, (_, i) => {
    const at = h.shoff + i * 64;
    return {
      nameOffset: h.view.getUint32(at, true),
      type: h.view.getUint32(at + 4, true),
      addr: Number(h.view.getBigUint64(at + 16, true)),
      offset: Number(h.view.getBigUint64(at + 24, true)),
      size: Number(h.view.getBigUint64(at + 32, true)),
      link: h.view.getUint32(at + 40, true),
      info: h.view.getUint32(at + 44, true),
    };
  });
  const strtab = all[h.shstrndx];
  const name = (offset: number) => {
    const start = strtab.offset + offset;
    return new TextDecoder().decode(elf.subarray(start, elf.indexOf(0, start)));
  };
  return all.map((s) => ({ ...s, name: name(s.nameOffset) }));
}

describe("writeElf", () => {
  const image = sampleImage();
  const elf = writeElf(image);

  test("is a little-endian ELF64 RISC-V executable without RVC", () => {
    assert.deepEqual([...elf.subarray(0, 7)], [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
    const h = header(elf);
    assert.equal(h.type, ET_EXEC);
    assert.equal(h.machine, EM_RISCV);
    assert.equal(h.entry, BigInt(image.entry));
    assert.equal(h.flags, 0);
  });

  test("one PT_LOAD per segment, page-aligned and congruent", () => {
    const phdrs = programHeaders(elf);
    assert.equal(phdrs.length, image.segments.length);
    phdrs.forEach((ph, i) => {
      const segment = image.segments[i];
      assert.equal(ph.type, PT_LOAD);
      assert.equal(ph.flags, segment.flags);
      assert.equal(ph.vaddr, segment.virtAddr);
      assert.equal(ph.paddr, segment.physAddr);
      assert.equal(ph.filesz, segment.data.length);
      assert.equal(ph.memsz, segment.memSize);
      assert.equal(ph.align, 0x1000);
      assert.equal(ph.offset % 0x1000, ph.vaddr % 0x1000);
      assert.deepEqual(elf.subarray(ph.offset, ph.offset + ph.filesz), segment.data);
    });
  });

  test("section headers for contents, symbols and names", () => {
    const sections = sectionHeaders(elf);
    assert.deepEqual(
      sections.map((s) => [s.name, s.type]),
      [
        ["", 0],
        [".text", SHT_PROGBITS],
        [".rodata", SHT_PROGBITS],
        [".data", SHT_PROGBITS],
        [".bss", SHT_NOBITS],
        [".symtab", SHT_SYMTAB],
        [".strtab", SHT_STRTAB],
        [".shstrtab", SHT_STRTAB],
      ],
    );
    const text = sections[1];
    assert.deepEqual(
      elf.subarray(text.offset, text.offset + 8),
      image.segments[0].data.subarray(0, 8),
    );
    const symtab = sections[5];
    assert.equal(symtab.link, 6);
    // Null symbol and two locals precede the first global.
    assert.equal(symtab.info, 3);
  });

  test("parseElf reads back the same image", () => {
    assert.deepEqual(parseElf(elf), image);
  });

  test("without section descriptions, sections are derived from the segments", () => {
    const bare = sampleImage();
    delete bare.sections;
    delete bare.globalSymbols;
    const parsed = parseElf(writeElf(bare));
    assert.deepEqual(parsed.segments, bare.segments);
    assert.deepEqual(
      parsed.sections?.map((s) => [s.name, s.address, s.size, s.noBits]),
      [
        [".text", 0x8020_0000, 24, false],
        [".data", 0x8020_1000, 8, false],
        [".bss", 0x8020_1008, 0x18, true],
      ],
    );
    assert.deepEqual(parsed.symbols, bare.symbols);
  });

  test("rejects an image it cannot represent", () => {
    const bad = sampleImage();
    bad.segments[1].memSize = 2;
    assert.throws(() => writeElf(bad), /memSize 2 is smaller than its data/);
    assert.throws(() => writeElf({ ...sampleImage(), segments: [] }), /no segments/);
    const badSymbol = sampleImage();
    badSymbol.symbols.set("neg", -1n);
    assert.throws(() => writeElf(badSymbol), /symbol 'neg' value -1 is not a u64/);
  });

  test("a segment that does not start on a page boundary", () => {
    const odd: ProgramImage = {
      entry: 0x1234,
      segments: [
        {
          physAddr: 0x1234,
          virtAddr: 0x1234,
          data: new Uint8Array([1, 2, 3, 4]),
          memSize: 4,
          flags: PF_R | PF_X,
        },
      ],
      symbols: new Map(),
    };
    const [ph] = programHeaders(writeElf(odd));
    assert.equal(ph.offset % 0x1000, 0x234);
    assert.deepEqual(parseElf(writeElf(odd)).segments, odd.segments);
  });

  test("flags survive", () => {
    const parsed = parseElf(elf);
    assert.deepEqual(
      parsed.segments.map((s) => s.flags),
      [PF_R | PF_X, PF_R | PF_W],
    );
  });
});
