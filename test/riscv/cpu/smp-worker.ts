/**
 * Worker for smp.test.ts: runs one hart over guest RAM shared with the main
 * thread and the other workers (a SharedArrayBuffer), from `entry` with a0 =
 * hart id, until its first SBI call. Does nothing when loaded as a main module
 * (the test runner may load every .js file under dist/test).
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { type AccessType } from "../../../src/riscv/cpu/constants.js";
import { EXIT_BUDGET, Hart } from "../../../src/riscv/cpu/hart.js";
import type { GuestPhysicalMemory, Translation } from "../../../src/riscv/cpu/physical-memory.js";

export interface HartJob {
  buffer: SharedArrayBuffer;
  base: number;
  hartId: number;
  entry: number;
  /** Instructions to run at most before giving up. */
  budget: number;
}

export interface HartReport {
  hartId: number;
  exit: number;
  pc: number;
  instret: number;
}

/** Guest RAM over a buffer that other threads share. */
class SharedRam implements GuestPhysicalMemory {
  constructor(
    private readonly buffer: SharedArrayBuffer,
    private readonly base: number,
  ) {}

  translate(gpa: number, _access: AccessType, out: Translation): boolean {
    const offset = gpa - this.base;
    if (offset < 0 || offset >= this.buffer.byteLength) return false;
    out.region = 0;
    out.offset = offset;
    out.writable = true;
    return true;
  }

  regionBuffer(): ArrayBufferLike {
    return this.buffer;
  }
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  const job = workerData as HartJob;
  const hart = new Hart({ hartId: job.hartId, memory: new SharedRam(job.buffer, job.base) });
  hart.pc = job.entry;
  hart.setRegister(10, BigInt(job.hartId));
  port.postMessage("ready");
  // Start only when every hart is ready, so that they really run at the same time.
  port.once("message", () => {
    let exit = EXIT_BUDGET as number;
    while (hart.instret < job.budget) {
      exit = hart.run(job.budget - hart.instret);
      if (exit !== EXIT_BUDGET) break;
    }
    const report: HartReport = { hartId: job.hartId, exit, pc: hart.pc, instret: hart.instret };
    port.postMessage(report);
    port.close();
  });
}
