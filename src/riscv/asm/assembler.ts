/**
 * The assembler driver, in two passes over the statements:
 *
 * 1. Parse each statement, define its labels, expand instructions and
 *    directives into section fragments. Every fragment's size is known here
 *    (only `li`/`la` of a constant vary, and their constant must already be
 *    known, as in GNU as), so every label gets its offset in its section.
 * 2. Lay the sections out, then evaluate every immediate and data value with
 *    final addresses, encode, and build the program image and its ELF file.
 */
import { PF_R, PF_W, PF_X } from "../elf/constants.js";
import type { ImageSection, LoadSegment, ProgramImage } from "../elf/image.js";
import { writeElf } from "../elf/write.js";
import { defineBaseForms } from "./base-forms.js";
import { type DirectiveContext, handleDirective } from "./directives.js";
import { encode, EncodingError, type InstructionFields } from "./encoding.js";
import { DiagnosticList, SourceError } from "./errors.js";
import {
  type EvaluationContext,
  evaluate,
  evaluateNumber,
  toInt64,
  UndefinedSymbolError,
  type Value,
} from "./expressions.js";
import { FormTable, type MachineInstruction } from "./forms.js";
import { type LexedStatement, lex } from "./lexer.js";
import {
  type Expr,
  type Label,
  LocalLabels,
  Parser,
  type StatementBody,
  type TokenGroup,
} from "./parser.js";
import { definePseudoForms } from "./pseudo.js";
import { type Layout, layout, Section, type SectionKind } from "./sections.js";

export interface AssembleOptions {
  /** Used in diagnostics. */
  fileName?: string;
  /** Address of .text; default 0x8020_0000, where OpenSBI on QEMU virt jumps to a kernel. */
  textAddress?: number;
}

export interface AssembledProgram {
  image: ProgramImage;
  /** writeElf(image). */
  elf: Uint8Array;
}

export const DEFAULT_TEXT_ADDRESS = 0x8020_0000;
export const DEFAULT_FILE_NAME = "<source>";

const INSTRUCTIONS = new FormTable();
defineBaseForms(INSTRUCTIONS);
definePseudoForms(INSTRUCTIONS);

/** Assembles RV64IMA + Zicsr + Zifencei source. Throws AssemblerError listing every problem found. */
export function assemble(source: string, options: AssembleOptions = {}): AssembledProgram {
  const textAddress = options.textAddress ?? DEFAULT_TEXT_ADDRESS;
  if (!Number.isSafeInteger(textAddress) || textAddress < 0 || textAddress % 4 !== 0) {
    throw new RangeError(`textAddress ${textAddress} must be a non-negative multiple of 4`);
  }
  const diagnostics = new DiagnosticList(options.fileName ?? DEFAULT_FILE_NAME);
  const assembly = new Assembly(diagnostics);
  for (const statement of lex(source, diagnostics)) assembly.addStatement(statement);
  // Later errors would mostly be consequences of these.
  diagnostics.throwIfAny();
  const image = assembly.link(textAddress);
  diagnostics.throwIfAny();
  return { image, elf: writeElf(image) };
}

type SymbolDefinition =
  | { kind: "label"; section: Section; offset: number; line: number }
  /** `.equ`/`.set`/`=`: evaluated when used; `resolving` catches circular definitions. */
  | { kind: "equ"; expr: Expr; line: number; resolving: boolean };

/** The symbol whose address is the program's entry point, if defined. */
const ENTRY_SYMBOL = "_start";

class Assembly implements DirectiveContext {
  private readonly sections = new Map<string, Section>();
  private current: Section;
  private readonly symbols = new Map<string, SymbolDefinition>();
  private readonly globals = new Map<string, { line: number; column: number }>();
  private readonly parser = new Parser(new LocalLabels());
  private line = 0;
  /** Counter for the hidden labels that freeze `.` inside .equ expressions. */
  private hiddenLabels = 0;
  private readonly pcrelHiTargets = new Map<bigint, bigint>();

  constructor(private readonly diagnostics: DiagnosticList) {
    this.current = this.sectionNamed(".text", "text");
  }

  // ---- Pass 1 ----

  addStatement(lexed: LexedStatement): void {
    this.line = lexed.line;
    try {
      const statement = this.parser.parseStatement(lexed);
      for (const label of statement.labels) this.defineLabel(label);
      if (statement.body) this.addBody(statement.body);
    } catch (error) {
      this.diagnostics.addError(error, lexed.line, lexed.tokens[0].column);
    }
  }

  private addBody(body: StatementBody): void {
    switch (body.kind) {
      case "assignment":
        this.defineSymbol(body.name, body.expr, body.column);
        return;
      case "directive":
        handleDirective(this, body.name, body.args, body.column);
        return;
      case "instruction": {
        const ctx = { constantNow: (e: Expr) => this.tryConstantNow(e) };
        const instructions = INSTRUCTIONS.expand(body.mnemonic, body.operands, ctx, body.column);
        this.addInstructions(instructions, body.column);
        return;
      }
    }
  }

  private addInstructions(instructions: MachineInstruction[], column: number): void {
    const section = this.current;
    if (section.kind === "bss") {
      throw new SourceError(`instructions are not allowed in ${section.name}`, column);
    }
    if (section.size % 4 !== 0) {
      throw new SourceError(
        `instruction at offset 0x${section.size.toString(16)} in ${section.name} is not ` +
          "4-byte aligned (add .align 2 before it)",
        column,
      );
    }
    for (const instruction of instructions) {
      section.append(
        { kind: "instruction", offset: section.size, line: this.line, instruction },
        4,
      );
    }
  }

  private defineLabel(label: Label): void {
    this.checkUndefined(label.name, label.column);
    const { current: section, line } = this;
    this.symbols.set(label.name, { kind: "label", section, offset: section.size, line });
  }

  private checkUndefined(name: string, column: number): void {
    const existing = this.symbols.get(name);
    if (existing) {
      throw new SourceError(`symbol '${name}' is already defined (line ${existing.line})`, column);
    }
  }

  private sectionNamed(name: string, kind: SectionKind): Section {
    let section = this.sections.get(name);
    if (!section) {
      section = new Section(name, kind);
      this.sections.set(name, section);
    }
    return section;
  }

  /** Pass-1 evaluation: labels are offsets in their sections; later definitions are unknown. */
  private pass1Context(): EvaluationContext {
    return {
      symbolValue: (name, column) => this.symbolValue(name, column, () => this.pass1Context()),
      location: { section: this.current.name, offset: BigInt(this.current.size) },
      addressOf: () => undefined,
      pcrelHiTarget: () => undefined,
    };
  }

  /** The value of `e` if it is an absolute constant with everything it uses already defined. */
  private tryConstantNow(e: Expr): bigint | undefined {
    try {
      const value = evaluate(e, this.pass1Context());
      return value.section === null ? value.offset : undefined;
    } catch (error) {
      if (error instanceof UndefinedSymbolError) return undefined;
      throw error;
    }
  }

  // ---- DirectiveContext ----

  get section(): Section {
    return this.current;
  }

  switchSection(name: string, kind: SectionKind): void {
    this.current = this.sectionNamed(name, kind);
  }

  parseExpression(group: TokenGroup): Expr {
    return this.parser.parseExpression(group.tokens, group.column);
  }

  constantNow(e: Expr, what: string): bigint {
    try {
      return evaluateNumber(e, this.pass1Context(), what);
    } catch (error) {
      if (error instanceof UndefinedSymbolError) {
        throw new SourceError(
          `${what} must be a constant known at this point, but '${error.symbol}' is not defined yet`,
          error.column,
        );
      }
      throw error;
    }
  }

  defineSymbol(name: string, e: Expr, column: number): void {
    this.checkUndefined(name, column);
    this.symbols.set(name, {
      kind: "equ",
      expr: this.freezeLocation(e),
      line: this.line,
      resolving: false,
    });
  }

  /** Replaces `.` by a hidden label here, so that `.equ x, .` means this location, not the user's. */
  private freezeLocation(e: Expr): Expr {
    switch (e.kind) {
      case "dot": {
        const name = `.L.dot^${this.hiddenLabels++}`;
        this.defineLabel({ name, column: e.column });
        return { kind: "symbol", name, display: ".", column: e.column };
      }
      case "unary":
      case "relocation":
        return { ...e, operand: this.freezeLocation(e.operand) };
      case "binary":
        return { ...e, left: this.freezeLocation(e.left), right: this.freezeLocation(e.right) };
      default:
        return e;
    }
  }

  markGlobal(name: string, column: number): void {
    if (!this.globals.has(name)) this.globals.set(name, { line: this.line, column });
  }

  emitData(size: number, e: Expr): void {
    if (this.current.kind === "bss") {
      this.requireZero(this.constantNow(e, "a value in .bss") !== 0n, e.column);
      this.current.append(
        { kind: "fill", offset: this.current.size, length: size, value: 0 },
        size,
      );
      return;
    }
    this.current.append(
      { kind: "data", offset: this.current.size, line: this.line, size, expr: e },
      size,
    );
  }

  emitBytes(bytes: Uint8Array, column: number): void {
    if (this.current.kind === "bss") {
      this.requireZero(
        bytes.some((b) => b !== 0),
        column,
      );
      this.emitFill(bytes.length, 0);
      return;
    }
    this.current.append({ kind: "bytes", offset: this.current.size, bytes }, bytes.length);
  }

  emitFill(length: number, value: number): void {
    if (this.current.kind === "bss") this.requireZero(value !== 0);
    this.current.append({ kind: "fill", offset: this.current.size, length, value }, length);
  }

  private requireZero(nonZero: boolean, column?: number): void {
    if (nonZero) {
      const message = `${this.current.name} holds no data: only zeros can be stored in it`;
      throw new SourceError(message, column);
    }
  }

  // ---- Symbols (both passes) ----

  private symbolValue(
    name: string,
    column: number,
    context: () => EvaluationContext,
  ): Value | undefined {
    const definition = this.symbols.get(name);
    if (!definition) return undefined;
    if (definition.kind === "label") {
      return { section: definition.section.name, offset: BigInt(definition.offset) };
    }
    if (definition.resolving) {
      throw new SourceError(`symbol '${name}' is defined in terms of itself`, column);
    }
    definition.resolving = true;
    try {
      return evaluate(definition.expr, context());
    } finally {
      definition.resolving = false;
    }
  }

  // ---- Pass 2 ----

  /** Lays out, encodes and builds the image; errors go to the diagnostics. */
  link(textAddress: number): ProgramImage {
    for (const section of this.sections.values()) section.padEnd();
    const placement = layout(this.sections.values(), textAddress);
    this.collectPcrelHiTargets();
    const contents = new Map<Section, Uint8Array>();
    for (const section of placement.sections) {
      if (section.kind !== "bss") contents.set(section, this.encodeSection(section));
    }
    const symbols = this.finalSymbols();
    const segments = this.segments(placement, contents);
    if (segments.length === 0) this.diagnostics.add(1, 1, "nothing to assemble: no code or data");
    return {
      entry: this.entryPoint(symbols, placement, textAddress),
      segments,
      symbols,
      sections: this.imageSections(placement),
      globalSymbols: new Set([...this.globals.keys()].filter((name) => symbols.has(name))),
    };
  }

  /** Pass-2 evaluation, at `offset` in `section`: every section has its address. */
  private pass2Context(section: Section, offset: number): EvaluationContext {
    const context: EvaluationContext = {
      symbolValue: (name, column) => this.symbolValue(name, column, () => context),
      location: { section: section.name, offset: BigInt(offset) },
      addressOf: (name, sectionOffset) => {
        const placed = this.sections.get(name);
        return placed && BigInt(placed.address) + sectionOffset;
      },
      pcrelHiTarget: (anchor) => this.pcrelHiTargets.get(anchor),
    };
    return context;
  }

  /** %pcrel_lo needs the target of the auipc it names, wherever that auipc is. */
  private collectPcrelHiTargets(): void {
    for (const section of this.sections.values()) {
      for (const fragment of section.fragments) {
        if (fragment.kind !== "instruction") continue;
        const imm = fragment.instruction.imm;
        if (imm?.kind !== "relocation" || imm.op !== "pcrel_hi") continue;
        const address = section.address + fragment.offset;
        try {
          const ctx = this.pass2Context(section, fragment.offset);
          const target = evaluateNumber(imm.operand, ctx, "%pcrel_hi");
          this.pcrelHiTargets.set(BigInt(address), BigInt.asIntN(64, target));
        } catch {
          // Reported when the auipc itself is encoded.
        }
      }
    }
  }

  private encodeSection(section: Section): Uint8Array {
    const bytes = new Uint8Array(section.size);
    const view = new DataView(bytes.buffer);
    for (const fragment of section.fragments) {
      const ctx = this.pass2Context(section, fragment.offset);
      switch (fragment.kind) {
        case "bytes":
          bytes.set(fragment.bytes, fragment.offset);
          break;
        case "fill":
          bytes.fill(fragment.value, fragment.offset, fragment.offset + fragment.length);
          break;
        case "instruction":
          this.report(fragment.line, () => {
            const word = this.encodeInstruction(fragment.instruction, ctx);
            view.setUint32(fragment.offset, word, true);
          });
          break;
        case "data":
          this.report(fragment.line, () => {
            const value = this.dataValue(fragment.expr, fragment.size, ctx);
            for (let i = 0; i < fragment.size; i++) {
              bytes[fragment.offset + i] = Number((value >> BigInt(8 * i)) & 0xffn);
            }
          });
          break;
      }
    }
    return bytes;
  }

  private report(line: number, action: () => void): void {
    try {
      action();
    } catch (error) {
      this.diagnostics.addError(error, line, 1);
    }
  }

  private encodeInstruction(instruction: MachineInstruction, ctx: EvaluationContext): number {
    const { spec, imm, csr } = instruction;
    const fields: InstructionFields = {
      rd: instruction.rd,
      rs1: instruction.rs1,
      rs2: instruction.rs2,
    };
    if (imm) {
      const value = evaluateNumber(imm, ctx, `${spec.mnemonic} operand`);
      // Branch and jump operands are target addresses; the instruction holds the distance.
      const pcRelative = spec.format === "B" || spec.format === "J";
      fields.imm = pcRelative ? value - evaluateNumber(here(imm.column), ctx, ".") : value;
    }
    if (csr) fields.csr = evaluateNumber(csr, ctx, "CSR operand");
    try {
      return encode(spec, fields);
    } catch (error) {
      if (!(error instanceof EncodingError)) throw error;
      const operand = error.field === "csr" ? csr : imm;
      throw new SourceError(error.message, operand?.column);
    }
  }

  /** A data value, which must fit in `size` bytes as a signed or an unsigned number. */
  private dataValue(e: Expr, size: number, ctx: EvaluationContext): bigint {
    const value = evaluateNumber(e, ctx, "data value");
    const bits = BigInt(size * 8);
    if (value < -(1n << (bits - 1n)) || value >= 1n << bits) {
      throw new SourceError(`value ${value} does not fit in ${size} byte(s)`, e.column);
    }
    return BigInt.asUintN(Number(bits), value);
  }

  /** Every named symbol (not .L locals) with its final value as a u64. */
  private finalSymbols(): Map<string, bigint> {
    const symbols = new Map<string, bigint>();
    for (const [name, definition] of this.symbols) {
      if (name.startsWith(".L")) continue;
      this.report(definition.line, () => {
        const column = definition.kind === "equ" ? definition.expr.column : 1;
        const ctx = this.pass2Context(this.current, 0); // `.` does not occur in symbol values
        const value = evaluateNumber({ kind: "symbol", name, display: name, column }, ctx, name);
        symbols.set(name, BigInt.asUintN(64, toInt64(value, column)));
      });
    }
    for (const [name, where] of this.globals) {
      if (!this.symbols.has(name)) {
        this.diagnostics.add(
          where.line,
          where.column,
          `'${name}' is declared .globl but never defined`,
        );
      }
    }
    return symbols;
  }

  /** `_start` if defined (it must be in code), else the start of .text. */
  private entryPoint(symbols: Map<string, bigint>, placement: Layout, textAddress: number): number {
    const entry = symbols.get(ENTRY_SYMBOL);
    if (entry === undefined) return textAddress;
    const inCode = placement.sections.some(
      (s) => s.kind === "text" && entry >= s.address && entry < s.address + s.size,
    );
    if (!inCode) {
      const line = this.symbols.get(ENTRY_SYMBOL)?.line ?? 1;
      const message = `${ENTRY_SYMBOL} (0x${entry.toString(16)}) is not in an executable section`;
      this.diagnostics.add(line, 1, message);
      return textAddress;
    }
    return Number(entry);
  }

  /** The R+X segment (text, read-only data) and the R+W segment (data, bss), when not empty. */
  private segments(placement: Layout, contents: Map<Section, Uint8Array>): LoadSegment[] {
    const segments: LoadSegment[] = [];
    const gather = (start: number, end: number) => {
      const data = new Uint8Array(end - start);
      for (const [section, bytes] of contents) {
        if (section.address >= start && section.address + section.size <= end && section.size > 0) {
          data.set(bytes, section.address - start);
        }
      }
      return data;
    };
    const { code, data } = placement;
    if (code.end > code.start) {
      segments.push({
        physAddr: code.start,
        virtAddr: code.start,
        data: gather(code.start, code.end),
        memSize: code.end - code.start,
        flags: PF_R | PF_X,
      });
    }
    if (data.end > data.start) {
      segments.push({
        physAddr: data.start,
        virtAddr: data.start,
        data: gather(data.start, data.fileEnd),
        memSize: data.end - data.start,
        flags: PF_R | PF_W,
      });
    }
    return segments;
  }

  private imageSections(placement: Layout): ImageSection[] {
    return placement.sections
      .filter((section) => section.size > 0)
      .map((section) => ({
        name: section.name,
        address: section.address,
        size: section.size,
        alignment: section.alignment,
        noBits: section.kind === "bss",
        executable: section.kind === "text",
        writable: section.kind === "data" || section.kind === "bss",
      }));
  }
}

/** The expression `.`. */
function here(column: number): Expr {
  return { kind: "dot", column };
}
