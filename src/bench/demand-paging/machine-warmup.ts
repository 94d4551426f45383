/**
 * --machine-warmup: before the run, a child process touches as much fresh
 * memory as the run will use, then exits and frees it.
 *
 * Why: a machine that is itself a VM giving free memory back to its host
 * (free page reporting, as on this Firecracker microVM; BENCHMARKS.md)
 * backs a page one level down only once it is touched, at about 10 µs a
 * page against 1.4 µs for a page the host still backs, and that cost does
 * not scale across threads. Which of the two a run's first touches get
 * depends on what other processes freed lately, so without this the
 * benchmark measures the machine's memory as much as the fault path. Pages
 * a process just freed come back backed: the run then starts from memory in
 * the state a first touch costs on bare metal, still never touched by this
 * process.
 */
import { spawnSync } from "node:child_process";
import { freemem } from "node:os";
import { fileURLToPath } from "node:url";

const GIB = 2 ** 30;
const SELF = fileURLToPath(import.meta.url);

/** In the child: commit `bytes` of fresh memory a page at a time; exiting frees it. */
function touchFreshMemory(bytes: number): void {
  for (let left = bytes; left > 0; left -= GIB) {
    const memory = new Uint8Array(new SharedArrayBuffer(Math.min(left, GIB)));
    for (let i = 0; i < memory.length; i += 4096) memory[i] = 1;
  }
}

/**
 * Warm the machine's backing of `bytes` (at most 80% of the free memory);
 * returns how much, and how long it took.
 */
export function warmMachineMemory(bytes: number): { bytes: number; ms: number } {
  const target = Math.max(0, Math.min(bytes, Math.floor(freemem() * 0.8)));
  const start = performance.now();
  const child = spawnSync(process.execPath, [SELF, String(target)], { stdio: "inherit" });
  if (child.status !== 0) {
    throw new Error(
      `the machine warm-up process failed (${child.error?.message ?? `exit ${child.status}`})`,
    );
  }
  return { bytes: target, ms: performance.now() - start };
}

if (process.argv[1] === SELF) touchFreshMemory(Number(process.argv[2]));
