/**
 * Words a migratable VM's main thread shares with its vCPU threads: the
 * pause request, and each vCPU's progress (iterations of the workload) with
 * the longest gap it saw between two iterations (its worst stall) in the
 * current measurement window and in the one closed last (an iteration
 * counts in the window it started in), and its first gap after it started
 * (across a migration's switchover, the stall the guest saw there). Times
 * are wall-clock ms, the same in every thread and in both processes of a
 * loopback migration, so that a destination's vCPU can count its first gap
 * from its last iteration on the source.
 */

import { wallNowMs } from "../stats.js";

const W_PAUSE = 0; // 0 run, 1 park at the next ucall, 2 leave
const HEADER_WORDS = 4;
const RUN = 0;
const PAUSE = 1;
const LEAVE = 2;
const TIMES = 5;

export class VmControl {
  private readonly words: Int32Array;
  /**
   * Per vCPU, in ms: [last progress, worst gap, first gap (-1 until it
   * ends), 1 while the next gap belongs to the closed window, that window's
   * worst gap].
   */
  private readonly times: Float64Array;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.words = new Int32Array(buffer, 0, HEADER_WORDS + 256);
    this.times = new Float64Array(buffer, (HEADER_WORDS + 256) * 4, 256 * TIMES);
  }

  static create(): VmControl {
    return new VmControl(new SharedArrayBuffer((HEADER_WORDS + 256) * 4 + 256 * TIMES * 8));
  }

  get pauseRequested(): boolean {
    return Atomics.load(this.words, W_PAUSE) !== RUN;
  }

  requestPause(): void {
    Atomics.store(this.words, W_PAUSE, PAUSE);
  }

  resume(): void {
    Atomics.store(this.words, W_PAUSE, RUN);
    Atomics.notify(this.words, W_PAUSE);
  }

  /** Parked vCPUs leave their loop (the VM is done with). */
  leave(): void {
    Atomics.store(this.words, W_PAUSE, LEAVE);
    Atomics.notify(this.words, W_PAUSE);
  }

  /** vCPU side: sleep while paused; false when told to leave. */
  park(): boolean {
    for (;;) {
      const value = Atomics.load(this.words, W_PAUSE);
      if (value === RUN) return true;
      if (value === LEAVE) return false;
      Atomics.wait(this.words, W_PAUSE, value);
    }
  }

  /**
   * The vCPU starts (or resumes after a pause) now, or goes on from an
   * iteration that ended at `lastProgressWallMs` (on a migration's source).
   */
  progressStarted(id: number, lastProgressWallMs = wallNowMs()): void {
    this.times[TIMES * id] = lastProgressWallMs;
    this.times[TIMES * id + 2] = -1;
  }

  progress(id: number, iterations: number): void {
    const now = wallNowMs();
    const at = TIMES * id;
    const gap = now - this.times[at];
    if (this.times[at + 3] !== 0) {
      this.times[at + 3] = 0;
      if (gap > this.times[at + 4]) this.times[at + 4] = gap;
    } else if (gap > this.times[at + 1]) this.times[at + 1] = gap;
    if (this.times[at + 2] < 0) this.times[at + 2] = gap;
    this.times[at] = now;
    Atomics.store(this.words, HEADER_WORDS + id, iterations);
  }

  /** When the vCPU's last iteration ended (wall-clock ms). */
  lastProgressWallMs(id: number): number {
    return this.times[TIMES * id];
  }

  /** Where a vCPU's count starts (its iterations before a migration). */
  setIterations(id: number, iterations: number): void {
    Atomics.store(this.words, HEADER_WORDS + id, iterations);
  }

  /** A measurement window starts; the iterations in progress finish the one it closes. */
  closeStallWindow(): void {
    for (let at = 0; at < this.times.length; at += TIMES) {
      this.times[at + 4] = this.times[at + 1];
      this.times[at + 1] = 0;
      this.times[at + 3] = 1;
    }
  }

  iterations(id: number): number {
    return Atomics.load(this.words, HEADER_WORDS + id);
  }

  /** The worst gap in the current window. */
  maxStallMs(id: number): number {
    return this.times[TIMES * id + 1];
  }

  /** The worst gap in the window closed last. */
  closedWindowStallMs(id: number): number {
    return this.times[TIMES * id + 4];
  }

  /** The first gap since it started (0 until that iteration ends). */
  firstStallMs(id: number): number {
    return Math.max(0, this.times[TIMES * id + 2]);
  }
}
