/**
 * Copies a ProgramImage into guest RAM, the way a boot loader would: every
 * segment at its physical address, with its .bss tail zeroed. Nothing is
 * written unless every segment fits, so a failed load leaves RAM untouched.
 */
import { PF_R, PF_W, PF_X } from "./constants.js";
import type { ProgramImage } from "./image.js";
import { parseElf } from "./parse.js";

/** Where QEMU's virt machine (behind OpenSBI) and faultline put a raw kernel image. */
export const RAW_IMAGE_LOAD_ADDRESS = 0x8020_0000;

/** The part of guest RAM the loader needs: a physical range and a way to fill it. */
export interface LoadTarget {
  /** Guest-physical address of the first byte of RAM. */
  base: number;
  size: number;
  write(physAddr: number, bytes: Uint8Array): void;
  /** Zero-fills a range; if absent, the loader writes a buffer of zeros instead. */
  zero?(physAddr: number, length: number): void;
}

export class ProgramLoadError extends Error {
  constructor(message: string) {
    super(`load: ${message}`);
    this.name = "ProgramLoadError";
  }
}

const hex = (n: number) => `0x${n.toString(16)}`;

export function loadProgram(image: ProgramImage, memory: LoadTarget): void {
  const ramEnd = memory.base + memory.size;
  image.segments.forEach((segment, i) => {
    const { physAddr, memSize } = segment;
    if (!Number.isSafeInteger(physAddr) || !Number.isSafeInteger(memSize) || memSize < 0) {
      throw new ProgramLoadError(`segment ${i} has an invalid address or size`);
    }
    if (segment.data.length > memSize) {
      throw new ProgramLoadError(
        `segment ${i} has ${hex(segment.data.length)} bytes of data but memSize ${hex(memSize)}`,
      );
    }
    if (physAddr < memory.base || physAddr + memSize > ramEnd) {
      throw new ProgramLoadError(
        `segment ${i} [${hex(physAddr)}, ${hex(physAddr + memSize)}) lies outside RAM ` +
          `[${hex(memory.base)}, ${hex(ramEnd)})`,
      );
    }
  });
  for (const segment of image.segments) {
    memory.write(segment.physAddr, segment.data);
    const tail = segment.memSize - segment.data.length;
    if (tail === 0) continue;
    const tailAddr = segment.physAddr + segment.data.length;
    if (memory.zero) memory.zero(tailAddr, tail);
    else memory.write(tailAddr, new Uint8Array(tail));
  }
}

/** Parses an ELF executable and loads it; returns the image (for its entry point and symbols). */
export function loadElf(bytes: Uint8Array, memory: LoadTarget): ProgramImage {
  const image = parseElf(bytes);
  loadProgram(image, memory);
  return image;
}

/** A raw binary (objcopy -O binary output) as an image: one RWX segment, entered at its start. */
export function rawImage(bytes: Uint8Array, loadAddress = RAW_IMAGE_LOAD_ADDRESS): ProgramImage {
  return {
    entry: loadAddress,
    segments: [
      {
        physAddr: loadAddress,
        virtAddr: loadAddress,
        data: bytes,
        memSize: bytes.length,
        flags: PF_R | PF_W | PF_X,
      },
    ],
    symbols: new Map(),
  };
}

/** Loads a raw binary at `loadAddress` (default 0x8020_0000); returns the image. */
export function loadRawBinary(
  bytes: Uint8Array,
  memory: LoadTarget,
  loadAddress = RAW_IMAGE_LOAD_ADDRESS,
): ProgramImage {
  const image = rawImage(bytes, loadAddress);
  loadProgram(image, memory);
  return image;
}

/**
 * The guest-physical address of the entry point: the CPU starts with paging
 * off, so a program linked at virtual addresses different from its load
 * addresses must be entered at the physical alias of e_entry.
 */
export function physicalEntry(image: ProgramImage): number {
  const segment = image.segments.find(
    (s) => image.entry >= s.virtAddr && image.entry < s.virtAddr + s.memSize,
  );
  if (!segment) throw new ProgramLoadError(`entry ${hex(image.entry)} is not inside any segment`);
  return segment.physAddr + (image.entry - segment.virtAddr);
}
