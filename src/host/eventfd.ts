import { fail } from "./errno.js";
import {
  FILE_EVENTFD,
  FILE_HEADER_BYTES,
  initFileObject,
  putFile,
  registerFileType,
} from "./files.js";
import type { Host } from "./host.js";

/**
 * eventfd: a 64-bit counter that one thread adds to and another consumes,
 * with Linux's semantics. `write(n)` adds n and wakes readers; `read()`
 * returns the counter and resets it to 0 (with EFD_SEMAPHORE: returns 1 and
 * decrements), blocking while it is 0 unless EFD_NONBLOCK (then EAGAIN). A
 * write that would take the counter past 2^64 - 2 blocks until a read (or
 * fails with EAGAIN when nonblocking).
 *
 * The counter is a BigInt64 in the arena, changed by compare-and-swap and
 * waited on with Atomics.wait (workers) or Atomics.waitAsync (the main
 * thread, `readAsync`); nothing ever spins. The hypervisor calls `signal`
 * from whatever thread takes an asynchronous userfault: it adds 1 and never
 * blocks, as the kernel's eventfd_signal.
 */

export const EFD_SEMAPHORE = 0o1;
export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;
const KNOWN_FLAGS = EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC;

/** The largest value the counter can hold (ULLONG_MAX - 1). */
export const EVENTFD_MAX = 0xffff_ffff_ffff_fffen;

// Layout after the common header: the flags word, then the counter (8-aligned).
const E_FLAGS = FILE_HEADER_BYTES;
const E_COUNTER = FILE_HEADER_BYTES + 8;
const EVENTFD_BYTES = E_COUNTER + 8;

registerFileType(FILE_EVENTFD, "eventfd", () => {
  // Nothing to free: the object is a few words of arena.
});

/** The counter as the unsigned value it stands for. */
function unsigned(raw: bigint): bigint {
  return BigInt.asUintN(64, raw);
}

function toCount(value: number | bigint): bigint {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0) fail("EINVAL", `bad eventfd value ${value}`);
    return BigInt(value);
  }
  if (value < 0n || value > EVENTFD_MAX) fail("EINVAL", `bad eventfd value ${value}`);
  return value;
}

export class EventFds {
  private readonly i64: BigInt64Array;
  private readonly i32: Int32Array;

  constructor(private readonly host: Host) {
    this.i64 = new BigInt64Array(host.memory.arenaBuffer);
    this.i32 = host.memory.arenaI32;
  }

  /** eventfd(2): a new eventfd whose counter starts at `initval`. */
  create(initval: number | bigint = 0, flags = 0): number {
    if ((flags & ~KNOWN_FLAGS) !== 0) fail("EINVAL", `unknown eventfd flags ${flags}`);
    const initial = toCount(initval);
    if (initial > 0xffff_ffffn) fail("EINVAL", "eventfd initval must fit in 32 bits");
    const object = this.host.memory.arenaAllocate(EVENTFD_BYTES, 8);
    this.i32[(object + E_FLAGS) >> 2] = flags;
    Atomics.store(this.i64, (object + E_COUNTER) >> 3, initial);
    initFileObject(this.host.memory, object, FILE_EVENTFD, 0, 0);
    return this.host.files.install(FILE_EVENTFD, object);
  }

  /** write(2) of 8 bytes: add `value` (EINVAL for 2^64 - 1 or more). */
  write(fd: number, value: number | bigint): void {
    const count = toCount(value);
    const object = this.host.files.get(fd, FILE_EVENTFD);
    try {
      this.writeObject(object, count);
    } finally {
      putFile(this.host, object);
    }
  }

  /** read(2) of 8 bytes: blocks (Atomics.wait) while the counter is 0, unless nonblocking. */
  read(fd: number): bigint {
    const object = this.host.files.get(fd, FILE_EVENTFD);
    try {
      for (;;) {
        const value = this.take(object);
        if (value !== 0n) return value;
        if (this.nonblocking(object)) fail("EAGAIN", `eventfd ${fd} is empty`);
        Atomics.wait(this.i64, (object + E_COUNTER) >> 3, 0n);
      }
    } finally {
      putFile(this.host, object);
    }
  }

  /** read(2) for the main thread: waits with Atomics.waitAsync, never blocking the event loop. */
  async readAsync(fd: number): Promise<bigint> {
    const object = this.host.files.get(fd, FILE_EVENTFD);
    try {
      for (;;) {
        const value = this.take(object);
        if (value !== 0n) return value;
        if (this.nonblocking(object)) fail("EAGAIN", `eventfd ${fd} is empty`);
        const waiting = Atomics.waitAsync(this.i64, (object + E_COUNTER) >> 3, 0n);
        if (waiting.async) await waiting.value;
      }
    } finally {
      putFile(this.host, object);
    }
  }

  /** The hypervisor's eventfd_signal: add 1 and wake readers, from any thread, never blocking. */
  signal(fd: number): void {
    const object = this.host.files.get(fd, FILE_EVENTFD);
    try {
      this.signalObject(object);
    } finally {
      putFile(this.host, object);
    }
  }

  /**
   * `signal` on an eventfd object the caller holds a reference to (taken with
   * `host.files.get(fd, FILE_EVENTFD)`), as the userfault context keeps its
   * eventfd. A counter already at the maximum stays there.
   */
  signalObject(object: number): void {
    const at = (object + E_COUNTER) >> 3;
    for (;;) {
      const raw = Atomics.load(this.i64, at);
      const count = unsigned(raw);
      if (count === EVENTFD_MAX) break;
      if (Atomics.compareExchange(this.i64, at, raw, BigInt.asIntN(64, count + 1n)) === raw) break;
    }
    Atomics.notify(this.i64, at);
  }

  /** The counter, without consuming it (what /proc/PID/fdinfo shows as eventfd-count). */
  peek(fd: number): bigint {
    const object = this.host.files.lookup(fd, FILE_EVENTFD);
    return unsigned(Atomics.load(this.i64, (object + E_COUNTER) >> 3));
  }

  private nonblocking(object: number): boolean {
    return (this.i32[(object + E_FLAGS) >> 2] & EFD_NONBLOCK) !== 0;
  }

  private writeObject(object: number, value: bigint): void {
    const at = (object + E_COUNTER) >> 3;
    for (;;) {
      const raw = Atomics.load(this.i64, at);
      const count = unsigned(raw);
      if (EVENTFD_MAX - count < value) {
        if (this.nonblocking(object)) fail("EAGAIN", "eventfd counter would overflow");
        Atomics.wait(this.i64, at, raw);
        continue;
      }
      if (Atomics.compareExchange(this.i64, at, raw, BigInt.asIntN(64, count + value)) === raw) {
        if (value !== 0n) Atomics.notify(this.i64, at);
        return;
      }
    }
  }

  /** Consume the counter (or 1 of it, for a semaphore); 0n when it is empty. */
  private take(object: number): bigint {
    const at = (object + E_COUNTER) >> 3;
    const semaphore = (this.i32[(object + E_FLAGS) >> 2] & EFD_SEMAPHORE) !== 0;
    for (;;) {
      const raw = Atomics.load(this.i64, at);
      if (raw === 0n) return 0n;
      const count = unsigned(raw);
      const next = semaphore ? BigInt.asIntN(64, count - 1n) : 0n;
      if (Atomics.compareExchange(this.i64, at, raw, next) === raw) {
        // Writers blocked on a full counter wait for it to change.
        Atomics.notify(this.i64, at);
        return semaphore ? 1n : count;
      }
    }
  }
}
