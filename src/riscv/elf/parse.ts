/**
 * ELF64 parser for guest executables. The input is untrusted: every header
 * field that the result depends on is checked against the file before use,
 * and every failure is an ElfFormatError with a message that says what is
 * wrong and where. Section headers and the symbol table are optional extras:
 * they are used when consistent and silently ignored otherwise.
 */
import {
  EF_RISCV_RVC,
  EI_CLASS,
  EI_DATA,
  EI_VERSION,
  ELF64_EHDR_SIZE,
  ELF64_PHDR_SIZE,
  ELF64_SHDR_SIZE,
  ELF64_SYM_SIZE,
  ELF_MAGIC,
  ELFCLASS32,
  ELFCLASS64,
  ELFDATA2LSB,
  EM_RISCV,
  ET_CORE,
  ET_DYN,
  ET_EXEC,
  ET_NONE,
  ET_REL,
  EV_CURRENT,
  PF_R,
  PF_W,
  PF_X,
  PN_XNUM,
  PT_DYNAMIC,
  PT_INTERP,
  PT_LOAD,
  SHF_ALLOC,
  SHF_EXECINSTR,
  SHF_WRITE,
  SHN_UNDEF,
  SHT_NOBITS,
  SHT_NULL,
  SHT_STRTAB,
  SHT_SYMTAB,
  STB_GLOBAL,
  STB_WEAK,
  STT_FILE,
  STT_SECTION,
} from "./constants.js";
import type { ImageSection, LoadSegment, ProgramImage } from "./image.js";

export class ElfFormatError extends Error {
  constructor(message: string) {
    super(`ELF: ${message}`);
    this.name = "ElfFormatError";
  }
}

const MAX_ADDRESS = BigInt(Number.MAX_SAFE_INTEGER);
const hex = (n: number | bigint) => `0x${n.toString(16)}`;

/** Bounds-checked little-endian reads. Callers validate ranges first; this is the backstop. */
class Reader {
  private readonly view: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get length(): number {
    return this.bytes.length;
  }
  private check(offset: number, size: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + size > this.bytes.length) {
      throw new ElfFormatError(`read of ${size} bytes at ${hex(offset)} is outside the file`);
    }
  }
  u8(offset: number): number {
    this.check(offset, 1);
    return this.view.getUint8(offset);
  }
  u16(offset: number): number {
    this.check(offset, 2);
    return this.view.getUint16(offset, true);
  }
  u32(offset: number): number {
    this.check(offset, 4);
    return this.view.getUint32(offset, true);
  }
  u64(offset: number): bigint {
    this.check(offset, 8);
    return this.view.getBigUint64(offset, true);
  }
}

interface ElfHeader {
  entry: bigint;
  phoff: bigint;
  shoff: bigint;
  phnum: number;
  shentsize: number;
  shnum: number;
  shstrndx: number;
}

interface ProgramHeader {
  index: number;
  type: number;
  flags: number;
  offset: bigint;
  vaddr: bigint;
  paddr: bigint;
  filesz: bigint;
  memsz: bigint;
}

export function parseElf(bytes: Uint8Array): ProgramImage {
  const reader = new Reader(bytes);
  const header = parseHeader(reader);
  const loads = parseProgramHeaders(reader, header);
  checkNoOverlap(loads, "paddr", "physical");
  checkNoOverlap(loads, "vaddr", "virtual");
  checkEntry(header.entry, loads);

  const segments: LoadSegment[] = loads.map((ph) => ({
    physAddr: Number(ph.paddr),
    virtAddr: Number(ph.vaddr),
    data: bytes.slice(Number(ph.offset), Number(ph.offset + ph.filesz)),
    memSize: Number(ph.memsz),
    flags: ph.flags & (PF_R | PF_W | PF_X),
  }));
  const image: ProgramImage = { entry: Number(header.entry), segments, symbols: new Map() };
  const extras = parseSectionExtras(reader, header, segments);
  if (extras) {
    image.symbols = extras.symbols;
    image.globalSymbols = extras.globals;
    if (extras.sections) image.sections = extras.sections;
  }
  return image;
}

function parseHeader(r: Reader): ElfHeader {
  if (r.length < ELF_MAGIC.length || ELF_MAGIC.some((byte, i) => r.u8(i) !== byte)) {
    throw new ElfFormatError("bad magic: not an ELF file");
  }
  if (r.length < EI_DATA + 1) throw new ElfFormatError("file truncated inside e_ident");
  const elfClass = r.u8(EI_CLASS);
  if (elfClass === ELFCLASS32) {
    throw new ElfFormatError("32-bit ELF (ELFCLASS32); guests must be built for rv64");
  }
  if (elfClass !== ELFCLASS64) throw new ElfFormatError(`invalid EI_CLASS ${elfClass}`);
  if (r.length < ELF64_EHDR_SIZE) {
    throw new ElfFormatError(
      `file is ${r.length} bytes, too short for the ${ELF64_EHDR_SIZE}-byte ELF64 header`,
    );
  }
  const data = r.u8(EI_DATA);
  if (data !== ELFDATA2LSB) {
    throw new ElfFormatError(`EI_DATA is ${data}; RISC-V guests must be little-endian (1)`);
  }
  if (r.u8(EI_VERSION) !== EV_CURRENT) {
    throw new ElfFormatError(`EI_VERSION is ${r.u8(EI_VERSION)}, expected ${EV_CURRENT}`);
  }
  const type = r.u16(16);
  if (type !== ET_EXEC) throw new ElfFormatError(describeWrongType(type));
  const machine = r.u16(18);
  if (machine !== EM_RISCV) {
    throw new ElfFormatError(`e_machine is ${machine}, expected EM_RISCV (${EM_RISCV})`);
  }
  const version = r.u32(20);
  if (version !== EV_CURRENT) {
    throw new ElfFormatError(`e_version is ${version}, expected ${EV_CURRENT}`);
  }
  const flags = r.u32(48);
  if (flags & EF_RISCV_RVC) {
    throw new ElfFormatError(
      "e_flags has EF_RISCV_RVC (compressed instructions); the guest CPU has no C extension, " +
        "build the guest for rv64ima without C (e.g. -march=rv64ima_zicsr_zifencei)",
    );
  }
  const ehsize = r.u16(52);
  if (ehsize !== ELF64_EHDR_SIZE) {
    throw new ElfFormatError(`e_ehsize is ${ehsize}, expected ${ELF64_EHDR_SIZE}`);
  }
  const phentsize = r.u16(54);
  if (phentsize !== ELF64_PHDR_SIZE) {
    throw new ElfFormatError(`e_phentsize is ${phentsize}, expected ${ELF64_PHDR_SIZE}`);
  }
  const phnum = r.u16(56);
  if (phnum === 0) throw new ElfFormatError("no program headers: nothing to load");
  if (phnum === PN_XNUM) {
    throw new ElfFormatError("extended program header numbering (PN_XNUM) is not supported");
  }
  const phoff = r.u64(32);
  const phEnd = phoff + BigInt(phnum * ELF64_PHDR_SIZE);
  if (phoff === 0n || phEnd > BigInt(r.length)) {
    throw new ElfFormatError(
      `program header table (e_phoff ${hex(phoff)}, ${phnum} entries of ${ELF64_PHDR_SIZE} bytes) ` +
        `is outside the file (${hex(r.length)} bytes)`,
    );
  }
  return {
    entry: r.u64(24),
    phoff,
    shoff: r.u64(40),
    phnum,
    shentsize: r.u16(58),
    shnum: r.u16(60),
    shstrndx: r.u16(62),
  };
}

function describeWrongType(type: number): string {
  switch (type) {
    case ET_DYN:
      return (
        "e_type is ET_DYN (position-independent executable or shared object); " +
        "link the guest as a static non-PIE executable (ET_EXEC, -static -no-pie)"
      );
    case ET_REL:
      return "e_type is ET_REL (relocatable object file); link it into an executable first";
    case ET_CORE:
      return "e_type is ET_CORE (core dump), not an executable";
    case ET_NONE:
      return "e_type is ET_NONE, not an executable";
    default:
      return `e_type is ${type}, expected ET_EXEC (${ET_EXEC})`;
  }
}

/** Returns the PT_LOAD headers, validated; rejects dynamically linked executables. */
function parseProgramHeaders(r: Reader, header: ElfHeader): ProgramHeader[] {
  const loads: ProgramHeader[] = [];
  for (let index = 0; index < header.phnum; index++) {
    const at = Number(header.phoff) + index * ELF64_PHDR_SIZE;
    const ph: ProgramHeader = {
      index,
      type: r.u32(at),
      flags: r.u32(at + 4),
      offset: r.u64(at + 8),
      vaddr: r.u64(at + 16),
      paddr: r.u64(at + 24),
      filesz: r.u64(at + 32),
      memsz: r.u64(at + 40),
    };
    if (ph.type === PT_INTERP || ph.type === PT_DYNAMIC) {
      throw new ElfFormatError(
        `program header ${index} is ${ph.type === PT_INTERP ? "PT_INTERP" : "PT_DYNAMIC"}: ` +
          "dynamically linked executables are not supported, link the guest statically",
      );
    }
    if (ph.type !== PT_LOAD) continue;
    if (ph.offset + ph.filesz > BigInt(r.length)) {
      throw new ElfFormatError(
        `program header ${index} extends past end of file (offset ${hex(ph.offset)}, ` +
          `size ${hex(ph.filesz)}, file is ${hex(r.length)} bytes)`,
      );
    }
    if (ph.filesz > ph.memsz) {
      throw new ElfFormatError(
        `program header ${index} has p_filesz ${hex(ph.filesz)} larger than ` +
          `p_memsz ${hex(ph.memsz)}`,
      );
    }
    for (const field of ["vaddr", "paddr"] as const) {
      if (ph[field] + ph.memsz > MAX_ADDRESS) {
        throw new ElfFormatError(
          `program header ${index} p_${field} range [${hex(ph[field])}, ` +
            `${hex(ph[field] + ph.memsz)}) goes beyond 2^53, which cannot be guest memory`,
        );
      }
    }
    loads.push(ph);
  }
  if (loads.length === 0) throw new ElfFormatError("no PT_LOAD program header: nothing to load");
  return loads;
}

function checkNoOverlap(loads: ProgramHeader[], field: "vaddr" | "paddr", kind: string): void {
  const nonEmpty = loads.filter((ph) => ph.memsz > 0n);
  const sorted = [...nonEmpty].sort((a, b) => (a[field] < b[field] ? -1 : 1));
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    const next = sorted[i];
    if (next[field] < prev[field] + prev.memsz) {
      throw new ElfFormatError(
        `PT_LOAD program headers ${prev.index} and ${next.index} overlap in ${kind} memory ` +
          `([${hex(prev[field])}, ${hex(prev[field] + prev.memsz)}) and ` +
          `[${hex(next[field])}, ${hex(next[field] + next.memsz)}))`,
      );
    }
  }
}

function checkEntry(entry: bigint, loads: ProgramHeader[]): void {
  const ok = loads.some(
    (ph) => (ph.flags & PF_X) !== 0 && entry >= ph.vaddr && entry < ph.vaddr + ph.memsz,
  );
  if (!ok) {
    throw new ElfFormatError(
      `entry point ${hex(entry)} is not inside an executable PT_LOAD segment`,
    );
  }
}

interface SectionHeaderEntry {
  name: number;
  type: number;
  flags: bigint;
  addr: bigint;
  offset: bigint;
  size: bigint;
  link: number;
  addralign: bigint;
  entsize: bigint;
}

interface SectionExtras {
  symbols: Map<string, bigint>;
  globals: Set<string>;
  sections: ImageSection[] | undefined;
}

/**
 * Symbols and section layout from the section header table, or undefined if
 * there is none or it is inconsistent. Nothing here can reject the file.
 */
function parseSectionExtras(
  r: Reader,
  header: ElfHeader,
  segments: LoadSegment[],
): SectionExtras | undefined {
  const shdrs = readSectionHeaders(r, header);
  if (!shdrs) return undefined;
  const sectionName = (shdr: SectionHeaderEntry) =>
    header.shstrndx < shdrs.length ? readString(r, shdrs[header.shstrndx], shdr.name) : undefined;

  const symbols = new Map<string, bigint>();
  const globals = new Set<string>();
  const symtab = shdrs.find((shdr) => shdr.type === SHT_SYMTAB);
  if (symtab) readSymbols(r, shdrs, symtab, symbols, globals);
  return { symbols, globals, sections: readAllocatedSections(shdrs, sectionName, segments) };
}

function readSectionHeaders(r: Reader, header: ElfHeader): SectionHeaderEntry[] | undefined {
  if (header.shoff === 0n || header.shnum === 0 || header.shentsize !== ELF64_SHDR_SIZE) {
    return undefined;
  }
  if (header.shoff + BigInt(header.shnum * ELF64_SHDR_SIZE) > BigInt(r.length)) return undefined;
  const shdrs: SectionHeaderEntry[] = [];
  for (let i = 0; i < header.shnum; i++) {
    const at = Number(header.shoff) + i * ELF64_SHDR_SIZE;
    shdrs.push({
      name: r.u32(at),
      type: r.u32(at + 4),
      flags: r.u64(at + 8),
      addr: r.u64(at + 16),
      offset: r.u64(at + 24),
      size: r.u64(at + 32),
      link: r.u32(at + 40),
      addralign: r.u64(at + 48),
      entsize: r.u64(at + 56),
    });
  }
  return shdrs;
}

function inFile(r: Reader, shdr: SectionHeaderEntry): boolean {
  return shdr.type !== SHT_NOBITS && shdr.offset + shdr.size <= BigInt(r.length);
}

/** A NUL-terminated string at `offset` inside string table `strtab`, or undefined. */
function readString(r: Reader, strtab: SectionHeaderEntry, offset: number): string | undefined {
  if (strtab.type !== SHT_STRTAB || !inFile(r, strtab) || BigInt(offset) >= strtab.size) {
    return undefined;
  }
  const start = Number(strtab.offset) + offset;
  const end = r.bytes.indexOf(0, start);
  if (end < 0 || end >= Number(strtab.offset + strtab.size)) return undefined;
  return new TextDecoder().decode(r.bytes.subarray(start, end));
}

/** Named, defined symbols; globals override same-named locals. Skips bad entries. */
function readSymbols(
  r: Reader,
  shdrs: SectionHeaderEntry[],
  symtab: SectionHeaderEntry,
  symbols: Map<string, bigint>,
  globals: Set<string>,
): void {
  if (!inFile(r, symtab) || symtab.entsize !== BigInt(ELF64_SYM_SIZE)) return;
  if (symtab.link >= shdrs.length) return;
  const strtab = shdrs[symtab.link];
  const count = Number(symtab.size / BigInt(ELF64_SYM_SIZE));
  for (let i = 1; i < count; i++) {
    const at = Number(symtab.offset) + i * ELF64_SYM_SIZE;
    const info = r.u8(at + 4);
    const shndx = r.u16(at + 6);
    const type = info & 0xf;
    const bind = info >> 4;
    if (type === STT_SECTION || type === STT_FILE || shndx === SHN_UNDEF) continue;
    const name = readString(r, strtab, r.u32(at));
    // "$x"/"$d..." are RISC-V mapping symbols (code/data markers), not program symbols.
    if (!name || /^\$[xd]/.test(name)) continue;
    const isGlobal = bind === STB_GLOBAL || bind === STB_WEAK;
    if (!isGlobal && globals.has(name)) continue;
    symbols.set(name, r.u64(at + 8));
    if (isGlobal) globals.add(name);
  }
}

/**
 * The SHF_ALLOC sections, if all of them lie inside the loaded segments (so
 * the image can be written back out); undefined otherwise.
 */
function readAllocatedSections(
  shdrs: SectionHeaderEntry[],
  sectionName: (shdr: SectionHeaderEntry) => string | undefined,
  segments: LoadSegment[],
): ImageSection[] | undefined {
  const sections: ImageSection[] = [];
  for (const shdr of shdrs) {
    if (shdr.type === SHT_NULL || (shdr.flags & BigInt(SHF_ALLOC)) === 0n || shdr.size === 0n) {
      continue;
    }
    const name = sectionName(shdr);
    const alignment = shdr.addralign === 0n ? 1n : shdr.addralign;
    if (name === undefined || (alignment & (alignment - 1n)) !== 0n || alignment > MAX_ADDRESS) {
      return undefined;
    }
    const noBits = shdr.type === SHT_NOBITS;
    const end = shdr.addr + shdr.size;
    const contained = segments.some((segment) => {
      const limit = segment.virtAddr + (noBits ? segment.memSize : segment.data.length);
      return shdr.addr >= BigInt(segment.virtAddr) && end <= BigInt(limit);
    });
    if (!contained) return undefined;
    sections.push({
      name,
      address: Number(shdr.addr),
      size: Number(shdr.size),
      alignment: Number(alignment),
      noBits,
      executable: (shdr.flags & BigInt(SHF_EXECINSTR)) !== 0n,
      writable: (shdr.flags & BigInt(SHF_WRITE)) !== 0n,
    });
  }
  return sections;
}
