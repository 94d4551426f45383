/**
 * Shared helpers for the guest CPU tests: assemble a snippet with the
 * project's assembler, load it into flat RAM at 0x8000_0000, run a hart over it
 * and read the results back.
 *
 * Every program gets a small prelude: `_start` points stvec at a default trap
 * handler and jumps to `main`, where the test's source begins; the source is
 * followed by `__end: ecall` (from S-mode an SBI call, so `run()` returns with
 * EXIT_SBI). The default handler stores scause, stval, sepc and sstatus in
 * `__trap_record`, restores every register it used (only sscratch changes) and
 * then executes its own ecall at `__trap_ecall`, so a test tells "ended" from
 * "trapped" by where the hart stopped.
 */
import assert from "node:assert/strict";
import { assemble } from "../../../src/riscv/asm/index.js";
import { EXIT_SBI, type ExitReason, Hart } from "../../../src/riscv/cpu/hart.js";
import type { ProgramImage } from "../../../src/riscv/elf/index.js";
import { loadProgram } from "../../../src/riscv/elf/index.js";
import { FlatMemory } from "../../../src/riscv/testing/flat-memory.js";

export const RAM_BASE = 0x8000_0000;
export const RAM_SIZE = 16 * 1024 * 1024;
export const MASK64 = (1n << 64n) - 1n;
export const SIGN64 = 1n << 63n;

/** ABI register names to numbers. */
const ABI = [
  "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5",
  "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6",
]; // prettier-ignore

export type RegName = string | number;

export function regIndex(name: RegName): number {
  if (typeof name === "number") return name;
  if (/^x\d+$/.test(name)) return Number(name.slice(1));
  if (name === "fp") return 8;
  const i = ABI.indexOf(name);
  if (i < 0) throw new Error(`unknown register ${name}`);
  return i;
}

const PRELUDE = `
  .text
  .globl _start
_start:
  la t0, __trap
  csrw stvec, t0
  li t0, 0
  j main
  .balign 4
__trap:
  csrw sscratch, t6
  la t6, __trap_record
  sd t5, 32(t6)
  csrr t5, scause
  sd t5, 0(t6)
  csrr t5, stval
  sd t5, 8(t6)
  csrr t5, sepc
  sd t5, 16(t6)
  csrr t5, sstatus
  sd t5, 24(t6)
  ld t5, 40(t6)
  addi t5, t5, 1
  sd t5, 40(t6)
  ld t5, 32(t6)
  csrr t6, sscratch
__trap_ecall:
  ecall
  j __trap_ecall
  .data
  .balign 8
__trap_record:
  .dword 0, 0, 0, 0, 0, 0
  .text
main:
`;

const EPILOGUE = `
  .text
__end:
  ecall
  j __end
`;

export interface TrapRecord {
  cause: bigint;
  tval: bigint;
  epc: bigint;
  status: bigint;
  /** How many traps the default handler has taken. */
  count: bigint;
}

export class Guest {
  readonly symbols: Map<string, number>;
  exit: ExitReason | undefined;

  constructor(
    readonly hart: Hart,
    readonly memory: FlatMemory,
    readonly image: ProgramImage,
  ) {
    this.symbols = new Map();
    for (const [name, value] of image.symbols) this.symbols.set(name, Number(value));
  }

  sym(name: string): number {
    const v = this.symbols.get(name);
    if (v === undefined) throw new Error(`no symbol ${name}`);
    return v;
  }

  reg(name: RegName): bigint {
    return this.hart.getRegister(regIndex(name));
  }

  /** The register as a signed value. */
  sreg(name: RegName): bigint {
    return BigInt.asIntN(64, this.reg(name));
  }

  run(budget = 1_000_000): ExitReason {
    this.exit = this.hart.run(budget);
    return this.exit;
  }

  /** True when the last run stopped at the ecall after the test's source. */
  get ended(): boolean {
    return this.exit === EXIT_SBI && this.hart.pc === this.sym("__end") + 4;
  }

  /** True when the last run stopped in the default trap handler. */
  get trapped(): boolean {
    return this.exit === EXIT_SBI && this.hart.pc === this.sym("__trap_ecall") + 4;
  }

  get trap(): TrapRecord {
    const at = this.sym("__trap_record");
    return {
      cause: this.load64(at),
      tval: this.load64(at + 8),
      epc: this.load64(at + 16),
      status: this.load64(at + 24),
      count: this.load64(at + 40),
    };
  }

  /** Where the hart stopped, for assertion messages. */
  describe(): string {
    const t = this.trap;
    return (
      `exit ${this.exit}, pc 0x${this.hart.pc.toString(16)}, priv ${this.hart.priv}, ` +
      `traps ${t.count} (last scause 0x${t.cause.toString(16)} stval 0x${t.tval.toString(16)} ` +
      `sepc 0x${t.epc.toString(16)})`
    );
  }

  /** Assert that the program ran to its end without any trap. */
  expectEnd(): this {
    assert.ok(this.ended, `expected the program to end: ${this.describe()}`);
    assert.equal(this.trap.count, 0n, `unexpected trap: ${this.describe()}`);
    return this;
  }

  /** Assert that the program stopped in the default trap handler; returns the record. */
  expectTrap(): TrapRecord {
    assert.ok(this.trapped, `expected a trap: ${this.describe()}`);
    return this.trap;
  }

  load64(addr: number): bigint {
    const b = this.memory.read(addr, 8);
    return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
  }

  load32(addr: number): number {
    const b = this.memory.read(addr, 4);
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
  }

  store64(addr: number, value: bigint): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, value), true);
    this.memory.write(addr, b);
  }

  store32(addr: number, value: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value >>> 0, true);
    this.memory.write(addr, b);
  }
}

export interface GuestOptions {
  /** The source is used as is, without prelude and epilogue. */
  raw?: boolean;
  memory?: FlatMemory;
  /** Where .text starts; RAM_BASE by default. */
  textAddress?: number;
}

/** Assemble `source` (the body of `main`) and load it; the hart is ready at `_start`. */
export function makeGuest(source: string, options: GuestOptions = {}): Guest {
  const text = options.raw ? source : PRELUDE + source + EPILOGUE;
  const { image } = assemble(text, { textAddress: options.textAddress ?? RAM_BASE });
  const memory = options.memory ?? new FlatMemory(RAM_BASE, RAM_SIZE);
  loadProgram(image, memory);
  const hart = new Hart({ hartId: 0, memory });
  hart.pc = Number(image.entry);
  return new Guest(hart, memory, image);
}

/** Assemble, load and run `source` once (until the first exit or `budget` instructions). */
export function runGuest(source: string, budget = 1_000_000, options: GuestOptions = {}): Guest {
  const guest = makeGuest(source, options);
  guest.run(budget);
  return guest;
}

/** Run and assert that the program reached its end without trapping. */
export function runToEnd(source: string, budget = 1_000_000): Guest {
  return runGuest(source, budget).expectEnd();
}

/** Run and assert that the program trapped into the default handler. */
export function runToTrap(source: string, budget = 1_000_000): { guest: Guest; trap: TrapRecord } {
  const guest = runGuest(source, budget);
  return { guest, trap: guest.expectTrap() };
}

/** A deterministic 64-bit pseudo-random generator (xorshift64*), for operand sweeps. */
export function rng(seed: bigint): () => bigint {
  let s = seed & MASK64 || 1n;
  return () => {
    s ^= s >> 12n;
    s ^= (s << 25n) & MASK64;
    s ^= s >> 27n;
    return (s * 0x2545f4914f6cdd1dn) & MASK64;
  };
}

/** Interesting 64-bit operands: edges of every width, plus random values. */
export function operands(count: number, seed = 0x1234_5678_9abc_def0n): bigint[] {
  const edges = [
    0n, 1n, 2n, 3n, 7n, 0x7fn, 0x80n, 0xffn, 0x7fffn, 0x8000n, 0xffffn,
    0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n, 0x1_0000_0001n,
    0x7fff_ffff_ffff_ffffn, 0x8000_0000_0000_0000n, 0x8000_0000_0000_0001n,
    MASK64, MASK64 - 1n, 0xdead_beef_cafe_f00dn, 0x0123_4567_89ab_cdefn,
    0xffff_ffff_8000_0000n, 0xffff_ffff_7fff_ffffn, 0x0000_0000_ffff_fffen,
  ]; // prettier-ignore
  const next = rng(seed);
  const out = [...edges];
  while (out.length < count) {
    const r = next();
    // Mix full-width values with small and 32-bit-ish ones so fast paths are hit too.
    switch (Number(r & 3n)) {
      case 0:
        out.push(r);
        break;
      case 1:
        out.push(BigInt.asUintN(64, BigInt.asIntN(32, r >> 8n)));
        break;
      case 2:
        out.push(BigInt.asUintN(64, BigInt.asIntN(12, r >> 20n)));
        break;
      default:
        out.push(r >> ((r >> 2n) & 63n));
    }
  }
  return out;
}

export const u64 = (v: bigint): bigint => BigInt.asUintN(64, v);
export const s64 = (v: bigint): bigint => BigInt.asIntN(64, v);
/** Sign-extend the low 32 bits to 64 (the result of every W instruction). */
export const sext32 = (v: bigint): bigint => BigInt.asUintN(64, BigInt.asIntN(32, v));
export const hex = (v: bigint | number): string => `0x${v.toString(16)}`;

/**
 * A program assembled once and run many times with different inputs: each
 * call restarts at `_start`, sets the given registers and runs to the end.
 */
export class Kernel {
  readonly guest: Guest;

  constructor(source: string) {
    this.guest = makeGuest(source);
  }

  call(registers: Record<string, bigint>, budget = 100_000): Guest {
    const g = this.guest;
    g.hart.pc = Number(g.image.entry);
    for (const [name, value] of Object.entries(registers)) {
      g.hart.setRegister(regIndex(name), u64(value));
    }
    g.run(budget);
    return g.expectEnd();
  }
}

/** Guest code that drops to U-mode at `label` (SPP cleared, then SRET); clobbers t0. */
export function enterUser(label: string): string {
  return `
    la t0, ${label}
    csrw sepc, t0
    li t0, 0x100
    csrc sstatus, t0
    sret
  `;
}

/** The encoding of a Zicsr instruction, computed independently of the assembler. */
export function csrInst(funct3: number, rd: number, rs1: number, csr: number): bigint {
  return BigInt(((csr << 20) | (rs1 << 15) | (funct3 << 12) | (rd << 7) | 0x73) >>> 0);
}

/** Instruction encoders, independent of the assembler, for reserved and odd encodings. */
export const encode = {
  r(opcode: number, rd: number, f3: number, rs1: number, rs2: number, f7: number): number {
    return ((f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opcode) >>> 0;
  },
  i(opcode: number, rd: number, f3: number, rs1: number, imm: number): number {
    return (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opcode) >>> 0;
  },
  b(f3: number, rs1: number, rs2: number, offset: number): number {
    const imm =
      (((offset >> 12) & 1) << 31) |
      (((offset >> 5) & 0x3f) << 25) |
      (((offset >> 1) & 0xf) << 8) |
      (((offset >> 11) & 1) << 7);
    return (imm | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | 0x63) >>> 0;
  },
  jal(rd: number, offset: number): number {
    const imm =
      (((offset >> 20) & 1) << 31) |
      (((offset >> 1) & 0x3ff) << 21) |
      (((offset >> 11) & 1) << 20) |
      (((offset >> 12) & 0xff) << 12);
    return (imm | (rd << 7) | 0x6f) >>> 0;
  },
};
