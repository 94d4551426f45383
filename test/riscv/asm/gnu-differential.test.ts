/**
 * Differential test against GNU binutils: the same sources assembled and
 * linked by GNU as/ld (with a linker script reproducing our layout) and by
 * our assembler must load the very same bytes at the very same addresses.
 *
 * Without the tools the test is skipped, except under CI where it fails.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { assemble } from "../../../src/riscv/asm/index.js";
import type { ProgramImage } from "../../../src/riscv/elf/image.js";
import { parseElf } from "../../../src/riscv/elf/parse.js";
import { corpus } from "./corpus.js";
import { gnuAssembleAndLink, gnuToolStatus, inspectElf, objcopyBinary } from "./gnu-toolchain.js";

const status = gnuToolStatus();
const skip = status.available || process.env.CI ? false : `skipped: ${status.reason}`;

function requireTools(): void {
  if (!status.available) assert.fail(`GNU binutils are required under CI: ${status.reason}`);
}

/** Byte at each loaded address (segments zero-extended to memSize). */
function memoryImage(image: ProgramImage): Map<number, number> {
  const memory = new Map<number, number>();
  for (const segment of image.segments) {
    for (let i = 0; i < segment.memSize; i++) {
      memory.set(segment.physAddr + i, i < segment.data.length ? segment.data[i] : 0);
    }
  }
  return memory;
}

const hex = (n: number | undefined) => (n === undefined ? "unmapped" : `0x${n.toString(16)}`);

function assertSameMemory(ours: ProgramImage, gnu: ProgramImage): void {
  const a = memoryImage(ours);
  const b = memoryImage(gnu);
  const differences: string[] = [];
  const addresses = [...new Set([...a.keys(), ...b.keys()])].sort((x, y) => x - y);
  for (const address of addresses) {
    if (a.get(address) !== b.get(address)) {
      differences.push(`${hex(address)}: ours ${hex(a.get(address))}, GNU ${hex(b.get(address))}`);
    }
  }
  assert.equal(
    differences.length,
    0,
    `loaded bytes differ:\n${differences.slice(0, 40).join("\n")}`,
  );
}

describe("assembler vs GNU binutils", { skip }, () => {
  const seeds = [0x5eed_0001n, 0xfa017_11een, 42n];
  for (const seed of seeds) {
    for (const program of corpus(seed)) {
      test(`${program.name} (seed ${seed}) loads the same bytes`, () => {
        requireTools();
        const ours = assemble(program.source, {
          fileName: `${program.name}.s`,
          textAddress: program.textAddress,
        });
        const gnu = parseElf(gnuAssembleAndLink(program.source, program.textAddress));
        assertSameMemory(ours.image, gnu);
        assert.equal(hex(ours.image.entry), hex(gnu.entry));
        for (const [name, value] of ours.image.symbols) {
          assert.equal(gnu.symbols.get(name), value, `symbol ${name}`);
        }
      });
    }
  }

  test("GNU readelf and objdump accept our ELF output", () => {
    requireTools();
    const [program] = corpus(1n);
    const { elf } = assemble(program.source, { textAddress: program.textAddress });
    const readelf = inspectElf("readelf", ["-a", "-W"], elf);
    assert.equal(readelf.status, 0, readelf.stderr);
    assert.equal(readelf.stderr, "");
    assert.match(readelf.stdout, /Type:\s+EXEC/);
    assert.match(readelf.stdout, /Machine:\s+RISC-V/);
    assert.match(readelf.stdout, /\.symtab/);
    const objdump = inspectElf("objdump", ["-d"], elf);
    assert.equal(objdump.status, 0, objdump.stderr);
    assert.equal(objdump.stderr, "");
    assert.match(objdump.stdout, /<_start>:/);
    assert.match(objdump.stdout, /ecall/);
  });

  test("GNU objcopy extracts the same flat binary from our ELF", () => {
    requireTools();
    const [program] = corpus(2n);
    const { image, elf } = assemble(program.source, { textAddress: program.textAddress });
    const memory = memoryImage(image);
    const fileBacked = image.segments.map((s) => s.physAddr + s.data.length);
    const end = Math.max(...fileBacked);
    const expected = Uint8Array.from(
      { length: end - program.textAddress },
      (_, i) => memory.get(program.textAddress + i) ?? 0,
    );
    assert.deepEqual(objcopyBinary(elf), expected);
  });
});
