import { isMainThread, type MessagePort, parentPort, workerData } from "node:worker_threads";
import { PAGE_SIZE } from "../../host/host-memory.js";

/**
 * What the benchmark's threads share: the VMM's own bookkeeping (not guest
 * memory), in SharedArrayBuffers made by the main thread. Page indices count
 * 4 KiB pages from the start of the test memory.
 */

/** Guest-physical address of the test memory (slot 1): 4 GiB, 1 GiB aligned. */
export const TEST_GPA = 2 ** 32;
export const TEST_SLOT = 1;
/** Guest-physical offset of the latency histograms in the code slot (slot 0). */
export const HISTOGRAMS_OFFSET = 8 << 20;
/** memstress.s: 8192 u32 buckets per histogram, two passes per vCPU. */
export const HISTOGRAM_BUCKETS = 8192;
export const FINE_BUCKETS = 4096;
export const COARSE_SHIFT = 8;
export const HISTOGRAM_BYTES = HISTOGRAM_BUCKETS * 4;
export const VCPU_HISTOGRAM_BYTES = 2 * HISTOGRAM_BYTES;
/** memstress.s argument block. */
export const ARG_TEST_GPA = 0;
export const ARG_REMOTE_MASK = 8;
export const ARG_SEED = 16;
export const ARG_PASSES = 24;
export const ARG_HISTOGRAMS = 32;
export const ARG_CHECK_DATA = 40;
export const ARG_VCPUS = 64;
export const VCPU_ARGS_BYTES = 32;
export const VCPU_GPA = 0;
export const VCPU_PAGES = 8;
export const VCPU_MAX_LATENCY = 16;
/** The guest's passes: 0 demand-pages (or first-touches), 1 checks its markers on present pages. */
export const MAX_PASSES = 2;

// Control words.
export const CTL_GO = 0;
export const CTL_STOP = 1;
/** vCPUs parked at the end of the current pass (a barrier between passes). */
export const CTL_PARKED = 2;
export const CTL_PASS = 3;
export const CTL_ERRORS = 4;
export const CTL_WORDS = 16;

/** Per-vCPU timing record in `times` (ms since the shared epoch, performance.timeOrigin based). */
export const TIME_PASS_END = 0;
export const TIME_WORDS = 4;

/** `state` of a page in -k mode. */
export const PAGE_MISSING = 0;
export const PAGE_INSTALLING = 1;
export const PAGE_PRESENT = 2;
/** Installing, and another thread waits for it (so the installer must notify). */
export const PAGE_INSTALLING_WAITED = 3;

/** Int32 words per vCPU in `faults`: one cache line each, so vCPU threads never share one. */
export const FAULT_WORDS = 16;

/**
 * Wait until another thread has installed `page` (its state is INSTALLING):
 * mark that someone waits, so that the installer knows to notify.
 */
export function waitForInstall(state: Int32Array, page: number): void {
  Atomics.compareExchange(state, page, PAGE_INSTALLING, PAGE_INSTALLING_WAITED);
  Atomics.wait(state, page, PAGE_INSTALLING_WAITED);
}

/**
 * Mark `page` installed; notify only when a thread waits for it (a notify
 * takes a process-wide lock in V8, which the vCPU threads would contend on).
 */
export function markInstalled(state: Int32Array, page: number): void {
  if (Atomics.exchange(state, page, PAGE_PRESENT) === PAGE_INSTALLING_WAITED) {
    Atomics.notify(state, page);
  }
}

export interface SharedBuffers {
  control: SharedArrayBuffer;
  /** Int32 per test page: PAGE_* (-k claims). */
  state: SharedArrayBuffer;
  /** Int32 per test page: how many times a handler installed it. */
  installs: SharedArrayBuffer;
  /** Float64 per vCPU x TIME_WORDS: when each pass ended; [0] of the vCPU count slot = start. */
  times: SharedArrayBuffer;
  /** Int32 per vCPU: userfault exits (-k) handled by its thread. */
  faults: SharedArrayBuffer;
  /** The "remote" pages (the migration source), tiled to at least one backing page. */
  remote: SharedArrayBuffer;
}

export function createSharedBuffers(
  pages: number,
  vcpus: number,
  remoteBytes: number,
): SharedBuffers {
  return {
    control: new SharedArrayBuffer(CTL_WORDS * 4),
    state: new SharedArrayBuffer(pages * 4),
    installs: new SharedArrayBuffer(pages * 4),
    times: new SharedArrayBuffer((vcpus + 1) * TIME_WORDS * 8),
    faults: new SharedArrayBuffer(vcpus * FAULT_WORDS * 4),
    remote: new SharedArrayBuffer(remoteBytes),
  };
}

/** Absolute milliseconds, comparable between threads. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * The remote page r: 64-bit word k is seed ^ (r << 16) ^ k (memstress.s
 * checks word 1). Written as int32 halves: the high half is seed's.
 */
export function fillRemote(remote: SharedArrayBuffer, remotePages: number, seed: number): void {
  const words = new Int32Array(remote);
  const total = remote.byteLength / PAGE_SIZE;
  for (let page = 0; page < total; page++) {
    const r = page % remotePages;
    const base = (page * PAGE_SIZE) >> 2;
    for (let k = 0; k < PAGE_SIZE / 8; k++) {
      words[base + 2 * k] = (seed ^ (r << 16) ^ k) | 0;
      words[base + 2 * k + 1] = 0;
    }
  }
}

/** Sleep the calling thread for `us` microseconds (the -d network delay); no allocation. */
export function sleepUs(cell: Int32Array, us: number): void {
  if (us > 0) Atomics.wait(cell, 0, 0, us / 1000);
}

/**
 * A benchmark thread's entry: when this worker was started for `marker`
 * (a key its workerData sets), run `main`; whatever it throws goes to the
 * parent as an error message.
 */
export function runBenchThread<D>(
  marker: string,
  main: (data: D, port: MessagePort) => void,
): void {
  if (isMainThread || !parentPort || !(workerData as Record<string, unknown>)?.[marker]) return;
  try {
    main(workerData as D, parentPort);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    parentPort.postMessage({ type: "error", message });
  }
}
