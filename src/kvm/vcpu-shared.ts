import type { HostMemory } from "../host/host-memory.js";
import { CTRL_REQUESTS, postRequest } from "../riscv/cpu/hart-control.js";

/**
 * The part of a vCPU that other threads use, in the arena: the hart's control
 * words (pending interrupts, request bits, wake-up sequence), the vCPU's mode
 * and exit epoch for KVM-style requests, and the SBI HSM state.
 *
 * Requests follow KVM's protocol (kvm_make_all_cpus_request): set the bit on
 * every vCPU; for each vCPU that is in guest mode, kick it and wait until it
 * has left guest mode once. A vCPU checks its requests after entering guest
 * mode and before running guest code, so one that enters later sees the bit.
 */

// Word offsets inside a vCPU record (the first four are the hart's control block).
export const V_CONTROL = 0;
const V_MODE = 4;
const V_EPOCH = 5;
export const V_HSM_STATE = 6;
/** Threads waiting in requestAllAndWait for this vCPU's epoch to move. */
const V_EPOCH_WAITERS = 7;
/** 64-bit values as (lo, hi) word pairs: HSM start address and opaque, steal-time shmem. */
export const V_HSM_START_ADDR = 8;
export const V_HSM_OPAQUE = 10;
export const V_STEAL_ADDR = 12;
/** 1 while a steal-time record is registered. */
export const V_STEAL_ENABLED = 14;
export const VCPU_RECORD_WORDS = 16;

export const OUTSIDE_GUEST_MODE = 0;
export const IN_GUEST_MODE = 1;

/** Request bits (KVM_REQ_*). */
export const REQ_TLB_FLUSH = 1 << 0;
export const REQ_RECORD_STEAL = 1 << 1;
export const REQ_HSM = 1 << 2;
export const REQ_SYSTEM_EVENT = 1 << 3;
/** Just leave guest mode (the caller wants the vCPU out of KVM_RUN or synced). */
export const REQ_KICK = 1 << 4;

/** SBI HSM hart states. */
export const HSM_STARTED = 0;
export const HSM_STOPPED = 1;
export const HSM_START_PENDING = 2;

export class VcpuShared {
  readonly control: Int32Array;
  private readonly words: Int32Array;
  private readonly base: number;

  constructor(
    readonly host: HostMemory,
    readonly offset: number,
  ) {
    this.words = host.arenaI32;
    this.base = offset >> 2;
    this.control = new Int32Array(host.arenaBuffer, offset + V_CONTROL * 4, 4);
  }

  static allocate(host: HostMemory): number {
    return host.arenaAllocate(VCPU_RECORD_WORDS * 4, 64);
  }

  word(index: number): number {
    return Atomics.load(this.words, this.base + index);
  }

  setWord(index: number, value: number): void {
    Atomics.store(this.words, this.base + index, value);
  }

  compareExchangeWord(index: number, expected: number, value: number): number {
    return Atomics.compareExchange(this.words, this.base + index, expected, value);
  }

  /** A 64-bit value kept as a (lo, hi) word pair. */
  pair(index: number): bigint {
    const lo = BigInt(Atomics.load(this.words, this.base + index) >>> 0);
    return (BigInt(Atomics.load(this.words, this.base + index + 1) >>> 0) << 32n) | lo;
  }

  setPair(index: number, value: bigint): void {
    Atomics.store(this.words, this.base + index, Number(BigInt.asIntN(32, value)));
    Atomics.store(this.words, this.base + index + 1, Number(BigInt.asIntN(32, value >> 32n)));
  }

  /** Called by the vCPU's own thread when it enters guest mode; returns pending requests. */
  enterGuestMode(): number {
    Atomics.store(this.words, this.base + V_MODE, IN_GUEST_MODE);
    return Atomics.load(this.control, CTRL_REQUESTS);
  }

  /**
   * Called by the vCPU's own thread whenever it leaves guest mode: at every
   * exit, so it notifies (a process-wide lock) only when someone waits.
   */
  exitGuestMode(): void {
    Atomics.store(this.words, this.base + V_MODE, OUTSIDE_GUEST_MODE);
    Atomics.add(this.words, this.base + V_EPOCH, 1);
    if (Atomics.load(this.words, this.base + V_EPOCH_WAITERS) !== 0) {
      Atomics.notify(this.words, this.base + V_EPOCH);
    }
  }

  /**
   * Wait until this vCPU left guest mode since its epoch was `epoch`. The
   * waiter counts itself before it looks: an exit that missed the count
   * moved the epoch before the look or before the wait compares it.
   */
  waitForExitSince(epoch: number): void {
    Atomics.add(this.words, this.base + V_EPOCH_WAITERS, 1);
    while (this.word(V_MODE) === IN_GUEST_MODE && this.word(V_EPOCH) === epoch) {
      Atomics.wait(this.words, this.base + V_EPOCH, epoch);
    }
    Atomics.sub(this.words, this.base + V_EPOCH_WAITERS, 1);
  }

  /** Post request bits without waiting. */
  request(bits: number): void {
    postRequest(this.control, bits);
  }

  /** Post request bits from the vCPU's own thread: it is awake, there is no one to wake. */
  requestSelf(bits: number): void {
    Atomics.or(this.control, CTRL_REQUESTS, bits);
  }
}

/**
 * kvm_make_all_cpus_request: post to all, then wait for those in guest mode.
 * Each epoch is read after the post: a vCPU in guest mode then is in a stint
 * that either began before the post (it sees the request at its next slice
 * and leaves, bumping the epoch) or after it (enterGuestMode sees the request
 * and leaves at once). Read before the post, an epoch could belong to a stint
 * that ended just then; a new stint begun before the post, still using a
 * stale TLB entry, would look acknowledged and the caller would go on while
 * it runs.
 */
export function requestAllAndWait(vcpus: readonly VcpuShared[], bits: number): void {
  for (const v of vcpus) v.request(bits);
  const epochs = vcpus.map((v) => v.word(V_EPOCH));
  vcpus.forEach((v, i) => v.waitForExitSince(epochs[i]));
}
