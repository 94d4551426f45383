/**
 * ELF64 writer: turns a ProgramImage into a little-endian RISC-V ET_EXEC file
 * with one PT_LOAD per segment, plus section headers and a symbol table so
 * that readelf/objdump can inspect it. QEMU and our own parser only need the
 * program headers.
 */
import {
  EI_CLASS,
  EI_DATA,
  EI_OSABI,
  EI_VERSION,
  ELF64_EHDR_SIZE,
  ELF64_PHDR_SIZE,
  ELF64_SHDR_SIZE,
  ELF64_SYM_SIZE,
  ELF_MAGIC,
  ELF_PAGE_SIZE,
  ELFCLASS64,
  ELFDATA2LSB,
  ELFOSABI_SYSV,
  EM_RISCV,
  ET_EXEC,
  EV_CURRENT,
  PF_W,
  PF_X,
  PT_LOAD,
  SHF_ALLOC,
  SHF_EXECINSTR,
  SHF_WRITE,
  SHN_ABS,
  SHT_NOBITS,
  SHT_PROGBITS,
  SHT_STRTAB,
  SHT_SYMTAB,
  STB_GLOBAL,
  STB_LOCAL,
  STT_NOTYPE,
} from "./constants.js";
import type { ImageSection, LoadSegment, ProgramImage } from "./image.js";

/** Builds an ELF string table; offset 0 is the empty string. */
class StringTable {
  private readonly parts: Uint8Array[] = [new Uint8Array(1)];
  private length = 1;
  private readonly offsets = new Map<string, number>();

  add(name: string): number {
    if (name === "") return 0;
    const known = this.offsets.get(name);
    if (known !== undefined) return known;
    const bytes = new TextEncoder().encode(name + "\0");
    const offset = this.length;
    this.parts.push(bytes);
    this.length += bytes.length;
    this.offsets.set(name, offset);
    return offset;
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const part of this.parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
}

/** A section header as it will be written (index 0, the null section, is implicit). */
interface SectionHeader {
  name: string;
  type: number;
  flags: number;
  addr: number;
  offset: number;
  size: number;
  link: number;
  info: number;
  addralign: number;
  entsize: number;
}

export function writeElf(image: ProgramImage): Uint8Array {
  validateImage(image);
  const sections = image.sections ?? deriveSections(image.segments);

  // File layout: header, program headers, segment contents (each at an offset
  // congruent to its address modulo the page size, as loaders expect), then
  // the symbol and string tables and finally the section header table.
  let cursor = ELF64_EHDR_SIZE + image.segments.length * ELF64_PHDR_SIZE;
  const segmentOffsets = image.segments.map((segment) => {
    const offset = cursor + mod(segment.virtAddr - cursor, ELF_PAGE_SIZE);
    cursor = offset + segment.data.length;
    return offset;
  });

  const headers: SectionHeader[] = sections.map((section) =>
    contentSectionHeader(section, image.segments, segmentOffsets),
  );

  const { symtab, strtab, firstGlobal } = buildSymbolTable(image, sections);
  const symtabOffset = alignUp(cursor, 8);
  const strtabOffset = symtabOffset + symtab.length;
  const strtabIndex = headers.length + 2; // +1 for the null section, +1 for .symtab itself
  headers.push({
    name: ".symtab",
    type: SHT_SYMTAB,
    flags: 0,
    addr: 0,
    offset: symtabOffset,
    size: symtab.length,
    link: strtabIndex,
    info: firstGlobal,
    addralign: 8,
    entsize: ELF64_SYM_SIZE,
  });
  headers.push(stringTableHeader(".strtab", strtabOffset, strtab.length));

  const shstrtab = new StringTable();
  const headerNames = headers.map((header) => shstrtab.add(header.name));
  const shstrtabNameOffset = shstrtab.add(".shstrtab");
  const shstrtabBytes = shstrtab.bytes();
  const shstrtabOffset = strtabOffset + strtab.length;
  headers.push(stringTableHeader(".shstrtab", shstrtabOffset, shstrtabBytes.length));
  headerNames.push(shstrtabNameOffset);

  const shoff = alignUp(shstrtabOffset + shstrtabBytes.length, 8);
  const shnum = headers.length + 1;
  const out = new Uint8Array(shoff + shnum * ELF64_SHDR_SIZE);
  const view = new DataView(out.buffer);

  out.set(ELF_MAGIC, 0);
  out[EI_CLASS] = ELFCLASS64;
  out[EI_DATA] = ELFDATA2LSB;
  out[EI_VERSION] = EV_CURRENT;
  out[EI_OSABI] = ELFOSABI_SYSV;
  view.setUint16(16, ET_EXEC, true);
  view.setUint16(18, EM_RISCV, true);
  view.setUint32(20, EV_CURRENT, true);
  view.setBigUint64(24, BigInt(image.entry), true);
  view.setBigUint64(32, BigInt(ELF64_EHDR_SIZE), true); // e_phoff
  view.setBigUint64(40, BigInt(shoff), true);
  view.setUint32(48, 0, true); // e_flags: no RVC, soft-float ABI
  view.setUint16(52, ELF64_EHDR_SIZE, true);
  view.setUint16(54, ELF64_PHDR_SIZE, true);
  view.setUint16(56, image.segments.length, true);
  view.setUint16(58, ELF64_SHDR_SIZE, true);
  view.setUint16(60, shnum, true);
  view.setUint16(62, shnum - 1, true); // .shstrtab is last

  image.segments.forEach((segment, i) => {
    const at = ELF64_EHDR_SIZE + i * ELF64_PHDR_SIZE;
    view.setUint32(at, PT_LOAD, true);
    view.setUint32(at + 4, segment.flags, true);
    view.setBigUint64(at + 8, BigInt(segmentOffsets[i]), true);
    view.setBigUint64(at + 16, BigInt(segment.virtAddr), true);
    view.setBigUint64(at + 24, BigInt(segment.physAddr), true);
    view.setBigUint64(at + 32, BigInt(segment.data.length), true);
    view.setBigUint64(at + 40, BigInt(segment.memSize), true);
    view.setBigUint64(at + 48, BigInt(ELF_PAGE_SIZE), true);
    out.set(segment.data, segmentOffsets[i]);
  });

  out.set(symtab, symtabOffset);
  out.set(strtab, strtabOffset);
  out.set(shstrtabBytes, shstrtabOffset);

  headers.forEach((header, i) => {
    const at = shoff + (i + 1) * ELF64_SHDR_SIZE;
    view.setUint32(at, headerNames[i], true);
    view.setUint32(at + 4, header.type, true);
    view.setBigUint64(at + 8, BigInt(header.flags), true);
    view.setBigUint64(at + 16, BigInt(header.addr), true);
    view.setBigUint64(at + 24, BigInt(header.offset), true);
    view.setBigUint64(at + 32, BigInt(header.size), true);
    view.setUint32(at + 40, header.link, true);
    view.setUint32(at + 44, header.info, true);
    view.setBigUint64(at + 48, BigInt(header.addralign), true);
    view.setBigUint64(at + 56, BigInt(header.entsize), true);
  });
  return out;
}

/** Rejects images that cannot be represented faithfully, instead of writing a broken file. */
function validateImage(image: ProgramImage): void {
  const fail = (what: string) => {
    throw new Error(`writeElf: ${what}`);
  };
  if (!isAddress(image.entry)) fail(`entry 0x${image.entry.toString(16)} is not a valid address`);
  if (image.segments.length === 0) fail("image has no segments");
  if (image.segments.length >= 0xffff) fail("too many segments");
  image.segments.forEach((segment, i) => {
    if (!isAddress(segment.physAddr) || !isAddress(segment.virtAddr))
      fail(`segment ${i} has an invalid address`);
    if (!isAddress(segment.memSize) || segment.memSize < segment.data.length)
      fail(`segment ${i} memSize ${segment.memSize} is smaller than its data`);
    if (!isAddress(segment.virtAddr + segment.memSize)) fail(`segment ${i} extends past 2^53`);
  });
  for (const [name, value] of image.symbols) {
    if (value < 0n || value >= 1n << 64n) fail(`symbol '${name}' value ${value} is not a u64`);
  }
}

function isAddress(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

/** One section per segment part: file-backed bytes, then a .bss-like tail if any. */
function deriveSections(segments: LoadSegment[]): ImageSection[] {
  const sections: ImageSection[] = [];
  const used = new Map<string, number>();
  const unique = (name: string) => {
    const count = used.get(name) ?? 0;
    used.set(name, count + 1);
    return count === 0 ? name : `${name}.${count}`;
  };
  for (const segment of segments) {
    const executable = (segment.flags & PF_X) !== 0;
    const writable = (segment.flags & PF_W) !== 0;
    const base = { executable, writable, alignment: naturalAlignment(segment.virtAddr) };
    if (segment.data.length > 0) {
      const name = executable ? ".text" : writable ? ".data" : ".rodata";
      sections.push({
        ...base,
        name: unique(name),
        address: segment.virtAddr,
        size: segment.data.length,
        noBits: false,
      });
    }
    if (segment.memSize > segment.data.length) {
      const address = segment.virtAddr + segment.data.length;
      sections.push({
        ...base,
        name: unique(".bss"),
        address,
        size: segment.memSize - segment.data.length,
        alignment: naturalAlignment(address),
        noBits: true,
      });
    }
  }
  return sections;
}

/** The largest power of two (up to 16) dividing `address`: a valid sh_addralign for it. */
function naturalAlignment(address: number): number {
  let alignment = 1;
  while (alignment < 16 && address % (alignment * 2) === 0) alignment *= 2;
  return alignment;
}

function contentSectionHeader(
  section: ImageSection,
  segments: LoadSegment[],
  segmentOffsets: number[],
): SectionHeader {
  const index = segments.findIndex(
    (segment) =>
      section.address >= segment.virtAddr &&
      section.address + section.size <=
        segment.virtAddr + (section.noBits ? segment.memSize : segment.data.length),
  );
  if (index < 0) {
    throw new Error(`writeElf: section ${section.name} is not inside any segment's contents`);
  }
  const segment = segments[index];
  return {
    name: section.name,
    type: section.noBits ? SHT_NOBITS : SHT_PROGBITS,
    flags:
      SHF_ALLOC | (section.writable ? SHF_WRITE : 0) | (section.executable ? SHF_EXECINSTR : 0),
    addr: section.address,
    offset: segmentOffsets[index] + (section.address - segment.virtAddr),
    size: section.size,
    link: 0,
    info: 0,
    addralign: section.alignment,
    entsize: 0,
  };
}

function stringTableHeader(name: string, offset: number, size: number): SectionHeader {
  return {
    name,
    type: SHT_STRTAB,
    flags: 0,
    addr: 0,
    offset,
    size,
    link: 0,
    info: 0,
    addralign: 1,
    entsize: 0,
  };
}

/**
 * .symtab and .strtab contents. ELF requires local symbols first; sh_info is
 * the index of the first global. Each symbol is attributed to the section
 * that contains its value (an end-of-section label belongs to that section),
 * otherwise it is absolute.
 */
function buildSymbolTable(
  image: ProgramImage,
  sections: ImageSection[],
): { symtab: Uint8Array; strtab: Uint8Array; firstGlobal: number } {
  const globals = image.globalSymbols ?? new Set<string>();
  const names = [...image.symbols.keys()];
  const ordered = [
    ...names.filter((name) => !globals.has(name)),
    ...names.filter((name) => globals.has(name)),
  ];
  const strtab = new StringTable();
  const symtab = new Uint8Array((ordered.length + 1) * ELF64_SYM_SIZE);
  const view = new DataView(symtab.buffer);
  ordered.forEach((name, i) => {
    const value = image.symbols.get(name) ?? 0n;
    const at = (i + 1) * ELF64_SYM_SIZE;
    const bind = globals.has(name) ? STB_GLOBAL : STB_LOCAL;
    view.setUint32(at, strtab.add(name), true);
    symtab[at + 4] = (bind << 4) | STT_NOTYPE;
    symtab[at + 5] = 0; // st_other: default visibility
    view.setUint16(at + 6, sectionIndexFor(value, sections), true);
    view.setBigUint64(at + 8, value, true);
    view.setBigUint64(at + 16, 0n, true); // st_size unknown
  });
  const localCount = ordered.length - names.filter((name) => globals.has(name)).length;
  return { symtab, strtab: strtab.bytes(), firstGlobal: localCount + 1 };
}

function sectionIndexFor(value: bigint, sections: ImageSection[]): number {
  const inside = sections.findIndex(
    (s) => value >= BigInt(s.address) && value < BigInt(s.address + s.size),
  );
  if (inside >= 0) return inside + 1;
  const atEnd = sections.findIndex((s) => value === BigInt(s.address + s.size));
  return atEnd >= 0 ? atEnd + 1 : SHN_ABS;
}

function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

function mod(n: number, m: number): number {
  return ((n % m) + m) % m;
}
