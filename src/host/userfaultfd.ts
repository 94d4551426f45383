import { threadId } from "node:worker_threads";
import {
  type AddressSpace,
  FAULT_EFAULT,
  FAULT_WRITE,
  MFILL_CONTINUE,
  MFILL_COPY,
  MFILL_WP,
  MFILL_ZEROPAGE,
  setUserfaultHandler,
  TASK_SIZE,
  UFFD_MINOR,
  UFFD_MISSING,
  UFFD_WP,
  type UserfaultMappingInfo,
} from "./address-space.js";
import { ErrnoError, fail } from "./errno.js";
import {
  FILE_GUEST_MEMFD,
  FILE_USERFAULTFD,
  initFileObject,
  OBJ_TYPE,
  putFile,
  registerFileType,
} from "./files.js";
import type { Host } from "./host.js";
import { PAGE_SIZE, type HostMemory } from "./host-memory.js";
import { lock, unlock } from "./sync.js";
import {
  CONTEXT_BYTES,
  ENTRY_BYTES,
  type PendingFault,
  RELEASE_NONE,
  U_FEATURES,
  U_FLAGS,
  U_PENDING,
  U_READ_SEQ,
  U_RELEASED,
  U_STATE,
  UserfaultQueue,
} from "./userfaultfd-queue.js";

/**
 * userfaultfd(2): the VMM's handle on faults in ranges of its own address
 * space, as in Linux (fs/userfaultfd.c, mm/userfaultfd.c). The public API,
 * reached as `host.userfaultfds` (and `host.userfaultfd(flags)`); every
 * method takes the descriptor, and any thread attached to the Host
 * (`Host.attach(host.share())`) may call any of them on the same descriptor:
 *
 *   const uffd = host.userfaultfd(O_NONBLOCK?);          // userfaultfd(2)
 *   host.userfaultfds.api(uffd, { api: UFFD_API, features: UFFD_FEATURE_THREAD_ID });
 *   const ioctls = host.userfaultfds.register(uffd, { start, len, mode: UFFDIO_REGISTER_MODE_MISSING });
 *   // a reader thread (a worker):
 *   const msg = host.userfaultfds.read(uffd);            // blocks in Atomics.wait (EAGAIN if O_NONBLOCK)
 *   host.userfaultfds.copy(uffd, { dst: msg.address, src: page, len: 4096, mode: 0 });
 *   // or zeropage(uffd, {dst, len, mode}), continue(uffd, {start, len, mode}) for MINOR faults
 *   host.userfaultfds.poll(uffd, timeoutMs);             // POLLIN when a message waits
 *   await host.userfaultfds.pollAsync(uffd, timeoutMs);  // the same on the main thread
 *
 * - `api`: the UFFDIO_API handshake; nothing else works before it (EINVAL),
 *   a second one is EINVAL, unknown features are EINVAL. Returns the
 *   supported features and the ioctls.
 * - `register`/`unregister` ({start, len}, page aligned): modes MISSING, WP,
 *   MINOR (MINOR only on shared memory: memfd, shmem, a guest_memfd mapped
 *   with MMAP; a guest_memfd mapping takes MISSING and MINOR only, as in
 *   Linux 7.1). EINVAL for bad ranges, no mapping, bad modes; EBUSY when a
 *   mapping is registered to another userfaultfd. Unregistering wakes the
 *   faults sleeping in the range (Linux wakes only MISSING ranges; waking
 *   MINOR and WP ones too is harmless: they retry and populate as usual). A model limit: one registered range per
 *   mapping (registering adjoining ranges with the same mode merges them;
 *   unregistering the middle of a range is EINVAL).
 * - A fault on a registered range that finds no page (MISSING), a page only
 *   in the file (MINOR), or a write-protected page (WP) queues a message and
 *   sleeps the faulting thread (Atomics.wait on its own word) until a wake
 *   covers its address; then the fault is retried. Faults of callers that
 *   cannot sleep (FAULT_ATOMIC) fail with EAGAIN and queue nothing.
 * - `read` hands over the oldest unread message: `{event: UFFD_EVENT_PAGEFAULT,
 *   flags: UFFD_PAGEFAULT_FLAG_WRITE | _WP | _MINOR, address, ptid}`; the
 *   address is page aligned (the mapping's page) unless
 *   UFFD_FEATURE_EXACT_ADDRESS; `ptid` is the faulting thread's id
 *   (`gettid()`), with UFFD_FEATURE_THREAD_ID, else 0. `readAsync` is the
 *   same for the main thread without blocking its event loop; `readInto`
 *   fills the caller's object, for reader loops that allocate nothing.
 * - `copy` / `zeropage` / `continue` resolve [dst, dst + len): they return
 *   the bytes done (also written to the argument's `copy` / `zeropage` /
 *   `mapped` field, as the ioctls do) and wake the range unless
 *   `mode` has DONTWAKE. EEXIST when a page is already there, ENOENT when
 *   the range is not inside one registered mapping, EINVAL for bad ranges or
 *   modes (ZEROPAGE on huge pages, CONTINUE on private memory, WP without a
 *   WP registration), EFAULT when CONTINUE finds no page in the file. When
 *   some pages were done before an error, the count is returned in the
 *   field and the call fails with EAGAIN (retry from there), as in Linux;
 *   when the filling itself fails at once (EEXIST, ENOENT, EFAULT...), the
 *   field holds the negated errno (-17 for EEXIST); a bad range, mode or
 *   descriptor leaves it alone. Resolving allocates nothing but the pages,
 *   except that COPY from a `src` larger than one page makes a view of it
 *   per page.
 * - `wake` wakes a range without resolving it (after DONTWAKE resolutions).
 * - `writeProtect` ({start, len, mode: UFFDIO_WRITEPROTECT_MODE_WP or 0})
 *   sets or clears write protection on present pages of a WP-registered
 *   range (ENOENT otherwise); clearing wakes the range unless DONTWAKE.
 * - Closing the last descriptor releases the context: its ranges behave as
 *   unregistered and every sleeping fault is woken and retried. A thread
 *   blocked in `read` or `poll` holds a reference (as fdget does), so the
 *   release waits for it; readers that must stop use O_NONBLOCK and a
 *   poll timeout.
 * - The main thread may take faults too (the VMM touching its own memory),
 *   but it then sleeps in Atomics.wait like any thread: only a reader on
 *   another thread can resolve such a fault, never `readAsync`.
 *
 * Not modelled: the non-cooperative events (fork, remap, remove, unmap) and
 * so the EAGAIN of a changing mm, UFFDIO_MOVE and UFFDIO_POISON,
 * UFFD_USER_MODE_ONLY, ESRCH (the address space never goes away), and
 * signals: nothing interrupts a sleeping fault (Linux lets a signal end a
 * vCPU's wait with EINTR), only a wake, an unregister or the release.
 */

export const UFFD_API = 0xaa;

/** userfaultfd(2) flags. */
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;

export const UFFD_EVENT_PAGEFAULT = 0x12;
export const UFFD_PAGEFAULT_FLAG_WRITE = 1 << 0;
export const UFFD_PAGEFAULT_FLAG_WP = 1 << 1;
export const UFFD_PAGEFAULT_FLAG_MINOR = 1 << 2;

export const UFFD_FEATURE_PAGEFAULT_FLAG_WP = 1 << 0;
export const UFFD_FEATURE_MISSING_HUGETLBFS = 1 << 4;
export const UFFD_FEATURE_MISSING_SHMEM = 1 << 5;
/** Faults fail (EFAULT, Linux's SIGBUS) instead of queueing a message. */
export const UFFD_FEATURE_SIGBUS = 1 << 7;
export const UFFD_FEATURE_THREAD_ID = 1 << 8;
export const UFFD_FEATURE_MINOR_HUGETLBFS = 1 << 9;
export const UFFD_FEATURE_MINOR_SHMEM = 1 << 10;
export const UFFD_FEATURE_EXACT_ADDRESS = 1 << 11;
export const UFFD_FEATURE_WP_HUGETLBFS_SHMEM = 1 << 12;
/** The features this model supports (UFFD_API_FEATURES). */
export const UFFD_API_FEATURES =
  UFFD_FEATURE_PAGEFAULT_FLAG_WP |
  UFFD_FEATURE_MISSING_HUGETLBFS |
  UFFD_FEATURE_MISSING_SHMEM |
  UFFD_FEATURE_SIGBUS |
  UFFD_FEATURE_THREAD_ID |
  UFFD_FEATURE_MINOR_HUGETLBFS |
  UFFD_FEATURE_MINOR_SHMEM |
  UFFD_FEATURE_EXACT_ADDRESS |
  UFFD_FEATURE_WP_HUGETLBFS_SHMEM;

export const UFFDIO_REGISTER_MODE_MISSING = UFFD_MISSING;
export const UFFDIO_REGISTER_MODE_WP = UFFD_WP;
export const UFFDIO_REGISTER_MODE_MINOR = UFFD_MINOR;

export const UFFDIO_COPY_MODE_DONTWAKE = 1 << 0;
export const UFFDIO_COPY_MODE_WP = 1 << 1;
export const UFFDIO_ZEROPAGE_MODE_DONTWAKE = 1 << 0;
export const UFFDIO_WRITEPROTECT_MODE_WP = 1 << 0;
export const UFFDIO_WRITEPROTECT_MODE_DONTWAKE = 1 << 1;
export const UFFDIO_CONTINUE_MODE_DONTWAKE = 1 << 0;
export const UFFDIO_CONTINUE_MODE_WP = 1 << 1;

/** ioctl numbers, as bits of the `ioctls` masks. */
export const _UFFDIO_REGISTER = 0x00;
export const _UFFDIO_UNREGISTER = 0x01;
export const _UFFDIO_WAKE = 0x02;
export const _UFFDIO_COPY = 0x03;
export const _UFFDIO_ZEROPAGE = 0x04;
export const _UFFDIO_WRITEPROTECT = 0x06;
export const _UFFDIO_CONTINUE = 0x07;
export const _UFFDIO_API = 0x3f;
const bit = (ioctl: number): bigint => 1n << BigInt(ioctl);
export const UFFD_API_IOCTLS = bit(_UFFDIO_REGISTER) | bit(_UFFDIO_UNREGISTER) | bit(_UFFDIO_API);
export const UFFD_API_RANGE_IOCTLS =
  bit(_UFFDIO_WAKE) |
  bit(_UFFDIO_COPY) |
  bit(_UFFDIO_ZEROPAGE) |
  bit(_UFFDIO_WRITEPROTECT) |
  bit(_UFFDIO_CONTINUE);
/** Huge page mappings: no ZEROPAGE. */
export const UFFD_API_RANGE_IOCTLS_BASIC = UFFD_API_RANGE_IOCTLS & ~bit(_UFFDIO_ZEROPAGE);

export const POLLIN = 0x1;
export const POLLERR = 0x8;

/** Lowest address a range may start at (vm.mmap_min_addr). */
const MMAP_MIN_ADDR = 0x10000;

export interface UffdioApi {
  api: number;
  features: number;
}

export interface UffdioApiResult {
  api: number;
  /** Every feature the model supports. */
  features: number;
  ioctls: bigint;
}

export interface UffdioRange {
  start: number;
  len: number;
}

export interface UffdioRegister extends UffdioRange {
  mode: number;
}

export interface UffdMsg {
  event: number;
  flags: number;
  address: number;
  ptid: number;
}

export interface UffdioCopy {
  dst: number;
  /** The source bytes (the user buffer the ioctl copies from). */
  src: Uint8Array;
  /** Where in `src` to start (default 0). */
  srcOffset?: number;
  len: number;
  mode: number;
  /** Out: bytes copied. */
  copy?: number;
}

export interface UffdioZeropage {
  dst: number;
  len: number;
  mode: number;
  /** Out: bytes zeroed. */
  zeropage?: number;
}

export interface UffdioContinue extends UffdioRange {
  mode: number;
  /** Out: bytes mapped. */
  mapped?: number;
}

export interface UffdioWriteprotect extends UffdioRange {
  mode: number;
}

/** The id of the calling thread, as a fault message's `ptid` names it (gettid(2)). */
export function gettid(): number {
  return process.pid + threadId;
}

registerFileType(FILE_USERFAULTFD, "userfaultfd", (host, object) => {
  host.userfaultfds.release(object);
});

/** The host fault path's userfaultfd hook (handle_userfault), on every thread that loads this module. */
setUserfaultHandler((space, slot, gen, hva, reason, flags) =>
  space.host.userfaultfds.handleFault(space, slot, gen, hva, reason, flags),
);

// U_STATE: waiting for UFFDIO_API, in the middle of it, running.
const STATE_WAIT_API = 0;
const STATE_SETUP = 1;
const STATE_RUNNING = 2;

/** Linux errno numbers, for the negative counts the resolving ioctls write back on failure. */
const ERRNO_NUMBER: Partial<Record<string, number>> = {
  ENOENT: 2,
  EAGAIN: 11,
  ENOMEM: 12,
  EFAULT: 14,
  EEXIST: 17,
  EINVAL: 22,
  ENOSPC: 28,
};

// Words of the shared root: the registration lock (mmap_write_lock for register/unregister/release).
const ROOT_LOCK = 0;
const ROOT_BYTES = 64;

function hex(value: number): string {
  return `0x${value.toString(16)}`;
}

/** The negative errno an ioctl writes into its count field when it fails at once. */
function errnoCount(error: unknown): number {
  return error instanceof ErrnoError ? -(ERRNO_NUMBER[error.errno] ?? 22) : 0;
}

/** validate_range(): page aligned, non-empty, inside user space. */
function validateRange(start: number, len: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(len)) {
    fail("EINVAL", `bad range ${start} + ${len}`);
  }
  if (start % PAGE_SIZE !== 0) fail("EINVAL", `start ${hex(start)} is not page aligned`);
  if (len % PAGE_SIZE !== 0 || len <= 0) fail("EINVAL", `length ${len} is not a page multiple`);
  if (start < MMAP_MIN_ADDR || start >= TASK_SIZE || len > TASK_SIZE - start) {
    fail("EINVAL", `range ${hex(start)} + ${len} is outside user space`);
  }
}

export class Userfaultfds {
  private readonly i32: Int32Array;
  private readonly queue: UserfaultQueue;
  /** This thread's fault queue entry (allocated on its first userfault). */
  private entry = 0;
  private readonly taken: PendingFault = { flags: 0, address: 0, ptid: 0 };
  private readonly seq = new Int32Array(1);

  constructor(
    private readonly host: Host,
    /** Arena offset of the shared root (from `Userfaultfds.allocate`). */
    private readonly root: number,
  ) {
    this.i32 = host.memory.arenaI32;
    this.queue = new UserfaultQueue(host.memory);
  }

  static allocate(memory: HostMemory): number {
    return memory.arenaAllocate(ROOT_BYTES, 64);
  }

  // ---------------------------------------------------------------- system calls

  /** userfaultfd(2): a new context, waiting for its UFFDIO_API handshake. */
  create(flags = 0): number {
    if (!Number.isInteger(flags) || (flags & ~(O_NONBLOCK | O_CLOEXEC)) !== 0) {
      fail("EINVAL", `unknown userfaultfd flags ${flags}`);
    }
    const memory = this.host.memory;
    // Never freed (like an eventfd, a few words): a fault may still read a released context.
    const object = memory.arenaAllocate(CONTEXT_BYTES, 64);
    this.i32[(object >> 2) + U_FLAGS] = flags;
    initFileObject(memory, object, FILE_USERFAULTFD, 0, 0);
    return this.host.files.install(FILE_USERFAULTFD, object);
  }

  /** UFFDIO_API. */
  api(fd: number, args: UffdioApi): UffdioApiResult {
    return this.with(fd, false, (ctx) => {
      if (args.api !== UFFD_API) fail("EINVAL", `api ${args.api} is not UFFD_API`);
      const features = args.features;
      if (!Number.isInteger(features) || features < 0 || (features & ~UFFD_API_FEATURES) !== 0) {
        fail("EINVAL", `unsupported features ${hex(features)}`);
      }
      const i32 = this.i32;
      // Claim the handshake before writing the features: a second (or a
      // concurrent) UFFDIO_API fails without touching the first one's.
      if (Atomics.compareExchange(i32, (ctx >> 2) + U_STATE, STATE_WAIT_API, STATE_SETUP) !== 0) {
        fail("EINVAL", "UFFDIO_API was already done");
      }
      i32[(ctx >> 2) + U_FEATURES] = features;
      Atomics.store(i32, (ctx >> 2) + U_STATE, STATE_RUNNING);
      return { api: UFFD_API, features: UFFD_API_FEATURES, ioctls: UFFD_API_IOCTLS };
    });
  }

  /** The features the handshake asked for. */
  features(fd: number): number {
    return this.with(fd, true, (ctx) => this.i32[(ctx >> 2) + U_FEATURES]);
  }

  /** UFFDIO_REGISTER: returns the ioctls available on the range. */
  register(fd: number, args: UffdioRegister): bigint {
    return this.with(fd, true, (ctx) => {
      const { start, len, mode } = args;
      const all = UFFD_MISSING | UFFD_WP | UFFD_MINOR;
      if (!Number.isInteger(mode) || mode === 0 || (mode & ~all) !== 0) {
        fail("EINVAL", `bad register mode ${mode}`);
      }
      validateRange(start, len);
      const end = start + len;
      return this.locked(() => {
        const mappings = this.host.mm.mappingsIn(start, end);
        if (mappings.length === 0) fail("EINVAL", `nothing is mapped in ${hex(start)} + ${len}`);
        let basic = false;
        const plan: Array<[number, number]> = [];
        for (const m of mappings) {
          const a = Math.max(start, m.start);
          const b = Math.min(end, m.start + m.length);
          if (m.pageSize > PAGE_SIZE) {
            basic = true;
            if (a % m.pageSize !== 0 || b % m.pageSize !== 0) {
              fail("EINVAL", `range not aligned to the ${m.pageSize}-byte pages at ${hex(a)}`);
            }
          }
          if ((mode & UFFD_MINOR) !== 0 && !m.shared) {
            fail("EINVAL", `MINOR needs shared memory; ${hex(m.start)} is private`);
          }
          if ((mode & UFFD_WP) !== 0 && m.fileType === FILE_GUEST_MEMFD) {
            fail("EINVAL", `a guest_memfd mapping (${hex(m.start)}) takes MISSING and MINOR only`);
          }
          if (m.uffdMode !== 0 && m.uffdContext !== ctx) {
            fail("EBUSY", `${hex(m.start)} is registered to another userfaultfd`);
          }
          plan.push(this.mergedRange(m, a, b, mode));
        }
        // Every mapping checked first: a failure registers nothing.
        for (const [a, b] of plan) this.host.mm.setUserfaultRange(a, b - a, mode, ctx);
        let ioctls = basic ? UFFD_API_RANGE_IOCTLS_BASIC : UFFD_API_RANGE_IOCTLS;
        if ((mode & UFFD_WP) === 0) ioctls &= ~bit(_UFFDIO_WRITEPROTECT);
        if ((mode & UFFD_MINOR) === 0) ioctls &= ~bit(_UFFDIO_CONTINUE);
        return ioctls;
      });
    });
  }

  /** UFFDIO_UNREGISTER: the range behaves as unregistered; faults sleeping in it are woken. */
  unregister(fd: number, args: UffdioRange): void {
    this.with(fd, true, (ctx) => {
      const { start, len } = args;
      validateRange(start, len);
      const end = start + len;
      const woken: Array<[number, number]> = [];
      this.locked(() => {
        const mappings = this.host.mm.mappingsIn(start, end);
        if (mappings.length === 0) fail("EINVAL", `nothing is mapped in ${hex(start)} + ${len}`);
        // Per mapping: its start, one page, and the range it keeps registered (empty: none).
        const plan: Array<[number, number, number, number, number]> = [];
        for (const m of mappings) {
          const a = Math.max(start, m.start);
          const b = Math.min(end, m.start + m.length);
          if (m.pageSize > PAGE_SIZE && (a % m.pageSize !== 0 || b % m.pageSize !== 0)) {
            fail("EINVAL", `range not aligned to the ${m.pageSize}-byte pages at ${hex(a)}`);
          }
          if (m.uffdMode === 0 || b <= m.uffdStart || a >= m.uffdEnd) continue;
          if (m.uffdContext !== ctx) {
            fail("EINVAL", `${hex(m.start)} is registered to another userfaultfd`);
          }
          if (a > m.uffdStart && b < m.uffdEnd) {
            fail("EINVAL", "unregistering the middle of a registered range is not modelled");
          }
          const keepStart = a > m.uffdStart ? m.uffdStart : Math.min(b, m.uffdEnd);
          const keepEnd = a > m.uffdStart ? a : m.uffdEnd;
          plan.push([m.start, m.pageSize, keepStart, keepEnd, m.uffdMode]);
          woken.push([Math.max(a, m.uffdStart), Math.min(b, m.uffdEnd)]);
        }
        for (const [mStart, pageSize, keepStart, keepEnd, mode] of plan) {
          if (keepEnd > keepStart) {
            this.host.mm.setUserfaultRange(keepStart, keepEnd - keepStart, mode, ctx);
          } else {
            this.host.mm.setUserfaultRange(mStart, pageSize, 0, 0);
          }
        }
      });
      for (const [a, b] of woken) this.queue.wake(ctx, a, b - a);
    });
  }

  /**
   * read(2) of one uffd_msg: the oldest fault not yet read. Blocks
   * (Atomics.wait) until there is one, or fails with EAGAIN when O_NONBLOCK.
   */
  read(fd: number): UffdMsg {
    return this.readInto(fd, { event: 0, flags: 0, address: 0, ptid: 0 });
  }

  /** `read` into `out` (allocates nothing: for reader loops); returns `out`. */
  readInto(fd: number, out: UffdMsg): UffdMsg {
    const ctx = this.host.files.get(fd, FILE_USERFAULTFD);
    try {
      this.checkReady(ctx);
      for (;;) {
        if (this.queue.take(ctx, this.taken, this.seq)) return this.message(out);
        if ((this.i32[(ctx >> 2) + U_FLAGS] & O_NONBLOCK) !== 0) {
          fail("EAGAIN", `userfaultfd ${fd} has no message`);
        }
        Atomics.wait(this.i32, (ctx >> 2) + U_READ_SEQ, this.seq[0]);
      }
    } finally {
      putFile(this.host, ctx);
    }
  }

  /** `read` for the main thread: waits with Atomics.waitAsync instead of blocking. */
  async readAsync(fd: number): Promise<UffdMsg> {
    const ctx = this.host.files.get(fd, FILE_USERFAULTFD);
    try {
      this.checkReady(ctx);
      for (;;) {
        if (this.queue.take(ctx, this.taken, this.seq)) {
          return this.message({ event: 0, flags: 0, address: 0, ptid: 0 });
        }
        if ((this.i32[(ctx >> 2) + U_FLAGS] & O_NONBLOCK) !== 0) {
          fail("EAGAIN", `userfaultfd ${fd} has no message`);
        }
        const waiting = Atomics.waitAsync(this.i32, (ctx >> 2) + U_READ_SEQ, this.seq[0]);
        if (waiting.async) await waiting.value;
      }
    } finally {
      putFile(this.host, ctx);
    }
  }

  /**
   * poll(2) on one userfaultfd: POLLIN once a message is waiting, 0 when
   * `timeoutMs` passes first (negative: no limit), POLLERR before UFFDIO_API.
   */
  poll(fd: number, timeoutMs = -1): number {
    return this.with(fd, false, (ctx) => {
      const i32 = this.i32;
      const c = ctx >> 2;
      if (Atomics.load(i32, c + U_STATE) !== STATE_RUNNING) return POLLERR;
      const deadline = timeoutMs < 0 ? Infinity : Date.now() + timeoutMs;
      for (;;) {
        const seq = Atomics.load(i32, c + U_READ_SEQ);
        if (Atomics.load(i32, c + U_PENDING) > 0) return POLLIN;
        const left = deadline - Date.now();
        if (left <= 0) return 0;
        Atomics.wait(i32, c + U_READ_SEQ, seq, left);
      }
    });
  }

  /**
   * `poll` for the main thread: waits with Atomics.waitAsync, so its event
   * loop runs on. With a timeout it is the way for a main-thread reader to
   * stop (readAsync holds its reference until a message comes).
   */
  async pollAsync(fd: number, timeoutMs = -1): Promise<number> {
    const ctx = this.host.files.get(fd, FILE_USERFAULTFD);
    try {
      const i32 = this.i32;
      const c = ctx >> 2;
      if (Atomics.load(i32, c + U_STATE) !== STATE_RUNNING) return POLLERR;
      const deadline = timeoutMs < 0 ? Infinity : Date.now() + timeoutMs;
      for (;;) {
        const seq = Atomics.load(i32, c + U_READ_SEQ);
        if (Atomics.load(i32, c + U_PENDING) > 0) return POLLIN;
        const left = deadline - Date.now();
        if (left <= 0) return 0;
        const waiting = Atomics.waitAsync(i32, c + U_READ_SEQ, seq, left);
        if (waiting.async) await waiting.value;
      }
    } finally {
      putFile(this.host, ctx);
    }
  }

  /** UFFDIO_COPY: copy whole pages from `src` into [dst, dst + len). */
  copy(fd: number, args: UffdioCopy): number {
    const ctx = this.host.files.get(fd, FILE_USERFAULTFD);
    try {
      const { dst, len, mode } = args;
      this.checkReady(ctx);
      validateRange(dst, len);
      const known = UFFDIO_COPY_MODE_DONTWAKE | UFFDIO_COPY_MODE_WP;
      if (!Number.isInteger(mode) || (mode & ~known) !== 0) fail("EINVAL", `bad mode ${mode}`);
      const srcOffset = args.srcOffset ?? 0;
      if (!(Number.isInteger(srcOffset) && srcOffset >= 0) || args.src.length - srcOffset < len) {
        fail("EFAULT", `the source holds fewer than ${len} bytes`);
      }
      const op = MFILL_COPY | ((mode & UFFDIO_COPY_MODE_WP) !== 0 ? MFILL_WP : 0);
      let done: number;
      try {
        done = this.fill(dst, len, op, args.src, srcOffset);
      } catch (error) {
        args.copy = errnoCount(error);
        throw error;
      }
      args.copy = done;
      return this.finish(ctx, dst, len, done, (mode & UFFDIO_COPY_MODE_DONTWAKE) !== 0);
    } finally {
      putFile(this.host, ctx);
    }
  }

  /** UFFDIO_ZEROPAGE: zeroed pages into [dst, dst + len) (not on huge pages). */
  zeropage(fd: number, args: UffdioZeropage): number {
    const ctx = this.host.files.get(fd, FILE_USERFAULTFD);
    try {
      const { dst, len, mode } = args;
      this.checkReady(ctx);
      validateRange(dst, len);
      if (!Number.isInteger(mode) || (mode & ~UFFDIO_ZEROPAGE_MODE_DONTWAKE) !== 0) {
        fail("EINVAL", `bad mode ${mode}`);
      }
      let done: number;
      try {
        done = this.fill(dst, len, MFILL_ZEROPAGE, null, 0);
      } catch (error) {
        args.zeropage = errnoCount(error);
        throw error;
      }
      args.zeropage = done;
      return this.finish(ctx, dst, len, done, mode !== 0);
    } finally {
      putFile(this.host, ctx);
    }
  }

  /** UFFDIO_CONTINUE: map the pages the file already has over [start, start + len) (MINOR faults). */
  continue(fd: number, args: UffdioContinue): number {
    const ctx = this.host.files.get(fd, FILE_USERFAULTFD);
    try {
      const { start, len, mode } = args;
      this.checkReady(ctx);
      validateRange(start, len);
      const known = UFFDIO_CONTINUE_MODE_DONTWAKE | UFFDIO_CONTINUE_MODE_WP;
      if (!Number.isInteger(mode) || (mode & ~known) !== 0) fail("EINVAL", `bad mode ${mode}`);
      const op = MFILL_CONTINUE | ((mode & UFFDIO_CONTINUE_MODE_WP) !== 0 ? MFILL_WP : 0);
      let done: number;
      try {
        done = this.fill(start, len, op, null, 0);
      } catch (error) {
        args.mapped = errnoCount(error);
        throw error;
      }
      args.mapped = done;
      return this.finish(ctx, start, len, done, (mode & UFFDIO_CONTINUE_MODE_DONTWAKE) !== 0);
    } finally {
      putFile(this.host, ctx);
    }
  }

  /** UFFDIO_WAKE: wake the faults waiting in the range, resolved or not. */
  wake(fd: number, args: UffdioRange): void {
    const ctx = this.host.files.get(fd, FILE_USERFAULTFD);
    try {
      this.checkReady(ctx);
      validateRange(args.start, args.len);
      this.queue.wake(ctx, args.start, args.len);
    } finally {
      putFile(this.host, ctx);
    }
  }

  /** UFFDIO_WRITEPROTECT: protect (mode WP) or unprotect the present pages of a WP-registered range. */
  writeProtect(fd: number, args: UffdioWriteprotect): void {
    this.with(fd, true, (ctx) => {
      const { start, len, mode } = args;
      const known = UFFDIO_WRITEPROTECT_MODE_WP | UFFDIO_WRITEPROTECT_MODE_DONTWAKE;
      if (!Number.isInteger(mode) || (mode & ~known) !== 0) fail("EINVAL", `bad mode ${mode}`);
      const protect = (mode & UFFDIO_WRITEPROTECT_MODE_WP) !== 0;
      if (protect && (mode & UFFDIO_WRITEPROTECT_MODE_DONTWAKE) !== 0) {
        fail("EINVAL", "DONTWAKE is for unprotecting");
      }
      validateRange(start, len);
      const end = start + len;
      const mappings = this.host.mm.mappingsIn(start, end);
      if (mappings.length === 0) fail("ENOENT", `nothing is mapped in ${hex(start)} + ${len}`);
      for (const m of mappings) {
        const a = Math.max(start, m.start);
        const b = Math.min(end, m.start + m.length);
        if ((m.uffdMode & UFFD_WP) === 0 || a < m.uffdStart || b > m.uffdEnd) {
          fail("ENOENT", `${hex(a)} is not registered for write protection`);
        }
        if (a % m.pageSize !== 0 || b % m.pageSize !== 0) {
          fail("EINVAL", `range not aligned to the ${m.pageSize}-byte pages at ${hex(a)}`);
        }
      }
      for (const m of mappings) {
        const a = Math.max(start, m.start);
        this.host.mm.writeProtectRange(a, Math.min(end, m.start + m.length) - a, protect);
      }
      if (!protect && (mode & UFFDIO_WRITEPROTECT_MODE_DONTWAKE) === 0) {
        this.queue.wake(ctx, start, len);
      }
    });
  }

  // ---------------------------------------------------------------- the fault path

  /**
   * handle_userfault: called by the host fault path (on the faulting thread)
   * when a registered range needs userfaultfd. Queues a message on the
   * context and sleeps until a wake covers the address; returns 0 so that
   * the fault is retried, or FAULT_EFAULT with UFFD_FEATURE_SIGBUS.
   */
  handleFault(
    space: AddressSpace,
    slot: number,
    gen: number,
    hva: number,
    reason: number,
    flags: number,
  ): number {
    if (!space.isLive(slot, gen)) return 0;
    const ctx = space.userfaultContext(slot);
    if (ctx === 0) return 0; // unregistered meanwhile
    const i32 = this.i32;
    const c = ctx >> 2;
    if (ctx % 64 !== 0 || i32[c + OBJ_TYPE] !== FILE_USERFAULTFD) {
      // Only UFFDIO_REGISTER names a context: anything else is a kernel bug.
      // Queueing on it would scribble over the arena and sleep forever.
      throw new Error(`the range at ${hex(hva)} is registered to ${ctx}, not a userfaultfd`);
    }
    if (Atomics.load(i32, c + U_RELEASED) !== RELEASE_NONE) {
      this.queue.waitReleased(ctx);
      return 0;
    }
    const features = i32[c + U_FEATURES];
    if ((features & UFFD_FEATURE_SIGBUS) !== 0) return FAULT_EFAULT;
    let msgFlags = (flags & FAULT_WRITE) !== 0 ? UFFD_PAGEFAULT_FLAG_WRITE : 0;
    if (reason === UFFD_WP) msgFlags |= UFFD_PAGEFAULT_FLAG_WP;
    else if (reason === UFFD_MINOR) msgFlags |= UFFD_PAGEFAULT_FLAG_MINOR;
    const address =
      (features & UFFD_FEATURE_EXACT_ADDRESS) !== 0 ? hva : hva - (hva % space.pageSizeAt(hva));
    const ptid = (features & UFFD_FEATURE_THREAD_ID) !== 0 ? gettid() : 0;
    if (this.entry === 0) this.entry = this.host.heap.allocate(ENTRY_BYTES);
    const entry = this.entry;
    if (!this.queue.enqueue(ctx, entry, address, msgFlags, ptid)) {
      this.queue.waitReleased(ctx);
      return 0;
    }
    if (
      space.userfaultMustWait(slot, gen, hva, reason) &&
      Atomics.load(i32, c + U_RELEASED) === RELEASE_NONE
    ) {
      this.queue.notifyReaders(ctx);
      this.queue.sleep(entry);
    } else {
      this.queue.dequeue(ctx, entry);
    }
    return 0;
  }

  /** The last reference went: unregister everything and wake every fault (userfaultfd_release). */
  release(ctx: number): void {
    this.queue.beginRelease(ctx);
    this.locked(() => this.host.mm.clearUserfaultContext(ctx));
    this.queue.finishRelease(ctx);
  }

  // ---------------------------------------------------------------- helpers

  /**
   * The page-by-page loop of mfill_atomic over a validated range that must
   * lie in one registered mapping: the bytes done. An error on the first page is
   * thrown; one after some pages ends the loop with a short count.
   * Allocates nothing on success.
   */
  private fill(
    dst: number,
    len: number,
    op: number,
    src: Uint8Array | null,
    srcOffset: number,
  ): number {
    const mm = this.host.mm;
    const registered = mm.userfaultRangeMode(dst, len);
    if (registered === 0) {
      fail("ENOENT", `${hex(dst)} + ${len} is not inside one registered mapping`);
    }
    const pageSize = mm.pageSizeAt(dst);
    const kind = op & 0xff;
    if (pageSize > PAGE_SIZE) {
      if (kind === MFILL_ZEROPAGE) fail("EINVAL", "ZEROPAGE on huge pages");
      if (dst % pageSize !== 0 || len % pageSize !== 0) {
        fail("EINVAL", `range not aligned to ${pageSize}-byte pages`);
      }
    }
    if ((op & MFILL_WP) !== 0 && (registered & UFFD_WP) === 0) {
      fail("EINVAL", "WP mode on a range not registered WP");
    }
    let done = 0;
    for (; done < len; done += pageSize) {
      try {
        mm.mfill(dst + done, op, src, srcOffset + done);
      } catch (error) {
        if (done === 0 || !(error instanceof ErrnoError)) throw error;
        break;
      }
    }
    return done;
  }

  /** Wake what was resolved unless DONTWAKE; a short count is EAGAIN (the count is in the args). */
  private finish(ctx: number, dst: number, len: number, done: number, dontwake: boolean): number {
    if (!dontwake) this.queue.wake(ctx, dst, done);
    if (done !== len) fail("EAGAIN", `resolved ${done} of ${len} bytes at ${hex(dst)}`);
    return done;
  }

  /**
   * The registered range of a mapping after registering [a, b) of it with
   * `mode` (one range per mapping in this model).
   */
  private mergedRange(
    m: UserfaultMappingInfo,
    a: number,
    b: number,
    mode: number,
  ): [number, number] {
    if (m.uffdMode === 0) return [a, b];
    const covers = a <= m.uffdStart && b >= m.uffdEnd;
    const touches = a <= m.uffdEnd && b >= m.uffdStart;
    if (covers) return [a, b];
    if (touches && mode === m.uffdMode) return [Math.min(a, m.uffdStart), Math.max(b, m.uffdEnd)];
    fail("EINVAL", `${hex(m.start)} already has a registered range (one per mapping is modelled)`);
  }

  private message(out: UffdMsg): UffdMsg {
    const t = this.taken;
    out.event = UFFD_EVENT_PAGEFAULT;
    out.flags = t.flags;
    out.address = t.address;
    out.ptid = t.ptid;
    return out;
  }

  private checkReady(ctx: number): void {
    if (Atomics.load(this.i32, (ctx >> 2) + U_STATE) !== STATE_RUNNING) {
      fail("EINVAL", "userfaultfd needs the UFFDIO_API handshake first");
    }
  }

  /** Run `body` on the context behind `fd` holding a reference (and, if `ready`, after the handshake). */
  private with<T>(fd: number, ready: boolean, body: (ctx: number) => T): T {
    const ctx = this.host.files.get(fd, FILE_USERFAULTFD);
    try {
      if (ready) this.checkReady(ctx);
      return body(ctx);
    } finally {
      putFile(this.host, ctx);
    }
  }

  private locked<T>(body: () => T): T {
    const at = (this.root >> 2) + ROOT_LOCK;
    lock(this.i32, at);
    try {
      return body();
    } finally {
      unlock(this.i32, at);
    }
  }
}
