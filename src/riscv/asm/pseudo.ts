/**
 * Pseudo-instructions and alternative syntaxes, expanded exactly as GNU as
 * expands them without relaxation (-mno-relax) and without PIC: `la` is
 * `auipc`+`addi`, `call`/`tail` are `auipc`+`jalr`, `li` follows load_const.
 */
import { csrOperand } from "./base-forms.js";
import { requireCsrNumber } from "./csrs.js";
import { requireSpec } from "./encoding.js";
import { SourceError } from "./errors.js";
import { toInt64 } from "./expressions.js";
import {
  type ExpansionContext,
  expr,
  type FormTable,
  type MachineInstruction,
  memory,
  number,
  reg,
} from "./forms.js";
import { constantSteps, fitsSigned32 } from "./li.js";
import type { Expr, Operand } from "./parser.js";
import { RA, T1, ZERO } from "./registers.js";

const spec = requireSpec;

export function definePseudoForms(table: FormTable): void {
  defineArithmeticAliases(table);
  defineConstantsAndAddresses(table);
  defineJumpsAndBranches(table);
  defineCsrShorthands(table);
  defineSymbolLoadsAndStores(table);
}

/** One-instruction aliases and the register-or-immediate forms of the ALU instructions. */
function defineArithmeticAliases(table: FormTable): void {
  table.define("nop", "", () => [{ spec: spec("addi"), rd: ZERO, rs1: ZERO, imm: zero() }]);

  const unary = (
    mnemonic: string,
    build: (rd: number, rs: number, column: number) => MachineInstruction,
  ) => table.define(mnemonic, "rd, rs", ([rd, rs]) => [build(reg(rd), reg(rs), rs.column)]);
  unary("mv", (rd, rs, c) => ({ spec: spec("addi"), rd, rs1: rs, imm: number(0n, c) }));
  unary("not", (rd, rs, c) => ({ spec: spec("xori"), rd, rs1: rs, imm: number(-1n, c) }));
  unary("neg", (rd, rs) => ({ spec: spec("sub"), rd, rs1: ZERO, rs2: rs }));
  unary("negw", (rd, rs) => ({ spec: spec("subw"), rd, rs1: ZERO, rs2: rs }));
  unary("sext.w", (rd, rs, c) => ({ spec: spec("addiw"), rd, rs1: rs, imm: number(0n, c) }));
  unary("zext.b", (rd, rs, c) => ({ spec: spec("andi"), rd, rs1: rs, imm: number(255n, c) }));
  unary("seqz", (rd, rs, c) => ({ spec: spec("sltiu"), rd, rs1: rs, imm: number(1n, c) }));
  unary("snez", (rd, rs) => ({ spec: spec("sltu"), rd, rs1: ZERO, rs2: rs }));
  unary("sltz", (rd, rs) => ({ spec: spec("slt"), rd, rs1: rs, rs2: ZERO }));
  unary("sgtz", (rd, rs) => ({ spec: spec("slt"), rd, rs1: ZERO, rs2: rs }));

  for (const [mnemonic, real] of [
    ["sgt", "slt"],
    ["sgtu", "sltu"],
  ]) {
    table.define(mnemonic, "rd, rs, rt", ([rd, rs, rt]) => [
      { spec: spec(real), rd: reg(rd), rs1: reg(rt), rs2: reg(rs) },
    ]);
  }

  // GNU as accepts an immediate in place of rs2: `add a0, a0, 1` is addi.
  const immediateForms: [string, string][] = [
    ["add", "addi"],
    ["and", "andi"],
    ["or", "ori"],
    ["xor", "xori"],
    ["slt", "slti"],
    ["sltu", "sltiu"],
    ["sll", "slli"],
    ["srl", "srli"],
    ["sra", "srai"],
    ["addw", "addiw"],
    ["sllw", "slliw"],
    ["srlw", "srliw"],
    ["sraw", "sraiw"],
  ];
  for (const [mnemonic, real] of immediateForms) {
    table.define(mnemonic, "rd, rs1, imm", ([rd, rs1, imm]) => [
      { spec: spec(real), rd: reg(rd), rs1: reg(rs1), imm: expr(imm) },
    ]);
  }
}

function defineConstantsAndAddresses(table: FormTable): void {
  table.define("li", "rd, imm", ([rd, imm], ctx) => {
    const value = requireConstant(expr(imm), ctx, "li");
    // A value that fits 12 bits is a single addi (GNU as's "li d,j" alias).
    if (value >= -2048n && value <= 2047n) {
      return [{ spec: spec("addi"), rd: reg(rd), rs1: ZERO, imm: number(value, imm.column) }];
    }
    return loadConstant(reg(rd), value, imm.column);
  });

  // la (non-PIC) and lla: pc-relative, or load_const for an address that is a known constant.
  for (const mnemonic of ["la", "lla"]) {
    table.define(mnemonic, "rd, symbol", ([rd, symbol], ctx) => {
      const target = expr(symbol);
      const constant = ctx.constantNow(target);
      if (constant === undefined) return pcRelative(reg(rd), target, "addi", reg(rd));
      const value = toInt64(constant, symbol.column);
      if (!fitsSigned32(value)) {
        throw new SourceError(
          `${mnemonic}: constant address ${constant} does not fit 32 bits`,
          symbol.column,
        );
      }
      return loadConstant(reg(rd), value, symbol.column);
    });
  }
}

/** The value of a constant operand that must be known where it is used (as in GNU as). */
function requireConstant(e: Expr, ctx: ExpansionContext, mnemonic: string): bigint {
  const value = ctx.constantNow(e);
  if (value === undefined) {
    throw new SourceError(
      `${mnemonic} needs a constant defined before this line (use la for addresses)`,
      e.column,
    );
  }
  return toInt64(value, e.column);
}

function loadConstant(rd: number, value: bigint, column: number): MachineInstruction[] {
  return constantSteps(value, rd).map((step, i) => {
    const imm = number(step.imm, column);
    if (step.op === "lui") return { spec: spec("lui"), rd, imm };
    // Only a leading addiw starts from zero; every later step works on rd.
    return { spec: spec(step.op), rd, rs1: i === 0 ? ZERO : rd, imm };
  });
}

/**
 * `auipc scratch, %pcrel_hi(target)` then `<second> ..., %pcrel_lo(auipc)`. The
 * second instruction names the auipc as `. - 4`, its own address minus 4.
 */
function pcRelative(
  scratch: number,
  target: Expr,
  second: string,
  rd: number,
  rs2?: number,
): MachineInstruction[] {
  const column = target.column;
  const hi: Expr = { kind: "relocation", op: "pcrel_hi", operand: target, column };
  const auipcAddress: Expr = {
    kind: "binary",
    op: "-",
    left: { kind: "dot", column },
    right: number(4n, column),
    column,
  };
  const lo: Expr = { kind: "relocation", op: "pcrel_lo", operand: auipcAddress, column };
  const secondSpec = spec(second);
  const low: MachineInstruction =
    secondSpec.format === "S"
      ? { spec: secondSpec, rs1: scratch, rs2, imm: lo }
      : { spec: secondSpec, rd, rs1: scratch, imm: lo };
  return [{ spec: spec("auipc"), rd: scratch, imm: hi }, low];
}

function defineJumpsAndBranches(table: FormTable): void {
  const jal = spec("jal");
  const jalr = spec("jalr");
  table.define("j", "target", ([target]) => [{ spec: jal, rd: ZERO, imm: expr(target) }]);
  table.define("jal", "target", ([target]) => [{ spec: jal, rd: RA, imm: expr(target) }]);

  const jalrZero = (rs: Operand) => number(0n, rs.column);
  table.define("jr", "rs", ([rs]) => [{ spec: jalr, rd: ZERO, rs1: reg(rs), imm: jalrZero(rs) }]);
  table.define("jr", "rs, offset", ([rs, offset]) => [
    { spec: jalr, rd: ZERO, rs1: reg(rs), imm: expr(offset) },
  ]);
  table.define("jr", "offset(rs)", ([address]) => {
    const { offset, base } = memory(address);
    return [{ spec: jalr, rd: ZERO, rs1: base, imm: offset }];
  });
  table.define("jalr", "rs", ([rs]) => [{ spec: jalr, rd: RA, rs1: reg(rs), imm: jalrZero(rs) }]);
  table.define("jalr", "rd, rs", ([rd, rs]) => [
    { spec: jalr, rd: reg(rd), rs1: reg(rs), imm: jalrZero(rs) },
  ]);
  table.define("jalr", "offset(rs)", ([address]) => {
    const { offset, base } = memory(address);
    return [{ spec: jalr, rd: RA, rs1: base, imm: offset }];
  });
  table.define("ret", "", () => [{ spec: jalr, rd: ZERO, rs1: RA, imm: zero() }]);

  table.define("call", "target", ([target]) => pcRelative(RA, expr(target), "jalr", RA));
  // With an explicit link register GNU as uses t1 for the upper part, as for tail.
  table.define("call", "rd, target", ([rd, target]) =>
    pcRelative(T1, expr(target), "jalr", reg(rd)),
  );
  table.define("tail", "target", ([target]) => pcRelative(T1, expr(target), "jalr", ZERO));
  table.define("jump", "target, rt", ([target, rt]) =>
    pcRelative(reg(rt), expr(target), "jalr", ZERO),
  );

  // Compare with zero: [mnemonic, real branch, whether rs goes in rs1 (else rs2)].
  const zeroBranches: [string, string, boolean][] = [
    ["beqz", "beq", true],
    ["bnez", "bne", true],
    ["blez", "bge", false],
    ["bgez", "bge", true],
    ["bltz", "blt", true],
    ["bgtz", "blt", false],
  ];
  for (const [mnemonic, real, rsFirst] of zeroBranches) {
    table.define(mnemonic, "rs, target", ([rs, target]) => [
      {
        spec: spec(real),
        rs1: rsFirst ? reg(rs) : ZERO,
        rs2: rsFirst ? ZERO : reg(rs),
        imm: expr(target),
      },
    ]);
  }
  // Swapped comparisons: bgt a, b == blt b, a.
  for (const [mnemonic, real] of [
    ["bgt", "blt"],
    ["ble", "bge"],
    ["bgtu", "bltu"],
    ["bleu", "bgeu"],
  ]) {
    table.define(mnemonic, "rs, rt, target", ([rs, rt, target]) => [
      { spec: spec(real), rs1: reg(rt), rs2: reg(rs), imm: expr(target) },
    ]);
  }
}

function defineCsrShorthands(table: FormTable): void {
  table.define("csrr", "rd, csr", ([rd, csr]) => [
    { spec: spec("csrrs"), rd: reg(rd), csr: csrOperand(csr), rs1: ZERO },
  ]);
  for (const op of ["w", "s", "c"]) {
    const registerForm = spec(`csrr${op}`);
    const immediateForm = spec(`csrr${op}i`);
    table.define(`csr${op}`, "csr, rs", ([csr, rs]) => [
      { spec: registerForm, rd: ZERO, csr: csrOperand(csr), rs1: reg(rs) },
    ]);
    table.define(`csr${op}`, "csr, uimm", ([csr, uimm]) => [
      { spec: immediateForm, rd: ZERO, csr: csrOperand(csr), imm: expr(uimm) },
    ]);
    table.define(`csr${op}i`, "csr, uimm", ([csr, uimm]) => [
      { spec: immediateForm, rd: ZERO, csr: csrOperand(csr), imm: expr(uimm) },
    ]);
    // GNU as also takes an immediate in place of rs1 in the full form.
    table.define(`csrr${op}`, "rd, csr, uimm", ([rd, csr, uimm]) => [
      { spec: immediateForm, rd: reg(rd), csr: csrOperand(csr), imm: expr(uimm) },
    ]);
  }
  for (const counter of ["cycle", "time", "instret"]) {
    const csr = BigInt(requireCsrNumber(counter));
    table.define(`rd${counter}`, "rd", ([rd]) => [
      { spec: spec("csrrs"), rd: reg(rd), csr: number(csr, rd.column), rs1: ZERO },
    ]);
  }
}

/** `lw rd, symbol` and `sw rs, symbol, rt`: pc-relative access through a scratch register. */
function defineSymbolLoadsAndStores(table: FormTable): void {
  for (const load of ["lb", "lh", "lw", "ld", "lbu", "lhu", "lwu"]) {
    table.define(load, "rd, symbol", ([rd, symbol]) =>
      pcRelative(reg(rd), expr(symbol), load, reg(rd)),
    );
  }
  for (const store of ["sb", "sh", "sw", "sd"]) {
    table.define(store, "rs, symbol, rt", ([rs, symbol, rt]) =>
      pcRelative(reg(rt), expr(symbol), store, ZERO, reg(rs)),
    );
  }
}

/** A literal 0 for operand-less pseudo-instructions (it can never be out of range). */
function zero(): Expr {
  return number(0n, 0);
}
