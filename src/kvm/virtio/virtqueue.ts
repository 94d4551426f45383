import { HostMemory, PAGE_SIZE } from "../../host/host-memory.js";
import { Memslot } from "../memslots.js";
import { MEM_READONLY } from "../uapi.js";
import type { Vm } from "../vm.js";
import {
  DESC_BYTES,
  DESC_F_INDIRECT,
  DESC_F_NEXT,
  DESC_F_WRITE,
  USED_ELEM_BYTES,
} from "./virtio.js";

/** The most segments one request may have (direct and indirect descriptors together). */
export const MAX_CHAIN = 1024;

/** The driver broke the queue's rules: the device must stop and ask for a reset. */
export class QueueError extends Error {
  override readonly name = "QueueError";
}

/**
 * The device side of a split virtqueue (virtio 1.2, 2.7) in guest memory,
 * read and written by a hypervisor thread. Every access goes through the
 * VM's hypervisor access path (Vm.accessGuest / guestPfnForAccess), so a
 * ring, descriptor or buffer on a userfault page makes this thread take an
 * asynchronous userfault and sleep until the VMM releases the page; an
 * access that cannot complete throws the VM's ErrnoError. Ring indexes are
 * read and written as single 16-bit atomic accesses, as the driver's are.
 *
 * readChain leaves the request's buffers as segments, device-readable ones
 * first: the readable stream (header, data to write) and the writable
 * stream (data read, status byte).
 */
export class SplitQueue {
  size = 0;
  desc = 0;
  avail = 0;
  used = 0;
  /** VIRTIO_F_INDIRECT_DESC was negotiated. */
  indirect = false;

  readonly addr = new Float64Array(MAX_CHAIN);
  readonly len = new Float64Array(MAX_CHAIN);
  segments = 0;
  readableSegments = 0;
  readableBytes = 0;
  writableBytes = 0;

  private readonly descBytes = new Uint8Array(DESC_BYTES);
  private readonly descView = new DataView(this.descBytes.buffer);
  private readonly usedBytes = new Uint8Array(USED_ELEM_BYTES);
  private readonly usedView = new DataView(this.usedBytes.buffer);
  private readonly slot = new Memslot();
  private readonly chunkU16: Uint16Array[] = [];

  constructor(private readonly vm: Vm) {}

  /** Use the rings the driver set up; QueueError when they are not in guest RAM. */
  configure(size: number, desc: number, avail: number, used: number, indirect: boolean): void {
    this.size = size;
    this.desc = desc;
    this.avail = avail;
    this.used = used;
    this.indirect = indirect;
    if (
      !this.inRam(desc, DESC_BYTES * size, false) ||
      !this.inRam(avail, 4 + 2 * size, false) ||
      !this.inRam(used, 4 + USED_ELEM_BYTES * size, true)
    ) {
      throw new QueueError("queue areas outside guest RAM");
    }
  }

  /** The available ring's idx: where the driver will put its next entry. */
  availIdx(): number {
    return this.loadU16(this.avail + 2);
  }

  availFlags(): number {
    return this.loadU16(this.avail);
  }

  /** The head descriptor of available entry `index` (free-running, taken modulo the size). */
  availEntry(index: number): number {
    return this.loadU16(this.avail + 4 + 2 * (index % this.size));
  }

  /**
   * Publish used entry `usedIdx` (free-running) for chain `id` with `len`
   * bytes written: the element first, then the index, so the driver never
   * sees the index ahead of the element.
   */
  pushUsed(usedIdx: number, id: number, len: number): void {
    this.usedView.setUint32(0, id, true);
    this.usedView.setUint32(4, len, true);
    const at = this.used + 4 + USED_ELEM_BYTES * (usedIdx % this.size);
    this.vm.accessGuest(at, this.usedBytes, true, false);
    this.storeU16(this.used + 2, (usedIdx + 1) & 0xffff);
  }

  /**
   * Walk the chain at `head` into segments, following NEXT and, when
   * negotiated, one level of INDIRECT tables. QueueError for a malformed
   * chain: an index beyond its table, a loop, a readable buffer after a
   * writable one, INDIRECT misuse, or a buffer outside guest RAM (or a
   * writable one in read-only memory).
   */
  readChain(head: number): void {
    this.segments = 0;
    this.readableSegments = 0;
    this.readableBytes = 0;
    this.writableBytes = 0;
    let table = this.desc;
    let tableSize = this.size;
    let index = head;
    let steps = 0;
    let inIndirect = false;
    let sawWritable = false;
    const view = this.descView;
    for (;;) {
      if (index >= tableSize) {
        throw new QueueError(`descriptor ${index} beyond its table of ${tableSize}`);
      }
      if (++steps > tableSize) throw new QueueError("descriptor chain loops");
      this.vm.accessGuest(table + DESC_BYTES * index, this.descBytes, false, false);
      const addr = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
      const len = view.getUint32(8, true);
      const flags = view.getUint16(12, true);
      if (flags & DESC_F_INDIRECT) {
        if (!this.indirect) throw new QueueError("INDIRECT descriptor without the feature");
        if (inIndirect) throw new QueueError("INDIRECT descriptor inside an indirect table");
        if (flags & DESC_F_NEXT) throw new QueueError("INDIRECT descriptor with NEXT");
        if (len === 0 || len % DESC_BYTES !== 0 || len / DESC_BYTES > MAX_CHAIN) {
          throw new QueueError(`indirect table of ${len} bytes`);
        }
        if (!this.inRam(addr, len, false)) throw new QueueError("indirect table outside guest RAM");
        table = addr;
        tableSize = len / DESC_BYTES;
        index = 0;
        steps = 0;
        inIndirect = true;
        continue;
      }
      const writable = (flags & DESC_F_WRITE) !== 0;
      if (writable) sawWritable = true;
      else if (sawWritable) throw new QueueError("device-readable buffer after a writable one");
      if (len > 0) {
        if (this.segments === MAX_CHAIN) throw new QueueError(`chain longer than ${MAX_CHAIN}`);
        if (!this.inRam(addr, len, writable)) {
          throw new QueueError(`buffer at 0x${addr.toString(16)} outside guest RAM`);
        }
        this.addr[this.segments] = addr;
        this.len[this.segments] = len;
        this.segments++;
        if (writable) this.writableBytes += len;
        else {
          this.readableSegments++;
          this.readableBytes += len;
        }
      }
      if ((flags & DESC_F_NEXT) === 0) return;
      index = view.getUint16(14, true);
    }
  }

  /**
   * Copy between `data` and the chain's readable (`writable` false: read
   * from the guest) or writable stream (write to the guest), starting
   * `offset` bytes into the stream. Returns the bytes copied.
   */
  copyStream(writable: boolean, offset: number, data: Uint8Array): number {
    let skip = offset;
    let done = 0;
    const end = writable ? this.segments : this.readableSegments;
    for (let seg = writable ? this.readableSegments : 0; seg < end; seg++) {
      if (done === data.length) break;
      const len = this.len[seg];
      if (skip >= len) {
        skip -= len;
        continue;
      }
      const n = Math.min(len - skip, data.length - done);
      this.vm.accessGuest(this.addr[seg] + skip, data.subarray(done, done + n), writable, false);
      done += n;
      skip = 0;
    }
    return done;
  }

  /** True when [addr, addr + len) is guest RAM (writable RAM for a `write`). */
  inRam(addr: number, len: number, write: boolean): boolean {
    const end = addr + len;
    if (!Number.isSafeInteger(end)) return false;
    const slot = this.slot;
    for (let at = addr; at < end; at = (slot.baseGfn + slot.npages) * PAGE_SIZE) {
      if (!this.vm.findMemslot(Math.floor(at / PAGE_SIZE), slot)) return false;
      if (write && (slot.flags & MEM_READONLY) !== 0) return false;
    }
    return true;
  }

  private u16View(pfn: number): Uint16Array {
    const chunk = HostMemory.chunkOf(pfn);
    let view = this.chunkU16[chunk];
    if (view === undefined) {
      view = new Uint16Array(this.vm.memory.chunks[chunk]);
      this.chunkU16[chunk] = view;
    }
    return view;
  }

  /** A 16-bit load at an even gpa as one atomic access. */
  private loadU16(gpa: number): number {
    const pfn = this.vm.guestPfnForAccess(Math.floor(gpa / PAGE_SIZE), false, false);
    return Atomics.load(this.u16View(pfn), (HostMemory.offsetOf(pfn) + (gpa % PAGE_SIZE)) >>> 1);
  }

  private storeU16(gpa: number, value: number): void {
    const pfn = this.vm.guestPfnForAccess(Math.floor(gpa / PAGE_SIZE), true, false);
    const index = (HostMemory.offsetOf(pfn) + (gpa % PAGE_SIZE)) >>> 1;
    Atomics.store(this.u16View(pfn), index, value);
  }
}
