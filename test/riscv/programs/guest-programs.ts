/**
 * The guest programs in guests/*.s: their sources, building them with our
 * assembler, and running them on faultline (a hart over flat memory with the
 * tiny SBI of src/riscv/testing) and on QEMU's virt machine behind OpenSBI.
 *
 * A program is `guests/<name>.s` appended to `guests/lib/runtime.s`, which
 * provides `_start` (so it must come first: QEMU 7.2 enters a -kernel ELF at
 * its lowest loaded address, not at e_entry), the console helpers and the
 * shutdown. The runtime prints START_MARKER + name before calling `main`, so
 * what follows OpenSBI's banner on QEMU can be compared with faultline's
 * console.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { AssemblerError, assemble } from "../../../src/riscv/asm/index.js";
import { Hart } from "../../../src/riscv/cpu/hart.js";
import { loadElf, physicalEntry } from "../../../src/riscv/elf/index.js";
import { FlatMemory } from "../../../src/riscv/testing/flat-memory.js";
import { type ProgramResult, runProgram } from "../../../src/riscv/testing/run-program.js";

/** The source folder (this module runs from dist/test/riscv/programs). */
function findGuestsDir(): string {
  for (const up of ["../../../../", "./"]) {
    const dir = fileURLToPath(new URL(`${up}test/riscv/programs/guests/`, import.meta.url));
    if (existsSync(join(dir, "lib", "runtime.s"))) return dir;
  }
  throw new Error(`cannot find test/riscv/programs/guests from ${import.meta.url}`);
}

export const GUESTS_DIR = findGuestsDir();
const RUNTIME_PATH = join(GUESTS_DIR, "lib", "runtime.s");

/** The runtime prints this, then the program name and " ####\n". */
export const START_MARKER = "\n#### faultline guest ";

/** Guest RAM on faultline: where QEMU's virt machine has it (a program needs far less). */
const RAM_BASE = 0x8000_0000;
const RAM_SIZE = 64 * 1024 * 1024;
/** Generous: the largest program retires about 14 million instructions. */
const MAX_INSTRUCTIONS = 500_000_000;

/** Names of the programs (guests/<name>.s), sorted. */
export function programNames(): string[] {
  return readdirSync(GUESTS_DIR)
    .filter((file) => file.endsWith(".s"))
    .map((file) => file.slice(0, -2))
    .sort();
}

export function expectedPath(name: string): string {
  return join(GUESTS_DIR, `${name}.expected`);
}

/** The first line a program prints (after OpenSBI's banner on QEMU). */
export function startLine(name: string): string {
  return `${START_MARKER}${name} ####\n`;
}

/** The source of a program as assembled: runtime.s followed by <name>.s. */
export function guestSource(name: string): string {
  return combinedSource(name).source;
}

/** runtime.s followed by <name>.s, and where the program's lines start. */
function combinedSource(name: string): { source: string; programFirstLine: number } {
  let runtime = readFileSync(RUNTIME_PATH, "utf8");
  if (!runtime.endsWith("\n")) runtime += "\n";
  const program = readFileSync(join(GUESTS_DIR, `${name}.s`), "utf8");
  const runtimeLines = runtime.split("\n").length - 1;
  return { source: runtime + program, programFirstLine: runtimeLines + 1 };
}

/** Assembles a program with our assembler; returns its ELF file. */
export function buildGuest(name: string): Uint8Array {
  const { source, programFirstLine } = combinedSource(name);
  try {
    return assemble(source).elf;
  } catch (error) {
    if (!(error instanceof AssemblerError)) throw error;
    // Point at the file the line is really in.
    const where = (line: number) =>
      line < programFirstLine
        ? `lib/runtime.s:${line}`
        : `${name}.s:${line - programFirstLine + 1}`;
    const lines = error.diagnostics.map((d) => `${where(d.line)}:${d.column}: ${d.message}`);
    throw new Error(`${name} does not assemble:\n${lines.join("\n")}`, { cause: error });
  }
}

/** Runs an ELF on one faultline hart, entered in S-mode with a0 = hart id 0. */
export function runOnFaultline(elf: Uint8Array): ProgramResult {
  const memory = new FlatMemory(RAM_BASE, RAM_SIZE);
  const image = loadElf(elf, memory);
  const hart = new Hart({ hartId: 0, memory });
  hart.pc = physicalEntry(image);
  hart.setRegister(10, 0n); // a0: hart id
  hart.setRegister(11, 0n); // a1: no device tree here (the programs do not read it)
  return runProgram(hart, MAX_INSTRUCTIONS);
}

/**
 * runOnFaultline in a worker thread, so that a program that never shuts down
 * without executing instructions (a wfi nothing wakes blocks the thread in
 * Atomics.wait, beyond the instruction budget's reach) fails after
 * `timeoutMs` instead of hanging the test run. Programs also run in parallel
 * this way.
 */
export function runOnFaultlineInWorker(elf: Uint8Array, timeoutMs: number): Promise<ProgramResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL("./faultline-worker.js", import.meta.url), {
      workerData: elf,
      execArgv: [], // not the parent's: its flags may be meant for a script or the test runner
    });
    const timer = setTimeout(() => {
      reject(new Error(`faultline did not finish within ${timeoutMs} ms (a hang, such as a wfi)`));
      void worker.terminate();
    }, timeoutMs);
    worker.once("message", (result: ProgramResult) => {
      clearTimeout(timer);
      resolve(result);
      void worker.terminate();
    });
    worker.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    worker.once("exit", (code) => {
      clearTimeout(timer);
      // Does nothing if a result came first.
      reject(new Error(`the faultline worker exited with code ${code} before a result`));
    });
  });
}

export const QEMU = "qemu-system-riscv64";

export type ToolStatus = { available: true } | { available: false; reason: string };

export function qemuStatus(): ToolStatus {
  const result = spawnSync(QEMU, ["--version"], { encoding: "utf8" });
  if (result.error || result.status !== 0) {
    return {
      available: false,
      reason:
        `${QEMU} not found; install QEMU and OpenSBI ` +
        "(apt-get install -y qemu-system-misc opensbi)",
    };
  }
  return { available: true };
}

export interface QemuRun {
  /** Everything from the program's start line on ("\r\n" made "\n"), or null if it never printed it. */
  output: string | null;
  /** The whole console, banner included, for diagnostics. */
  console: string;
  stderr: string;
  exitCode: number | null;
  timedOut: boolean;
}

/**
 * Boots an ELF as the -kernel of QEMU's virt machine with OpenSBI as the
 * firmware and collects the console until QEMU exits (SBI SRST shutdown) or
 * `timeoutMs` passes, when QEMU is killed.
 */
export async function runOnQemu(
  name: string,
  elf: Uint8Array,
  timeoutMs: number,
): Promise<QemuRun> {
  const dir = mkdtempSync(join(tmpdir(), "faultline-qemu-"));
  try {
    const elfPath = join(dir, `${name}.elf`);
    writeFileSync(elfPath, elf);
    const args = [
      ...["-machine", "virt", "-nographic", "-bios", "default", "-m", "128M"],
      ...["-no-reboot", "-kernel", elfPath],
    ];
    const run = await new Promise<Omit<QemuRun, "output">>((resolve, reject) => {
      const child = spawn(QEMU, args, { stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      let timedOut = false;
      // latin1: one character per byte, as faultline's console builds it.
      child.stdout.setEncoding("latin1");
      child.stderr.setEncoding("utf8");
      child.stdout.on("data", (chunk: string) => (stdout += chunk));
      child.stderr.on("data", (chunk: string) => (stderr += chunk));
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill("SIGKILL");
      }, timeoutMs);
      child.on("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve({ console: stdout, stderr, exitCode: code, timedOut });
      });
    });
    // OpenSBI's console putchar sends "\r\n" for "\n"; the programs never print "\r".
    const text = run.console.replace(/\r\n/g, "\n");
    const start = text.indexOf(startLine(name));
    return { ...run, output: start < 0 ? null : text.slice(start) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
