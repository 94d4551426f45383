import { availableParallelism } from "node:os";
import { PAGE_SIZE } from "../../host/host-memory.js";
import { PAGE_SIZE_1G, PAGE_SIZE_2M, PAGE_SIZE_4K } from "../../host/page-cache.js";
import type { RamBacking } from "../../vmm/guest-ram.js";

/** `-s`: where guest memory comes from, named as the kernel selftest's backing sources. */
export type BackingSource = "anonymous" | "shmem" | "guest_memfd" | "hugetlb-2M" | "hugetlb-1G";
export const BACKING_SOURCES: readonly BackingSource[] = [
  "anonymous",
  "shmem",
  "guest_memfd",
  "hugetlb-2M",
  "hugetlb-1G",
];

/** `-u`: the userfaultfd registration mode. */
export type UffdMode = "MISSING" | "MINOR";

/** `--userfault-api`: the RFC's attribute shape or the later upstream memslot bitmap. */
export type UserfaultApi = "attributes" | "memslot-bitmap";

export interface DemandPagingOptions {
  /** -v */
  vcpus: number;
  /** -b: bytes each vCPU demand-pages (with -o: the size of everyone's shared region per vCPU). */
  bytesPerVcpu: number;
  /** -k */
  kvmUserfault: boolean;
  /** --userfault-api */
  userfaultApi: UserfaultApi;
  /** -u */
  uffdMode: UffdMode | null;
  /** -a: one userfaultfd for all of guest memory instead of one per vCPU region. */
  singleUffd: boolean;
  /** -r: reader threads per userfaultfd. */
  readersPerUffd: number;
  /** -o: every vCPU walks all of the test memory. */
  overlap: boolean;
  /** -s */
  backing: BackingSource;
  /** -d: delay before resolving each fault, in microseconds (stands in for the network). */
  delayUs: number;
  /**
   * The host touches the destination memory before the run (the OS commits
   * it). Implied by -u MINOR, whose pages are in the page cache already.
   */
  prefault: boolean;
  /**
   * -k: while the vCPUs run, the VMM's main thread touches the memory ahead
   * of them (in the order they walk it), so that the OS's first-touch cost
   * is paid off the vCPUs' path.
   */
  pretouch: boolean;
  /**
   * Before the run, a child process touches and frees as much memory as the
   * run uses, so that the machine below backs it (machine-warmup.ts).
   */
  machineWarmup: boolean;
  /** Worker threads running the vCPUs; 0 = the default (see resolveWorkers). */
  workers: number;
  /** Pages of the "remote" source buffer (a power of two); page g gets remote page g mod this. */
  remotePages: number;
  /** Tests only (-k, -u MINOR): install the wrong contents for this test page. */
  corruptPage?: number;
}

export const DEFAULT_OPTIONS: DemandPagingOptions = {
  vcpus: 1,
  bytesPerVcpu: 64 << 20,
  kvmUserfault: false,
  userfaultApi: "attributes",
  uffdMode: null,
  singleUffd: false,
  readersPerUffd: 1,
  overlap: false,
  backing: "anonymous",
  delayUs: 0,
  prefault: false,
  pretouch: false,
  machineWarmup: false,
  workers: 0,
  remotePages: 256,
};

/** The vCPU limit of the guest's argument block (src/guests/memstress.s MAX_VCPUS). */
export const MAX_BENCH_VCPUS = 256;
/** Total test memory: 64 GiB, the largest sparse guest the hypervisor takes in this layout. */
export const MAX_TEST_BYTES = 64 * 2 ** 30;

/** A usage error: the CLI prints it and exits 2. */
export class DemandPagingUsageError extends Error {}

function usage(message: string): never {
  throw new DemandPagingUsageError(message);
}

export function backingPageSize(backing: BackingSource): number {
  if (backing === "hugetlb-2M") return PAGE_SIZE_2M;
  if (backing === "hugetlb-1G") return PAGE_SIZE_1G;
  return PAGE_SIZE_4K;
}

/** The VMM's RAM backing for a source: hugetlb is private anonymous memory in huge pages. */
export function ramBacking(backing: BackingSource): RamBacking {
  if (backing === "shmem" || backing === "guest_memfd") return backing;
  return "anonymous";
}

/**
 * Worker threads: a vCPU that sleeps in the host fault path (userfaultfd)
 * holds its thread, so each gets its own; vCPUs that exit to the VMM share
 * as many threads as there are cores (DESIGN.md section 5).
 */
export function resolveWorkers(options: DemandPagingOptions): number {
  if (options.workers > 0) return Math.min(options.workers, options.vcpus);
  if (options.uffdMode !== null && !options.kvmUserfault) return options.vcpus;
  // A vCPU waiting out its -d delay holds its thread, as it would in a VMM.
  if (options.delayUs > 0) return options.vcpus;
  return Math.min(options.vcpus, availableParallelism());
}

/** Check a combination of options the way the kernel test does, with reasons. */
export function validateOptions(options: DemandPagingOptions): void {
  const o = options;
  if (!Number.isInteger(o.vcpus) || o.vcpus < 1 || o.vcpus > MAX_BENCH_VCPUS) {
    usage(`-v: the number of vCPUs must be 1 to ${MAX_BENCH_VCPUS}`);
  }
  if (!BACKING_SOURCES.includes(o.backing)) {
    usage(`-s: backing must be one of ${BACKING_SOURCES.join(", ")}`);
  }
  const pageSize = backingPageSize(o.backing);
  if (!Number.isSafeInteger(o.bytesPerVcpu) || o.bytesPerVcpu <= 0) {
    usage("-b: bytes per vCPU must be a positive size");
  }
  if (o.bytesPerVcpu % pageSize !== 0) {
    usage(`-b: bytes per vCPU must be a multiple of the ${o.backing} page size (${pageSize})`);
  }
  if (o.vcpus * o.bytesPerVcpu > MAX_TEST_BYTES) {
    usage(`-v x -b: at most ${MAX_TEST_BYTES / 2 ** 30} GiB of test memory`);
  }
  if (!o.kvmUserfault && o.uffdMode === null) {
    usage("nothing demand-pages the memory: give -k (KVM Userfault), -u MISSING|MINOR, or both");
  }
  if (o.uffdMode !== null && o.uffdMode !== "MISSING" && o.uffdMode !== "MINOR") {
    usage("-u: the userfaultfd mode must be MISSING or MINOR");
  }
  if (o.uffdMode === "MINOR" && o.backing !== "shmem" && o.backing !== "guest_memfd") {
    usage("-u MINOR needs shared memory (a page cache to find the page in): use -s shmem");
  }
  if (o.backing === "guest_memfd" && o.uffdMode !== null && !o.kvmUserfault) {
    usage(
      "-s guest_memfd with -u alone cannot demand-page: a vCPU's stage-2 fault asks the " +
        "guest_memfd for the page directly and never goes through a host mapping, so " +
        "userfaultfd never sees it; add -k (vCPU faults by KVM Userfault, the rest by " +
        "userfaultfd) or pick -s shmem",
    );
  }
  if (o.kvmUserfault && o.uffdMode === "MISSING") {
    usage(
      "-k with -u MISSING: the VMM could not fill a page through its own mapping without " +
        "faulting on it; the combination is -k -u MINOR",
    );
  }
  if (o.userfaultApi !== "attributes" && o.userfaultApi !== "memslot-bitmap") {
    usage("--userfault-api must be attributes or memslot-bitmap");
  }
  if (!Number.isInteger(o.readersPerUffd) || o.readersPerUffd < 1 || o.readersPerUffd > 64) {
    usage("-r: readers per userfaultfd must be 1 to 64");
  }
  if (!Number.isFinite(o.delayUs) || o.delayUs < 0 || o.delayUs > 1_000_000) {
    usage("-d: the delay must be 0 to 1000000 microseconds");
  }
  if (o.pretouch && (!o.kvmUserfault || o.uffdMode !== null || o.prefault)) {
    usage("--pretouch is for -k alone, on memory not prefaulted");
  }
  if (o.prefault && o.uffdMode === "MISSING") {
    usage("--prefault with -u MISSING: a page the host has populated is never missing");
  }
  if (o.overlap && o.uffdMode !== null && !o.singleUffd && o.vcpus > 1) {
    usage(
      "-o with -u needs -a: overlapping vCPU regions cannot each be registered with a " +
        "userfaultfd of their own",
    );
  }
  if (!Number.isInteger(o.workers) || o.workers < 0 || o.workers > MAX_BENCH_VCPUS) {
    usage("--workers must be 0 (automatic) to 256");
  }
  const r = o.remotePages;
  if (!Number.isInteger(r) || r < 1 || r > 1 << 16 || (r & (r - 1)) !== 0) {
    usage("the remote buffer must be a power of two of pages, at most 65536");
  }
  if (PAGE_SIZE !== PAGE_SIZE_4K) usage("the benchmark assumes 4 KiB pages");
}
