/**
 * Statement and expression syntax. A statement is any number of labels
 * followed by an instruction, a directive or an assignment (`name = expr`).
 * Instruction operands are parsed into registers, memory references
 * (`offset(reg)`) and expressions; directive arguments are left as token
 * groups for each directive to interpret.
 */
import { SourceError } from "./errors.js";
import type { LexedStatement, Token } from "./lexer.js";
import { registerNumber } from "./registers.js";

export type BinaryOperator = "+" | "-" | "*" | "/" | "%" | "<<" | ">>" | "&" | "|" | "^";
export type UnaryOperator = "-" | "+" | "~";
export type RelocationOperator = "hi" | "lo" | "pcrel_hi" | "pcrel_lo";

/** Every node carries the 1-based column where it starts, for diagnostics. */
export type Expr =
  | { kind: "number"; value: bigint; column: number }
  /** `name` is what the symbol table knows; `display` is how the source spelled it. */
  | { kind: "symbol"; name: string; display: string; column: number }
  /** `.`, the address of the current statement. */
  | { kind: "dot"; column: number }
  | { kind: "unary"; op: UnaryOperator; operand: Expr; column: number }
  | { kind: "binary"; op: BinaryOperator; left: Expr; right: Expr; column: number }
  | { kind: "relocation"; op: RelocationOperator; operand: Expr; column: number };

export type Operand =
  | { kind: "register"; reg: number; column: number }
  /** `offset(base)`; offset is null for a bare `(base)`. */
  | { kind: "memory"; offset: Expr | null; base: number; column: number }
  | { kind: "expr"; expr: Expr; column: number };

/** A comma-separated argument of a directive, as raw tokens. */
export interface TokenGroup {
  tokens: Token[];
  column: number;
}

export type StatementBody =
  | { kind: "instruction"; mnemonic: string; operands: Operand[]; column: number }
  | { kind: "directive"; name: string; args: TokenGroup[]; column: number }
  | { kind: "assignment"; name: string; expr: Expr; column: number };

export interface Label {
  /** The symbol name; numeric local labels get a unique internal name. */
  name: string;
  column: number;
}

export interface Statement {
  line: number;
  labels: Label[];
  body: StatementBody | null;
}

/**
 * Numeric local labels (`1:`, referenced as `1b`/`1f`). Each definition gets
 * a fresh internal name; a reference is resolved by counting definitions seen
 * so far, so statements must be parsed in source order.
 */
export class LocalLabels {
  private readonly definitions = new Map<string, number>();

  define(label: string): string {
    const count = (this.definitions.get(label) ?? 0) + 1;
    this.definitions.set(label, count);
    return LocalLabels.internalName(label, count);
  }

  reference(label: string, direction: "b" | "f", column: number): string {
    const count = this.definitions.get(label) ?? 0;
    if (direction === "b" && count === 0) {
      throw new SourceError(`local label '${label}' is not defined before '${label}b'`, column);
    }
    return LocalLabels.internalName(label, direction === "b" ? count : count + 1);
  }

  /** Starts with ".L" so it never reaches the symbol table, like GNU as's ".L1^B1". */
  private static internalName(label: string, instance: number): string {
    return `.L${label}^B${instance}`;
  }
}

export class Parser {
  constructor(private readonly localLabels: LocalLabels) {}

  /** Parses one statement, defining its numeric labels as it goes. */
  parseStatement(lexed: LexedStatement): Statement {
    const tokens = lexed.tokens;
    const labels: Label[] = [];
    let i = 0;
    while (i + 1 < tokens.length && isPunct(tokens[i + 1], ":")) {
      const token = tokens[i];
      if (token.kind === "ident") labels.push({ name: token.text, column: token.column });
      else if (token.kind === "number" && /^[0-9]+$/.test(token.text)) {
        labels.push({ name: this.localLabels.define(token.text), column: token.column });
      } else throw new SourceError("invalid label", token.column);
      i += 2;
    }
    return { line: lexed.line, labels, body: this.parseBody(tokens.slice(i)) };
  }

  private parseBody(tokens: Token[]): StatementBody | null {
    if (tokens.length === 0) return null;
    const head = tokens[0];
    if (head.kind !== "ident")
      throw new SourceError("expected an instruction or directive", head.column);
    if (tokens.length >= 2 && isPunct(tokens[1], "=")) {
      const expr = this.parseExpression(tokens.slice(2), tokens[1].column);
      return { kind: "assignment", name: head.text, expr, column: head.column };
    }
    const args = splitOnCommas(tokens.slice(1));
    if (head.text.startsWith(".")) {
      return { kind: "directive", name: head.text, args, column: head.column };
    }
    const operands = args.map((group) => this.parseOperand(group));
    return { kind: "instruction", mnemonic: head.text, operands, column: head.column };
  }

  private parseOperand(group: TokenGroup): Operand {
    const { tokens, column } = group;
    if (tokens.length === 1 && tokens[0].kind === "ident") {
      const reg = registerNumber(tokens[0].text);
      if (reg !== undefined) return { kind: "register", reg, column };
    }
    // `offset(reg)` or `(reg)`: the operand ends with a parenthesised register.
    const n = tokens.length;
    if (n >= 3 && isPunct(tokens[n - 3], "(") && isPunct(tokens[n - 1], ")")) {
      const baseToken = tokens[n - 2];
      const base = baseToken.kind === "ident" ? registerNumber(baseToken.text) : undefined;
      if (base !== undefined) {
        const offsetTokens = tokens.slice(0, n - 3);
        const offset =
          offsetTokens.length === 0 ? null : this.parseExpression(offsetTokens, column);
        return { kind: "memory", offset, base, column };
      }
      // `8(a9)` is no expression: a value directly before the parenthesis means a bad register.
      const before = tokens[n - 4];
      const isRelocationName = isPunct(tokens[n - 5], "%");
      const isValue =
        before && (before.kind !== "punct" || before.text === ")") && !isRelocationName;
      if (baseToken.kind === "ident" && isValue) {
        throw new SourceError(`'${baseToken.text}' is not a register`, baseToken.column);
      }
    }
    return { kind: "expr", expr: this.parseExpression(tokens, column), column };
  }

  /** Parses a whole token list as one expression. */
  parseExpression(tokens: Token[], column: number): Expr {
    if (tokens.length === 0) throw new SourceError("missing expression", column);
    const parser = new ExpressionParser(tokens, this.localLabels);
    const expr = parser.parse();
    parser.expectEnd();
    return expr;
  }
}

/**
 * Operator precedence follows GNU as, not C: `* / % << >>` bind tightest,
 * then `& ^ |`, then `+ -`. So `1 + 3 & 2` is 3, as gas computes it.
 */
const PRECEDENCE_LEVELS: readonly (readonly BinaryOperator[])[] = [
  ["+", "-"],
  ["&", "^", "|"],
  ["*", "/", "%", "<<", ">>"],
];

const RELOCATION_OPERATORS: readonly RelocationOperator[] = ["hi", "lo", "pcrel_hi", "pcrel_lo"];

class ExpressionParser {
  private position = 0;

  constructor(
    private readonly tokens: Token[],
    private readonly localLabels: LocalLabels,
  ) {}

  parse(level = 0): Expr {
    if (level === PRECEDENCE_LEVELS.length) return this.parseUnary();
    let left = this.parse(level + 1);
    while (true) {
      const token = this.peek();
      const op = PRECEDENCE_LEVELS[level].find((candidate) => isPunct(token, candidate));
      if (!op || !token) return left;
      this.position++;
      const right = this.parse(level + 1);
      left = { kind: "binary", op, left, right, column: token.column };
    }
  }

  expectEnd(): void {
    const token = this.peek();
    if (token) throw new SourceError(`unexpected '${token.text}' in expression`, token.column);
  }

  private parseUnary(): Expr {
    const token = this.peek();
    if (token && (isPunct(token, "-") || isPunct(token, "+") || isPunct(token, "~"))) {
      this.position++;
      const operand = this.parseUnary();
      return { kind: "unary", op: token.text as UnaryOperator, operand, column: token.column };
    }
    return this.parsePrimary();
  }

  private parsePrimary(): Expr {
    const token = this.next("an expression");
    switch (token.kind) {
      case "number":
        return { kind: "number", value: token.value, column: token.column };
      case "localRef": {
        const name = this.localLabels.reference(token.label, token.direction, token.column);
        return { kind: "symbol", name, display: token.text, column: token.column };
      }
      case "ident":
        if (token.text === ".") return { kind: "dot", column: token.column };
        return { kind: "symbol", name: token.text, display: token.text, column: token.column };
      case "string":
        throw new SourceError("a string is not allowed in an expression", token.column);
      case "punct":
        if (token.text === "(") {
          const inner = this.parse();
          this.expectPunct(")");
          return inner;
        }
        if (token.text === "%") return this.parseRelocation(token.column);
        throw new SourceError(`unexpected '${token.text}' in expression`, token.column);
    }
  }

  /** `%hi(expr)` and friends; the `%` has been consumed. */
  private parseRelocation(column: number): Expr {
    const name = this.next("a relocation operator after '%'");
    const op = RELOCATION_OPERATORS.find(
      (candidate) => name.kind === "ident" && name.text === candidate,
    );
    if (!op) {
      throw new SourceError(
        `unknown relocation operator '%${name.text}' (expected %hi, %lo, %pcrel_hi or %pcrel_lo)`,
        name.column,
      );
    }
    this.expectPunct("(");
    const operand = this.parse();
    this.expectPunct(")");
    return { kind: "relocation", op, operand, column };
  }

  private peek(): Token | undefined {
    return this.tokens[this.position];
  }

  private next(expected: string): Token {
    const token = this.tokens[this.position];
    if (!token) {
      const last = this.tokens[this.tokens.length - 1];
      throw new SourceError(`expected ${expected}`, last.column + last.text.length);
    }
    this.position++;
    return token;
  }

  private expectPunct(text: string): void {
    const token = this.next(`'${text}'`);
    if (!isPunct(token, text)) {
      throw new SourceError(`expected '${text}', found '${token.text}'`, token.column);
    }
  }
}

function isPunct(token: Token | undefined, text: string): boolean {
  return token?.kind === "punct" && token.text === text;
}

/** Splits on top-level commas (not inside parentheses). */
function splitOnCommas(tokens: Token[]): TokenGroup[] {
  if (tokens.length === 0) return [];
  const groups: TokenGroup[] = [];
  let current: Token[] = [];
  let depth = 0;
  let groupColumn = tokens[0].column;
  for (const token of tokens) {
    if (isPunct(token, "(")) depth++;
    if (isPunct(token, ")")) depth--;
    if (depth === 0 && isPunct(token, ",")) {
      if (current.length === 0) throw new SourceError("missing operand before ','", token.column);
      groups.push({ tokens: current, column: groupColumn });
      current = [];
      groupColumn = token.column + 1;
      continue;
    }
    if (current.length === 0) groupColumn = token.column;
    current.push(token);
  }
  if (current.length === 0) {
    const comma = tokens[tokens.length - 1];
    throw new SourceError("missing operand after ','", comma.column + 1);
  }
  groups.push({ tokens: current, column: groupColumn });
  return groups;
}
