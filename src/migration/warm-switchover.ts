import { bootVcpuState } from "./machine/vcpu-state.js";
import { decodeVcpuStates, encodeVcpuStates, type SavedVcpu } from "./machine/migratable-vm.js";
import { PageBitmap } from "./page-bitmap.js";

/** Passes enough for V8 to compile the loops over every page's bit (measured: 3 make them fast). */
const PASSES = 3;

/**
 * Run the destination's switchover work once per pass on stand-in data of
 * the migration's size, at setup: the decoding of the final bitmap and the
 * vCPU states, and the bitmap passes over every page that release the
 * pre-copied pages still clean. That work runs once per migration, inside
 * the downtime and just after the vCPUs start, so V8 would otherwise
 * interpret it there: 3-9 ms of each vCPU's first stall, 1-2 ms of them
 * before RUNNING (BENCHMARKS.md, run J). Nothing of the migration is touched.
 */
export function warmSwitchoverPath(pages: number, vcpus: number): void {
  const saved: SavedVcpu[] = [];
  for (let id = 0; id < vcpus; id++) saved.push({ done: false, state: bootVcpuState(0, id) });
  const states = encodeVcpuStates(saved);
  const precopied = new PageBitmap(pages);
  const bytes = new PageBitmap(pages);
  bytes.setAll();
  for (let pass = 0; pass < PASSES; pass++) {
    const needed = PageBitmap.fromBytes(pages, bytes.toBytes());
    decodeVcpuStates(states, vcpus);
    needed.countNeither(precopied);
    const clean = new PageBitmap(pages);
    clean.setAll();
    clean.andNot(needed);
    clean.forEachRun(() => undefined);
    clean.count();
  }
}
