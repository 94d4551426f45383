import { ErrnoError } from "./errno.js";
import { lock, unlock } from "./sync.js";

/**
 * The host's RAM and the kernel's own memory, shared by every thread of one
 * faultline process (the VMM's main thread, vCPU workers, device workers),
 * the way a kernel's memory is shared by every CPU.
 *
 * RAM is a fixed array of 1 GiB SharedArrayBuffers ("chunks"), reserved once
 * and committed by the OS only when touched, so a 64 GiB guest costs only the
 * pages it uses. Memory is handed out as page frames (4 KiB, 2 MiB or 1 GiB,
 * naturally aligned) by number (pfn); page tables, page caches and stage-2
 * tables store pfns, so no SharedArrayBuffer ever has to be passed between
 * threads after start-up. Frame 0 is never allocated: 0 means "no page".
 *
 * Kernel objects (memfds, VMs, vCPUs, queues) keep their fixed-size state in
 * the arena, a separate SharedArrayBuffer addressed by byte offset.
 */

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
export const CHUNK_SHIFT = 30;
export const CHUNK_SIZE = 1 << CHUNK_SHIFT;
export const FRAMES_PER_CHUNK = CHUNK_SIZE / PAGE_SIZE;
/** Allocation orders: log2 of the number of 4 KiB frames. */
export const ORDER_4K = 0;
export const ORDER_2M = 9;
export const ORDER_1G = 18;
export type FrameOrder = typeof ORDER_4K | typeof ORDER_2M | typeof ORDER_1G;

const DEFAULT_RAM_BYTES = 128 * CHUNK_SIZE;
const DEFAULT_ARENA_BYTES = CHUNK_SIZE;

// Words of the control block.
const C_LOCK = 0;
const C_FREE_1G = 1;
const C_FREE_2M = 2;
const C_FREE_4K = 3;
const C_ARENA_TOP = 4;
const C_FRAMES_IN_USE = 5;
const C_CHUNKS = 6;
const C_HEADER_WORDS = 16;

/** What a worker needs to attach to the same host memory. */
export interface HostMemoryShare {
  chunks: SharedArrayBuffer[];
  control: SharedArrayBuffer;
  arena: SharedArrayBuffer;
}

export class HostMemory {
  readonly chunks: SharedArrayBuffer[];
  readonly chunkU8: Uint8Array[];
  readonly chunkI32: Int32Array[];
  readonly arenaBuffer: SharedArrayBuffer;
  readonly arenaU8: Uint8Array;
  readonly arenaI32: Int32Array;
  readonly arenaF64: Float64Array;
  private readonly controlBuffer: SharedArrayBuffer;
  private readonly control: Int32Array;
  private readonly free1G: number;
  private readonly free2M: number;
  private readonly free4K: number;
  /** Bitmap of frames that were handed out before and may hold old data. */
  private readonly dirty: number;

  private constructor(share: HostMemoryShare) {
    this.chunks = share.chunks;
    this.chunkU8 = share.chunks.map((b) => new Uint8Array(b));
    this.chunkI32 = share.chunks.map((b) => new Int32Array(b));
    this.controlBuffer = share.control;
    this.control = new Int32Array(share.control);
    this.arenaBuffer = share.arena;
    this.arenaU8 = new Uint8Array(share.arena);
    this.arenaI32 = new Int32Array(share.arena);
    this.arenaF64 = new Float64Array(share.arena);
    const chunks = share.chunks.length;
    this.free1G = C_HEADER_WORDS;
    this.free2M = this.free1G + chunks;
    this.free4K = this.free2M + chunks * 512;
    this.dirty = this.free4K + chunks * FRAMES_PER_CHUNK;
  }

  /** Reserve host RAM (address space only; the OS commits pages on first touch). */
  static create(options: { ramBytes?: number; arenaBytes?: number } = {}): HostMemory {
    const ramBytes = options.ramBytes ?? DEFAULT_RAM_BYTES;
    const chunks = Math.ceil(ramBytes / CHUNK_SIZE);
    if (chunks < 1 || chunks > 1024) throw new RangeError("host RAM must be 1 GiB to 1 TiB");
    const frames = chunks * FRAMES_PER_CHUNK;
    const controlWords = C_HEADER_WORDS + chunks + chunks * 512 + frames + frames / 32;
    const share: HostMemoryShare = {
      chunks: Array.from({ length: chunks }, () => new SharedArrayBuffer(CHUNK_SIZE)),
      control: new SharedArrayBuffer(controlWords * 4),
      arena: new SharedArrayBuffer(options.arenaBytes ?? DEFAULT_ARENA_BYTES),
    };
    const host = new HostMemory(share);
    const c = host.control;
    c[C_CHUNKS] = chunks;
    // Chunks are handed out lowest first; chunk 0 is split at once so that
    // frame 0 can be kept back as the "no page" value.
    for (let i = chunks - 1; i >= 1; i--) c[host.free1G + c[C_FREE_1G]++] = i;
    for (let b = 511; b >= 1; b--) c[host.free2M + c[C_FREE_2M]++] = b;
    for (let f = 511; f >= 1; f--) c[host.free4K + c[C_FREE_4K]++] = f;
    c[C_ARENA_TOP] = 64;
    return host;
  }

  static attach(share: HostMemoryShare): HostMemory {
    return new HostMemory(share);
  }

  share(): HostMemoryShare {
    return { chunks: this.chunks, control: this.controlBuffer, arena: this.arenaBuffer };
  }

  get framesInUse(): number {
    return Atomics.load(this.control, C_FRAMES_IN_USE);
  }

  get totalFrames(): number {
    return this.chunks.length * FRAMES_PER_CHUNK;
  }

  /**
   * Allocate 2^order contiguous, naturally aligned frames; returns the first
   * pfn. `zeroed` asks for zero-filled memory: frames never used before are
   * zero already (the OS gives fresh pages), reused ones are cleared here.
   */
  allocateFrames(order: FrameOrder, zeroed: boolean): number {
    const c = this.control;
    lock(c, C_LOCK);
    let pfn: number;
    try {
      pfn = this.popFrames(order);
      if (pfn !== 0) c[C_FRAMES_IN_USE] += 1 << order;
    } finally {
      unlock(c, C_LOCK);
    }
    if (pfn === 0) throw new ErrnoError("ENOMEM", `host out of memory (order ${order})`);
    if (zeroed) this.clearDirty(pfn, 1 << order);
    return pfn;
  }

  private popFrames(order: FrameOrder): number {
    const c = this.control;
    if (order === ORDER_1G) {
      return c[C_FREE_1G] > 0 ? c[this.free1G + --c[C_FREE_1G]] * FRAMES_PER_CHUNK : 0;
    }
    if (order === ORDER_2M) {
      if (c[C_FREE_2M] === 0) {
        if (c[C_FREE_1G] === 0) return 0;
        const chunk = c[this.free1G + --c[C_FREE_1G]];
        for (let b = 511; b >= 0; b--) c[this.free2M + c[C_FREE_2M]++] = chunk * 512 + b;
      }
      return c[this.free2M + --c[C_FREE_2M]] * 512;
    }
    if (c[C_FREE_4K] === 0) {
      const block = this.popFrames(ORDER_2M);
      if (block === 0) return 0;
      for (let f = 511; f >= 0; f--) c[this.free4K + c[C_FREE_4K]++] = block + f;
    }
    return c[this.free4K + --c[C_FREE_4K]];
  }

  /** Return frames to the allocator; they will be cleared before reuse. */
  freeFrames(pfn: number, order: FrameOrder): void {
    const c = this.control;
    const count = 1 << order;
    for (let i = 0; i < count; i += 32) {
      const f = pfn + i;
      if (count >= 32) Atomics.store(c, this.dirty + (f >>> 5), -1);
      else Atomics.or(c, this.dirty + (f >>> 5), ((1 << count) - 1) << (f & 31));
    }
    lock(c, C_LOCK);
    try {
      if (order === ORDER_1G) c[this.free1G + c[C_FREE_1G]++] = pfn / FRAMES_PER_CHUNK;
      else if (order === ORDER_2M) c[this.free2M + c[C_FREE_2M]++] = pfn / 512;
      else c[this.free4K + c[C_FREE_4K]++] = pfn;
      c[C_FRAMES_IN_USE] -= count;
    } finally {
      unlock(c, C_LOCK);
    }
  }

  private clearDirty(pfn: number, count: number): void {
    const c = this.control;
    for (let f = pfn; f < pfn + count; f++) {
      const word = this.dirty + (f >>> 5);
      const bit = 1 << (f & 31);
      if ((c[word] & bit) === 0) continue;
      Atomics.and(c, word, ~bit);
      this.frameBytes(f).fill(0);
    }
  }

  /** Chunk index of a frame: the region the CPU's TLB names. */
  static chunkOf(pfn: number): number {
    return pfn >>> (CHUNK_SHIFT - PAGE_SHIFT);
  }

  /** Byte offset of a frame inside its chunk. */
  static offsetOf(pfn: number): number {
    return (pfn & (FRAMES_PER_CHUNK - 1)) << PAGE_SHIFT;
  }

  /** The 4 KiB of one frame. */
  frameBytes(pfn: number): Uint8Array {
    const at = HostMemory.offsetOf(pfn);
    return this.chunkU8[HostMemory.chunkOf(pfn)].subarray(at, at + PAGE_SIZE);
  }

  /** Copy one page of data into a frame: the page-install primitive. */
  writeFrame(pfn: number, source: Uint8Array, sourceOffset = 0): void {
    const at = HostMemory.offsetOf(pfn);
    const end = Math.min(source.length, sourceOffset + PAGE_SIZE);
    this.chunkU8[HostMemory.chunkOf(pfn)].set(source.subarray(sourceOffset, end), at);
  }

  /**
   * Allocate `bytes` of zeroed arena memory for a kernel object's state;
   * returns its byte offset. The arena only grows: objects are few and live
   * as long as their process, so there is nothing to gain from freeing.
   */
  arenaAllocate(bytes: number, align = 8): number {
    // Checked first: the rounding below is 32-bit.
    if (bytes > this.arenaBuffer.byteLength) {
      throw new ErrnoError("ENOMEM", "kernel arena exhausted");
    }
    const size = (bytes + 7) & ~7;
    for (;;) {
      const top = Atomics.load(this.control, C_ARENA_TOP);
      const start = (top + align - 1) & ~(align - 1);
      if (start + size > this.arenaBuffer.byteLength) {
        throw new ErrnoError("ENOMEM", "kernel arena exhausted");
      }
      if (Atomics.compareExchange(this.control, C_ARENA_TOP, top, start + size) === top) {
        return start;
      }
    }
  }
}
