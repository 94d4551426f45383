/**
 * QEMU and faultline both run the ELF our assembler makes, so an assembler
 * bug would go unnoticed by the differential test. Here every guest program
 * is also assembled and linked by GNU as/ld (laid out as our assembler does)
 * and must load the very same bytes at the very same addresses, with the
 * same entry point.
 *
 * Without GNU binutils the test is skipped, except under CI where it fails.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { assemble, DEFAULT_TEXT_ADDRESS } from "../../../src/riscv/asm/index.js";
import type { ProgramImage } from "../../../src/riscv/elf/image.js";
import { parseElf } from "../../../src/riscv/elf/index.js";
import { gnuAssembleAndLink, gnuToolStatus } from "../asm/gnu-toolchain.js";
import { guestSource, programNames } from "./guest-programs.js";

const status = gnuToolStatus();
const skip = status.available || process.env.CI ? false : `skipped: ${status.reason}`;

/** Byte at each loaded address (segments zero-extended to memSize). */
function loadedBytes(image: ProgramImage): Map<number, number> {
  const bytes = new Map<number, number>();
  for (const segment of image.segments) {
    for (let i = 0; i < segment.memSize; i++) {
      bytes.set(segment.physAddr + i, i < segment.data.length ? segment.data[i] : 0);
    }
  }
  return bytes;
}

const hex = (n: number | undefined) => (n === undefined ? "nothing" : `0x${n.toString(16)}`);

describe("guest programs: our assembler vs GNU as/ld", { skip }, () => {
  for (const name of programNames()) {
    test(name, () => {
      if (!status.available) assert.fail(`GNU binutils are required under CI: ${status.reason}`);
      const source = guestSource(name);
      const ours = assemble(source).image;
      const gnu = parseElf(gnuAssembleAndLink(source, DEFAULT_TEXT_ADDRESS));
      assert.equal(hex(ours.entry), hex(gnu.entry), "entry point");
      const a = loadedBytes(ours);
      const b = loadedBytes(gnu);
      const differences: string[] = [];
      for (const address of [...new Set([...a.keys(), ...b.keys()])].sort((x, y) => x - y)) {
        if (a.get(address) !== b.get(address)) {
          differences.push(
            `${hex(address)}: ours ${hex(a.get(address))}, GNU ${hex(b.get(address))}`,
          );
        }
      }
      assert.deepEqual(differences.slice(0, 20), [], `${differences.length} loaded bytes differ`);
    });
  }
});
