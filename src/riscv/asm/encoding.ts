/**
 * The RV64IMA + Zicsr + Zifencei + privileged instruction set as encoding
 * tables. Each instruction has a format (which operand fields it has and
 * where they go) and `match`, its fixed bits (opcode, funct3, funct7, ...),
 * as in the spec's opcode map. Encoding ORs the range-checked fields into
 * `match`; it never truncates a value.
 */

export type Format =
  /** rd, rs1, rs2 */
  | "R"
  /** rd, rs1, imm[11:0] */
  | "I"
  /** rd, imm(rs1): loads */
  | "I_LOAD"
  /** rd, imm(rs1): jalr */
  | "JALR"
  /** rd, rs1, shamt[5:0] */
  | "SHIFT64"
  /** rd, rs1, shamt[4:0] (the *W shifts) */
  | "SHIFT32"
  /** rs2, imm(rs1): stores */
  | "S"
  /** rs1, rs2, pc-relative imm[12:1] */
  | "B"
  /** rd, imm[31:12] */
  | "U"
  /** rd, pc-relative imm[20:1] */
  | "J"
  /** rd, csr, rs1 */
  | "CSR"
  /** rd, csr, uimm[4:0] (in the rs1 field) */
  | "CSRI"
  /** rd, rs2, (rs1), aq/rl in match */
  | "AMO"
  /** rd, (rs1): lr */
  | "LR"
  /** pred, succ in imm[7:0] */
  | "FENCE"
  /** rs1, rs2 */
  | "SFENCE"
  /** no operands */
  | "FIXED";

export interface InstructionSpec {
  mnemonic: string;
  format: Format;
  match: number;
}

/** Field values for one instruction. For B and J, `imm` is the offset from the instruction. */
export interface InstructionFields {
  rd?: number;
  rs1?: number;
  rs2?: number;
  imm?: bigint;
  csr?: bigint;
}

/** A field value that does not fit; `field` says which operand to blame. */
export class EncodingError extends Error {
  constructor(
    message: string,
    readonly field: "imm" | "csr",
  ) {
    super(message);
    this.name = "EncodingError";
  }
}

// Major opcodes (inst[6:0]).
const OP_LUI = 0x37;
const OP_AUIPC = 0x17;
const OP_JAL = 0x6f;
const OP_JALR = 0x67;
const OP_BRANCH = 0x63;
const OP_LOAD = 0x03;
const OP_STORE = 0x23;
const OP_IMM = 0x13;
const OP_IMM_32 = 0x1b;
const OP = 0x33;
const OP_32 = 0x3b;
const OP_MISC_MEM = 0x0f;
const OP_SYSTEM = 0x73;
const OP_AMO = 0x2f;

const f3 = (funct3: number) => funct3 << 12;
const f7 = (funct7: number) => funct7 << 25;

const SPECS: InstructionSpec[] = [];
const add = (mnemonic: string, format: Format, match: number) =>
  SPECS.push({ mnemonic, format, match: match >>> 0 });

// RV64I.
add("lui", "U", OP_LUI);
add("auipc", "U", OP_AUIPC);
add("jal", "J", OP_JAL);
add("jalr", "JALR", OP_JALR | f3(0));
const BRANCH_FUNCT3: [string, number][] = [
  ["beq", 0],
  ["bne", 1],
  ["blt", 4],
  ["bge", 5],
  ["bltu", 6],
  ["bgeu", 7],
];
BRANCH_FUNCT3.forEach(([m, funct3]) => add(m, "B", OP_BRANCH | f3(funct3)));
["lb", "lh", "lw", "ld", "lbu", "lhu", "lwu"].forEach((m, funct3) =>
  add(m, "I_LOAD", OP_LOAD | f3(funct3)),
);
["sb", "sh", "sw", "sd"].forEach((m, funct3) => add(m, "S", OP_STORE | f3(funct3)));
add("addi", "I", OP_IMM | f3(0));
add("slti", "I", OP_IMM | f3(2));
add("sltiu", "I", OP_IMM | f3(3));
add("xori", "I", OP_IMM | f3(4));
add("ori", "I", OP_IMM | f3(6));
add("andi", "I", OP_IMM | f3(7));
add("slli", "SHIFT64", OP_IMM | f3(1));
add("srli", "SHIFT64", OP_IMM | f3(5));
add("srai", "SHIFT64", OP_IMM | f3(5) | f7(0x20));
add("addiw", "I", OP_IMM_32 | f3(0));
add("slliw", "SHIFT32", OP_IMM_32 | f3(1));
add("srliw", "SHIFT32", OP_IMM_32 | f3(5));
add("sraiw", "SHIFT32", OP_IMM_32 | f3(5) | f7(0x20));
add("add", "R", OP | f3(0));
add("sub", "R", OP | f3(0) | f7(0x20));
add("sll", "R", OP | f3(1));
add("slt", "R", OP | f3(2));
add("sltu", "R", OP | f3(3));
add("xor", "R", OP | f3(4));
add("srl", "R", OP | f3(5));
add("sra", "R", OP | f3(5) | f7(0x20));
add("or", "R", OP | f3(6));
add("and", "R", OP | f3(7));
add("addw", "R", OP_32 | f3(0));
add("subw", "R", OP_32 | f3(0) | f7(0x20));
add("sllw", "R", OP_32 | f3(1));
add("srlw", "R", OP_32 | f3(5));
add("sraw", "R", OP_32 | f3(5) | f7(0x20));
add("fence", "FENCE", OP_MISC_MEM | f3(0));
add("fence.tso", "FIXED", 0x8330000f); // fm=1000, pred=rw, succ=rw
add("ecall", "FIXED", 0x00000073);
add("ebreak", "FIXED", 0x00100073);

// Zifencei.
add("fence.i", "FIXED", OP_MISC_MEM | f3(1));

// Privileged.
add("sret", "FIXED", 0x10200073);
add("mret", "FIXED", 0x30200073);
add("wfi", "FIXED", 0x10500073);
add("sfence.vma", "SFENCE", OP_SYSTEM | f7(0x09));

// M.
["mul", "mulh", "mulhsu", "mulhu", "div", "divu", "rem", "remu"].forEach((m, funct3) =>
  add(m, "R", OP | f3(funct3) | f7(1)),
);
const MULDIV_W_FUNCT3: [string, number][] = [
  ["mulw", 0],
  ["divw", 4],
  ["divuw", 5],
  ["remw", 6],
  ["remuw", 7],
];
MULDIV_W_FUNCT3.forEach(([m, funct3]) => add(m, "R", OP_32 | f3(funct3) | f7(1)));

// A: funct5 in inst[31:27], aq = inst[26], rl = inst[25], width in funct3.
const AMO_FUNCT5: Record<string, number> = {
  lr: 0x02,
  sc: 0x03,
  amoswap: 0x01,
  amoadd: 0x00,
  amoxor: 0x04,
  amoand: 0x0c,
  amoor: 0x08,
  amomin: 0x10,
  amomax: 0x14,
  amominu: 0x18,
  amomaxu: 0x1c,
};
const ORDERING_SUFFIXES: [string, number][] = [
  ["", 0],
  [".aq", 1 << 26],
  [".rl", 1 << 25],
  [".aqrl", (1 << 26) | (1 << 25)],
];
for (const [base, funct5] of Object.entries(AMO_FUNCT5)) {
  for (const [width, funct3] of [
    ["w", 2],
    ["d", 3],
  ] as const) {
    for (const [suffix, ordering] of ORDERING_SUFFIXES) {
      const format = base === "lr" ? "LR" : "AMO";
      add(`${base}.${width}${suffix}`, format, OP_AMO | f3(funct3) | (funct5 << 27) | ordering);
    }
  }
}

// Zicsr.
["csrrw", "csrrs", "csrrc"].forEach((m, i) => add(m, "CSR", OP_SYSTEM | f3(1 + i)));
["csrrwi", "csrrsi", "csrrci"].forEach((m, i) => add(m, "CSRI", OP_SYSTEM | f3(5 + i)));

const BY_MNEMONIC: ReadonlyMap<string, InstructionSpec> = new Map(
  SPECS.map((spec) => [spec.mnemonic, spec]),
);

/** All real (non-pseudo) instructions. */
export const INSTRUCTION_SPECS: readonly InstructionSpec[] = SPECS;

/** The spec of a real instruction the assembler itself relies on (pseudo-instruction expansions). */
export function requireSpec(mnemonic: string): InstructionSpec {
  const spec = BY_MNEMONIC.get(mnemonic);
  if (!spec) throw new Error(`internal: no instruction '${mnemonic}'`);
  return spec;
}

function checkRange(value: bigint, min: bigint, max: bigint, what: string, field: "imm" | "csr") {
  if (value < min || value > max) {
    throw new EncodingError(`${what} ${value} is out of range (${min}..${max})`, field);
  }
}

const bits = (value: bigint, hi: number, lo: number) =>
  Number((value >> BigInt(lo)) & ((1n << BigInt(hi - lo + 1)) - 1n));

/** The 32-bit instruction word. Throws EncodingError for out-of-range immediates. */
export function encode(spec: InstructionSpec, fields: InstructionFields): number {
  const rd = (fields.rd ?? 0) << 7;
  const rs1 = (fields.rs1 ?? 0) << 15;
  const rs2 = (fields.rs2 ?? 0) << 20;
  const imm = fields.imm ?? 0n;
  const name = spec.mnemonic;
  let word: number;
  switch (spec.format) {
    case "R":
    case "AMO":
      word = rd | rs1 | rs2;
      break;
    case "LR":
      word = rd | rs1;
      break;
    case "SFENCE":
      word = rs1 | rs2;
      break;
    case "I":
    case "I_LOAD":
    case "JALR":
      checkRange(imm, -2048n, 2047n, `${name}: immediate`, "imm");
      word = rd | rs1 | (bits(imm, 11, 0) << 20);
      break;
    case "SHIFT64":
    case "SHIFT32": {
      const max = spec.format === "SHIFT64" ? 63n : 31n;
      checkRange(imm, 0n, max, `${name}: shift amount`, "imm");
      word = rd | rs1 | (Number(imm) << 20);
      break;
    }
    case "S":
      checkRange(imm, -2048n, 2047n, `${name}: offset`, "imm");
      word = rs1 | rs2 | (bits(imm, 11, 5) << 25) | (bits(imm, 4, 0) << 7);
      break;
    case "B":
      checkPcOffset(imm, 13, name);
      word =
        rs1 |
        rs2 |
        (bits(imm, 12, 12) << 31) |
        (bits(imm, 10, 5) << 25) |
        (bits(imm, 4, 1) << 8) |
        (bits(imm, 11, 11) << 7);
      break;
    case "U":
      checkRange(imm, 0n, 0xfffffn, `${name}: immediate`, "imm");
      word = rd | (Number(imm) << 12);
      break;
    case "J":
      checkPcOffset(imm, 21, name);
      word =
        rd |
        (bits(imm, 20, 20) << 31) |
        (bits(imm, 10, 1) << 21) |
        (bits(imm, 11, 11) << 20) |
        (bits(imm, 19, 12) << 12);
      break;
    case "CSR":
    case "CSRI": {
      const csr = fields.csr ?? 0n;
      checkRange(csr, 0n, 4095n, `${name}: CSR number`, "csr");
      let source = rs1;
      if (spec.format === "CSRI") {
        checkRange(imm, 0n, 31n, `${name}: immediate`, "imm");
        source = Number(imm) << 15;
      }
      word = rd | source | (Number(csr) << 20);
      break;
    }
    case "FENCE":
      checkRange(imm, 0n, 0xffn, `${name}: pred/succ`, "imm");
      word = Number(imm) << 20;
      break;
    case "FIXED":
      word = 0;
      break;
  }
  return (spec.match | word) >>> 0;
}

/**
 * Branch and jump offsets: a signed `width`-bit byte offset. The encoding
 * allows multiples of 2, but without the C extension a target that is not
 * 4-byte aligned would trap, so it is rejected here.
 */
function checkPcOffset(offset: bigint, width: number, name: string): void {
  const limit = 1n << BigInt(width - 1);
  if (offset < -limit || offset >= limit) {
    throw new EncodingError(
      `${name}: target out of range (offset ${offset}, must be within ${-limit}..${limit - 2n})`,
      "imm",
    );
  }
  if (offset % 4n !== 0n) {
    throw new EncodingError(
      `${name}: misaligned target (offset ${offset} is not a multiple of 4; no C extension)`,
      "imm",
    );
  }
}
