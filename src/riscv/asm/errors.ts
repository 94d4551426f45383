/**
 * Assembler diagnostics. Inside the assembler a problem with one statement is
 * a SourceError (message + column); the driver attaches the file and line,
 * keeps going with the next statement, and finally throws one AssemblerError
 * carrying every diagnostic.
 */

export interface Diagnostic {
  fileName: string;
  /** 1-based. */
  line: number;
  /** 1-based, counted in characters (a tab is one column). */
  column: number;
  message: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  return `${d.fileName}:${d.line}:${d.column}: ${d.message}`;
}

/**
 * What assemble() throws. `message` is every diagnostic formatted as
 * "file.s:12:9: unknown instruction 'addd'", one per line; the fields
 * describe the first one.
 */
export class AssemblerError extends Error {
  readonly fileName: string;
  readonly line: number;
  readonly column: number;
  /** The first diagnostic's message without its location. */
  readonly reason: string;
  readonly diagnostics: readonly Diagnostic[];

  constructor(diagnostics: readonly Diagnostic[]) {
    if (diagnostics.length === 0) throw new Error("AssemblerError needs at least one diagnostic");
    super(diagnostics.map(formatDiagnostic).join("\n"));
    this.name = "AssemblerError";
    const first = diagnostics[0];
    this.fileName = first.fileName;
    this.line = first.line;
    this.column = first.column;
    this.reason = first.message;
    this.diagnostics = diagnostics;
  }
}

/** A problem in the statement being processed; `column` is 1-based, if known. */
export class SourceError extends Error {
  constructor(
    message: string,
    readonly column?: number,
  ) {
    super(message);
    this.name = "SourceError";
  }
}

/** Collects diagnostics for one source file. */
export class DiagnosticList {
  private readonly items: Diagnostic[] = [];

  constructor(readonly fileName: string) {}

  add(line: number, column: number, message: string): void {
    this.items.push({ fileName: this.fileName, line, column, message });
  }

  /** Records `error` if it is a SourceError (at `fallbackColumn` if it has none); rethrows anything else. */
  addError(error: unknown, line: number, fallbackColumn: number): void {
    if (!(error instanceof SourceError)) throw error;
    this.add(line, error.column ?? fallbackColumn, error.message);
  }

  get hasErrors(): boolean {
    return this.items.length > 0;
  }

  /** Throws an AssemblerError with all diagnostics, in source order, if there are any. */
  throwIfAny(): void {
    if (this.items.length === 0) return;
    const sorted = [...this.items].sort((a, b) => a.line - b.line || a.column - b.column);
    throw new AssemblerError(sorted);
  }
}
