import { ErrnoError } from "../../host/errno.js";
import { HostMemory, PAGE_SIZE } from "../../host/host-memory.js";
import type { PageCache } from "../../host/page-cache.js";
import type { Vm } from "../vm.js";
import {
  S_BUSY,
  S_DRIVER_FEATURES,
  S_IO_ERRORS,
  S_KICK,
  S_LAST_AVAIL,
  S_PAGE_CACHE,
  S_QUEUE_DESC,
  S_QUEUE_DEVICE,
  S_QUEUE_DRIVER,
  S_QUEUE_NUM,
  S_REQUESTS,
  S_RESET_PENDING,
  S_SERIAL,
  S_STOP,
  S_USED_IDX,
  VirtioBlkState,
  S_DEVICE_FEATURES,
} from "./blk-state.js";
import { QueueError, SplitQueue } from "./virtqueue.js";
import {
  AVAIL_F_NO_INTERRUPT,
  BLK_F_RO,
  BLK_HEADER_BYTES,
  BLK_ID_BYTES,
  BLK_S_IOERR,
  BLK_S_OK,
  BLK_S_UNSUPP,
  BLK_T_FLUSH,
  BLK_T_GET_ID,
  BLK_T_IN,
  BLK_T_OUT,
  F_INDIRECT_DESC,
  INTERRUPT_USED_BUFFER,
  SECTOR_SIZE,
} from "./virtio.js";

/** The VM was destroyed under the worker: it stops serving. */
export class DeviceGone extends Error {
  override readonly name = "DeviceGone";
}

/**
 * The data path of a virtio block device: what its worker thread does with
 * the request queue (vhost-blk's role). Requests are taken from the
 * available ring in order; each one's header, data and status are moved
 * between guest memory and the disk's page cache, and completed on the used
 * ring with an interrupt.
 *
 * A guest access to a userfault page sleeps on the asynchronous userfault
 * path until the VMM releases the page. If userfault is disabled or the VM
 * destroyed meanwhile, a request whose data could not move fails with IOERR
 * (a ring access is retried once, then the queue is considered broken). A
 * malformed queue puts the device in DEVICE_NEEDS_RESET; once the VM is
 * destroyed the worker takes no more requests and ends.
 */
export class BlockQueue {
  readonly state: VirtioBlkState;
  private readonly ring: SplitQueue;
  private readonly cache: PageCache;
  private readonly memory: HostMemory;
  private readonly header = new Uint8Array(BLK_HEADER_BYTES);
  private readonly headerView = new DataView(this.header.buffer);
  private readonly statusByte = new Uint8Array(1);
  private readonly serial: Uint8Array;
  /** Bytes of the current request's writable stream that were written, status excluded. */
  private written = 0;

  constructor(
    private readonly vm: Vm,
    offset: number,
    /** Told why the device asked for a reset. */
    private readonly onBroken: (reason: string) => void = () => {},
  ) {
    this.state = new VirtioBlkState(vm, offset);
    this.ring = new SplitQueue(vm);
    this.memory = vm.memory;
    this.cache = vm.host.pageCache(this.state.word(S_PAGE_CACHE));
    const at = offset + S_SERIAL * 4;
    this.serial = this.memory.arenaU8.slice(at, at + BLK_ID_BYTES);
  }

  get stopRequested(): boolean {
    return this.state.word(S_STOP) !== 0;
  }

  /**
   * The worker's loop: serve the queue, then sleep on the kick word until a
   * QueueNotify (or a stop request) moves it. Returns when stopped or when
   * the VM is gone. Never spins: a kick that comes while a batch runs is
   * seen by the next wait.
   */
  run(): void {
    const words = this.state.words;
    const kick = this.state.base + S_KICK;
    while (!this.stopRequested && !this.vm.destroyed) {
      const seen = Atomics.load(words, kick);
      try {
        this.serve();
      } catch (error) {
        if (error instanceof DeviceGone) return;
        throw error;
      }
      if (this.stopRequested || this.vm.destroyed) return;
      Atomics.wait(words, kick, seen);
    }
  }

  /** One batch: every request available now (and those made available meanwhile). */
  serve(): void {
    const s = this.state;
    let size: number, desc: number, avail: number, used: number, indirect: boolean;
    s.lock();
    try {
      if (!s.running) return;
      s.setWord(S_BUSY, 1);
      // The queue cannot be reconfigured while ready: this is the driver's setup.
      size = s.word(S_QUEUE_NUM);
      desc = s.pair(S_QUEUE_DESC);
      avail = s.pair(S_QUEUE_DRIVER);
      used = s.pair(S_QUEUE_DEVICE);
      indirect =
        (s.word(S_DRIVER_FEATURES) & s.word(S_DEVICE_FEATURES) & (1 << F_INDIRECT_DESC)) !== 0;
    } finally {
      s.unlock();
    }
    let broken: string | null = null;
    try {
      this.ring.configure(size, desc, avail, used, indirect);
      this.drain();
    } catch (error) {
      if (!(error instanceof QueueError)) throw error;
      broken = error.message;
    } finally {
      // Leaving the batch and reporting a broken queue are one step: once
      // the driver sees DEVICE_NEEDS_RESET, its reset completes at once.
      s.lock();
      try {
        s.setWord(S_BUSY, 0);
        Atomics.notify(s.words, s.base + S_BUSY); // a pause waits for this
        if (s.word(S_RESET_PENDING) !== 0) s.resetLocked();
        else if (broken !== null) s.needsResetLocked();
      } finally {
        s.unlock();
      }
    }
    if (broken !== null) this.onBroken(broken);
  }

  private drain(): void {
    const s = this.state;
    const ring = this.ring;
    const size = ring.size;
    for (;;) {
      let last = s.word(S_LAST_AVAIL);
      const avail = this.onRing(() => ring.availIdx());
      const pending = (avail - last) & 0xffff;
      if (pending === 0) return;
      if (pending > size) {
        throw new QueueError(`available index moved ${pending} entries in a queue of ${size}`);
      }
      for (let i = 0; i < pending; i++) {
        if (!s.running || this.vm.destroyed) return;
        const head = this.onRing(() => ring.availEntry(last));
        const len = this.handleRequest(head);
        const used = s.word(S_USED_IDX);
        this.onRing(() => ring.pushUsed(used, head, len));
        last = (last + 1) & 0xffff;
        s.setWord(S_LAST_AVAIL, last);
        s.setWord(S_USED_IDX, (used + 1) & 0xffff);
        Atomics.add(s.words, s.base + S_REQUESTS, 1);
        this.notifyDriver();
      }
    }
  }

  /**
   * A ring or descriptor access. If it fails (userfault disabled while it
   * waited, a memslot gone), it is tried once more, since the page may be
   * reachable now; failing again, the queue is unusable. On a destroyed VM
   * the worker gives up.
   */
  private onRing<T>(access: () => T): T {
    try {
      return access();
    } catch (error) {
      this.rethrowUnlessAccessError(error);
    }
    try {
      return access();
    } catch (error) {
      this.rethrowUnlessAccessError(error);
      throw new QueueError(`queue access failed: ${(error as Error).message}`);
    }
  }

  /** Let only a failed guest access through, and only while the VM lives. */
  private rethrowUnlessAccessError(error: unknown): void {
    if (!(error instanceof ErrnoError)) throw error;
    if (this.vm.destroyed) throw new DeviceGone("the VM was destroyed");
  }

  /** Used buffer notification, unless the driver asked for none. */
  private notifyDriver(): void {
    if (this.onRing(() => this.ring.availFlags()) & AVAIL_F_NO_INTERRUPT) return;
    const s = this.state;
    s.lock();
    try {
      if (s.word(S_RESET_PENDING) === 0) s.interruptLocked(INTERRUPT_USED_BUFFER);
    } finally {
      s.unlock();
    }
  }

  /** Serve the request whose chain starts at `head`; returns the used length. */
  private handleRequest(head: number): number {
    const ring = this.ring;
    this.onRing(() => ring.readChain(head));
    if (ring.readableBytes < BLK_HEADER_BYTES) {
      throw new QueueError(`request header of ${ring.readableBytes} bytes`);
    }
    if (ring.writableBytes < 1) throw new QueueError("request without a status byte");
    this.written = 0;
    let status: number;
    try {
      status = this.execute();
    } catch (error) {
      // The data could not be moved (userfault disabled or the VM destroyed
      // while waiting, a poisoned page): the request fails, the device goes on.
      if (!(error instanceof ErrnoError)) throw error;
      status = BLK_S_IOERR;
    }
    if (status === BLK_S_IOERR) Atomics.add(this.state.words, this.state.base + S_IO_ERRORS, 1);
    this.statusByte[0] = status;
    this.onRing(() => ring.copyStream(true, ring.writableBytes - 1, this.statusByte));
    return this.written + 1;
  }

  private execute(): number {
    const ring = this.ring;
    ring.copyStream(false, 0, this.header);
    const view = this.headerView;
    const type = view.getUint32(0, true);
    const sector = view.getUint32(8, true) + view.getUint32(12, true) * 2 ** 32;
    switch (type) {
      case BLK_T_IN:
        return this.transfer(sector, ring.writableBytes - 1, true);
      case BLK_T_OUT:
        if (this.state.word(S_DEVICE_FEATURES) & (1 << BLK_F_RO)) return BLK_S_IOERR;
        return this.transfer(sector, ring.readableBytes - BLK_HEADER_BYTES, false);
      case BLK_T_FLUSH:
        // The disk is the memfd's page cache: nothing is volatile below it.
        return BLK_S_OK;
      case BLK_T_GET_ID: {
        const n = Math.min(BLK_ID_BYTES, ring.writableBytes - 1);
        this.written = ring.copyStream(
          true,
          0,
          n === BLK_ID_BYTES ? this.serial : this.serial.subarray(0, n),
        );
        return BLK_S_OK;
      }
      default:
        return BLK_S_UNSUPP;
    }
  }

  /**
   * Move `bytes` between the disk at `sector` and the chain's data: into the
   * writable stream for a read (`toGuest`), from the readable stream after
   * the header for a write. Page by page, frame to frame, without a buffer;
   * holes in the disk read as zeros.
   */
  private transfer(sector: number, bytes: number, toGuest: boolean): number {
    if (bytes % SECTOR_SIZE !== 0) return BLK_S_IOERR;
    if (sector + bytes / SECTOR_SIZE > this.state.capacity) return BLK_S_IOERR;
    const ring = this.ring;
    const vm = this.vm;
    const chunks = this.memory.chunkU8;
    const cache = this.cache;
    let disk = sector * SECTOR_SIZE;
    let left = bytes;
    let skip = toGuest ? 0 : BLK_HEADER_BYTES;
    const end = toGuest ? ring.segments : ring.readableSegments;
    for (let seg = toGuest ? ring.readableSegments : 0; seg < end && left > 0; seg++) {
      let segLeft = ring.len[seg];
      if (skip >= segLeft) {
        skip -= segLeft;
        continue;
      }
      let gpa = ring.addr[seg] + skip;
      segLeft -= skip;
      skip = 0;
      while (segLeft > 0 && left > 0) {
        const guestIn = gpa % PAGE_SIZE;
        const diskIn = disk % PAGE_SIZE;
        const n = Math.min(PAGE_SIZE - guestIn, PAGE_SIZE - diskIn, segLeft, left);
        const guestPfn = vm.guestPfnForAccess(Math.floor(gpa / PAGE_SIZE), toGuest, false);
        const guestChunk = chunks[HostMemory.chunkOf(guestPfn)];
        const guestAt = HostMemory.offsetOf(guestPfn) + guestIn;
        const page = Math.floor(disk / PAGE_SIZE);
        if (toGuest) {
          const diskPfn = cache.lookup(page);
          if (diskPfn === 0) guestChunk.fill(0, guestAt, guestAt + n);
          else {
            const from = HostMemory.offsetOf(diskPfn) + diskIn;
            guestChunk.set(chunks[HostMemory.chunkOf(diskPfn)].subarray(from, from + n), guestAt);
          }
          this.written += n;
        } else {
          // A page written whole needs no zeroing first.
          const diskPfn = cache.getOrAllocate(page, n !== PAGE_SIZE);
          chunks[HostMemory.chunkOf(diskPfn)].set(
            guestChunk.subarray(guestAt, guestAt + n),
            HostMemory.offsetOf(diskPfn) + diskIn,
          );
        }
        gpa += n;
        disk += n;
        segLeft -= n;
        left -= n;
      }
    }
    return BLK_S_OK;
  }
}
