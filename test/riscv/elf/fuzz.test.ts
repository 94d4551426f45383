/**
 * Malformed input must only ever produce an ElfFormatError, never a
 * RangeError/TypeError or a nonsensical image: every prefix of valid files,
 * and many seeded random corruptions. When a corrupted file is accepted, the
 * image must be self-consistent (it survives a write/parse round trip).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { assemble } from "../../../src/riscv/asm/index.js";
import { ElfFormatError, parseElf } from "../../../src/riscv/elf/parse.js";
import { writeElf } from "../../../src/riscv/elf/write.js";
import { Random } from "../asm/corpus.js";
import { sampleImage } from "./samples.js";

const PROGRAM = assemble(`
  .globl _start
_start:
  la a0, message
  call print
  j .
print:
  ret
  .section .rodata
message: .asciz "hi"
  .data
counter: .dword 1
  .bss
buffer: .space 64
`).elf;

const FILES: [string, Uint8Array][] = [
  ["sample image", writeElf(sampleImage())],
  ["assembled program", PROGRAM],
];

/** Parses `bytes`; only ElfFormatError may escape, and an accepted image must round-trip. */
function parseOrReject(bytes: Uint8Array, what: string): "accepted" | "rejected" {
  let image;
  try {
    image = parseElf(bytes);
  } catch (error) {
    if (error instanceof ElfFormatError) return "rejected";
    assert.fail(`${what}: ${String(error)}\n${(error as Error).stack}`);
  }
  for (const segment of image.segments) {
    assert.ok(Number.isSafeInteger(segment.physAddr + segment.memSize), what);
    assert.ok(segment.data.length <= segment.memSize, what);
  }
  const again = parseElf(writeElf(image));
  assert.deepEqual(
    [again.entry, again.segments, again.symbols],
    [image.entry, image.segments, image.symbols],
    `${what}: round trip`,
  );
  if (image.sections) assert.deepEqual(again.sections, image.sections, `${what}: sections`);
  if (image.globalSymbols) assert.deepEqual(again.globalSymbols, image.globalSymbols, what);
  return "accepted";
}

/** Values that tend to break arithmetic on 64-bit fields. */
const NASTY_U64 = [
  0n,
  1n,
  0x7fn,
  0xffffn,
  0xffffffffn,
  1n << 53n,
  (1n << 63n) - 1n,
  (1n << 64n) - 1n,
];

describe("parseElf fuzzing", () => {
  for (const [name, file] of FILES) {
    test(`${name}: every truncation`, () => {
      const outcomes = new Set<string>();
      for (let length = 0; length < file.length; length++) {
        outcomes.add(parseOrReject(file.subarray(0, length), `truncated to ${length}`));
      }
      assert.ok(outcomes.has("rejected"));
    });

    test(`${name}: random byte corruption`, () => {
      const random = new Random(0xe1f_f022n);
      let accepted = 0;
      for (let round = 0; round < 4000; round++) {
        const bytes = file.slice();
        const flips = random.between(1, 6);
        for (let i = 0; i < flips; i++) {
          // Mostly the headers and tables at both ends of the file, where the structure is.
          const region = random.below(3);
          const at =
            region === 0
              ? random.below(Math.min(256, bytes.length))
              : region === 1
                ? bytes.length - 1 - random.below(Math.min(512, bytes.length))
                : random.below(bytes.length);
          bytes[at] = random.below(256);
        }
        if (parseOrReject(bytes, `round ${round}`) === "accepted") accepted++;
      }
      // Some corruptions hit bytes nobody checks; the loop must still exercise acceptance.
      assert.ok(accepted > 0);
    });

    test(`${name}: extreme values in every 8-byte header and table field`, () => {
      const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
      const shoff = Number(view.getBigUint64(40, true));
      const fieldOffsets: number[] = [];
      for (let at = 16; at + 8 <= 64 + 2 * 56; at += 4) fieldOffsets.push(at);
      for (let at = shoff; at + 8 <= file.length; at += 8) fieldOffsets.push(at);
      for (const at of fieldOffsets) {
        for (const value of NASTY_U64) {
          const bytes = file.slice();
          new DataView(bytes.buffer).setBigUint64(at, value, true);
          parseOrReject(bytes, `field at ${at} = ${value}`);
        }
      }
    });
  }

  test("random garbage", () => {
    const random = new Random(7n);
    for (let round = 0; round < 500; round++) {
      const bytes = Uint8Array.from({ length: random.below(300) }, () => random.below(256));
      if (random.below(2) === 0 && bytes.length >= 8) bytes.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
      parseOrReject(bytes, `garbage ${round}`);
    }
  });
});
