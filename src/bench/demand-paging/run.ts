import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { FAULT_WRITE, MAP_SHARED, PROT_READ, PROT_WRITE } from "../../host/address-space.js";
import { Host } from "../../host/host.js";
import { HostMemory, PAGE_SIZE } from "../../host/host-memory.js";
import {
  O_NONBLOCK,
  UFFD_API,
  UFFD_FEATURE_MINOR_SHMEM,
  UFFD_FEATURE_MISSING_HUGETLBFS,
  UFFD_FEATURE_MISSING_SHMEM,
  UFFD_FEATURE_THREAD_ID,
  UFFDIO_REGISTER_MODE_MINOR,
  UFFDIO_REGISTER_MODE_MISSING,
} from "../../host/userfaultfd.js";
import { Kvm } from "../../kvm/kvm.js";
import {
  CAP_USERFAULT,
  MEM_USERFAULT,
  MEMORY_ATTRIBUTE_USERFAULT,
  USERFAULT_ENABLE,
} from "../../kvm/uapi.js";
import type { Vm } from "../../kvm/vm.js";
import { bundledGuestSource } from "../../guests/index.js";
import { assemble } from "../../riscv/asm/index.js";
import { physicalEntry } from "../../riscv/elf/index.js";
import type { ProgramImage } from "../../riscv/elf/image.js";
import { GuestRam, RAM_BASE } from "../../vmm/guest-ram.js";
import { PageInstaller } from "./installer.js";
import { type LatencySummary, summarize } from "./latency.js";
import { warmMachineMemory } from "./machine-warmup.js";
import { createTestMemory, createUserfaultBitmap, type TestMemory, touchPages } from "./memory.js";
import {
  backingPageSize,
  DEFAULT_OPTIONS,
  type DemandPagingOptions,
  resolveWorkers,
  validateOptions,
} from "./options.js";
import type { ReaderThreadData, ReaderThreadMessage } from "./reader-thread.js";
import {
  ARG_CHECK_DATA,
  ARG_HISTOGRAMS,
  ARG_PASSES,
  ARG_REMOTE_MASK,
  ARG_SEED,
  ARG_TEST_GPA,
  ARG_VCPUS,
  createSharedBuffers,
  CTL_GO,
  CTL_PARKED,
  CTL_PASS,
  CTL_STOP,
  fillRemote,
  HISTOGRAM_BUCKETS,
  HISTOGRAM_BYTES,
  HISTOGRAMS_OFFSET,
  nowMs,
  PAGE_MISSING,
  type SharedBuffers,
  TEST_GPA,
  TIME_PASS_END,
  TIME_WORDS,
  VCPU_ARGS_BYTES,
  VCPU_GPA,
  VCPU_HISTOGRAM_BYTES,
  VCPU_MAX_LATENCY,
  VCPU_PAGES,
} from "./shared.js";
import type { KvmUserfaultConfig, VcpuThreadData, VcpuThreadMessage } from "./vcpu-thread.js";

export type DemandPagingMode = "kvm-userfault" | "uffd-MISSING" | "uffd-MINOR";

export interface DemandPagingLimits {
  /** The guest touching present pages (no userfault in the way), memory in the same state. */
  touchPagesPerSecond: number;
  /** This machine copying and installing 4 KiB pages, one thread, nothing else in the way. */
  copyInstallPagesPerSecond: number;
  /** The state both were measured in: "fresh" (never touched by the host) or "prefaulted". */
  memory: "fresh" | "prefaulted";
  /** Beside them, for the first-touch investigation (BENCHMARKS.md). */
  copyIntoPrefaultedPagesPerSecond: number;
  /** Private memory: a copy into frames another mapping freed (null for shared memory). */
  copyIntoReusedPagesPerSecond: number | null;
  firstTouchPagesPerSecond: number;
  /** 4 KiB pages each limit was measured over. */
  samplePages: number;
}

export interface DemandPagingResult {
  mode: DemandPagingMode;
  /** -k -u MINOR: the userfaultfd beside KVM Userfault. */
  uffdMode: "MISSING" | "MINOR" | null;
  userfaultApi: "attributes" | "memslot-bitmap" | null;
  backing: string;
  vcpus: number;
  workers: number;
  readers: number;
  uffds: number;
  overlap: boolean;
  delayUs: number;
  bytesPerVcpu: number;
  /** 4 KiB pages demand-paged (each exactly once). */
  pages: number;
  seconds: number;
  pagesPerSecond: number;
  perVcpuPagesPerSecond: number[];
  /** Latency of the guest's first access to each page, as the vCPU saw it (rdtime around it). */
  faultLatencyUs: LatencySummary;
  perVcpuFaultLatencyUs: LatencySummary[];
  /** -k: MEMORY_FAULT exits handled; userfaultfd: faults resolved by the readers. */
  faults: number;
  /** The guest's second pass over the now present pages. */
  presentPassPagesPerSecond: number;
  limits: DemandPagingLimits;
  /** --pretouch: the VMM touched the memory ahead of the vCPUs. */
  pretouch: boolean;
  /** --machine-warmup: bytes a child process touched and freed before the run (0 without). */
  machineWarmupBytes: number;
  /** The guest checked every page's data and its own markers; every page was installed once. */
  verified: boolean;
}

/** Pages the limits are measured over (at most). */
const LIMIT_SAMPLE_PAGES = 32768;
/** Pages each vCPU thread walks in the warm-up run (at most). */
const WARMUP_PAGES = 16384;
/** The measured run: pass 0 demand-pages, pass 1 walks the present pages again. */
const MEASURED_PASSES = 2;
const SEED = 0x2f6e_1d35;

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** Test memory of a run, with room for the warm-up pages and padding. */
function testBytes(o: DemandPagingOptions): number {
  const pageSize = backingPageSize(o.backing);
  const region = o.bytesPerVcpu + roundUp(WARMUP_PAGES * PAGE_SIZE, pageSize);
  return o.overlap ? region : o.vcpus * region;
}

/** The limits' memory: three copy targets, then the guest's, whole huge frames for each piece. */
function limitBytes(o: DemandPagingOptions): number {
  const unit = backingPageSize(o.backing);
  return (
    3 * roundUp(LIMIT_SAMPLE_PAGES * PAGE_SIZE, unit) +
    o.vcpus * 2 * roundUp(LIMIT_SAMPLE_PAGES * PAGE_SIZE, unit)
  );
}

/** Host RAM to reserve (address space; committed only when touched): what the run may use. */
function hostRamBytes(bytes: number, o: DemandPagingOptions): number {
  const pageSize = backingPageSize(o.backing);
  // Huge frames come whole from 1 GiB chunks; code, bitmaps and page tables need a few more.
  return roundUp(bytes + Math.max(pageSize, 1 << 30) * 2, 1 << 30);
}

function modeOf(o: DemandPagingOptions): DemandPagingMode {
  if (o.kvmUserfault) return "kvm-userfault";
  return o.uffdMode === "MINOR" ? "uffd-MINOR" : "uffd-MISSING";
}

interface GuestVm {
  vm: Vm;
  ram: GuestRam;
  entry: number;
  argsGpa: number;
}

let cachedProgram: ProgramImage | null = null;

function memstress(): ProgramImage {
  cachedProgram ??= assemble(bundledGuestSource("memstress"), { fileName: "memstress.s" }).image;
  return cachedProgram;
}

/** A VM with the memstress guest loaded in slot 0 and `vcpus` vCPUs (the test memory comes after). */
function createGuestVm(host: Host, kvm: Kvm, vcpus: number): GuestVm {
  const image = memstress();
  const vm = kvm.createVm();
  const bytes = roundUp(HISTOGRAMS_OFFSET + vcpus * VCPU_HISTOGRAM_BYTES, 2 << 20);
  const ram = GuestRam.create(host, vm, { backing: "anonymous", bytes, pageSize: PAGE_SIZE });
  for (const segment of image.segments) {
    const data = new Uint8Array(segment.memSize);
    data.set(segment.data);
    ram.write(segment.physAddr, data);
  }
  const args = image.symbols.get("memstress_args");
  if (args === undefined) throw new Error("memstress.s lost its memstress_args symbol");
  for (let id = 0; id < vcpus; id++) vm.createVcpuRecord(id);
  return { vm, ram, entry: physicalEntry(image), argsGpa: Number(args) };
}

/**
 * Where each vCPU's pages are: its region of `strideBytes` holds the pages
 * it walks in the measured run, then those of the warm-up run (which
 * compiles every thread's code before anything is timed). With -o all vCPUs
 * walk one region.
 */
interface Layout {
  vcpus: number;
  overlap: boolean;
  /** Pages each vCPU walks in the measured run (with -o: all of them). */
  pages: number;
  warmPages: number;
  /** Offset of the warm-up pages in a region. */
  warmOffset: number;
  strideBytes: number;
  bytes: number;
}

function planLayout(
  vcpus: number,
  overlap: boolean,
  pages: number,
  pageSize: number,
  threads: number,
): Layout {
  const warmPages = Math.min(
    pages,
    threads >= vcpus ? WARMUP_PAGES : Math.max(256, Math.ceil((WARMUP_PAGES * threads) / vcpus)),
  );
  const warmOffset = roundUp(pages * PAGE_SIZE, pageSize);
  const strideBytes = warmOffset + roundUp(warmPages * PAGE_SIZE, pageSize);
  return {
    vcpus,
    overlap,
    pages,
    warmPages,
    warmOffset,
    strideBytes,
    bytes: overlap ? strideBytes : vcpus * strideBytes,
  };
}

/** True for a page the measured run walks (not a warm-up page or padding). */
function isMeasuredPage(layout: Layout, page: number): boolean {
  return page % (layout.strideBytes / PAGE_SIZE) < layout.pages;
}

function writeGuestArgs(
  g: GuestVm,
  layout: Layout,
  warmup: boolean,
  remotePages: number,
  checkData: boolean,
  passes = MEASURED_PASSES,
): void {
  const bytes = new Uint8Array(ARG_VCPUS + layout.vcpus * VCPU_ARGS_BYTES);
  const view = new DataView(bytes.buffer);
  const put = (at: number, value: number) => view.setBigUint64(at, BigInt(value), true);
  put(ARG_TEST_GPA, TEST_GPA);
  put(ARG_REMOTE_MASK, remotePages - 1);
  put(ARG_SEED, SEED);
  put(ARG_PASSES, warmup ? 1 : passes);
  put(ARG_HISTOGRAMS, RAM_BASE + HISTOGRAMS_OFFSET);
  put(ARG_CHECK_DATA, checkData ? 1 : 0);
  for (let id = 0; id < layout.vcpus; id++) {
    const at = ARG_VCPUS + id * VCPU_ARGS_BYTES;
    const region = TEST_GPA + (layout.overlap ? 0 : id * layout.strideBytes);
    put(at + VCPU_GPA, region + (warmup ? layout.warmOffset : 0));
    put(at + VCPU_PAGES, warmup ? layout.warmPages : layout.pages);
  }
  g.ram.write(g.argsGpa, bytes);
  // The measured run's histograms start empty.
  g.ram.write(RAM_BASE + HISTOGRAMS_OFFSET, new Uint8Array(layout.vcpus * VCPU_HISTOGRAM_BYTES));
}

interface ThreadRun {
  start: number;
  /** Per vCPU, per pass: when it ended (ms). */
  passEnd: number[][];
  /** When the last pass began (all vCPUs had finished the one before). */
  passStart: number[];
}

/**
 * Start the threads and wait until all are ready; run the warm-up phase,
 * call `between` (which points the guest at the measured region), then let
 * every thread go at once and wait for the vCPUs.
 */
async function runThreads(
  shared: SharedBuffers,
  vcpuData: VcpuThreadData[],
  readerData: ReaderThreadData[],
  vcpus: number,
  passes: number,
  between: () => void,
): Promise<ThreadRun> {
  const control = new Int32Array(shared.control);
  const times = new Float64Array(shared.times);
  const workers: Worker[] = [];
  const counts = { ready: 0, warm: 0, finished: 0, readersFinished: 0 };
  const total = vcpuData.length + readerData.length;
  const waiters: { key: keyof typeof counts; target: number; resolve: () => void }[] = [];
  let failure: Error | null = null;
  let rejectAll: (error: Error) => void = () => {};
  const failed = new Promise<never>((_, reject) => {
    rejectAll = reject;
  });
  failed.catch(() => {});
  const fail = (error: Error) => {
    failure ??= error;
    rejectAll(failure);
  };
  const bump = (key: keyof typeof counts) => {
    counts[key]++;
    for (const w of waiters) if (w.key === key && counts[key] >= w.target) w.resolve();
  };
  const reach = (key: keyof typeof counts, target: number) =>
    Promise.race([
      new Promise<void>((resolve) => {
        if (counts[key] >= target) resolve();
        else waiters.push({ key, target, resolve });
      }),
      failed,
    ]);
  const spawn = (file: string, data: VcpuThreadData | ReaderThreadData, reader: boolean) => {
    const worker = new Worker(new URL(file, import.meta.url), { workerData: data });
    workers.push(worker);
    worker.on("message", (message: VcpuThreadMessage | ReaderThreadMessage) => {
      if (message.type === "error") fail(new Error(message.message));
      else if (message.type === "finished") bump(reader ? "readersFinished" : "finished");
      else bump(message.type);
    });
    worker.on("error", (error) => fail(error));
    worker.on("exit", (code) => {
      if (code !== 0 && Atomics.load(control, CTL_STOP) === 0) {
        fail(new Error(`a benchmark thread exited with code ${code}`));
      }
    });
  };
  const go = (phase: number) => {
    Atomics.store(control, CTL_GO, phase);
    Atomics.notify(control, CTL_GO);
  };
  try {
    for (const data of readerData) spawn("./reader-thread.js", data, true);
    for (const data of vcpuData) spawn("./vcpu-thread.js", data, false);
    await reach("ready", total);
    go(1);
    await reach("warm", vcpuData.length);
    between();
    Atomics.store(control, CTL_PARKED, 0);
    Atomics.store(control, CTL_PASS, 0);
    times.fill(0);
    const start = nowMs();
    times[vcpus * TIME_WORDS] = start;
    go(2);
    await reach("finished", vcpuData.length);
    Atomics.store(control, CTL_STOP, 1);
    await reach("readersFinished", readerData.length);
    const passEnd: number[][] = [];
    for (let id = 0; id < vcpus; id++) {
      passEnd.push(
        Array.from({ length: passes }, (_, p) => times[id * TIME_WORDS + TIME_PASS_END + p]),
      );
    }
    const passStart = Array.from({ length: passes }, (_, p) => times[vcpus * TIME_WORDS + p]);
    return { start, passEnd, passStart };
  } finally {
    Atomics.store(control, CTL_STOP, 1);
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

function vcpuThreads(
  count: number,
  vcpus: number,
  base: Omit<VcpuThreadData, "ids">,
): VcpuThreadData[] {
  const threads: VcpuThreadData[] = [];
  for (let t = 0; t < count; t++) {
    const ids: number[] = [];
    for (let id = t; id < vcpus; id += count) ids.push(id);
    threads.push({ ...base, ids });
  }
  return threads;
}

function remoteBytes(o: DemandPagingOptions): number {
  const unitPages = backingPageSize(o.backing) / PAGE_SIZE;
  const uffdCopies = o.uffdMode === "MISSING";
  return Math.max(o.remotePages, uffdCopies ? unitPages : 1) * PAGE_SIZE;
}

/**
 * The two limits, on memory in the state the demand-paged memory starts in:
 * (1) the copy-and-install rate of one thread into a fresh mapping of the
 * same backing (with, beside it, the host's first touch alone and the copy
 * into memory touched before); (2) the guest's own rate of touching pages no
 * userfault stands in front of, on the same vCPU and thread layout.
 */
async function measureLimits(
  o: DemandPagingOptions,
  prefaulted: boolean,
): Promise<DemandPagingLimits> {
  const host = Host.create({ ramBytes: hostRamBytes(limitBytes(o), o) });
  const kvm = Kvm.open(host);
  const pageSize = backingPageSize(o.backing);
  const totalPages = (o.overlap ? o.bytesPerVcpu : o.vcpus * o.bytesPerVcpu) / PAGE_SIZE;
  const sample = Math.min(totalPages, LIMIT_SAMPLE_PAGES);
  const remote = new SharedArrayBuffer(o.remotePages * PAGE_SIZE);
  fillRemote(remote, o.remotePages, SEED);

  // (1) copy and install, on the main thread, after a warm-up on memory of its own.
  const copyMemory = (pages: number) => {
    const vm = kvm.createVm();
    return createTestMemory(host, vm, {
      backing: o.backing,
      bytes: roundUp(pages * PAGE_SIZE, pageSize),
      pieces: 1,
      alias: true,
      slotFlags: 0,
    });
  };
  const fillHva = (m: TestMemory) => (m.aliasHva !== 0 ? m.aliasHva : m.slotHva);
  const timeInstall = (m: TestMemory, pages: number): number => {
    const installer = new PageInstaller(host, remote, o.remotePages, fillHva(m));
    const t0 = performance.now();
    for (let i = 0; i < pages; i++) installer.install(i);
    return pages / ((performance.now() - t0) / 1000);
  };
  timeInstall(copyMemory(Math.min(sample, 2048)), Math.min(sample, 2048));
  const fresh = copyMemory(sample);
  if (prefaulted) touchPages(host, fillHva(fresh), sample);
  const copyInstallPagesPerSecond = timeInstall(fresh, sample);
  const touched = copyMemory(sample);
  const t0 = performance.now();
  touchPages(host, fillHva(touched), sample);
  const firstTouchPagesPerSecond = sample / ((performance.now() - t0) / 1000);
  const copyIntoPrefaultedPagesPerSecond = timeInstall(touched, sample);
  // Reuse: private frames freed by munmap go back to the allocator committed
  // (and are cleared before reuse), so the next mapping's pages skip the OS's fault.
  let copyIntoReusedPagesPerSecond: number | null = null;
  if (touched.fd < 0) {
    host.munmap(touched.slotHva, touched.bytes);
    copyIntoReusedPagesPerSecond = timeInstall(copyMemory(sample), sample);
  }

  // (2) the guest touching pages with nothing in the way.
  const threads = Math.min(o.vcpus, availableParallelism());
  const layout = planLayout(
    o.vcpus,
    false,
    Math.max(1, Math.min(o.bytesPerVcpu / PAGE_SIZE, Math.floor(sample / o.vcpus))),
    pageSize,
    threads,
  );
  const g = createGuestVm(host, kvm, o.vcpus);
  const memory = createTestMemory(host, g.vm, {
    backing: o.backing,
    bytes: layout.bytes,
    pieces: 1,
    alias: false,
    slotFlags: 0,
  });
  if (prefaulted) {
    const hva = memory.slotHva !== 0 ? memory.slotHva : mapShared(host, memory.fd, 0, memory.bytes);
    touchPages(host, hva, memory.pages);
  }
  writeGuestArgs(g, layout, true, o.remotePages, false);
  const shared = createSharedBuffers(memory.pages, o.vcpus, PAGE_SIZE);
  const run = await runThreads(
    shared,
    vcpuThreads(threads, o.vcpus, {
      demandPagingVcpuThread: true,
      host: host.share(),
      kvm: kvm.offset,
      vm: g.vm.offset,
      totalVcpus: o.vcpus,
      entry: g.entry,
      passes: 1,
      shared,
      remotePages: 1,
      userfault: null,
      delayUs: 0,
    }),
    [],
    o.vcpus,
    1,
    () => writeGuestArgs(g, layout, false, o.remotePages, false, 1),
  );
  const end = Math.max(...run.passEnd.map((p) => p[0]));
  return {
    touchPagesPerSecond: (o.vcpus * layout.pages) / ((end - run.start) / 1000),
    copyInstallPagesPerSecond,
    memory: prefaulted ? "prefaulted" : "fresh",
    copyIntoPrefaultedPagesPerSecond,
    copyIntoReusedPagesPerSecond,
    firstTouchPagesPerSecond,
    samplePages: sample,
  };
}

/**
 * --pretouch: the main thread (idle while the vCPUs run) touches the
 * measured pages in the order the vCPUs walk them, a batch at a time,
 * skipping pages already installed; the event loop keeps serving the
 * threads between batches.
 */
async function pretouch(host: Host, hva: number, layout: Layout, state: Int32Array): Promise<void> {
  const regions = layout.overlap ? 1 : layout.vcpus;
  const stride = layout.strideBytes / PAGE_SIZE;
  const chunks = host.memory.chunkI32;
  const BATCH = 64;
  for (let k = 0; k < layout.pages; k += BATCH) {
    for (let r = 0; r < regions; r++) {
      for (let i = k; i < Math.min(k + BATCH, layout.pages); i++) {
        const page = r * stride + i;
        if (Atomics.load(state, page) !== PAGE_MISSING) continue;
        const pfn = host.faultIn(hva + page * PAGE_SIZE, FAULT_WRITE);
        // A read-modify-write of nothing: commits the page without changing it.
        Atomics.add(chunks[HostMemory.chunkOf(pfn)], HostMemory.offsetOf(pfn) >> 2, 0);
      }
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** A shared mapping of (part of) a file: a memfd or a mappable guest_memfd. */
function mapShared(host: Host, fd: number, offset: number, bytes: number): number {
  return host.mmap({ length: bytes, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED, fd, offset });
}

/**
 * `faultline bench demand-paging`: the kernel's demand_paging_test on
 * faultline. Every vCPU of the memstress guest touches each page of its
 * region (all of the memory with -o) while the pages are demand-paged by
 * KVM Userfault (-k), userfaultfd (-u), or both; the limits are measured
 * first, in the same run.
 */
export async function runDemandPaging(
  input: Partial<DemandPagingOptions> = {},
): Promise<DemandPagingResult> {
  const o: DemandPagingOptions = { ...DEFAULT_OPTIONS, ...input };
  validateOptions(o);
  const minor = o.uffdMode === "MINOR";
  // MINOR faults need the page in the page cache: it is there before the run, as after pre-copy.
  const prefaulted = o.prefault || minor;
  const machineWarmupBytes = o.machineWarmup
    ? warmMachineMemory(limitBytes(o) + testBytes(o)).bytes
    : 0;
  const limits = await measureLimits(o, prefaulted);

  const host = Host.create({ ramBytes: hostRamBytes(testBytes(o), o) });
  const kvm = Kvm.open(host);
  const vcpus = o.vcpus;
  const pageSize = backingPageSize(o.backing);
  const workers = resolveWorkers(o);
  const layout = planLayout(
    vcpus,
    o.overlap,
    o.bytesPerVcpu / PAGE_SIZE,
    pageSize,
    o.uffdMode !== null && !o.kvmUserfault ? vcpus : workers,
  );
  const bytes = layout.bytes;
  const totalPages = bytes / PAGE_SIZE;
  const g = createGuestVm(host, kvm, vcpus);
  const useUffd = o.uffdMode !== null;
  const uffdCount = useUffd ? (o.singleUffd ? 1 : vcpus) : 0;
  const bitmapHva =
    o.kvmUserfault && o.userfaultApi === "memslot-bitmap"
      ? createUserfaultBitmap(host, totalPages)
      : 0;
  const memory = createTestMemory(host, g.vm, {
    backing: o.backing,
    bytes,
    pieces: Math.max(1, uffdCount),
    alias: minor || o.backing === "guest_memfd",
    slotFlags: bitmapHva !== 0 ? MEM_USERFAULT : 0,
    userfaultBitmap: bitmapHva !== 0 ? bitmapHva : undefined,
  });
  const fillHva = memory.aliasHva !== 0 ? memory.aliasHva : memory.slotHva;
  if (prefaulted) touchPages(host, fillHva, totalPages);
  if (o.kvmUserfault && o.userfaultApi === "attributes") {
    const eventfd = host.eventfd(0);
    g.vm.enableCap({ cap: CAP_USERFAULT, flags: 0, args: [USERFAULT_ENABLE, eventfd] });
    g.vm.setMemoryAttributes({
      address: TEST_GPA,
      size: bytes,
      attributes: MEMORY_ATTRIBUTE_USERFAULT,
      flags: 0,
    });
  }

  // userfaultfd: one per vCPU region, or one for all (-a), on the mappings the slot uses;
  // for a guest_memfd, on mappings of the VMM's own (a vCPU's stage-2 fault never gets there).
  let registered = memory.pieces;
  if (useUffd && memory.slotHva === 0) {
    const pieceBytes = bytes / uffdCount;
    registered = [];
    for (let i = uffdCount - 1; i >= 0; i--) {
      registered[i] = {
        hva: mapShared(host, memory.fd, i * pieceBytes, pieceBytes),
        bytes: pieceBytes,
      };
    }
    for (let i = 1; i < uffdCount; i++) {
      if (registered[i].hva !== registered[0].hva + i * pieceBytes) {
        throw new Error("the per-vCPU mappings of the guest_memfd do not adjoin");
      }
    }
  }
  const uffds: number[] = [];
  for (let u = 0; u < uffdCount; u++) {
    const fd = host.userfaultfd(O_NONBLOCK);
    host.userfaultfds.api(fd, {
      api: UFFD_API,
      features:
        UFFD_FEATURE_THREAD_ID |
        UFFD_FEATURE_MISSING_SHMEM |
        UFFD_FEATURE_MISSING_HUGETLBFS |
        UFFD_FEATURE_MINOR_SHMEM,
    });
    const piece = o.singleUffd ? { hva: registered[0].hva, bytes } : registered[u];
    host.userfaultfds.register(fd, {
      start: piece.hva,
      len: piece.bytes,
      mode: minor ? UFFDIO_REGISTER_MODE_MINOR : UFFDIO_REGISTER_MODE_MISSING,
    });
    uffds.push(fd);
  }
  const registeredBase = registered[0].hva;

  writeGuestArgs(g, layout, true, o.remotePages, true);
  const shared = createSharedBuffers(totalPages, vcpus, remoteBytes(o));
  fillRemote(shared.remote, o.remotePages, SEED);
  const userfault: KvmUserfaultConfig | null = o.kvmUserfault
    ? {
        api: o.userfaultApi,
        fillHva,
        uffds,
        pagesPerUffd: uffdCount > 0 ? totalPages / uffdCount : 0,
        continueHva: useUffd ? registeredBase : 0,
        bitmapHva,
        pages: totalPages,
        corruptPage: o.corruptPage ?? -1,
      }
    : null;
  const vcpuData = vcpuThreads(workers, vcpus, {
    demandPagingVcpuThread: true,
    host: host.share(),
    kvm: kvm.offset,
    vm: g.vm.offset,
    totalVcpus: vcpus,
    entry: g.entry,
    passes: MEASURED_PASSES,
    shared,
    remotePages: o.remotePages,
    userfault,
    delayUs: o.delayUs,
  });
  const readerData: ReaderThreadData[] = [];
  for (const fd of uffds) {
    for (let r = 0; r < o.readersPerUffd; r++) {
      readerData.push({
        demandPagingReaderThread: true,
        host: host.share(),
        uffd: fd,
        mode: minor ? "MINOR" : "MISSING",
        registeredHva: registeredBase,
        aliasHva: memory.aliasHva,
        unit: pageSize,
        shared,
        remotePages: o.remotePages,
        delayUs: o.delayUs,
        corruptPage: o.corruptPage ?? -1,
      });
    }
  }
  const faultCounts = new Int32Array(shared.faults);
  const faultsOf = () => faultCounts.reduce((a, b) => a + b, 0);
  const installs = new Int32Array(shared.installs);
  let warmFaults = 0;
  let warmInstalls = 0;
  const pretouching: Promise<void>[] = [];
  const run = await runThreads(shared, vcpuData, readerData, vcpus, MEASURED_PASSES, () => {
    warmFaults = faultsOf();
    warmInstalls = installs.reduce((a, b) => a + b, 0);
    writeGuestArgs(g, layout, false, o.remotePages, true);
    if (o.pretouch) pretouching.push(pretouch(host, fillHva, layout, new Int32Array(shared.state)));
  });
  await Promise.all(pretouching);

  // Every page of the measured run demand-paged exactly once (warm-up pages at most once).
  let measured = 0;
  for (let page = 0; page < totalPages; page++) {
    const want = isMeasuredPage(layout, page);
    if (want) measured++;
    if (want ? installs[page] !== 1 : installs[page] > 1) {
      throw new Error(
        `page ${page} (gpa 0x${(TEST_GPA + page * PAGE_SIZE).toString(16)}) was installed ` +
          `${installs[page]} times, not once`,
      );
    }
  }
  const pages = o.overlap ? layout.pages : vcpus * layout.pages;
  if (measured !== pages) throw new Error(`layout: ${measured} measured pages, not ${pages}`);
  const faults = o.kvmUserfault
    ? faultsOf() - warmFaults
    : (installs.reduce((a, b) => a + b, 0) - warmInstalls) / (pageSize / PAGE_SIZE);

  // Rates and latencies.
  const seconds = (Math.max(...run.passEnd.map((p) => p[0])) - run.start) / 1000;
  const perVcpuPagesPerSecond = run.passEnd.map((p) => layout.pages / ((p[0] - run.start) / 1000));
  const merged = new Uint32Array(HISTOGRAM_BUCKETS);
  let maxTicks = 0;
  const argsBlock = g.ram.read(g.argsGpa, ARG_VCPUS + vcpus * VCPU_ARGS_BYTES);
  const argsView = new DataView(argsBlock.buffer);
  const perVcpuFaultLatencyUs: LatencySummary[] = [];
  for (let id = 0; id < vcpus; id++) {
    const raw = g.ram.read(
      RAM_BASE + HISTOGRAMS_OFFSET + id * VCPU_HISTOGRAM_BYTES,
      HISTOGRAM_BYTES,
    );
    const histogram = new Uint32Array(raw.buffer, raw.byteOffset, HISTOGRAM_BUCKETS);
    for (let b = 0; b < HISTOGRAM_BUCKETS; b++) merged[b] += histogram[b];
    const max = Number(
      argsView.getBigUint64(ARG_VCPUS + id * VCPU_ARGS_BYTES + VCPU_MAX_LATENCY, true),
    );
    maxTicks = Math.max(maxTicks, max);
    perVcpuFaultLatencyUs.push(summarize(histogram, max));
  }
  const presentPassEnd = Math.max(...run.passEnd.map((p) => p[1]));
  return {
    mode: modeOf(o),
    uffdMode: o.kvmUserfault ? o.uffdMode : null,
    userfaultApi: o.kvmUserfault ? o.userfaultApi : null,
    backing: o.backing,
    vcpus,
    workers,
    readers: readerData.length,
    uffds: uffdCount,
    overlap: o.overlap,
    delayUs: o.delayUs,
    bytesPerVcpu: o.bytesPerVcpu,
    pages,
    seconds,
    pagesPerSecond: pages / seconds,
    perVcpuPagesPerSecond,
    faultLatencyUs: summarize(merged, maxTicks),
    perVcpuFaultLatencyUs,
    faults,
    presentPassPagesPerSecond:
      (vcpus * layout.pages) / ((presentPassEnd - run.passStart[1]) / 1000),
    limits,
    pretouch: o.pretouch,
    machineWarmupBytes,
    verified: true,
  };
}
