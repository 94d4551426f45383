/**
 * How the destination keeps the guest off pages it does not hold yet, and
 * lets it on once they are installed: the fault mechanism of post-copy.
 * KVM Userfault on guest_memfd (userfault-memory.ts) and userfaultfd on
 * traditional memory, as QEMU does it, implement it.
 */
export interface PostcopyMemory {
  readonly name: string;
  /** Before any vCPU runs: every page of RAM is missing. */
  arm(): void;
  /**
   * Install a received page (the 4 KiB of `data` at `at`; zeros for `at` = -1)
   * and wake whoever waits for it. Allocation-free.
   */
  place(page: number, data: Buffer, at: number): void;
  /**
   * Install a page without letting anyone use it yet (releaseRun does, for a
   * run of installed pages at once); null when the mechanism installs and
   * releases in one step only (place).
   */
  readonly install: ((page: number, data: Buffer, at: number) => void) | null;
  /** Pages already installed (pre-copied and clean): let the guest use them, copying nothing. */
  releaseRun(first: number, count: number): void;
  /**
   * Faults that are not a vCPU's exit to this VMM (asynchronous userfaults,
   * userfaultfd messages): `onFault(page, thread)` for each until finish(),
   * `thread` being the faulting thread's id where the mechanism names it (else 0).
   */
  watchAsyncFaults(onFault: (page: number, thread: number) => void): void;
  /** Every page is in: turn the mechanism off and rebuild large mappings. */
  finish(): void;
}
