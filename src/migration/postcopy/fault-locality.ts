/** Faults remembered to judge a new one by. */
const RECENT_FAULTS = 8;
/** How close to a recent fault (in pages, either way) a new one must lie to continue its run: 64 KiB. */
const NEAR_PAGES = 16;
/**
 * Faults in a run before it counts: a fault near one of the last few
 * happens by chance about once in a thousand scattered faults, a run of
 * three about once in a million.
 */
const RUN_FAULTS = 3;

/**
 * Whether page requests come in runs of nearby faults (a guest streaming
 * through a buffer, or working on a few regions) or scattered. The
 * post-copy pusher moves to a fault only in a run: after a scattered fault
 * it carries on in order. Jumping to every fault, as this pusher did
 * before, scatters the push over all of RAM when the guest's accesses are
 * scattered, so that no vCPU's working set is complete until the very
 * end; carrying on in order completes one region after another
 * (BENCHMARKS.md, run I). The requested page itself goes out at once
 * either way.
 */
export class FaultLocality {
  private readonly recent = new Float64Array(RECENT_FAULTS).fill(-Infinity);
  /** How many faults the run of each recent one had come to, itself included. */
  private readonly runs = new Int32Array(RECENT_FAULTS);
  private next = 0;

  /** Note a fault on `page`; true if it makes a run of nearby faults. */
  inRun(page: number): boolean {
    let run = 1;
    for (let i = 0; i < RECENT_FAULTS; i++) {
      const distance = Math.abs(page - this.recent[i]);
      // The same page again (a vCPU and a device both waiting on it) is no run.
      if (distance !== 0 && distance <= NEAR_PAGES) run = Math.max(run, this.runs[i] + 1);
    }
    this.recent[this.next] = page;
    this.runs[this.next] = run;
    this.next = (this.next + 1) % RECENT_FAULTS;
    return run >= RUN_FAULTS;
  }
}
