/**
 * Assembly sources for the differential test against GNU binutils: every
 * instruction and pseudo-instruction, many `li` constants (edge cases and
 * seeded random 64-bit values), labels, relocation operators and data
 * directives. They stay inside what both assemblers accept identically.
 */

export interface CorpusProgram {
  name: string;
  source: string;
  textAddress: number;
}

/** Deterministic 64-bit PRNG (splitmix64), so failures reproduce. */
export class Random {
  private state: bigint;
  constructor(seed: bigint) {
    this.state = BigInt.asUintN(64, seed);
  }
  next64(): bigint {
    this.state = BigInt.asUintN(64, this.state + 0x9e3779b97f4a7c15n);
    let z = this.state;
    z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
    z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
    return z ^ (z >> 31n);
  }
  /** Uniform in [0, n). */
  below(n: number): number {
    return Number(this.next64() % BigInt(n));
  }
  /** Uniform in [min, max]. */
  between(min: number, max: number): number {
    return min + this.below(max - min + 1);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)];
  }
}

const words = (text: string) => text.split(" ");

const REGISTERS = words(
  "zero ra sp gp tp t0 t1 t2 s0 s1 a0 a1 a2 a3 a4 a5 a6 a7 s2 s3 s4 s5 s6 s7 s8 " +
    "s9 s10 s11 t3 t4 t5 t6 x0 x1 x31 fp",
);

const R_TYPE = words(
  "add sub sll slt sltu xor srl sra or and addw subw sllw srlw sraw mul mulh " +
    "mulhsu mulhu div divu rem remu mulw divw divuw remw remuw",
);
const I_TYPE = words("addi slti sltiu xori ori andi addiw");
const LOADS = words("lb lh lw ld lbu lhu lwu");
const STORES = words("sb sh sw sd");
const BRANCHES = words("beq bne blt bge bltu bgeu bgt ble bgtu bleu");
const ZERO_BRANCHES = words("beqz bnez blez bgez bltz bgtz");
const AMOS = words("amoswap amoadd amoxor amoand amoor amomin amomax amominu amomaxu");
const ORDERINGS = ["", ".aq", ".rl", ".aqrl"];
const CSR_NAMES = words(
  "sstatus sie stvec scounteren senvcfg sscratch sepc scause stval sip satp cycle " +
    "time instret hpmcounter3 hpmcounter31 mstatus misa medeleg mideleg mie mtvec " +
    "mscratch mepc mcause mtval mip mhartid mcycle minstret pmpcfg0 pmpaddr0 0x100 " +
    "4095 0",
);
const I_IMMEDIATES = ["-2048", "-1", "0", "1", "2047", "0x7ff", "-0x800", "'a'", "(3 << 4) | 1"];

/** Interesting `li` constants: boundaries of each expansion strategy. */
const EDGE_CONSTANTS = [
  "0",
  "1",
  "-1",
  "2047",
  "2048",
  "-2048",
  "-2049",
  "0x7ff",
  "0x800",
  "0xfff",
  "0x1000",
  "0x7ffff000",
  "0x7ffff7ff",
  "0x7ffff800",
  "0x7fffffff",
  "0x80000000",
  "-0x80000000",
  "-0x80000001",
  "0xffffffff",
  "0x100000000",
  "0x100000001",
  "0xfffff000",
  "0xfffff800",
  "0x7fffffffffffffff",
  "0x8000000000000000",
  "0xffffffffffffffff",
  "0xfffffffffffff800",
  "0x123456789abcdef0",
  "0xdeadbeefcafebabe",
  "0x0000000100000fff",
  "0x8000000000000001",
  "0x00ff00ff00ff00ff",
  "0x5555555555555555",
  "0xaaaaaaaaaaaaaaaa",
  "0x1000000000000000",
  "0x80000800",
  "0x80000fff",
  "0x7ffffffffffff800",
  "1 << 62",
  "-(1 << 40)",
];

/** A random constant with a random shape: dense, sparse, runs of ones/zeros, shifted small values. */
function randomConstant(random: Random): bigint {
  const x = random.next64();
  switch (random.below(6)) {
    case 0:
      return x;
    case 1:
      return x & random.next64() & random.next64();
    case 2:
      return BigInt.asUintN(64, BigInt(random.between(-5000, 5000)) << BigInt(random.below(60)));
    case 3: {
      const width = BigInt(random.between(1, 63));
      return ((1n << width) - 1n) << BigInt(random.below(64 - Number(width)));
    }
    case 4:
      return BigInt.asUintN(64, BigInt.asIntN(32, x));
    default:
      return BigInt.asUintN(64, ~(x & random.next64()));
  }
}

function formatConstant(value: bigint, random: Random): string {
  const signed = BigInt.asIntN(64, value);
  return random.below(2) === 0 ? `0x${value.toString(16)}` : signed.toString();
}

function instructionsProgram(random: Random): string {
  const reg = () => random.pick(REGISTERS);
  const lines: string[] = ["  .option norvc", "  .globl _start", "  .text", "_start:"];
  for (const m of R_TYPE) lines.push(`  ${m} ${reg()}, ${reg()}, ${reg()}`);
  for (const m of I_TYPE) {
    for (const imm of I_IMMEDIATES) lines.push(`  ${m} ${reg()}, ${reg()}, ${imm}`);
  }
  for (const [m, max] of [
    ["slli", 63],
    ["srli", 63],
    ["srai", 63],
    ["slliw", 31],
    ["srliw", 31],
    ["sraiw", 31],
  ] as const) {
    for (const shamt of [0, 1, random.between(2, max - 1), max]) {
      lines.push(`  ${m} ${reg()}, ${reg()}, ${shamt}`);
    }
  }
  // Immediate forms of the register instructions, as GNU as accepts them.
  for (const m of ["add", "and", "or", "xor", "slt", "sltu", "addw"]) {
    lines.push(`  ${m} ${reg()}, ${reg()}, ${random.between(-2048, 2047)}`);
  }
  for (const m of ["sll", "srl", "sra"])
    lines.push(`  ${m} ${reg()}, ${reg()}, ${random.below(64)}`);
  for (const m of ["sllw", "srlw", "sraw"])
    lines.push(`  ${m} ${reg()}, ${reg()}, ${random.below(32)}`);
  for (const m of LOADS) {
    lines.push(`  ${m} ${reg()}, ${random.between(-2048, 2047)}(${reg()})`);
    lines.push(
      `  ${m} ${reg()}, (${reg()})`,
      `  ${m} ${reg()}, -2048(sp)`,
      `  ${m} ${reg()}, 2047(sp)`,
    );
  }
  for (const m of STORES) {
    lines.push(`  ${m} ${reg()}, ${random.between(-2048, 2047)}(${reg()})`);
    lines.push(
      `  ${m} ${reg()}, (${reg()})`,
      `  ${m} ${reg()}, -2048(a0)`,
      `  ${m} ${reg()}, 2047(a0)`,
    );
  }
  for (const imm of ["0", "1", "0xfffff", "0x80000", "0x12345", random.below(1 << 20).toString()]) {
    lines.push(`  lui ${reg()}, ${imm}`, `  auipc ${reg()}, ${imm}`);
  }

  // Control flow: labels before and after, numeric local labels.
  lines.push("back:");
  for (const m of BRANCHES)
    lines.push(`  ${m} ${reg()}, ${reg()}, back`, `  ${m} ${reg()}, ${reg()}, fwd`);
  for (const m of ZERO_BRANCHES) lines.push(`  ${m} ${reg()}, back`, `  ${m} ${reg()}, 1f`);
  lines.push(
    "1:",
    "  j back",
    "  j 1b",
    "  j 2f",
    "  jal back",
    "  jal ra, fwd",
    "  jal t0, 1b",
    "  jal zero, 2f",
    "2:",
    "  jr a0",
    "  jr t1",
    "  jalr a1",
    "  jalr ra, a2",
    "  jalr t0, 12(a3)",
    "  jalr ra, a4, -8",
    "  jalr zero, 0(ra)",
    "  jalr 4(a5)",
    "  jr 8(a6)",
    "  ret",
    "  call fwd",
    "  call back",
    "  tail fwd",
    "  tail back",
    "  call t0, fwd",
    "fwd:",
    "  beq a0, a1, fwd",
    "1: bnez a0, 1b",
  );

  // CSRs by name and number, and their shorthands.
  for (const csr of CSR_NAMES) {
    lines.push(`  csrrw ${reg()}, ${csr}, ${reg()}`, `  csrrs ${reg()}, ${csr}, ${reg()}`);
    lines.push(
      `  csrrc ${reg()}, ${csr}, ${reg()}`,
      `  csrrwi ${reg()}, ${csr}, ${random.below(32)}`,
    );
    lines.push(`  csrrsi ${reg()}, ${csr}, 31`, `  csrrci ${reg()}, ${csr}, 0`);
    lines.push(`  csrr ${reg()}, ${csr}`, `  csrw ${csr}, ${reg()}`, `  csrs ${csr}, ${reg()}`);
    lines.push(
      `  csrc ${csr}, ${reg()}`,
      `  csrwi ${csr}, 5`,
      `  csrsi ${csr}, 31`,
      `  csrci ${csr}, 1`,
    );
  }
  lines.push("  rdcycle a0", "  rdtime t1", "  rdinstret s11", "  csrw sscratch, 7");

  // Atomics.
  for (const width of ["w", "d"]) {
    for (const ordering of ORDERINGS) {
      lines.push(`  lr.${width}${ordering} ${reg()}, (${reg()})`);
      lines.push(`  sc.${width}${ordering} ${reg()}, ${reg()}, (${reg()})`);
      for (const amo of AMOS)
        lines.push(`  ${amo}.${width}${ordering} ${reg()}, ${reg()}, (${reg()})`);
    }
  }
  lines.push("  amoadd.w a0, a1, 0(a2)", "  lr.d t0, 0(t1)");

  // System and ordering.
  lines.push(
    "  fence",
    "  fence rw, rw",
    "  fence iorw, iorw",
    "  fence r, w",
    "  fence io, ir",
    "  fence w, o",
    "  fence.tso",
    "  fence.i",
    "  ecall",
    "  ebreak",
    "  sret",
    "  mret",
    "  wfi",
    "  sfence.vma",
    "  sfence.vma a0",
    "  sfence.vma a0, a1",
    "  sfence.vma zero, t6",
  );

  // One-instruction pseudo-instructions.
  for (const m of [
    "mv",
    "not",
    "neg",
    "negw",
    "sext.w",
    "seqz",
    "snez",
    "sltz",
    "sgtz",
    "zext.b",
  ]) {
    lines.push(`  ${m} ${reg()}, ${reg()}`);
  }
  lines.push(`  sgt ${reg()}, ${reg()}, ${reg()}`, `  sgtu ${reg()}, ${reg()}, ${reg()}`, "  nop");

  // Constants: edge cases and random 64-bit values.
  for (const constant of EDGE_CONSTANTS) lines.push(`  li ${reg()}, ${constant}`);
  for (let i = 0; i < 400; i++)
    lines.push(`  li ${reg()}, ${formatConstant(randomConstant(random), random)}`);
  lines.push(
    "  .equ BIG, 0x123456789",
    "  li a0, BIG",
    "  li a1, BIG * 2 + 1",
    "  la a2, 0x7ffff000",
  );

  // Addresses of data, pc-relative accesses and explicit relocation operators.
  lines.push(
    "  la a0, table",
    "  lla a1, message",
    "  la t0, counter",
    "  la t1, fwd",
    "  la a3, table + 16",
    "  lw a0, table",
    "  ld a1, table + 8",
    "  lbu a2, message",
    "  lhu a3, table",
    "  lwu a4, table",
    "  lb a5, message + 1",
    "  lh a6, table",
    "  sw a0, counter, t0",
    "  sd a1, counter, t1",
    "  sb a2, counter, t2",
    "  sh a3, counter, t3",
    "3: auipc a0, %pcrel_hi(table)",
    "  addi a0, a0, %pcrel_lo(3b)",
    "  ld a1, %pcrel_lo(3b)(a0)",
    "  sd a1, %pcrel_lo(3b)(a0)",
    ".Lcall: auipc t0, %pcrel_hi(back)",
    "  jalr ra, %pcrel_lo(.Lcall)(t0)",
    "  lui a0, %hi(CONSTANT)",
    "  addi a0, a0, %lo(CONSTANT)",
    "  lw a1, %lo(CONSTANT)(a0)",
    "  .set CONSTANT, 0x12345fff",
    "  jump back, t2",
  );

  // Code alignment padding.
  lines.push(
    "  .align 4",
    "  nop",
    "  .balign 8",
    "  nop",
    "  .p2align 5",
    "  ebreak",
    "  .align 3",
  );
  lines.push(...dataSections(random));
  return lines.join("\n") + "\n";
}

function dataSections(random: Random): string[] {
  return [
    "  .section .rodata",
    'message: .asciz "hello, world\\n"',
    '  .ascii "\\t\\"q\\"\\\\\\101\\x42"',
    '  .string "two", "strings"',
    "  .balign 8",
    "table:",
    `  .dword 0x${random.next64().toString(16)}, -1, table, message + 3`,
    "  .quad 0x8000000000000000",
    "  .word 0xffffffff, -0x80000000, 'z', 1 + 3 & 2, 7 - 2 << 1, ~1 + 2, 17 % 5 * 2, -7 / 2",
    "  .long table - message",
    "  .half 0xffff, -32768",
    "  .short 2b - 1b",
    "  .2byte 0x1234",
    "  .4byte 0x12345678",
    "  .8byte 0x123456789abcdef0",
    "  .byte 255, -128, 0x7f, 'A', '\\n'",
    "  .zero 3",
    "  .align 2",
    "  .word . - table",
    "  .data",
    "  .byte 1",
    "  .p2align 3",
    "counter: .dword 0",
    "  .space 5, 0xaa",
    "  .skip 2",
    "  .balign 16, 0x55",
    "  .word fwd, back",
    '  .section .data.more, "aw", @progbits',
    "  .word 0xdeadbeef",
    "  .bss",
    "  .align 4",
    "buffer: .space 4096",
    "  .zero 17",
    "  .word 0",
    "end_of_bss:",
    "  WIDTH = 16",
    "  .equ HEIGHT, WIDTH * 2",
    "  .data",
    "  .word WIDTH * HEIGHT, end_of_bss - buffer",
  ];
}

/** Absolute addressing with %hi/%lo only works below 2 GiB, so this one is linked low. */
function lowAddressProgram(): string {
  return [
    "  .globl _start",
    "_start:",
    "  lui a0, %hi(value)",
    "  lw a1, %lo(value)(a0)",
    "  addi a2, a0, %lo(value)",
    "  sw a1, %lo(value + 4)(a0)",
    "  lui t0, %hi(value + 0x7ff)",
    "  addi t0, t0, %lo(value + 0x7ff)",
    "  lui t1, %hi(0x7ffff7ff)",
    "  la a3, value",
    "  call func",
    "  j .",
    "func:",
    "  ret",
    "  .data",
    "  .word 1, 2, 3",
    "value:",
    "  .word 42, 0",
  ].join("\n");
}

export function corpus(seed: bigint): CorpusProgram[] {
  const random = new Random(seed);
  return [
    { name: "instructions", source: instructionsProgram(random), textAddress: 0x8020_0000 },
    { name: "low-address", source: lowAddressProgram(), textAddress: 0x1_0000 },
  ];
}
