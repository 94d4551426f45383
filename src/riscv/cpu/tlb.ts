import { PAGE_SHIFT } from "./constants.js";

export const TLB_ENTRIES = 1024;
export const TLB_MASK = TLB_ENTRIES - 1;

/** A tag that never equals a page-aligned address, so the entry never hits. */
export const TLB_INVALID = 1;

const EMPTY_BUFFER = new ArrayBuffer(8);

/**
 * A direct-mapped software TLB from guest-virtual pages (guest-physical while
 * satp is bare) to host memory. Tags are the page address split in its low and
 * high 32-bit words, kept separately for read, write and fetch permission, so
 * the hot path compares two int32s and indexes a typed array. Every array is
 * preallocated and element kinds never change, so lookups stay monomorphic.
 */
export class SoftTlb {
  readonly readLo = new Int32Array(TLB_ENTRIES).fill(TLB_INVALID);
  readonly readHi = new Int32Array(TLB_ENTRIES);
  readonly writeLo = new Int32Array(TLB_ENTRIES).fill(TLB_INVALID);
  readonly writeHi = new Int32Array(TLB_ENTRIES);
  readonly fetchLo = new Int32Array(TLB_ENTRIES).fill(TLB_INVALID);
  readonly fetchHi = new Int32Array(TLB_ENTRIES);
  /** Byte offset of the page inside its region. */
  readonly offset = new Int32Array(TLB_ENTRIES);
  readonly region = new Int32Array(TLB_ENTRIES);
  readonly u8: Uint8Array[] = new Array<Uint8Array>(TLB_ENTRIES).fill(new Uint8Array(EMPTY_BUFFER));
  readonly i16: Int16Array[] = new Array<Int16Array>(TLB_ENTRIES).fill(
    new Int16Array(EMPTY_BUFFER),
  );
  readonly i32: Int32Array[] = new Array<Int32Array>(TLB_ENTRIES).fill(
    new Int32Array(EMPTY_BUFFER),
  );
  readonly f64: Float64Array[] = new Array<Float64Array>(TLB_ENTRIES).fill(
    new Float64Array(EMPTY_BUFFER),
  );
  static index(addrLo: number): number {
    return (addrLo >>> PAGE_SHIFT) & TLB_MASK;
  }

  flushAll(): void {
    this.readLo.fill(TLB_INVALID);
    this.writeLo.fill(TLB_INVALID);
    this.fetchLo.fill(TLB_INVALID);
  }

  /** Drop the entry for one page, given its address as (lo, hi) words. */
  flushPage(addrLo: number, addrHi: number): void {
    const e = SoftTlb.index(addrLo);
    const pageLo = addrLo & ~((1 << PAGE_SHIFT) - 1);
    if (this.readLo[e] === pageLo && this.readHi[e] === addrHi) this.readLo[e] = TLB_INVALID;
    if (this.writeLo[e] === pageLo && this.writeHi[e] === addrHi) this.writeLo[e] = TLB_INVALID;
    if (this.fetchLo[e] === pageLo && this.fetchHi[e] === addrHi) this.fetchLo[e] = TLB_INVALID;
  }
}
