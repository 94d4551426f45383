/**
 * Assembler directives: section switching, data, alignment, symbols and the
 * few options that matter. Each handler interprets its own comma-separated
 * argument groups.
 */
import { SourceError } from "./errors.js";
import type { Token } from "./lexer.js";
import type { Expr, TokenGroup } from "./parser.js";
import {
  codePadding,
  type Section,
  type SectionKind,
  sectionKind,
  standardSectionName,
} from "./sections.js";

/** What directives can do to the assembly in progress (implemented by the assembler). */
export interface DirectiveContext {
  readonly section: Section;
  switchSection(name: string, kind: SectionKind): void;
  parseExpression(group: TokenGroup): Expr;
  /** The value of an expression that must be an absolute constant known at this point. */
  constantNow(expr: Expr, what: string): bigint;
  defineSymbol(name: string, expr: Expr, column: number): void;
  markGlobal(name: string, column: number): void;
  emitData(size: number, expr: Expr): void;
  emitBytes(bytes: Uint8Array, column: number): void;
  emitFill(length: number, value: number): void;
}

type Handler = (ctx: DirectiveContext, args: TokenGroup[], column: number) => void;

const MAX_ALIGNMENT_EXPONENT = 16n;

const DATA_SIZES: Record<string, number> = {
  ".byte": 1,
  ".half": 2,
  ".short": 2,
  ".2byte": 2,
  ".word": 4,
  ".long": 4,
  ".4byte": 4,
  ".dword": 8,
  ".quad": 8,
  ".8byte": 8,
};

/** Accepted for compatibility with compiler output; they carry nothing we need. */
const IGNORED = new Set([".type", ".size", ".file", ".attribute", ".ident"]);

/** Options that do not change what we emit: we never relax and never emit compressed code. */
const HARMLESS_OPTIONS = new Set(["norvc", "norelax", "relax", "push", "pop", "nopic"]);

const HANDLERS: Record<string, Handler> = {
  ".text": standardSection("text"),
  ".rodata": standardSection("rodata"),
  ".data": standardSection("data"),
  ".bss": standardSection("bss"),
  ".section": sectionDirective,
  ".globl": globalDirective,
  ".global": globalDirective,
  ".align": (ctx, args, column) => alignDirective(ctx, args, column, "exponent"),
  ".p2align": (ctx, args, column) => alignDirective(ctx, args, column, "exponent"),
  ".balign": (ctx, args, column) => alignDirective(ctx, args, column, "bytes"),
  ".ascii": (ctx, args, column) => stringDirective(ctx, args, column, false),
  ".asciz": (ctx, args, column) => stringDirective(ctx, args, column, true),
  ".string": (ctx, args, column) => stringDirective(ctx, args, column, true),
  ".space": spaceDirective,
  ".skip": spaceDirective,
  ".zero": (ctx, args, column) => {
    expectArgs(args, 1, 1, ".zero", column);
    ctx.emitFill(sizeArgument(ctx, args[0], "size"), 0);
  },
  ".equ": assignDirective,
  ".set": assignDirective,
  ".option": optionDirective,
};

export function handleDirective(
  ctx: DirectiveContext,
  name: string,
  args: TokenGroup[],
  column: number,
): void {
  const size = DATA_SIZES[name];
  if (size !== undefined) {
    expectArgs(args, 1, Infinity, name, column);
    for (const group of args) ctx.emitData(size, ctx.parseExpression(group));
    return;
  }
  // Call-frame information is only for debuggers and unwinders, which guests do not have.
  if (IGNORED.has(name) || name.startsWith(".cfi_")) return;
  const handler = HANDLERS[name];
  if (!handler) throw new SourceError(`unknown directive '${name}'`, column);
  handler(ctx, args, column);
}

function expectArgs(args: TokenGroup[], min: number, max: number, name: string, column: number) {
  if (args.length < min || args.length > max) {
    const expected =
      min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
    throw new SourceError(`${name} takes ${expected} argument(s), got ${args.length}`, column);
  }
}

function standardSection(kind: SectionKind): Handler {
  return (ctx, args, column) => {
    expectArgs(args, 0, 0, standardSectionName(kind), column);
    ctx.switchSection(standardSectionName(kind), kind);
  };
}

/** `.section name[, "flags"[, @type]]` */
function sectionDirective(ctx: DirectiveContext, args: TokenGroup[], column: number): void {
  expectArgs(args, 1, Infinity, ".section", column);
  const name = nameOrString(args[0], "section name");
  const flags = args[1] && stringArgument(args[1], "section flags");
  const type = args[2] && sectionType(args[2]);
  ctx.switchSection(name, sectionKind(name, flags, type));
}

function sectionType(group: TokenGroup): string {
  const [marker, name] = group.tokens;
  const isMarker = marker.kind === "punct" && (marker.text === "@" || marker.text === "%");
  if (group.tokens.length !== 2 || !isMarker || name.kind !== "ident") {
    throw new SourceError("expected a section type such as @progbits or @nobits", group.column);
  }
  return name.text;
}

function globalDirective(ctx: DirectiveContext, args: TokenGroup[], column: number): void {
  expectArgs(args, 1, Infinity, ".globl", column);
  for (const group of args) ctx.markGlobal(identifier(group, "symbol name"), group.column);
}

function assignDirective(ctx: DirectiveContext, args: TokenGroup[], column: number): void {
  expectArgs(args, 2, 2, ".equ/.set", column);
  ctx.defineSymbol(
    identifier(args[0], "symbol name"),
    ctx.parseExpression(args[1]),
    args[0].column,
  );
}

function optionDirective(_ctx: DirectiveContext, args: TokenGroup[], column: number): void {
  expectArgs(args, 1, 1, ".option", column);
  const option = identifier(args[0], "option");
  if (HARMLESS_OPTIONS.has(option)) return;
  if (option === "rvc") {
    throw new SourceError(
      ".option rvc: compressed instructions are not supported (the guest CPU is rv64ima)",
      args[0].column,
    );
  }
  throw new SourceError(`unsupported .option '${option}'`, args[0].column);
}

/**
 * `.align`/`.p2align n` (2^n bytes, as RISC-V GNU as reads .align) and
 * `.balign n` (n bytes), with optional fill byte and maximum skip. Code is
 * padded with nops unless a fill byte is given.
 */
function alignDirective(
  ctx: DirectiveContext,
  args: TokenGroup[],
  column: number,
  unit: "exponent" | "bytes",
): void {
  expectArgs(args, 1, 3, unit === "bytes" ? ".balign" : ".align", column);
  const amount = ctx.constantNow(ctx.parseExpression(args[0]), "alignment");
  let alignment: bigint;
  if (unit === "exponent") {
    if (amount < 0n || amount > MAX_ALIGNMENT_EXPONENT) {
      throw new SourceError(`alignment exponent ${amount} is not in 0..16`, args[0].column);
    }
    alignment = 1n << amount;
  } else {
    alignment = amount === 0n ? 1n : amount;
    if (alignment < 0n || (alignment & (alignment - 1n)) !== 0n || alignment > 1n << 16n) {
      throw new SourceError(`alignment ${amount} is not a power of 2 up to 65536`, args[0].column);
    }
  }
  const fill = args[1] ? byteArgument(ctx, args[1], "fill value") : undefined;
  const maxSkip = args[2] ? sizeArgument(ctx, args[2], "maximum skip") : Infinity;

  const section = ctx.section;
  const align = Number(alignment);
  const padding = (align - (section.size % align)) % align;
  if (padding > maxSkip) return;
  section.alignment = Math.max(section.alignment, align);
  if (padding === 0) return;
  if (section.kind === "text" && fill === undefined) {
    ctx.emitBytes(codePadding(padding), column);
  } else {
    ctx.emitFill(padding, fill ?? 0);
  }
}

function stringDirective(
  ctx: DirectiveContext,
  args: TokenGroup[],
  column: number,
  terminate: boolean,
): void {
  expectArgs(args, 1, Infinity, terminate ? ".asciz" : ".ascii", column);
  for (const group of args) {
    const token = singleToken(group);
    if (token?.kind !== "string") throw new SourceError("expected a string", group.column);
    const bytes = terminate ? Uint8Array.from([...token.bytes, 0]) : token.bytes;
    ctx.emitBytes(bytes, group.column);
  }
}

/** `.space size[, fill]` */
function spaceDirective(ctx: DirectiveContext, args: TokenGroup[], column: number): void {
  expectArgs(args, 1, 2, ".space", column);
  const fill = args[1] ? byteArgument(ctx, args[1], "fill value") : 0;
  ctx.emitFill(sizeArgument(ctx, args[0], "size"), fill);
}

const MAX_SIZE = 1n << 32n;

function sizeArgument(ctx: DirectiveContext, group: TokenGroup, what: string): number {
  const value = ctx.constantNow(ctx.parseExpression(group), what);
  if (value < 0n || value > MAX_SIZE) {
    throw new SourceError(`${what} ${value} is not in 0..${MAX_SIZE}`, group.column);
  }
  return Number(value);
}

function byteArgument(ctx: DirectiveContext, group: TokenGroup, what: string): number {
  const value = ctx.constantNow(ctx.parseExpression(group), what);
  if (value < -128n || value > 255n) {
    throw new SourceError(`${what} ${value} does not fit in a byte`, group.column);
  }
  return Number(value) & 0xff;
}

function singleToken(group: TokenGroup): Token | undefined {
  return group.tokens.length === 1 ? group.tokens[0] : undefined;
}

function identifier(group: TokenGroup, what: string): string {
  const token = singleToken(group);
  if (token?.kind !== "ident") throw new SourceError(`expected a ${what}`, group.column);
  return token.text;
}

function stringArgument(group: TokenGroup, what: string): string {
  const token = singleToken(group);
  if (token?.kind !== "string") throw new SourceError(`expected ${what} as a string`, group.column);
  return new TextDecoder().decode(token.bytes);
}

function nameOrString(group: TokenGroup, what: string): string {
  const token = singleToken(group);
  if (token?.kind === "string") return new TextDecoder().decode(token.bytes);
  return identifier(group, what);
}
