/**
 * Splits assembly source into statements of tokens, following GNU as for
 * RISC-V: `#` starts a comment anywhere, C-style block comments may span
 * lines, and `;` or a newline ends a statement.
 */
import { DiagnosticList, SourceError } from "./errors.js";

export type Token =
  | { kind: "ident"; text: string; column: number }
  | { kind: "number"; value: bigint; text: string; column: number }
  /** A numeric local label reference such as `1b` or `2f`. */
  | { kind: "localRef"; label: string; direction: "b" | "f"; text: string; column: number }
  | { kind: "string"; bytes: Uint8Array; text: string; column: number }
  | { kind: "punct"; text: string; column: number };

export interface LexedStatement {
  line: number;
  tokens: Token[];
}

const PUNCTUATION_2 = ["<<", ">>"];
const PUNCTUATION_1 = ",:()+-*/%&|^~=!@";
const IDENT_START = /[A-Za-z_.$]/;
const IDENT_PART = /[A-Za-z0-9_.$]/;
const WORD_PART = /[A-Za-z0-9_]/;

/** Tokenizes the whole source. Lexical errors are recorded and drop the rest of that line. */
export function lex(source: string, diagnostics: DiagnosticList): LexedStatement[] {
  const statements: LexedStatement[] = [];
  let tokens: Token[] = [];
  let line = 1;
  let lineStart = 0;
  let i = 0;
  const column = () => i - lineStart + 1;
  const endStatement = () => {
    if (tokens.length > 0) statements.push({ line, tokens });
    tokens = [];
  };
  const skipToEndOfLine = () => {
    while (i < source.length && source[i] !== "\n") i++;
  };

  while (i < source.length) {
    const c = source[i];
    if (c === "\n") {
      endStatement();
      i++;
      line++;
      lineStart = i;
    } else if (c === ";") {
      endStatement();
      i++;
    } else if (c === " " || c === "\t" || c === "\r" || c === "\f" || c === "\v") {
      i++;
    } else if (c === "#") {
      skipToEndOfLine();
    } else if (c === "/" && source[i + 1] === "*") {
      const end = source.indexOf("*/", i + 2);
      const stop = end < 0 ? source.length : end + 2;
      // Keep line numbers right across multi-line comments; the statement goes on after the comment.
      for (; i < stop; i++) {
        if (source[i] === "\n") {
          line++;
          lineStart = i + 1;
        }
      }
      if (end < 0) diagnostics.add(line, column(), "unterminated /* comment");
    } else {
      try {
        const token = readToken(source, i, column());
        tokens.push(token.token);
        i = token.next;
      } catch (error) {
        diagnostics.addError(error, line, column());
        tokens = [];
        skipToEndOfLine();
      }
    }
  }
  endStatement();
  return statements;
}

function readToken(source: string, start: number, column: number): { token: Token; next: number } {
  const c = source[start];
  if (c === '"') return readString(source, start, column);
  if (c === "'") return readCharacter(source, start, column);
  if (c >= "0" && c <= "9") {
    let end = start;
    while (end < source.length && WORD_PART.test(source[end])) end++;
    return { token: numberToken(source.slice(start, end), column), next: end };
  }
  if (IDENT_START.test(c)) {
    let end = start + 1;
    while (end < source.length && IDENT_PART.test(source[end])) end++;
    return { token: { kind: "ident", text: source.slice(start, end), column }, next: end };
  }
  const two = source.slice(start, start + 2);
  if (PUNCTUATION_2.includes(two)) {
    return { token: { kind: "punct", text: two, column }, next: start + 2 };
  }
  if (PUNCTUATION_1.includes(c))
    return { token: { kind: "punct", text: c, column }, next: start + 1 };
  throw new SourceError(`unexpected character '${c}'`, column);
}

/** Decimal, 0x hex, 0b binary, leading-0 octal (as in GNU as), or a local label reference. */
function numberToken(text: string, column: number): Token {
  const local = /^([0-9]+)([bf])$/.exec(text);
  if (local && !/^0[bB][01]+$/.test(text)) {
    return { kind: "localRef", label: local[1], direction: local[2] as "b" | "f", text, column };
  }
  let digits: string | undefined;
  if (/^0[xX][0-9a-fA-F]+$/.test(text)) digits = text;
  else if (/^0[bB][01]+$/.test(text)) digits = text;
  else if (/^0[0-7]+$/.test(text)) digits = "0o" + text.slice(1);
  else if (/^(0|[1-9][0-9]*)$/.test(text)) digits = text;
  if (digits === undefined) throw new SourceError(`invalid number '${text}'`, column);
  return { kind: "number", value: BigInt(digits), text, column };
}

const SIMPLE_ESCAPES: Record<string, number> = {
  n: 10,
  t: 9,
  r: 13,
  b: 8,
  f: 12,
  v: 11,
  a: 7,
  e: 27,
  "\\": 92,
  '"': 34,
  "'": 39,
};

/** Reads one (possibly escaped) character at `at`; returns its byte(s) and the next index. */
function readEscapedChar(
  source: string,
  at: number,
  column: number,
): { bytes: number[]; next: number } {
  const c = source[at];
  if (c !== "\\") {
    const codePoint = source.codePointAt(at) ?? 0;
    const width = codePoint > 0xffff ? 2 : 1;
    return { bytes: [...new TextEncoder().encode(source.slice(at, at + width))], next: at + width };
  }
  const e = source[at + 1];
  if (e === undefined || e === "\n") throw new SourceError("unterminated escape sequence", column);
  if (e in SIMPLE_ESCAPES) return { bytes: [SIMPLE_ESCAPES[e]], next: at + 2 };
  const octal = /^[0-7]{1,3}/.exec(source.slice(at + 1, at + 4));
  if (octal) return { bytes: [parseInt(octal[0], 8) & 0xff], next: at + 1 + octal[0].length };
  if (e === "x") {
    const hexDigits = /^[0-9a-fA-F]+/.exec(source.slice(at + 2));
    if (!hexDigits) throw new SourceError("\\x escape without hex digits", column);
    // GNU as keeps the low byte of arbitrarily long \x sequences.
    const value = parseInt(hexDigits[0].slice(-2), 16);
    return { bytes: [value], next: at + 2 + hexDigits[0].length };
  }
  throw new SourceError(`unknown escape sequence '\\${e}'`, column);
}

function readString(source: string, start: number, column: number): { token: Token; next: number } {
  const bytes: number[] = [];
  let i = start + 1;
  while (true) {
    if (i >= source.length || source[i] === "\n") {
      throw new SourceError("unterminated string", column);
    }
    if (source[i] === '"') break;
    const char = readEscapedChar(source, i, column);
    bytes.push(...char.bytes);
    i = char.next;
  }
  const text = source.slice(start, i + 1);
  return { token: { kind: "string", bytes: Uint8Array.from(bytes), text, column }, next: i + 1 };
}

/** `'a'` (C style) or `'a` (GNU as style): the character's value as a number. */
function readCharacter(
  source: string,
  start: number,
  column: number,
): { token: Token; next: number } {
  if (start + 1 >= source.length || source[start + 1] === "\n") {
    throw new SourceError("empty character literal", column);
  }
  const char = readEscapedChar(source, start + 1, column);
  if (char.bytes.length !== 1) {
    throw new SourceError("character literal must be a single byte", column);
  }
  const next = source[char.next] === "'" ? char.next + 1 : char.next;
  const text = source.slice(start, next);
  return { token: { kind: "number", value: BigInt(char.bytes[0]), text, column }, next };
}
