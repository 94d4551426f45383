import { bootVcpuState } from "./machine/vcpu-state.js";
import { decodeVcpuStates, encodeVcpuStates, type SavedVcpu } from "./machine/migratable-vm.js";
import { PageBitmap } from "./page-bitmap.js";

/** Passes made: with three, the traced switchovers ran compiled code (fewer were not tried). */
const PASSES = 3;

/**
 * Run the switchover's once-only work on stand-in data of the migration's
 * size: the destination's decoding of the final bitmap and the vCPU states
 * and its passes over every page's bit (each page pre-copied or left to
 * post-copy; the release of clean pre-copied pages), and the count of pages
 * left that the source reports right after it. Done only at the
 * switchover, it would run there interpreted by V8: traced, 5-12 ms of the
 * destination's work from the SWITCHOVER frame on, and 4 ms of the
 * source's, while the vCPUs' first requests waited (BENCHMARKS.md, run J).
 * Nothing of the migration is touched.
 */
export function warmSwitchoverPath(pages: number, vcpus: number): void {
  const saved: SavedVcpu[] = [];
  for (let id = 0; id < vcpus; id++) saved.push({ done: false, state: bootVcpuState(0, id) });
  const states = encodeVcpuStates(saved);
  const precopied = new PageBitmap(pages);
  // Half the pages needed, in runs, so that the clean release visits runs as after a pre-copy.
  const template = new PageBitmap(pages);
  for (let word = 0; word < template.words.length; word += 2) template.words[word] = 0xffff_ffff;
  for (let pass = 0; pass < PASSES; pass++) {
    const needed = PageBitmap.fromBytes(pages, template.toBytes());
    decodeVcpuStates(states, vcpus);
    needed.countNeither(precopied);
    const clean = new PageBitmap(pages);
    clean.setAll();
    clean.andNot(needed);
    clean.forEachRun(() => undefined);
    clean.count();
  }
}
