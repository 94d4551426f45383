import { fail } from "./errno.js";
import type { HostMemory } from "./host-memory.js";
import { lock, unlock } from "./sync.js";

/**
 * Reusable arena blocks for kernel tables that come and go with their objects
 * (page caches, page tables). HostMemory's arena only grows; this keeps freed
 * blocks on free lists by size class so that creating and destroying a
 * 64 GiB memfd or mapping again and again does not exhaust the arena.
 *
 * Size classes are four per power of two (2^e, 1.25·2^e, 1.5·2^e, 1.75·2^e,
 * from 64 bytes), so a block wastes less than a quarter of its size, and that
 * waste is address space only: the arena is committed by the OS on touch.
 *
 * Contract: a block is returned to `free` all zero (its owner has cleared
 * every word it set, which it does anyway when it drains its table), so a
 * reused block costs no clearing and its untouched pages stay uncommitted.
 * A free block's first word links it into its list while it is free.
 */

const MIN_BYTES = 64;
/** Classes cover blocks up to 2^MAX_EXPONENT bytes, far above any arena. */
const MAX_EXPONENT = 40;
const CLASSES = 4 * (MAX_EXPONENT + 1);

// Words of the heap header.
const H_LOCK = 0;
const H_HEADS = 1;
const HEADER_BYTES = (H_HEADS + CLASSES) * 4;

/** Size class of a block of at least `bytes`, and its exact size. */
function classOf(bytes: number): { index: number; size: number } {
  const want = Math.max(bytes, MIN_BYTES);
  let e = Math.floor(Math.log2(want));
  if (2 ** e > want) e--; // guard against rounding in log2
  const quarter = 2 ** (e - 2);
  let q = Math.ceil((want - 2 ** e) / quarter);
  if (q === 4) {
    e++;
    q = 0;
  }
  return { index: 4 * e + q, size: 2 ** e + q * 2 ** (e - 2) };
}

export class ArenaHeap {
  private readonly lockWord: number;
  private readonly heads: number;

  constructor(
    private readonly memory: HostMemory,
    /** Arena offset of the heap header (from `ArenaHeap.allocate`). */
    readonly offset: number,
  ) {
    this.lockWord = (offset >> 2) + H_LOCK;
    this.heads = (offset >> 2) + H_HEADS;
  }

  /** Reserve the heap header in the arena; returns its offset. */
  static allocate(memory: HostMemory): number {
    return memory.arenaAllocate(HEADER_BYTES, 64);
  }

  /** The bytes actually reserved for a block of `bytes`. */
  static blockSize(bytes: number): number {
    return classOf(bytes).size;
  }

  /** A zeroed block of at least `bytes`, 64-byte aligned (4 KiB aligned from 4 KiB). */
  allocate(bytes: number): number {
    if (!(bytes > 0) || !Number.isSafeInteger(bytes))
      fail("EINVAL", `bad arena block size ${bytes}`);
    const { index, size } = classOf(bytes);
    if (index >= CLASSES) fail("ENOMEM", `arena block of ${bytes} bytes`);
    const i32 = this.memory.arenaI32;
    lock(i32, this.lockWord);
    try {
      const block = i32[this.heads + index];
      if (block !== 0) {
        i32[this.heads + index] = i32[block >> 2];
        i32[block >> 2] = 0;
        return block;
      }
    } finally {
      unlock(i32, this.lockWord);
    }
    return this.memory.arenaAllocate(size, Math.min(size, 4096) >= 4096 ? 4096 : 64);
  }

  /** Give back a block from `allocate(bytes)`; it must be all zero. */
  free(block: number, bytes: number): void {
    const { index } = classOf(bytes);
    const i32 = this.memory.arenaI32;
    lock(i32, this.lockWord);
    try {
      i32[block >> 2] = i32[this.heads + index];
      i32[this.heads + index] = block;
    } finally {
      unlock(i32, this.lockWord);
    }
  }
}
