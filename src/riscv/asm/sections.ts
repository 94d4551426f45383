/**
 * Sections and their layout in memory, as a simple linker script would do
 * it: text-like sections from the text address, then read-only data, both in
 * one R+X segment; then, from the next 4 KiB page, data and finally .bss in
 * one R+W segment. Within each group the standard section (.text, .rodata,
 * .data, .bss) comes first and the others follow in order of appearance;
 * every section starts at a multiple of its alignment.
 */
import type { Expr } from "./parser.js";
import type { MachineInstruction } from "./forms.js";

export type SectionKind = "text" | "rodata" | "data" | "bss";

/** Section contents before layout; offsets are from the start of the section. */
export type Fragment =
  | { kind: "instruction"; offset: number; line: number; instruction: MachineInstruction }
  /** A little-endian `size`-byte value. */
  | { kind: "data"; offset: number; line: number; size: number; expr: Expr }
  | { kind: "bytes"; offset: number; bytes: Uint8Array }
  | { kind: "fill"; offset: number; length: number; value: number };

export class Section {
  size = 0;
  alignment: number;
  /** Assigned by layout(). */
  address = 0;
  readonly fragments: Fragment[] = [];

  constructor(
    readonly name: string,
    readonly kind: SectionKind,
  ) {
    // Code needs 4-byte alignment (no C extension); data is byte-aligned unless .align says otherwise.
    this.alignment = kind === "text" ? 4 : 1;
  }

  /** Appends a fragment at the current end; `length` is the bytes it occupies. */
  append(fragment: Fragment, length: number): void {
    this.fragments.push(fragment);
    this.size += length;
  }

  /** GNU as pads the end of a code section to its alignment; so do we, to lay out identically. */
  padEnd(): void {
    const padding = (this.alignment - (this.size % this.alignment)) % this.alignment;
    if (this.kind === "text" && padding > 0) {
      this.append({ kind: "bytes", offset: this.size, bytes: codePadding(padding) }, padding);
    }
  }
}

const NOP_INSTRUCTION = 0x00000013; // addi x0, x0, 0
const C_NOP = 0x0001; // GNU as pads with this 2-byte c.nop even without the C extension

/**
 * Alignment padding in code, as GNU as emits it: a zero byte if the gap is
 * odd, a 2-byte c.nop if what remains is 2 mod 4, then 4-byte nops.
 */
export function codePadding(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  const view = new DataView(bytes.buffer);
  let at = length % 2;
  if ((length - at) % 4 === 2) {
    view.setUint16(at, C_NOP, true);
    at += 2;
  }
  for (; at < length; at += 4) view.setUint32(at, NOP_INSTRUCTION, true);
  return bytes;
}

const STANDARD_SECTIONS: Record<SectionKind, string> = {
  text: ".text",
  rodata: ".rodata",
  data: ".data",
  bss: ".bss",
};

/** The standard section a directive like `.text` selects. */
export function standardSectionName(kind: SectionKind): string {
  return STANDARD_SECTIONS[kind];
}

/**
 * Classifies a `.section` by its flags and type when given (x: code, w:
 * writable, @nobits: bss) and otherwise by name, as GNU tools do.
 */
export function sectionKind(name: string, flags?: string, type?: string): SectionKind {
  if (type === "nobits") return "bss";
  if (flags !== undefined) {
    if (flags.includes("x")) return "text";
    if (flags.includes("w")) return /^\.s?bss(\.|$)/.test(name) ? "bss" : "data";
    return "rodata";
  }
  if (/^\.text(\.|$)/.test(name)) return "text";
  if (/^\.s?rodata(\.|$)/.test(name)) return "rodata";
  if (/^\.s?bss(\.|$)/.test(name)) return "bss";
  return "data";
}

export const PAGE_SIZE = 0x1000;

export interface Layout {
  /** Sections in address order. */
  sections: Section[];
  /** [start, end) of the R+X segment (text and read-only data). */
  code: { start: number; end: number };
  /** [start, end) of the R+W segment and where its file-backed part (everything but bss) ends. */
  data: { start: number; fileEnd: number; end: number };
}

/** Assigns every section its address. */
export function layout(sections: Iterable<Section>, textAddress: number): Layout {
  const all = [...sections];
  const group = (kind: SectionKind) => {
    const members = all.filter((section) => section.kind === kind);
    const standard = members.filter((section) => section.name === STANDARD_SECTIONS[kind]);
    return [...standard, ...members.filter((section) => section.name !== STANDARD_SECTIONS[kind])];
  };
  const ordered: Section[] = [];
  let address = textAddress;
  const place = (section: Section) => {
    // An empty section does not move the location counter (a linker would discard it).
    if (section.size > 0) address = alignUp(address, section.alignment);
    section.address = address;
    address += section.size;
    ordered.push(section);
  };

  group("text").forEach(place);
  group("rodata").forEach(place);
  const code = { start: textAddress, end: address };

  address = alignUp(address, PAGE_SIZE);
  const dataStart = address;
  group("data").forEach(place);
  const fileEnd = address;
  group("bss").forEach(place);
  return { sections: ordered, code, data: { start: dataStart, fileEnd, end: address } };
}

export function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}
