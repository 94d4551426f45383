import { Worker } from "node:worker_threads";
import { Host } from "../../host/host.js";
import { PAGE_SIZE } from "../../host/host-memory.js";
import type { BackingPageSize } from "../../host/page-cache.js";
import { Kvm } from "../../kvm/kvm.js";
import { MEM_GUEST_MEMFD } from "../../kvm/uapi.js";
import type { Vcpu } from "../../kvm/vcpu.js";
import type { UserMemoryRegion2, Vm } from "../../kvm/vm.js";
import {
  type BlockDeviceWorker,
  createVirtioBlk,
  restoreVirtioBlkState,
  saveVirtioBlkState,
  startBlockDeviceWorker,
  type VirtioBlkDevice,
  type VirtioBlkSavedState,
} from "../../kvm/virtio/index.js";
import { checkGuestRamBytes, GuestRam, RAM_BASE, RAM_SLOT } from "../../vmm/guest-ram.js";
import {
  createUartState,
  restoreUartState,
  saveUartState,
  type UartSavedState,
} from "../../vmm/uart16550.js";
import type { MigrationBacking, MigrationConfig } from "../config.js";
import type { FaultRing } from "../fault-ring.js";
import { RamPages } from "../ram-pages.js";
import {
  DIRTIER_BLK_BASE,
  DIRTIER_DATA_OFFSET,
  DIRTIER_DISK_PAGES,
  type DirtierParams,
  dirtierDisk,
  dirtierWorkload,
  fillInitialPattern,
  loadDirtier,
} from "./dirtier.js";
import type { VcpuStartMessage, VcpuWorkerData, VcpuWorkerMessage } from "./vcpu-worker.js";
import {
  bootVcpuState,
  restoreVcpuState,
  savedRegister,
  saveVcpuState,
  type VcpuState,
  vcpuStateFromJson,
  vcpuStateToJson,
} from "./vcpu-state.js";
import { VmControl } from "./vm-control.js";

export interface MigratableVmSpec extends DirtierParams {
  backing: MigrationBacking;
  pageSize: BackingPageSize;
}

/** A vCPU as migration carries it: stopped at a ucall, or finished with its checksum. */
export type SavedVcpu = { done: false; state: VcpuState } | { done: true; checksum: number };

/** The device state a switchover carries besides the vCPUs'. */
export interface DeviceStates {
  uart: UartSavedState;
  blk: VirtioBlkSavedState;
}

export const DIRTIER_GUEST = "dirtier-2";

/**
 * The VM a migration moves, in one process: host kernel, KVM, a VM with its
 * RAM in one memslot, and one worker thread per vCPU running the dirtier
 * workload. It pauses its vCPUs at an exit boundary (the next ucall) and
 * hands over their state, and starts from such state on the destination.
 *
 * This is migration's own small VMM rather than the VMM's Machine because
 * Machine cannot yet pause its vCPUs at an exit boundary, save their state
 * and start from saved state, nor run a vCPU thread that waits in a fault
 * ring; it uses only the KVM UAPI and GuestRam, as Machine does. Its
 * devices: the vCPUs' own (registers, CSRs, timer, SBI HSM and steal-time
 * registration), the UART (emulated on the vCPU threads' MMIO exits), and a
 * read-only virtio-blk disk served in the hypervisor by a block worker
 * thread. Both ends build the same disk (it stands for shared storage); its
 * device state moves at switchover with the vCPUs'.
 */
export class MigratableVm {
  readonly host: Host;
  readonly kvm: Kvm;
  readonly vm: Vm;
  readonly ram: GuestRam;
  readonly pages: RamPages;
  readonly control = VmControl.create();
  private readonly uart = createUartState();
  private readonly blk: VirtioBlkDevice;
  private blkWorker: BlockDeviceWorker | null = null;
  private workers: Worker[] = [];
  private ready: Promise<void> | null = null;
  private vcpus: (SavedVcpu | null)[];
  private waiters: (() => void)[] = [];
  private failure: Error | null = null;
  /** A vCPU of a VM that never runs, per vCPU: where checkVcpuStates loads states (made on first use). */
  private stateCheckers: Vcpu[] | null = null;
  /** performance.now() when the vCPUs last started. */
  startedAt = 0;
  /** performance.now() and progress() when the first vCPU finished its workload (0 before). */
  firstDoneAt = 0;
  progressAtFirstDone = 0;

  private constructor(
    readonly spec: MigratableVmSpec,
    /** A destination's vCPU threads warm up before they report ready (createScratchVm). */
    private readonly warmUpVcpus = false,
  ) {
    // Before the host is made: it is sized from the guest.
    checkGuestRamBytes(spec.memBytes, spec.pageSize);
    const gib = 2 ** 30;
    this.host = Host.create({ ramBytes: Math.ceil(spec.memBytes / gib) * gib * 2 + 2 * gib });
    this.kvm = Kvm.open(this.host);
    this.vm = this.kvm.createVm();
    this.ram = GuestRam.create(this.host, this.vm, {
      backing: spec.backing,
      bytes: spec.memBytes,
      pageSize: spec.pageSize,
    });
    this.pages = new RamPages(this.host, this.ram.share);
    const disk = this.host.memfdCreate("dirtier-disk", DIRTIER_DISK_PAGES * PAGE_SIZE);
    this.host.memfds.pwrite(disk, dirtierDisk(), 0);
    this.blk = createVirtioBlk(this.vm, { gpa: DIRTIER_BLK_BASE, memfd: disk, readOnly: true });
    this.host.close(disk);
    for (let id = 0; id < spec.vcpus; id++) this.vm.createVcpuRecord(id);
    this.vcpus = new Array<SavedVcpu | null>(spec.vcpus).fill(null);
  }

  /** A VM with the workload loaded and its data pages filled, not yet running. */
  static boot(spec: MigratableVmSpec): { vm: MigratableVm; start: SavedVcpu[] } {
    const machine = new MigratableVm(spec);
    const entry = loadDirtier(machine.ram, spec);
    const chunk = Buffer.alloc(256 * PAGE_SIZE);
    const first = DIRTIER_DATA_OFFSET / PAGE_SIZE;
    for (let page = first; page < machine.pages.pages; page += 256) {
      const n = Math.min(256, machine.pages.pages - page);
      fillInitialPattern(chunk.subarray(0, n * PAGE_SIZE), page);
      for (let i = 0; i < n; i++) machine.pages.install(page + i, chunk, i * PAGE_SIZE);
    }
    const start: SavedVcpu[] = [];
    for (let id = 0; id < spec.vcpus; id++) {
      start.push({ done: false, state: bootVcpuState(entry, id) });
    }
    return { vm: machine, start };
  }

  /**
   * An empty VM of the same shape, for the destination: memory and state
   * come by migration. Its vCPU threads warm up before they report ready.
   */
  static incoming(spec: MigratableVmSpec): MigratableVm {
    return new MigratableVm(spec, true);
  }

  config(faultMechanism: MigrationConfig["faultMechanism"]): MigrationConfig {
    return {
      memBytes: this.spec.memBytes,
      pageSize: this.spec.pageSize,
      vcpus: this.spec.vcpus,
      backing: this.spec.backing,
      faultMechanism,
      guest: DIRTIER_GUEST,
      workload: dirtierWorkload(this.spec),
    };
  }

  get ramBase(): number {
    return RAM_BASE;
  }

  /** The RAM memslot as KVM_SET_USER_MEMORY_REGION2 describes it (to change its flags). */
  get region(): UserMemoryRegion2 {
    return {
      slot: RAM_SLOT,
      flags: this.spec.backing === "guest_memfd" ? MEM_GUEST_MEMFD : 0,
      guestPhysAddr: RAM_BASE,
      memorySize: this.spec.memBytes,
      userspaceAddr: this.ram.share.hva,
    };
  }

  /**
   * Create the vCPU threads and the block device's worker and let them
   * attach; the vCPUs wait for their state. Resolves once every thread is
   * ready (a destination does this at setup).
   */
  prepare(): Promise<void> {
    if (this.ready) return this.ready;
    let pending = this.spec.vcpus;
    this.blkWorker = startBlockDeviceWorker(this.kvm, this.vm, this.blk);
    const scratch = this.warmUpVcpus ? this.createScratchVm() : null;
    const vcpusReady = new Promise<void>((resolve, reject) => {
      for (let id = 0; id < this.spec.vcpus; id++) {
        const data: VcpuWorkerData = {
          migrationVcpu: true,
          host: this.host.share(),
          kvm: this.kvm.offset,
          vm: this.vm.offset,
          id,
          control: this.control.buffer,
          uart: this.uart,
          warmUp: scratch && { vm: scratch.vm.offset, entry: scratch.entry },
        };
        const worker = new Worker(new URL("./vcpu-worker.js", import.meta.url), {
          workerData: data,
        });
        worker.on("message", (message: VcpuWorkerMessage) => {
          if (message.type === "ready") {
            if (--pending === 0) resolve();
            return;
          }
          this.onMessage(message);
        });
        worker.on("error", (error) => {
          reject(error);
          this.fail(error);
        });
        this.workers[id] = worker;
      }
    });
    this.ready = Promise.all([vcpusReady, this.blkWorker.online]).then(() => scratch?.remove());
    return this.ready;
  }

  /**
   * A VM for the destination's vCPU threads to warm the interpreter on
   * before any guest state arrives: a cold thread runs its first hundred
   * guest iterations 10-100 times slower, which would fall right after the
   * switchover. It runs the dirtier on hart ids 1 and up (hart 0 drives the
   * devices) in RAM of the same backing, and is removed once every thread
   * is ready.
   */
  private createScratchVm(): { vm: Vm; entry: number; remove: () => void } {
    const bytes = 4 << 20;
    const backing = this.spec.backing;
    const vm = this.kvm.createVm();
    const ram = GuestRam.create(this.host, vm, { backing, bytes, pageSize: PAGE_SIZE });
    const entry = loadDirtier(ram, {
      memBytes: bytes,
      vcpus: this.spec.vcpus + 1,
      iterations: 2 ** 30,
      storesPerIteration: 32,
      ioEvery: 0,
    });
    for (let id = 0; id < this.spec.vcpus; id++) vm.createVcpuRecord(id);
    const remove = () => {
      vm.setUserMemoryRegion2({
        slot: RAM_SLOT,
        flags: backing === "guest_memfd" ? MEM_GUEST_MEMFD : 0,
        guestPhysAddr: RAM_BASE,
        memorySize: 0,
        userspaceAddr: ram.share.hva,
      });
      if (ram.share.fd >= 0) this.host.close(ram.share.fd);
      if (backing !== "guest_memfd") this.host.munmap(ram.share.hva, bytes);
      vm.destroy();
    };
    return { vm, entry, remove };
  }

  /** Start the vCPUs from saved state; finished vCPUs stay finished. */
  async start(saved: SavedVcpu[]): Promise<void> {
    await this.prepare();
    this.startNow(saved);
  }

  /**
   * The vCPU whose thread has this id as gettid() names it (a userfaultfd
   * message's ptid), or -1.
   */
  vcpuOfThread(tid: number): number {
    return this.workers.findIndex((w) => process.pid + w.threadId === tid);
  }

  /**
   * Load the devices' state a migration brought, before the vCPUs start
   * (ErrnoError or RangeError for state these devices cannot take).
   */
  restoreDevices(devices: DeviceStates): void {
    restoreUartState(this.uart, devices.uart);
    restoreVirtioBlkState(this.blk, devices.blk);
  }

  /**
   * Load each saved vCPU state into a vCPU of a VM that never runs, by the
   * KVM_SET_ONE_REG and KVM_SET_MP_STATE calls its own thread will make: a
   * state this KVM refuses (a register it lacks, a value it rejects) is
   * found before any vCPU starts, while the source may still run its guest
   * on, instead of failing a vCPU thread once the guest runs here. Throws an
   * Error naming the vCPU.
   */
  checkVcpuStates(saved: SavedVcpu[]): void {
    const checkers = (this.stateCheckers ??= this.createStateCheckers());
    saved.forEach((vcpu, id) => {
      if (vcpu.done) return;
      try {
        restoreVcpuState(checkers[id], vcpu.state);
      } catch (error) {
        throw new Error(`vCPU ${id} state refused: ${(error as Error).message}`);
      }
    });
  }

  /** Make the vCPUs checkVcpuStates loads into, and check their reset state once: out of the downtime. */
  prepareVcpuStateCheck(): void {
    const checkers = (this.stateCheckers ??= this.createStateCheckers());
    this.checkVcpuStates(checkers.map((vcpu) => ({ done: false, state: saveVcpuState(vcpu) })));
  }

  private createStateCheckers(): Vcpu[] {
    const vm = this.kvm.createVm();
    return Array.from({ length: this.spec.vcpus }, (_, id) => {
      vm.createVcpuRecord(id);
      return this.kvm.attachVcpu(vm, id);
    });
  }

  /**
   * Start prepared vCPU threads at once (within the downtime: no await).
   * After a migration, `lastProgressWallMs` says when each vCPU's last
   * iteration ended on the source, so that its first stall here is counted
   * from there.
   */
  startNow(
    saved: SavedVcpu[],
    ring: FaultRing | null = null,
    lastProgressWallMs: number[] | null = null,
  ): void {
    if (this.workers.length !== this.spec.vcpus) throw new Error("vCPU threads not prepared");
    this.startedAt = performance.now();
    saved.forEach((vcpu, id) => {
      this.vcpus[id] = vcpu.done ? vcpu : null;
      if (vcpu.done) {
        this.control.setIterations(id, this.spec.iterations);
        return;
      }
      // The dirtier counts its iterations in s7 (x23).
      this.control.setIterations(id, Number(savedRegister(vcpu.state, 23) & 0x7fff_ffffn));
      const start: VcpuStartMessage = {
        state: vcpu.state,
        faultRing: ring ? ring.layout : null,
        lastProgressWallMs: lastProgressWallMs ? lastProgressWallMs[id] : null,
      };
      this.workers[id].postMessage(start);
    });
  }

  private onMessage(message: VcpuWorkerMessage): void {
    if (message.type === "ready") return;
    if (message.type === "error") {
      this.fail(new Error(message.message));
      return;
    }
    if (message.type === "done" && this.firstDoneAt === 0) {
      this.firstDoneAt = performance.now();
      this.progressAtFirstDone = this.progress();
    }
    this.vcpus[message.id] =
      message.type === "done"
        ? { done: true, checksum: message.checksum }
        : { done: false, state: message.state };
    this.wake();
  }

  private fail(error: Error): void {
    this.failure ??= error;
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private async until(done: () => boolean): Promise<void> {
    while (!done()) {
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    if (this.failure) throw this.failure;
  }

  /** Park every vCPU at its next ucall; resolves with their state. */
  async pause(): Promise<SavedVcpu[]> {
    this.vcpus = this.vcpus.map((v) => (v?.done ? v : null));
    this.control.requestPause();
    await this.until(() => this.vcpus.every((v) => v !== null));
    return this.vcpus as SavedVcpu[];
  }

  /**
   * The devices' state, with the vCPUs paused: the block worker is paused
   * first (it finishes a request in flight), so nothing moves after it.
   */
  async saveDevices(): Promise<DeviceStates> {
    await this.blkWorker?.pause();
    return { uart: saveUartState(this.uart), blk: saveVirtioBlkState(this.blk) };
  }

  /** Let paused vCPUs and devices run on (a migration that failed before switchover). */
  resume(): void {
    this.blkWorker?.resume();
    this.vcpus = this.vcpus.map((v) => (v?.done ? v : null));
    this.control.resume();
  }

  /** Resolves with every vCPU's checksum once all have finished. */
  async finished(): Promise<number[]> {
    await this.until(() => this.vcpus.every((v) => v?.done === true));
    return this.vcpus.map((v) => (v?.done === true ? v.checksum : 0));
  }

  /** Whether every vCPU has finished. */
  get allDone(): boolean {
    return this.vcpus.every((v) => v?.done === true);
  }

  /** The workload's iterations so far, summed over vCPUs. */
  progress(): number {
    let n = 0;
    for (let id = 0; id < this.spec.vcpus; id++) n += this.control.iterations(id);
    return n;
  }

  /**
   * Start a new window for measuring stalls: maxStallMs then covers the
   * iterations that start from now on, closedWindowStallMs those that
   * started before.
   */
  closeStallWindow(): void {
    this.control.closeStallWindow();
  }

  /** The longest gap between two iterations any vCPU saw in the current window. */
  maxStallMs(): number {
    return this.maxOverVcpus((id) => this.control.maxStallMs(id));
  }

  /** The longest in the window closed last (complete once every vCPU went on). */
  closedWindowStallMs(): number {
    return this.maxOverVcpus((id) => this.control.closedWindowStallMs(id));
  }

  /** The longest first gap of a vCPU since it started (on a destination: across the switchover). */
  firstStallMs(): number {
    return this.maxOverVcpus((id) => this.control.firstStallMs(id));
  }

  private maxOverVcpus(value: (id: number) => number): number {
    let max = 0;
    for (let id = 0; id < this.spec.vcpus; id++) max = Math.max(max, value(id));
    return max;
  }

  /** When each vCPU's last iteration ended (wall-clock ms; read with the vCPUs paused). */
  lastProgressWallMs(): number[] {
    return Array.from({ length: this.spec.vcpus }, (_, id) => this.control.lastProgressWallMs(id));
  }

  async close(): Promise<void> {
    this.control.leave();
    // Terminated, not stopped: the block worker may sleep on a userfault no one will release.
    const threads = [...this.workers, ...(this.blkWorker ? [this.blkWorker.worker] : [])];
    await Promise.all(threads.map((w) => w.terminate()));
    this.workers = [];
    this.blkWorker = null;
  }
}

/** Saved vCPUs as JSON values (the SWITCHOVER message and snapshot files carry them so). */
export function savedVcpusToJson(saved: SavedVcpu[]): unknown[] {
  return saved.map((v) => (v.done ? v : { done: false, state: vcpuStateToJson(v.state) }));
}

/** The inverse of savedVcpusToJson, for `vcpus` vCPUs; throws on anything else. */
export function savedVcpusFromJson(raw: unknown, vcpus: number): SavedVcpu[] {
  if (!Array.isArray(raw) || raw.length !== vcpus) {
    throw new Error(
      `vCPU state for ${Array.isArray(raw) ? raw.length : "?"} vCPUs, expected ${vcpus}`,
    );
  }
  return (raw as ({ done: true; checksum: number } | { done: false; state: unknown })[]).map((v) =>
    v.done
      ? { done: true, checksum: v.checksum }
      : { done: false, state: vcpuStateFromJson(v.state) },
  );
}

/** vCPU state as the SWITCHOVER message carries it. */
export function encodeVcpuStates(saved: SavedVcpu[]): Buffer {
  return Buffer.from(JSON.stringify(savedVcpusToJson(saved)));
}

export function decodeVcpuStates(bytes: Buffer, vcpus: number): SavedVcpu[] {
  return savedVcpusFromJson(JSON.parse(bytes.toString()), vcpus);
}
