/**
 * Expression evaluation. A label's value is an offset in its section (a
 * relocatable value), both before and after layout, so that the same rules
 * apply in both passes: only the combinations a linker could resolve are
 * allowed, address ± constant and the difference of two addresses in one
 * section. Where a number is needed, an address becomes a number once
 * layout has placed its section.
 *
 * Arithmetic is on unbounded integers so that nothing is silently truncated;
 * range checks happen where a value is stored. `>>` is a logical shift of the
 * 64-bit value, as in GNU as.
 */
import { SourceError } from "./errors.js";
import type { Expr } from "./parser.js";

export interface Value {
  /** Name of the section the value is an offset into, or null for an absolute value. */
  section: string | null;
  offset: bigint;
}

export interface EvaluationContext {
  /** The value of a symbol, or undefined if it is not defined (yet). */
  symbolValue(name: string, column: number): Value | undefined;
  /** The value of `.`. */
  readonly location: Value;
  /** The address of `offset` in `section`, or undefined before layout. */
  addressOf(section: string, offset: bigint): bigint | undefined;
  /** For %pcrel_lo: the target of the %pcrel_hi instruction at `address`, if there is one. */
  pcrelHiTarget(address: bigint): bigint | undefined;
}

/** Evaluation needed a symbol that has no definition (at this point). */
export class UndefinedSymbolError extends SourceError {
  constructor(
    readonly symbol: string,
    column: number,
  ) {
    super(`undefined symbol '${symbol}'`, column);
  }
}

const U64_MASK = (1n << 64n) - 1n;
const INT64_MIN = -(1n << 63n);
const U64_LIMIT = 1n << 64n;

export const absolute = (offset: bigint): Value => ({ section: null, offset });

export function evaluate(expr: Expr, ctx: EvaluationContext): Value {
  switch (expr.kind) {
    case "number":
      return absolute(expr.value);
    case "dot":
      return ctx.location;
    case "symbol": {
      const value = ctx.symbolValue(expr.name, expr.column);
      if (!value) throw new UndefinedSymbolError(expr.display, expr.column);
      return value;
    }
    case "unary": {
      const operand = evaluate(expr.operand, ctx);
      if (expr.op === "+") return operand;
      const n = requireAbsolute(operand, `unary '${expr.op}'`, expr.column);
      return absolute(expr.op === "-" ? -n : ~n);
    }
    case "binary":
      return evaluateBinary(expr.op, evaluate(expr.left, ctx), evaluate(expr.right, ctx), expr);
    case "relocation":
      return absolute(evaluateRelocation(expr, ctx));
  }
}

/**
 * Evaluates `expr` to a number: a constant, or an address once layout is
 * done (`what` names the operand in the error).
 */
export function evaluateNumber(expr: Expr, ctx: EvaluationContext, what: string): bigint {
  return toNumber(evaluate(expr, ctx), ctx, what, expr.column);
}

function toNumber(value: Value, ctx: EvaluationContext, what: string, column: number): bigint {
  if (value.section === null) return value.offset;
  const address = ctx.addressOf(value.section, value.offset);
  if (address === undefined) {
    throw new SourceError(`${what} needs a constant, not an address in ${value.section}`, column);
  }
  return address;
}

function requireAbsolute(value: Value, what: string, column: number): bigint {
  if (value.section !== null) {
    throw new SourceError(`${what} needs a constant, not an address in ${value.section}`, column);
  }
  return value.offset;
}

function evaluateBinary(
  op: Extract<Expr, { kind: "binary" }>["op"],
  left: Value,
  right: Value,
  expr: Expr,
): Value {
  const column = expr.column;
  if (op === "+") {
    if (left.section !== null && right.section !== null) {
      throw new SourceError("cannot add two addresses", column);
    }
    return { section: left.section ?? right.section, offset: left.offset + right.offset };
  }
  if (op === "-") {
    if (right.section === null)
      return { section: left.section, offset: left.offset - right.offset };
    if (left.section === right.section) return absolute(left.offset - right.offset);
    throw new SourceError(
      left.section === null
        ? "cannot subtract an address from a constant"
        : `cannot subtract addresses in different sections (${left.section} - ${right.section})`,
      column,
    );
  }
  const a = requireAbsolute(left, `operator '${op}'`, column);
  const b = requireAbsolute(right, `operator '${op}'`, column);
  switch (op) {
    case "*":
      return absolute(a * b);
    case "/":
    case "%":
      if (b === 0n) throw new SourceError("division by zero", column);
      return absolute(op === "/" ? a / b : a % b);
    case "<<":
    case ">>":
      if (b < 0n || b > 63n) throw new SourceError(`shift count ${b} is not in 0..63`, column);
      return absolute(op === "<<" ? a << b : (a < 0n ? a & U64_MASK : a) >> b);
    case "&":
      return absolute(a & b);
    case "|":
      return absolute(a | b);
    case "^":
      return absolute(a ^ b);
  }
}

/** Interprets a value as a 64-bit two's-complement number; rejects anything wider. */
export function toInt64(value: bigint, column: number): bigint {
  if (value < INT64_MIN || value >= U64_LIMIT) {
    throw new SourceError(`value ${value} does not fit in 64 bits`, column);
  }
  return BigInt.asIntN(64, value);
}

/**
 * The upper 20 bits for a lui/auipc + 12-bit pair, rounded so that adding the
 * sign-extended low 12 bits gives back `value`; the pair can only reach a
 * sign-extended 32-bit value.
 */
function upper20(value: bigint, what: string, column: number): bigint {
  const hi = (value + 0x800n) >> 12n;
  if (hi < -(1n << 19n) || hi >= 1n << 19n) {
    throw new SourceError(
      `${what} does not fit a lui/auipc + 12-bit pair (value + 0x800 must be a signed 32-bit number)`,
      column,
    );
  }
  return hi & 0xfffffn;
}

function evaluateRelocation(
  expr: Extract<Expr, { kind: "relocation" }>,
  ctx: EvaluationContext,
): bigint {
  const column = expr.column;
  const operand = toInt64(evaluateNumber(expr.operand, ctx, `%${expr.op}`), column);
  switch (expr.op) {
    case "hi":
      return upper20(operand, `%hi(0x${BigInt.asUintN(64, operand).toString(16)})`, column);
    case "lo":
      return BigInt.asIntN(12, operand);
    case "pcrel_hi": {
      const pc = toNumber(ctx.location, ctx, "%pcrel_hi", column);
      return upper20(BigInt.asIntN(64, operand - pc), "%pcrel_hi: pc-relative offset", column);
    }
    case "pcrel_lo": {
      // GNU semantics: the operand labels the auipc; the low part is that of the auipc's offset.
      const anchor = BigInt.asUintN(64, operand);
      const target = ctx.pcrelHiTarget(anchor);
      if (target === undefined) {
        throw new SourceError(
          `%pcrel_lo: no %pcrel_hi instruction at 0x${anchor.toString(16)} ` +
            "(the operand must be the label of the auipc)",
          column,
        );
      }
      return BigInt.asIntN(12, target - anchor);
    }
  }
}
