import type { AccessType } from "../cpu/constants.js";
import { PAGE_SIZE } from "../cpu/constants.js";
import type { GuestPhysicalMemory, Translation } from "../cpu/physical-memory.js";

/**
 * One flat block of guest RAM in a SharedArrayBuffer, always mapped and
 * writable: the simplest host a hart can run on. Tests and the CPU benchmark
 * use it to run guest programs without a hypervisor.
 */
export class FlatMemory implements GuestPhysicalMemory {
  readonly buffer: SharedArrayBuffer;
  readonly bytes: Uint8Array;

  constructor(
    readonly base: number,
    readonly size: number,
  ) {
    if (base % PAGE_SIZE !== 0 || size % PAGE_SIZE !== 0 || size <= 0) {
      throw new RangeError("flat memory base and size must be positive multiples of 4 KiB");
    }
    this.buffer = new SharedArrayBuffer(size);
    this.bytes = new Uint8Array(this.buffer);
  }

  translate(gpa: number, _access: AccessType, out: Translation): boolean {
    const offset = gpa - this.base;
    if (offset < 0 || offset >= this.size) return false;
    out.region = 0;
    out.offset = offset;
    out.writable = true;
    return true;
  }

  regionBuffer(): ArrayBufferLike {
    return this.buffer;
  }

  write(physAddr: number, data: Uint8Array): void {
    this.bytes.set(data, this.offsetOf(physAddr, data.length));
  }

  zero(physAddr: number, length: number): void {
    const at = this.offsetOf(physAddr, length);
    this.bytes.fill(0, at, at + length);
  }

  read(physAddr: number, length: number): Uint8Array {
    const at = this.offsetOf(physAddr, length);
    return this.bytes.slice(at, at + length);
  }

  private offsetOf(physAddr: number, length: number): number {
    const at = physAddr - this.base;
    if (at < 0 || at + length > this.size) {
      throw new RangeError(
        `0x${physAddr.toString(16)}+${length} is outside RAM 0x${this.base.toString(16)}+0x${this.size.toString(16)}`,
      );
    }
    return at;
  }
}
