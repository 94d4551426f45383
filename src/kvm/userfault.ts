import { fail } from "../host/errno.js";
import type { HostMemory } from "../host/host-memory.js";
import { lock, unlock } from "../host/sync.js";
import type { GfnBitmap } from "./gfn-bitmap.js";
import {
  VM_DESTROYED,
  VM_UF_ENABLED,
  VM_UF_EVENTFD,
  VM_UF_GENERATION,
  VM_UF_OPTIONS,
  VM_UF_QUEUE,
  VM_UF_QUEUE_CAPACITY,
  VM_UF_QUEUE_COUNT,
  VM_UF_QUEUE_HEAD,
  VM_UF_QUEUE_LOCK,
  VM_UF_USERS,
  VM_UF_WAIT,
  VM_UF_WAIT_WORDS,
} from "./vm-layout.js";

/**
 * The userfault context of a VM (the RFC's kvm_userfault_ctx): whether
 * userfault is enabled, the eventfd to signal, and the queue of asynchronous
 * userfaults with the wait queues their accessors sleep on.
 *
 * An accessor that cannot unwind to userspace (a device worker, an
 * asynchronous steal-time update, a vCPU under USERFAULT_ASYNC_ALL) queues
 * the gfn, signals the eventfd and sleeps until the page's bit clears,
 * userfault is disabled (the access then fails), or the VM is destroyed. It
 * sleeps on a wait word chosen by gfn; whoever clears a bit bumps and
 * notifies that word, so there is no busy-waiting and no VM-wide lock on the
 * release path.
 */

export type WaitResult = "released" | "disabled" | "destroyed";

export class UserfaultContext {
  private readonly words: Int32Array;
  private readonly base: number;

  constructor(
    host: HostMemory,
    vmOffset: number,
    private readonly bitmap: GfnBitmap,
    private readonly signalEventfd: (eventfdObject: number) => void,
  ) {
    this.words = host.arenaI32;
    this.base = vmOffset >> 2;
  }

  private load(word: number): number {
    return Atomics.load(this.words, this.base + word);
  }

  get enabled(): boolean {
    return this.load(VM_UF_ENABLED) !== 0;
  }

  /** The eventfd object (arena offset) the context holds a reference to. */
  get eventfd(): number {
    return this.load(VM_UF_EVENTFD);
  }

  get options(): number {
    return this.load(VM_UF_OPTIONS);
  }

  /** Enable under the caller's slots lock, with a reference to the eventfd object. */
  enable(options: number, eventfd: number): void {
    if (this.enabled) fail("EEXIST", "userfault is already enabled on this VM");
    Atomics.store(this.words, this.base + VM_UF_OPTIONS, options);
    Atomics.store(this.words, this.base + VM_UF_EVENTFD, eventfd);
    Atomics.store(this.words, this.base + VM_UF_QUEUE_COUNT, 0);
    Atomics.store(this.words, this.base + VM_UF_ENABLED, 1);
    this.bumpGeneration();
  }

  /**
   * Disable: every sleeper wakes and fails its access, pending faults are
   * dropped, and the call returns once no accessor uses the context any more.
   */
  disable(): void {
    if (!this.enabled) return;
    Atomics.store(this.words, this.base + VM_UF_ENABLED, 0);
    this.bumpGeneration();
    for (;;) {
      const users = this.load(VM_UF_USERS);
      if (users === 0) break;
      Atomics.wait(this.words, this.base + VM_UF_USERS, users);
    }
    lock(this.words, this.base + VM_UF_QUEUE_LOCK);
    Atomics.store(this.words, this.base + VM_UF_QUEUE_COUNT, 0);
    unlock(this.words, this.base + VM_UF_QUEUE_LOCK);
    Atomics.store(this.words, this.base + VM_UF_EVENTFD, -1);
  }

  /** Wake every sleeper so it re-checks (enable, disable, VM destruction). */
  bumpGeneration(): void {
    Atomics.add(this.words, this.base + VM_UF_GENERATION, 1);
    for (let i = 0; i < VM_UF_WAIT_WORDS; i++) this.wake(i);
  }

  private wake(slot: number): void {
    Atomics.add(this.words, this.base + VM_UF_WAIT + slot, 1);
    Atomics.notify(this.words, this.base + VM_UF_WAIT + slot);
  }

  /**
   * After clearing USERFAULT on gfns: wake whoever sleeps on them. When no
   * accessor is inside waitForRelease, nothing is bumped or notified: a V8
   * notify takes a process-wide lock, and this runs once per installed page.
   * No wake-up is lost: a sleeper counts itself in VM_UF_USERS before it
   * tests the bit, and the caller cleared the bit before this load, both
   * sequentially consistent atomics, so either this load sees the sleeper
   * or the sleeper's test sees the bit clear.
   */
  released(gfn: number, count: number): void {
    if (this.load(VM_UF_USERS) === 0) return;
    if (count >= VM_UF_WAIT_WORDS) {
      for (let i = 0; i < VM_UF_WAIT_WORDS; i++) this.wake(i);
      return;
    }
    for (let g = gfn; g < gfn + count; g++) this.wake(g % VM_UF_WAIT_WORDS);
  }

  /**
   * The asynchronous userfault: queue gfn (once: a gfn already waiting in the
   * queue is not queued twice), signal the eventfd, and sleep until gfn is
   * released. Only for callers allowed to sleep.
   */
  waitForRelease(gfn: number): WaitResult {
    Atomics.add(this.words, this.base + VM_UF_USERS, 1);
    try {
      const generation = this.load(VM_UF_GENERATION);
      // No fault is queued for a VM nobody will serve again.
      if (this.load(VM_DESTROYED) !== 0) return "destroyed";
      if (!this.enabled) return "disabled";
      if (!this.bitmap.test(gfn)) return "released";
      this.enqueue(gfn);
      this.signalEventfd(this.load(VM_UF_EVENTFD));
      const wordIndex = this.base + VM_UF_WAIT + (gfn % VM_UF_WAIT_WORDS);
      for (;;) {
        const seen = Atomics.load(this.words, wordIndex);
        if (this.load(VM_DESTROYED) !== 0) return "destroyed";
        if (this.load(VM_UF_GENERATION) !== generation) return "disabled";
        if (!this.bitmap.test(gfn)) return "released";
        Atomics.wait(this.words, wordIndex, seen);
      }
    } finally {
      if (Atomics.sub(this.words, this.base + VM_UF_USERS, 1) === 1) {
        Atomics.notify(this.words, this.base + VM_UF_USERS);
      }
    }
  }

  private enqueue(gfn: number): void {
    const w = this.words;
    lock(w, this.base + VM_UF_QUEUE_LOCK);
    try {
      const count = w[this.base + VM_UF_QUEUE_COUNT];
      const head = w[this.base + VM_UF_QUEUE_HEAD];
      for (let i = 0; i < count; i++) {
        if (w[this.base + VM_UF_QUEUE + ((head + i) % VM_UF_QUEUE_CAPACITY)] === gfn) return;
      }
      // One entry per distinct sleeping gfn, and sleepers are threads: the
      // queue cannot fill unless a thousand accessors wait at once.
      if (count === VM_UF_QUEUE_CAPACITY) fail("ENOSPC", "asynchronous userfault queue full");
      w[this.base + VM_UF_QUEUE + ((head + count) % VM_UF_QUEUE_CAPACITY)] = gfn;
      w[this.base + VM_UF_QUEUE_COUNT] = count + 1;
    } finally {
      unlock(w, this.base + VM_UF_QUEUE_LOCK);
    }
  }

  /** KVM_READ_USERFAULT: the next pending gfn; ENOENT when none or when disabled. */
  read(): number {
    const w = this.words;
    if (!this.enabled) fail("ENOENT", "userfault is not enabled");
    lock(w, this.base + VM_UF_QUEUE_LOCK);
    try {
      const count = w[this.base + VM_UF_QUEUE_COUNT];
      if (count === 0) fail("ENOENT", "no asynchronous userfault is pending");
      const head = w[this.base + VM_UF_QUEUE_HEAD];
      const gfn = w[this.base + VM_UF_QUEUE + head];
      w[this.base + VM_UF_QUEUE_HEAD] = (head + 1) % VM_UF_QUEUE_CAPACITY;
      w[this.base + VM_UF_QUEUE_COUNT] = count - 1;
      return gfn;
    } finally {
      unlock(w, this.base + VM_UF_QUEUE_LOCK);
    }
  }
}
