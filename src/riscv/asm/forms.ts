/**
 * Instruction syntax: each mnemonic has one or more forms, each an operand
 * pattern written like the manual ("rd, offset(rs1)") and a function that
 * expands matching operands into machine instructions. Real instructions,
 * their alternative syntaxes and pseudo-instructions are all forms; the
 * first form whose pattern matches the operands wins.
 */
import { SourceError } from "./errors.js";
import type { InstructionSpec } from "./encoding.js";
import type { Expr, Operand } from "./parser.js";

/** One instruction with its operand fields; immediates stay expressions until layout is known. */
export interface MachineInstruction {
  spec: InstructionSpec;
  rd?: number;
  rs1?: number;
  rs2?: number;
  /** Immediate or offset; for branches and jumps, the target address. */
  imm?: Expr;
  csr?: Expr;
}

export interface ExpansionContext {
  /** The value of `expr` if it is an absolute constant known at this point, else undefined. */
  constantNow(expr: Expr): bigint | undefined;
}

type OperandKind = "register" | "memory" | "expr";

export type Expander = (operands: Operand[], ctx: ExpansionContext) => MachineInstruction[];

interface Form {
  syntax: string;
  kinds: OperandKind[];
  expand: Expander;
}

const KIND_DESCRIPTIONS: Record<OperandKind, string> = {
  register: "a register",
  memory: "a memory operand like offset(reg)",
  expr: "an immediate or symbol",
};

/**
 * "rd, offset(rs1)" → [register, memory]: a piece with parentheses is a
 * memory operand, rd/rs1/rs2/rs/rt are registers, anything else is an
 * expression.
 */
function parseSyntax(syntax: string): OperandKind[] {
  if (syntax === "") return [];
  return syntax.split(",").map((piece) => {
    const name = piece.trim();
    if (name.includes("(")) return "memory";
    return /^r[sdt][12]?$/.test(name) ? "register" : "expr";
  });
}

export class FormTable {
  private readonly forms = new Map<string, Form[]>();

  define(mnemonic: string, syntax: string, expand: Expander): void {
    const list = this.forms.get(mnemonic) ?? [];
    list.push({ syntax, kinds: parseSyntax(syntax), expand });
    this.forms.set(mnemonic, list);
  }

  /** Expands one source instruction; `column` locates the mnemonic for diagnostics. */
  expand(
    mnemonic: string,
    operands: Operand[],
    ctx: ExpansionContext,
    column: number,
  ): MachineInstruction[] {
    const forms = this.forms.get(mnemonic);
    if (!forms) throw new SourceError(`unknown instruction '${mnemonic}'`, column);
    const match = forms.find(
      (form) =>
        form.kinds.length === operands.length &&
        form.kinds.every((kind, i) => operands[i].kind === kind),
    );
    if (match) return match.expand(operands, ctx);
    throw mismatchError(mnemonic, forms, operands, column);
  }
}

/** Says which operand is wrong, or how many there should be, listing the accepted syntaxes. */
function mismatchError(
  mnemonic: string,
  forms: Form[],
  operands: Operand[],
  column: number,
): SourceError {
  const usage = forms.map((form) => `${mnemonic} ${form.syntax}`.trim()).join(" | ");
  const sameCount = forms.filter((form) => form.kinds.length === operands.length);
  if (sameCount.length === 0) {
    const counts = [...new Set(forms.map((form) => form.kinds.length))].join(" or ");
    return new SourceError(
      `'${mnemonic}' takes ${counts} operand(s), got ${operands.length} (${usage})`,
      column,
    );
  }
  // The first operand that no remaining candidate form accepts.
  let candidates = sameCount;
  for (let i = 0; i < operands.length; i++) {
    const accepting = candidates.filter((form) => form.kinds[i] === operands[i].kind);
    if (accepting.length === 0) {
      const expected = [...new Set(candidates.map((form) => KIND_DESCRIPTIONS[form.kinds[i]]))];
      return new SourceError(
        `operand ${i + 1} of '${mnemonic}' must be ${expected.join(" or ")}, ` +
          `not ${KIND_DESCRIPTIONS[operands[i].kind]} (${usage})`,
        operands[i].column,
      );
    }
    candidates = accepting;
  }
  throw new Error("internal: operands match a form but no form was chosen");
}

// Accessors for the operands of a matched form (the pattern guarantees the kind).

export function reg(operand: Operand): number {
  if (operand.kind !== "register") throw new Error("internal: expected a register operand");
  return operand.reg;
}

export function expr(operand: Operand): Expr {
  if (operand.kind !== "expr") throw new Error("internal: expected an expression operand");
  return operand.expr;
}

export function memory(operand: Operand): { offset: Expr; base: number } {
  if (operand.kind !== "memory") throw new Error("internal: expected a memory operand");
  return { offset: operand.offset ?? number(0n, operand.column), base: operand.base };
}

export function number(value: bigint, column: number): Expr {
  return { kind: "number", value, column };
}
