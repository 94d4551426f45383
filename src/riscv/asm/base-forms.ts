/**
 * The syntax of the real instructions, derived from their encoding format,
 * with the operand conventions of the RISC-V manuals and GNU as (CSR names,
 * fence sets, `(rs1)` for atomics).
 */
import { csrNumber } from "./csrs.js";
import { INSTRUCTION_SPECS, type InstructionSpec } from "./encoding.js";
import { SourceError } from "./errors.js";
import { expr, type FormTable, memory, number, reg } from "./forms.js";
import type { Expr, Operand } from "./parser.js";

export function defineBaseForms(table: FormTable): void {
  for (const spec of INSTRUCTION_SPECS) defineSpecForms(table, spec);
}

function defineSpecForms(table: FormTable, spec: InstructionSpec): void {
  const m = spec.mnemonic;
  switch (spec.format) {
    case "R":
      table.define(m, "rd, rs1, rs2", ([rd, rs1, rs2]) => [
        { spec, rd: reg(rd), rs1: reg(rs1), rs2: reg(rs2) },
      ]);
      return;
    case "I":
      table.define(m, "rd, rs1, imm", ([rd, rs1, imm]) => [
        { spec, rd: reg(rd), rs1: reg(rs1), imm: expr(imm) },
      ]);
      return;
    case "SHIFT64":
    case "SHIFT32":
      table.define(m, "rd, rs1, shamt", ([rd, rs1, shamt]) => [
        { spec, rd: reg(rd), rs1: reg(rs1), imm: expr(shamt) },
      ]);
      return;
    case "I_LOAD":
    case "JALR":
      table.define(m, "rd, offset(rs1)", ([rd, address]) => {
        const { offset, base } = memory(address);
        return [{ spec, rd: reg(rd), rs1: base, imm: offset }];
      });
      if (spec.format === "JALR") {
        table.define(m, "rd, rs1, offset", ([rd, rs1, offset]) => [
          { spec, rd: reg(rd), rs1: reg(rs1), imm: expr(offset) },
        ]);
      }
      return;
    case "S":
      table.define(m, "rs2, offset(rs1)", ([rs2, address]) => {
        const { offset, base } = memory(address);
        return [{ spec, rs1: base, rs2: reg(rs2), imm: offset }];
      });
      return;
    case "B":
      table.define(m, "rs1, rs2, target", ([rs1, rs2, target]) => [
        { spec, rs1: reg(rs1), rs2: reg(rs2), imm: expr(target) },
      ]);
      return;
    case "U":
      table.define(m, "rd, imm", ([rd, imm]) => [{ spec, rd: reg(rd), imm: expr(imm) }]);
      return;
    case "J":
      table.define(m, "rd, target", ([rd, target]) => [{ spec, rd: reg(rd), imm: expr(target) }]);
      return;
    case "CSR":
      table.define(m, "rd, csr, rs1", ([rd, csr, rs1]) => [
        { spec, rd: reg(rd), csr: csrOperand(csr), rs1: reg(rs1) },
      ]);
      return;
    case "CSRI":
      table.define(m, "rd, csr, uimm", ([rd, csr, uimm]) => [
        { spec, rd: reg(rd), csr: csrOperand(csr), imm: expr(uimm) },
      ]);
      return;
    case "AMO":
      table.define(m, "rd, rs2, (rs1)", ([rd, rs2, address], ctx) => [
        { spec, rd: reg(rd), rs2: reg(rs2), rs1: atomicBase(address, ctx.constantNow) },
      ]);
      return;
    case "LR":
      table.define(m, "rd, (rs1)", ([rd, address], ctx) => [
        { spec, rd: reg(rd), rs1: atomicBase(address, ctx.constantNow) },
      ]);
      return;
    case "FENCE":
      table.define(m, "", () => [{ spec, imm: number(0xffn, 0) }]); // fence iorw, iorw
      table.define(m, "pred, succ", ([pred, succ]) => {
        const bits = (fenceSet(pred) << 4n) | fenceSet(succ);
        return [{ spec, imm: number(bits, pred.column) }];
      });
      return;
    case "SFENCE":
      table.define(m, "", () => [{ spec, rs1: 0, rs2: 0 }]);
      table.define(m, "rs1", ([rs1]) => [{ spec, rs1: reg(rs1), rs2: 0 }]);
      table.define(m, "rs1, rs2", ([rs1, rs2]) => [{ spec, rs1: reg(rs1), rs2: reg(rs2) }]);
      return;
    case "FIXED":
      table.define(m, "", () => [{ spec }]);
      return;
  }
}

/** A CSR operand: a CSR name (which takes precedence over any symbol) or an expression. */
export function csrOperand(operand: Operand): Expr {
  const e = expr(operand);
  if (e.kind === "symbol") {
    const csr = csrNumber(e.name);
    if (csr !== undefined) return number(BigInt(csr), e.column);
  }
  return e;
}

/** The base register of `(rs1)`; an explicit offset is allowed only if it is 0. */
function atomicBase(address: Operand, constantNow: (e: Expr) => bigint | undefined): number {
  if (address.kind === "memory" && address.offset && constantNow(address.offset) !== 0n) {
    throw new SourceError(
      "atomic instructions take no offset: write (rs1) or 0(rs1)",
      address.column,
    );
  }
  return memory(address).base;
}

const FENCE_BITS: Record<string, bigint> = { i: 8n, o: 4n, r: 2n, w: 1n };

/** A fence predecessor/successor set such as `rw` or `iorw`. */
function fenceSet(operand: Operand): bigint {
  const e = expr(operand);
  const letters = e.kind === "symbol" ? e.name : "";
  let bits = 0n;
  for (const letter of letters) {
    const bit = FENCE_BITS[letter];
    if (bit === undefined || (bits & bit) !== 0n) {
      bits = -1n;
      break;
    }
    bits |= bit;
  }
  if (bits <= 0n) {
    throw new SourceError(
      "fence operands must be sets of i, o, r, w (for example 'fence rw, rw')",
      operand.column,
    );
  }
  return bits;
}
