import { bundledGuestSource } from "../guests/index.js";
import { assemble } from "../riscv/asm/index.js";
import { Hart } from "../riscv/cpu/hart.js";
import { loadProgram, physicalEntry } from "../riscv/elf/index.js";
import { FlatMemory } from "../riscv/testing/flat-memory.js";
import { runProgram } from "../riscv/testing/run-program.js";

export interface CpuBenchmarkResult {
  /** Guest instructions per second of wall time, in millions. */
  mips: number;
  instructions: number;
  seconds: number;
  /** The checksum the workload printed, so a wrong result cannot pass as fast. */
  checksum: string;
}

const RAM_BASE = 0x8000_0000;
const RAM_SIZE = 16 << 20;

/**
 * Run the bundled integer workload (src/guests/cpu-workload.s) for `rounds`
 * rounds on one hart over flat memory and time it. A short warm-up run first
 * lets V8 optimise the interpreter, as it would be in a long-running guest.
 */
export function runCpuBenchmark(rounds = 2000, warmupRounds = 20): CpuBenchmarkResult {
  const program = assemble(bundledGuestSource("cpu-workload"), { fileName: "cpu-workload.s" });
  const roundsAddress = program.image.symbols.get("rounds");
  if (roundsAddress === undefined) throw new Error("cpu-workload.s lost its `rounds` symbol");
  const runOnce = (count: number) => {
    const memory = new FlatMemory(RAM_BASE, RAM_SIZE);
    loadProgram(program.image, memory);
    const roundsBytes = new Uint8Array(8);
    new DataView(roundsBytes.buffer).setBigUint64(0, BigInt(count), true);
    memory.write(Number(roundsAddress), roundsBytes);
    const hart = new Hart({ hartId: 0, memory });
    hart.pc = physicalEntry(program.image);
    const started = performance.now();
    const result = runProgram(hart, Number.MAX_SAFE_INTEGER);
    const seconds = (performance.now() - started) / 1000;
    if (result.stop !== "shutdown" || result.shutdownReason !== 0) {
      throw new Error(`cpu workload did not shut down cleanly (${result.stop})`);
    }
    return { seconds, instructions: result.instructions, checksum: result.console.trim() };
  };
  runOnce(warmupRounds);
  const measured = runOnce(rounds);
  return {
    mips: measured.instructions / measured.seconds / 1e6,
    instructions: measured.instructions,
    seconds: measured.seconds,
    checksum: measured.checksum,
  };
}
