import { lock, unlock } from "../../host/sync.js";
import type { Vm } from "../vm.js";
import {
  INTERRUPT_CONFIG_CHANGE,
  STATUS_DEVICE_NEEDS_RESET,
  STATUS_DRIVER_OK,
  STATUS_FAILED,
} from "./virtio.js";

/**
 * The state of one virtio-mmio block device, in the arena so that the vCPU
 * threads that emulate its registers and the worker thread that serves its
 * queue share it. Word offsets from the state's base; the register file is
 * changed under S_LOCK, which is never held across a guest memory access
 * (that may sleep on a userfault).
 */

export const S_LOCK = 0;
export const S_STATUS = 1;
export const S_DEVICE_FEATURES_SEL = 2;
export const S_DRIVER_FEATURES_SEL = 3;
/** Driver and device features as (lo, hi) word pairs. */
export const S_DRIVER_FEATURES = 4;
export const S_DEVICE_FEATURES = 6;
export const S_QUEUE_SEL = 8;
export const S_QUEUE_NUM = 9;
export const S_QUEUE_READY = 10;
/** Queue area addresses as (lo, hi) word pairs. */
export const S_QUEUE_DESC = 11;
export const S_QUEUE_DRIVER = 13;
export const S_QUEUE_DEVICE = 15;
export const S_INTERRUPT_STATUS = 17;
export const S_CONFIG_GENERATION = 18;
export const S_SHM_SEL = 19;
/** Bumped and notified by QueueNotify (and stop, DRIVER_OK, reset): the worker sleeps on it. */
export const S_KICK = 20;
/** Set to make the worker exit. */
export const S_STOP = 21;
/** 1 while a worker thread serves the device. */
export const S_WORKER = 22;
/** 1 while the worker is inside a batch of requests (a reset then waits for it). */
export const S_BUSY = 23;
/** The driver wrote 0 to Status while the worker was busy: the worker completes the reset. */
export const S_RESET_PENDING = 24;
/** The device's shadow indexes: next available entry to take, next used index. */
export const S_LAST_AVAIL = 25;
export const S_USED_IDX = 26;
/** The backing memfd object (the device holds a reference) and its page cache. */
export const S_MEMFD = 27;
export const S_PAGE_CACHE = 28;
/** Interrupt line on the VM's I/O bus. */
export const S_LINE = 29;
/** Statistics: requests completed, and those completed with IOERR. */
export const S_REQUESTS = 30;
export const S_IO_ERRORS = 31;
/** Float64 at words 32-33: capacity in 512-byte sectors. */
export const S_CAPACITY = 32;
/** Float64 at words 34-35: guest-physical address of the register window. */
export const S_GPA = 34;
/** Set by the VMM (BlockDeviceWorker.pause): the worker takes no new request. */
export const S_PAUSED = 36;
/** The device configuration space (struct virtio_blk_config), as bytes. */
export const S_CONFIG = 40;
/** The GET_ID string, 20 bytes. */
export const S_SERIAL = 56;
export const STATE_BYTES = 64 * 4;

export class VirtioBlkState {
  readonly words: Int32Array;
  readonly base: number;
  readonly line: number;

  constructor(
    readonly vm: Vm,
    readonly offset: number,
  ) {
    this.words = vm.memory.arenaI32;
    this.base = offset >> 2;
    this.line = this.words[this.base + S_LINE];
  }

  word(index: number): number {
    return Atomics.load(this.words, this.base + index);
  }

  setWord(index: number, value: number): void {
    Atomics.store(this.words, this.base + index, value);
  }

  /** A (lo, hi) word pair as a number (guest addresses fit in 53 bits). */
  pair(index: number): number {
    return (this.word(index) >>> 0) + (this.word(index + 1) >>> 0) * 2 ** 32;
  }

  get capacity(): number {
    return this.vm.memory.arenaF64[(this.base + S_CAPACITY) >> 1];
  }

  lock(): void {
    lock(this.words, this.base + S_LOCK);
  }

  unlock(): void {
    unlock(this.words, this.base + S_LOCK);
  }

  /** Wake the worker (QueueNotify). */
  kick(): void {
    Atomics.add(this.words, this.base + S_KICK, 1);
    Atomics.notify(this.words, this.base + S_KICK);
  }

  /** True while the worker may take requests: DRIVER_OK, queue ready, no reset under way, not paused. */
  get running(): boolean {
    const status = this.word(S_STATUS);
    return (
      (status & (STATUS_DRIVER_OK | STATUS_DEVICE_NEEDS_RESET | STATUS_FAILED)) ===
        STATUS_DRIVER_OK &&
      this.word(S_QUEUE_READY) !== 0 &&
      this.word(S_RESET_PENDING) === 0 &&
      this.word(S_STOP) === 0 &&
      this.word(S_PAUSED) === 0
    );
  }

  /**
   * Device reset (Status written 0), under the lock and only while the
   * worker is not busy: back to the state at creation, interrupt lowered.
   * Status reads 0 only once all of it is done: a driver that reads it
   * without the lock takes 0 to mean the reset is complete.
   */
  resetLocked(): void {
    for (const index of [
      S_DEVICE_FEATURES_SEL,
      S_DRIVER_FEATURES_SEL,
      S_DRIVER_FEATURES,
      S_DRIVER_FEATURES + 1,
      S_QUEUE_SEL,
      S_QUEUE_NUM,
      S_QUEUE_READY,
      S_QUEUE_DESC,
      S_QUEUE_DESC + 1,
      S_QUEUE_DRIVER,
      S_QUEUE_DRIVER + 1,
      S_QUEUE_DEVICE,
      S_QUEUE_DEVICE + 1,
      S_INTERRUPT_STATUS,
      S_SHM_SEL,
      S_RESET_PENDING,
      S_LAST_AVAIL,
      S_USED_IDX,
    ]) {
      this.setWord(index, 0);
    }
    this.vm.ioBus.setLine(this.line, false);
    this.setWord(S_STATUS, 0);
  }

  /** Set InterruptStatus bits and raise the line (under the lock). */
  interruptLocked(bits: number): void {
    this.setWord(S_INTERRUPT_STATUS, this.word(S_INTERRUPT_STATUS) | bits);
    this.vm.ioBus.setLine(this.line, true);
  }

  /** InterruptACK: clear bits; the line drops once none is left (under the lock). */
  acknowledgeLocked(bits: number): void {
    const left = this.word(S_INTERRUPT_STATUS) & ~bits;
    this.setWord(S_INTERRUPT_STATUS, left);
    if (left === 0) this.vm.ioBus.setLine(this.line, false);
  }

  /**
   * The device found the driver's queue unusable (a malformed chain, a ring
   * outside guest RAM): DEVICE_NEEDS_RESET, and a configuration change
   * notification if the driver is running (virtio 1.2, 2.1.2). Under the lock.
   */
  needsResetLocked(): void {
    const status = this.word(S_STATUS);
    this.setWord(S_STATUS, status | STATUS_DEVICE_NEEDS_RESET);
    if (status & STATUS_DRIVER_OK) this.interruptLocked(INTERRUPT_CONFIG_CHANGE);
  }
}
