/**
 * Words a migratable VM's main thread shares with its vCPU threads: the
 * pause request, and each vCPU's progress (iterations of the workload) with
 * the longest gap it saw between two iterations (its worst stall).
 */

const W_PAUSE = 0; // 0 run, 1 park at the next ucall, 2 leave
const HEADER_WORDS = 4;
const RUN = 0;
const PAUSE = 1;
const LEAVE = 2;

export class VmControl {
  private readonly words: Int32Array;
  /** Per vCPU: [last progress ms, worst gap ms]. */
  private readonly times: Float64Array;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.words = new Int32Array(buffer, 0, HEADER_WORDS + 256);
    this.times = new Float64Array(buffer, (HEADER_WORDS + 256) * 4, 512);
  }

  static create(): VmControl {
    return new VmControl(new SharedArrayBuffer((4 + 256) * 4 + 512 * 8));
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

  progressStarted(id: number): void {
    this.times[2 * id] = performance.now();
  }

  progress(id: number, iterations: number): void {
    const now = performance.now();
    const gap = now - this.times[2 * id];
    if (gap > this.times[2 * id + 1]) this.times[2 * id + 1] = gap;
    this.times[2 * id] = now;
    Atomics.store(this.words, HEADER_WORDS + id, iterations);
  }

  /** Where a vCPU's count starts (its iterations before a migration). */
  setIterations(id: number, iterations: number): void {
    Atomics.store(this.words, HEADER_WORDS + id, iterations);
  }

  /** Forget the worst gaps seen so far (a measurement window starts). */
  resetStalls(): void {
    for (let i = 1; i < this.times.length; i += 2) this.times[i] = 0;
  }

  iterations(id: number): number {
    return Atomics.load(this.words, HEADER_WORDS + id);
  }

  maxStallMs(id: number): number {
    return this.times[2 * id + 1];
  }
}
