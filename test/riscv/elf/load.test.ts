/** Loading images into guest RAM: placement, bss zeroing, bounds checks, raw binaries. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PF_R, PF_X } from "../../../src/riscv/elf/constants.js";
import {
  type LoadTarget,
  loadElf,
  loadProgram,
  loadRawBinary,
  physicalEntry,
  ProgramLoadError,
  RAW_IMAGE_LOAD_ADDRESS,
  rawImage,
} from "../../../src/riscv/elf/load.js";
import { ElfFormatError } from "../../../src/riscv/elf/parse.js";
import { writeElf } from "../../../src/riscv/elf/write.js";
import { sampleImage } from "./samples.js";

const RAM_BASE = 0x8000_0000;

/** A small RAM that records its writes; filled with 0xcc so that zeroing is visible. */
class FakeRam implements LoadTarget {
  readonly bytes: Uint8Array;
  readonly calls: string[] = [];
  constructor(
    readonly base: number,
    readonly size: number,
    withZero: boolean,
  ) {
    this.bytes = new Uint8Array(size).fill(0xcc);
    if (!withZero) this.zero = undefined;
  }
  write(physAddr: number, bytes: Uint8Array): void {
    this.calls.push(`write 0x${physAddr.toString(16)} ${bytes.length}`);
    this.bytes.set(bytes, physAddr - this.base);
  }
  zero?(physAddr: number, length: number): void {
    this.calls.push(`zero 0x${physAddr.toString(16)} ${length}`);
    this.bytes.fill(0, physAddr - this.base, physAddr - this.base + length);
  }
  at(physAddr: number, length: number): number[] {
    return [...this.bytes.subarray(physAddr - this.base, physAddr - this.base + length)];
  }
}

describe("loadProgram", () => {
  for (const withZero of [true, false]) {
    test(`places every segment and zeroes bss (${withZero ? "with" : "without"} zero())`, () => {
      const ram = new FakeRam(RAM_BASE, 0x100_0000, withZero);
      const image = sampleImage();
      loadProgram(image, ram);
      const [text, data] = image.segments;
      assert.deepEqual(ram.at(text.physAddr, 24), [...text.data]);
      assert.deepEqual(ram.at(data.physAddr, 8), [...data.data]);
      assert.deepEqual(ram.at(data.physAddr + 8, 0x18), new Array(0x18).fill(0));
      assert.deepEqual(ram.at(data.physAddr + 0x20, 1), [0xcc]); // nothing past memSize
      assert.deepEqual(ram.calls, [
        "write 0x80200000 24",
        "write 0x80201000 8",
        withZero ? "zero 0x80201008 24" : "write 0x80201008 24",
      ]);
    });
  }

  test("a segment outside RAM is rejected, naming it and the RAM range, before any write", () => {
    const ram = new FakeRam(RAM_BASE, 0x20_1010, true);
    assert.throws(
      () => loadProgram(sampleImage(), ram),
      (error: unknown) => {
        assert.ok(error instanceof ProgramLoadError);
        assert.equal(
          error.message,
          "load: segment 1 [0x80201000, 0x80201020) lies outside RAM [0x80000000, 0x80201010)",
        );
        return true;
      },
    );
    assert.deepEqual(ram.calls, []);
  });

  test("below RAM", () => {
    const ram = new FakeRam(0x8030_0000, 0x1000, true);
    assert.throws(
      () => loadProgram(sampleImage(), ram),
      /segment 0 \[0x80200000, 0x80200018\) lies outside RAM/,
    );
  });

  test("an inconsistent image is rejected", () => {
    const image = sampleImage();
    image.segments[0].memSize = 4;
    assert.throws(
      () => loadProgram(image, new FakeRam(RAM_BASE, 0x100_0000, true)),
      /segment 0 has 0x18 bytes of data but memSize 0x4/,
    );
  });

  test("physicalEntry follows the segment's virtual-to-physical offset", () => {
    const image = sampleImage();
    assert.equal(physicalEntry(image), 0x8020_0000);
    image.segments[0].virtAddr = 0xffff_ffff_8000_0;
    image.entry = 0xffff_ffff_8000_4;
    assert.equal(physicalEntry(image), 0x8020_0004);
    image.entry = 1;
    assert.throws(() => physicalEntry(image), /entry 0x1 is not inside any segment/);
  });
});

describe("loadElf", () => {
  test("parses and loads, returning the image", () => {
    const ram = new FakeRam(RAM_BASE, 0x100_0000, true);
    const image = loadElf(writeElf(sampleImage()), ram);
    assert.equal(image.entry, 0x8020_0000);
    assert.deepEqual(ram.at(0x8020_0000, 4), [0x13, 0, 0, 0]);
  });

  test("format errors come from the parser", () => {
    assert.throws(
      () => loadElf(new Uint8Array(10), new FakeRam(RAM_BASE, 0x1000, true)),
      ElfFormatError,
    );
  });
});

describe("raw binaries", () => {
  test("load at 0x8020_0000 by default, entered at their first byte", () => {
    const ram = new FakeRam(RAM_BASE, 0x100_0000, true);
    const image = loadRawBinary(Uint8Array.from([1, 2, 3]), ram);
    assert.equal(RAW_IMAGE_LOAD_ADDRESS, 0x8020_0000);
    assert.equal(image.entry, RAW_IMAGE_LOAD_ADDRESS);
    assert.deepEqual(ram.at(RAW_IMAGE_LOAD_ADDRESS, 4), [1, 2, 3, 0xcc]);
  });

  test("at another address", () => {
    const image = rawImage(Uint8Array.from([9]), 0x8000_0000);
    assert.deepEqual(image.segments, [
      {
        physAddr: 0x8000_0000,
        virtAddr: 0x8000_0000,
        data: Uint8Array.from([9]),
        memSize: 1,
        flags: image.segments[0].flags,
      },
    ]);
    assert.equal(image.segments[0].flags & (PF_R | PF_X), PF_R | PF_X);
    assert.throws(
      () => loadRawBinary(Uint8Array.from([9]), new FakeRam(RAM_BASE, 16, true), 0x9000_0000),
      ProgramLoadError,
    );
  });
});
