/** Shared helpers for the assembler tests. */
import assert from "node:assert/strict";
import { assemble, type AssembleOptions, AssemblerError } from "../../../src/riscv/asm/index.js";

/** The 32-bit little-endian words of the first (code) segment. */
export function words(source: string, options?: AssembleOptions): number[] {
  const data = assemble(source, options).image.segments[0].data;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const result: number[] = [];
  for (let at = 0; at + 4 <= data.length; at += 4) result.push(view.getUint32(at, true));
  return result;
}

export function hexWords(source: string, options?: AssembleOptions): string[] {
  return words(source, options).map(hex32);
}

export function hex32(word: number): string {
  return `0x${word.toString(16).padStart(8, "0")}`;
}

/** The AssemblerError that assembling `source` must throw. */
export function assemblyError(source: string, options?: AssembleOptions): AssemblerError {
  try {
    assemble(source, options);
  } catch (error) {
    if (error instanceof AssemblerError) return error;
    throw error;
  }
  assert.fail(`expected an AssemblerError for:\n${source}`);
}

/** Asserts that `source` fails with a first diagnostic matching `pattern`. */
export function assertAsmError(source: string, pattern: RegExp | string): AssemblerError {
  const error = assemblyError(source);
  if (typeof pattern === "string") assert.ok(error.reason.includes(pattern), error.message);
  else assert.match(error.reason, pattern);
  return error;
}
