import { FILE_HEADER_BYTES } from "./files.js";
import type { HostMemory } from "./host-memory.js";
import { lock, unlock } from "./sync.js";

/**
 * A userfaultfd context's state in the arena and its two wait queues, shaped
 * like Linux's (fs/userfaultfd.c): `fault_pending_wqh` holds faults not yet
 * read, in arrival order; `fault_wqh` holds faults a reader has taken but
 * that are not resolved yet. One lock (the context's, as Linux uses the
 * pending queue's spinlock for both) guards both queues; every faulting
 * thread and every reader takes it, so contention between vCPUs is real.
 * Resolving ioctls wake by address range: every queued fault inside the
 * range, read or not, is taken off its queue and woken; an unread message
 * that is woken is never read, as in Linux.
 *
 * A fault's queue entry (Linux's `struct userfaultfd_wait_queue` on the
 * faulting task's stack) is one small arena block per thread, allocated
 * once and reused, since a thread waits on at most one fault at a time: the
 * fault path allocates nothing. The faulter sleeps with Atomics.wait on its
 * entry's wake word; readers sleep on the context's read sequence word
 * (`fd_wqh`), which every queued message and the release bump.
 */

// Context words after the common file header.
export const U_LOCK = FILE_HEADER_BYTES / 4;
/** 0 until the UFFDIO_API handshake, then 1. */
export const U_STATE = U_LOCK + 1;
export const U_FEATURES = U_LOCK + 2;
/** userfaultfd(2) flags (O_NONBLOCK, O_CLOEXEC). */
export const U_FLAGS = U_LOCK + 3;
/** RELEASE_*: set when the last reference goes. */
export const U_RELEASED = U_LOCK + 4;
/** fd_wqh: bumped (under the lock) for every queued message and at release. */
export const U_READ_SEQ = U_LOCK + 5;
const U_PENDING_HEAD = U_LOCK + 6;
const U_PENDING_TAIL = U_LOCK + 7;
const U_WAITING_HEAD = U_LOCK + 8;
/** Messages queued and not read yet (for poll without the lock). */
export const U_PENDING = U_LOCK + 9;
/** Faults on either queue: a wake finding 0 here need not take the lock. */
const U_QUEUED = U_LOCK + 10;
export const CONTEXT_BYTES = (U_QUEUED + 1) * 4;

export const RELEASE_NONE = 0;
/** Being released: new faults wait for the release to finish, then retry. */
export const RELEASE_RUNNING = 1;
export const RELEASE_DONE = 2;

// Entry words (an 8-aligned block of 32 bytes).
const E_NEXT = 0;
const E_PREV = 1;
/** Which queue holds the entry: Q_NONE, Q_PENDING or Q_WAITING. */
const E_QUEUE = 2;
/** 0 while the faulter must sleep; 1 once woken. */
const E_WOKEN = 3;
const E_FLAGS = 4;
const E_PTID = 5;
/** The message's address, a Float64 at byte 24. */
const E_ADDRESS_F64 = 3;
export const ENTRY_BYTES = 32;

const Q_NONE = 0;
const Q_PENDING = 1;
const Q_WAITING = 2;

/** A fault message as read(2) hands it over (the fields of uffd_msg.arg.pagefault). */
export interface PendingFault {
  flags: number;
  address: number;
  ptid: number;
}

/** Operations on the queues of the context at arena offset `ctx`; one instance per thread. */
export class UserfaultQueue {
  private readonly i32: Int32Array;
  private readonly f64: Float64Array;

  constructor(memory: HostMemory) {
    this.i32 = memory.arenaI32;
    this.f64 = memory.arenaF64;
  }

  /**
   * Queue the fault described by `entry` (this thread's block) on the
   * pending queue; false when the context is being released (nothing queued).
   */
  enqueue(ctx: number, entry: number, address: number, flags: number, ptid: number): boolean {
    const i32 = this.i32;
    const c = ctx >> 2;
    const e = entry >> 2;
    lock(i32, c + U_LOCK);
    try {
      if (i32[c + U_RELEASED] !== RELEASE_NONE) return false;
      this.f64[(entry >> 3) + E_ADDRESS_F64] = address;
      i32[e + E_FLAGS] = flags;
      i32[e + E_PTID] = ptid;
      Atomics.store(i32, e + E_WOKEN, 0);
      // Append at the tail: read() takes the head, so messages come out in order.
      const tail = i32[c + U_PENDING_TAIL];
      i32[e + E_NEXT] = 0;
      i32[e + E_PREV] = tail;
      if (tail === 0) i32[c + U_PENDING_HEAD] = entry;
      else i32[(tail >> 2) + E_NEXT] = entry;
      i32[c + U_PENDING_TAIL] = entry;
      i32[e + E_QUEUE] = Q_PENDING;
      Atomics.add(i32, c + U_PENDING, 1);
      // Seen by a resolver's lockless check only after the entry is on a queue.
      Atomics.add(i32, c + U_QUEUED, 1);
      Atomics.add(i32, c + U_READ_SEQ, 1);
      return true;
    } finally {
      unlock(i32, c + U_LOCK);
    }
  }

  /** Wake readers (and pollers) of the context: a message is there. */
  notifyReaders(ctx: number): void {
    Atomics.notify(this.i32, (ctx >> 2) + U_READ_SEQ);
  }

  /** Sleep until the entry is woken. */
  sleep(entry: number): void {
    const at = (entry >> 2) + E_WOKEN;
    while (Atomics.load(this.i32, at) === 0) Atomics.wait(this.i32, at, 0);
  }

  /** Take the entry off whatever queue still holds it (a fault that did not need to sleep). */
  dequeue(ctx: number, entry: number): void {
    const i32 = this.i32;
    // Woken already: the waker unlinked it (before setting the word, under the lock).
    if (Atomics.load(i32, (entry >> 2) + E_WOKEN) === 1) return;
    lock(i32, (ctx >> 2) + U_LOCK);
    try {
      if (i32[(entry >> 2) + E_QUEUE] !== Q_NONE) this.unlink(ctx, entry);
      Atomics.store(i32, (entry >> 2) + E_WOKEN, 1);
    } finally {
      unlock(i32, (ctx >> 2) + U_LOCK);
    }
  }

  /**
   * Hand over the oldest unread message (moving its fault to the waiting
   * queue) into `out`; false when there is none. `seq` gets the read
   * sequence seen under the lock, for a reader that then sleeps.
   */
  take(ctx: number, out: PendingFault, seq: Int32Array): boolean {
    const i32 = this.i32;
    const c = ctx >> 2;
    lock(i32, c + U_LOCK);
    try {
      const entry = i32[c + U_PENDING_HEAD];
      if (entry === 0) {
        seq[0] = i32[c + U_READ_SEQ];
        return false;
      }
      const e = entry >> 2;
      out.address = this.f64[(entry >> 3) + E_ADDRESS_F64];
      out.flags = i32[e + E_FLAGS];
      out.ptid = i32[e + E_PTID];
      // It stays queued: count it in again before unlink counts it out, so a
      // resolver's lockless look at U_QUEUED never sees 0 while it moves
      // (that wake would return without the lock and the fault would sleep on).
      Atomics.add(i32, c + U_QUEUED, 1);
      this.unlink(ctx, entry);
      const head = i32[c + U_WAITING_HEAD];
      i32[e + E_PREV] = 0;
      i32[e + E_NEXT] = head;
      if (head !== 0) i32[(head >> 2) + E_PREV] = entry;
      i32[c + U_WAITING_HEAD] = entry;
      i32[e + E_QUEUE] = Q_WAITING;
      return true;
    } finally {
      unlock(i32, c + U_LOCK);
    }
  }

  /**
   * Wake every queued fault whose address is in [start, start + length)
   * (length 0: all of them), read or not. Returns how many were woken.
   */
  wake(ctx: number, start: number, length: number): number {
    const i32 = this.i32;
    const c = ctx >> 2;
    if (Atomics.load(i32, c + U_QUEUED) === 0) return 0;
    let woken = 0;
    lock(i32, c + U_LOCK);
    try {
      woken += this.wakeList(ctx, i32[c + U_PENDING_HEAD], start, length);
      woken += this.wakeList(ctx, i32[c + U_WAITING_HEAD], start, length);
    } finally {
      unlock(i32, c + U_LOCK);
    }
    return woken;
  }

  /** Release: mark the context going (faults arriving now wait for `finishRelease`). */
  beginRelease(ctx: number): void {
    const i32 = this.i32;
    lock(i32, (ctx >> 2) + U_LOCK);
    Atomics.store(i32, (ctx >> 2) + U_RELEASED, RELEASE_RUNNING);
    unlock(i32, (ctx >> 2) + U_LOCK);
  }

  /** Release, once the ranges are unregistered: wake every fault and reader; faults retry. */
  finishRelease(ctx: number): void {
    const i32 = this.i32;
    const c = ctx >> 2;
    this.wake(ctx, 0, 0);
    lock(i32, c + U_LOCK);
    Atomics.store(i32, c + U_RELEASED, RELEASE_DONE);
    Atomics.add(i32, c + U_READ_SEQ, 1);
    unlock(i32, c + U_LOCK);
    Atomics.notify(i32, c + U_RELEASED);
    Atomics.notify(i32, c + U_READ_SEQ);
  }

  /** A fault that found the context being released waits for the release to finish. */
  waitReleased(ctx: number): void {
    const at = (ctx >> 2) + U_RELEASED;
    while (Atomics.load(this.i32, at) === RELEASE_RUNNING) {
      Atomics.wait(this.i32, at, RELEASE_RUNNING);
    }
  }

  private wakeList(ctx: number, first: number, start: number, length: number): number {
    const i32 = this.i32;
    let woken = 0;
    for (let entry = first; entry !== 0;) {
      const e = entry >> 2;
      const next = i32[e + E_NEXT];
      const address = this.f64[(entry >> 3) + E_ADDRESS_F64];
      if (length === 0 || (address >= start && address < start + length)) {
        this.unlink(ctx, entry);
        Atomics.store(i32, e + E_WOKEN, 1);
        Atomics.notify(i32, e + E_WOKEN);
        woken++;
      }
      entry = next;
    }
    return woken;
  }

  /** Take `entry` off its queue; under the lock. */
  private unlink(ctx: number, entry: number): void {
    const i32 = this.i32;
    const c = ctx >> 2;
    const e = entry >> 2;
    const next = i32[e + E_NEXT];
    const prev = i32[e + E_PREV];
    const pending = i32[e + E_QUEUE] === Q_PENDING;
    if (prev !== 0) i32[(prev >> 2) + E_NEXT] = next;
    else i32[c + (pending ? U_PENDING_HEAD : U_WAITING_HEAD)] = next;
    if (next !== 0) i32[(next >> 2) + E_PREV] = prev;
    else if (pending) i32[c + U_PENDING_TAIL] = prev;
    if (pending) Atomics.sub(i32, c + U_PENDING, 1);
    Atomics.sub(i32, c + U_QUEUED, 1);
    i32[e + E_NEXT] = 0;
    i32[e + E_PREV] = 0;
    i32[e + E_QUEUE] = Q_NONE;
  }
}
