import { PAGE_SIZE } from "../../host/host-memory.js";
import { configProblems, type FaultMechanism } from "../config.js";
import { FaultRing } from "../fault-ring.js";
import type { LatencySummary } from "../latency-histogram.js";
import { dirtierWorkload } from "../machine/dirtier.js";
import { DIRTIER_GUEST, MigratableVm } from "../machine/migratable-vm.js";
import { FaultLocality } from "../postcopy/fault-locality.js";
import type { PostcopyMemory } from "../postcopy/postcopy-memory.js";
import { UffdMemory } from "../postcopy/uffd-memory.js";
import { UserfaultMemory } from "../postcopy/userfault-memory.js";
import type { SnapshotFile } from "./snapshot-file.js";
import { SnapshotError } from "./snapshot-format.js";

export type RestoreMode = "lazy" | "eager";

export interface RestoreOptions {
  mode: RestoreMode;
  faultMechanism: FaultMechanism;
  /** After each batch of pages loaded in the background: how many are in. */
  onProgress?: (loadedPages: number, pages: number) => void;
}

export interface RestoreStats {
  mode: RestoreMode;
  faultMechanism: FaultMechanism;
  memBytes: number;
  /** Making the VM and its vCPU threads, and loading the vCPUs' and devices' state. */
  setupTimeMs: number;
  /** From then until the vCPUs run: what the memory costs before the guest can go on. */
  restoreTimeMs: number;
  /** From the end of setup until every page is in. */
  loadTimeMs: number;
  /** From the end of setup until the guest finished its workload. */
  runTimeMs: number;
  /** vCPU faults served from the file, and faults of the hypervisor or of userfaultfd. */
  faults: number;
  asyncFaults: number;
  faultLatencyUs: LatencySummary;
  blocktimeMs: number;
  /** Pages read from the file (the others are zero pages, read from nowhere). */
  pagesRead: number;
  zeroPages: number;
}

/** Pages read at a time (256 KiB): a fault waits for at most one such read. */
const LOAD_CHUNK_PAGES = 64;

/**
 * Restore a snapshot and run its guest to the end of its workload.
 *
 * Eager: read every page into guest RAM, then start the vCPUs. Lazy: start
 * the vCPUs at once with every page missing, as a post-copy destination
 * does (KVM Userfault on the memslot, or userfaultfd on traditional memory,
 * by the same PostcopyMemory), and serve each fault with its page from the
 * file while a background loader reads the rest in order. Either way every
 * page is checked against its checksum as it is read: a corrupt page stops
 * the restore with a SnapshotError instead of reaching the guest.
 */
export class SnapshotRestore {
  private readonly vm: MigratableVm;
  private readonly ring: FaultRing;
  private memory: PostcopyMemory | null = null;
  private readonly page = Buffer.alloc(PAGE_SIZE);
  private readonly chunk = Buffer.alloc(LOAD_CHUNK_PAGES * PAGE_SIZE);
  private readonly requests: number[] = [];
  private loaded = 0;
  /** Where the background loader reads next. */
  private cursor = 0;
  private readonly locality = new FaultLocality();
  private pagesRead = 0;
  private asyncFaults = 0;
  private failure: Error | null = null;
  private loadingDone = false;
  private readonly startedAt = performance.now();

  constructor(
    private readonly file: SnapshotFile,
    private readonly options: RestoreOptions,
  ) {
    if (options.mode === "lazy") {
      const problems = configProblems({
        ...file.spec,
        faultMechanism: options.faultMechanism,
        guest: DIRTIER_GUEST,
        workload: dirtierWorkload(file.spec),
      });
      if (problems.length > 0) throw new Error(problems.join("; "));
    }
    this.vm = MigratableVm.incoming(file.spec);
    this.ring = FaultRing.create(file.pages, file.spec.vcpus);
  }

  /** Restore, run the guest to its end; resolves with its checksums and the restore's figures. */
  async run(): Promise<{ checksums: number[]; stats: RestoreStats }> {
    const { file, vm } = this;
    try {
      await vm.prepare();
      try {
        vm.checkVcpuStates(file.vcpus);
      } catch (error) {
        throw new SnapshotError((error as Error).message);
      }
      const start = performance.now();
      // Memory before the devices, as a migration stream has it: a restored
      // device looks at its queues in guest RAM at once.
      let loadTimeMs = 0;
      if (this.options.mode === "eager") {
        this.loadAll();
        loadTimeMs = performance.now() - start;
      } else {
        this.memory =
          this.options.faultMechanism === "userfault"
            ? new UserfaultMemory(vm)
            : new UffdMemory(vm);
        this.memory.arm();
      }
      try {
        vm.restoreDevices(file.devices);
      } catch (error) {
        throw new SnapshotError(`device state refused: ${(error as Error).message}`);
      }
      vm.vm.setClock(file.clock);
      vm.startNow(file.vcpus, this.memory ? this.ring : null);
      const restoreTimeMs = performance.now() - start;
      if (this.memory) {
        void this.serveFaults();
        this.memory.watchAsyncFaults(this.onAsyncFault);
        await this.loadInBackground();
        loadTimeMs = performance.now() - start;
      }
      const checksums = await Promise.race([vm.finished(), this.failed()]);
      const blocktime = this.ring.blocktime().perVcpu.reduce((a, b) => a + b, 0);
      return {
        checksums,
        stats: {
          mode: this.options.mode,
          faultMechanism: this.options.faultMechanism,
          memBytes: file.spec.memBytes,
          setupTimeMs: start - this.startedAt,
          restoreTimeMs,
          loadTimeMs,
          runTimeMs: performance.now() - start,
          faults: this.ring.latency.count,
          asyncFaults: this.asyncFaults,
          faultLatencyUs: this.ring.latency.summary(),
          blocktimeMs: blocktime,
          pagesRead: this.pagesRead,
          zeroPages: file.zero.count(),
        },
      };
    } finally {
      this.loadingDone = true;
      this.ring.close();
      this.ring.interrupt();
      await vm.close();
    }
  }

  /** The eager restore: every page with contents read and installed, in order. */
  private loadAll(): void {
    const { file, vm } = this;
    for (let first = 0; first < file.pages; first += LOAD_CHUNK_PAGES) {
      const count = Math.min(LOAD_CHUNK_PAGES, file.pages - first);
      this.readChunk(first, count);
      for (let i = 0; i < count; i++) {
        // A page never written reads as zeros already.
        if (!file.zero.test(first + i)) vm.pages.install(first + i, this.chunk, i * PAGE_SIZE);
      }
      this.options.onProgress?.(first + count, file.pages);
    }
  }

  private readChunk(first: number, count: number): void {
    this.file.readPages(first, count, this.chunk);
    this.pagesRead += count;
  }

  /**
   * The lazy restore's loader: a chunk at a time, its missing pages
   * installed and released as runs. Faults come first: the ring is drained
   * before each chunk, and the loader yields between chunks. It carries on
   * in order, and moves to where the guest faults only when its faults come
   * in runs (FaultLocality, as the post-copy pusher does).
   */
  private async loadInBackground(): Promise<void> {
    const memory = this.memory!;
    const pages = this.file.pages;
    let turnAt = performance.now();
    while (this.loaded < pages && this.failure === null) {
      this.serveRequests();
      const first = this.cursor;
      const count = Math.min(LOAD_CHUNK_PAGES, pages - first);
      this.cursor = first + count === pages ? 0 : first + count;
      let run = -1;
      const release = (end: number) => {
        if (run < 0) return;
        memory.releaseRun(run, end - run);
        for (let page = run; page < end; page++) this.received(page);
        run = -1;
      };
      let read = false;
      for (let i = 0; i < count; i++) {
        const page = first + i;
        if (this.ring.isReceived(page)) {
          release(page);
          continue;
        }
        const zero = this.file.zero.test(page);
        if (!zero && !read) {
          this.stopOnError(() => this.readChunk(first, count));
          if (this.failure) return;
          read = true;
        }
        if (memory.install) {
          memory.install(page, this.chunk, zero ? -1 : i * PAGE_SIZE);
          if (run < 0) run = page;
        } else {
          memory.place(page, this.chunk, zero ? -1 : i * PAGE_SIZE);
          this.received(page);
        }
      }
      release(first + count);
      this.ring.installed();
      this.options.onProgress?.(this.loaded, pages);
      // The event loop's turn (asynchronous faults, the ring's waiter) every
      // millisecond or so, not every chunk: a turn costs as much as a chunk.
      if (performance.now() - turnAt >= 1) {
        await new Promise((resolve) => setImmediate(resolve));
        turnAt = performance.now();
      }
    }
    if (this.failure) return;
    this.loadingDone = true;
    memory.finish();
    this.ring.interrupt();
  }

  /** Serve the vCPU faults waiting in the ring now. */
  private serveRequests(): void {
    const out = this.requests;
    out.length = 0;
    if (this.ring.drain(out) === 0) return;
    for (const page of out) {
      if (this.locality.inRun(page)) this.cursor = page - (page % LOAD_CHUNK_PAGES);
      this.stopOnError(() => this.load(page));
    }
    this.ring.installed();
  }

  /** vCPU faults from the fault ring while the loader waits for its next turn. */
  private async serveFaults(): Promise<void> {
    while (!this.loadingDone) {
      await this.ring.requestsPending();
      this.serveRequests();
    }
  }

  private readonly onAsyncFault = (page: number): void => {
    this.asyncFaults++;
    if (page < 0 || page >= this.file.pages) {
      this.stopOnError(() => {
        throw new SnapshotError(`a fault outside guest RAM (page ${page})`);
      });
      return;
    }
    this.stopOnError(() => this.load(page));
    this.ring.installed();
  };

  /** Read one page from the file and let the guest have it (a fault's page). */
  private load(page: number): void {
    if (this.ring.isReceived(page) || this.loadingDone) return;
    const zero = this.file.zero.test(page);
    if (!zero) {
      this.file.readPages(page, 1, this.page);
      this.pagesRead++;
    }
    this.memory!.place(page, this.page, zero ? -1 : 0);
    this.received(page);
  }

  private received(page: number): void {
    this.ring.markReceived(page);
    this.loaded++;
  }

  /** Run `step`; an error it throws stops the restore (the vCPUs stop waiting for pages). */
  private stopOnError(step: () => void): void {
    if (this.failure) return;
    try {
      step();
    } catch (error) {
      this.failure = error as Error;
      this.ring.close();
      this.wakeFailed?.(this.failure);
    }
  }

  private wakeFailed: ((error: Error) => void) | null = null;

  private failed(): Promise<never> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<never>((_, reject) => (this.wakeFailed = reject));
  }
}
