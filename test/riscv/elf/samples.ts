/** Program images shared by the ELF tests. */
import { PF_R, PF_W, PF_X } from "../../../src/riscv/elf/constants.js";
import type { ProgramImage } from "../../../src/riscv/elf/image.js";

const TEXT = 0x8020_0000;
const DATA = 0x8020_1000;

/**
 * Code and read-only data in an R+X segment; data and bss in an R+W segment;
 * two local and two global symbols.
 */
export function sampleImage(): ProgramImage {
  const text = Uint8Array.from([
    // 16 bytes of code: nop; nop; j .; ret
    0x13, 0, 0, 0, 0x13, 0, 0, 0, 0x6f, 0, 0, 0, 0x67, 0x80, 0, 0,
    // 8 bytes of read-only data: "hello\n\0\0"
    0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x0a, 0, 0,
  ]);
  return {
    entry: TEXT,
    segments: [
      { physAddr: TEXT, virtAddr: TEXT, data: text, memSize: 24, flags: PF_R | PF_X },
      {
        physAddr: DATA,
        virtAddr: DATA,
        data: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]),
        memSize: 0x20,
        flags: PF_R | PF_W,
      },
    ],
    symbols: new Map([
      ["_start", BigInt(TEXT)],
      ["loop", BigInt(TEXT + 8)],
      ["message", BigInt(TEXT + 16)],
      ["counter", BigInt(DATA)],
    ]),
    globalSymbols: new Set(["_start", "counter"]),
    sections: [
      section(".text", TEXT, 16, { executable: true, alignment: 4 }),
      section(".rodata", TEXT + 16, 8, { alignment: 8 }),
      section(".data", DATA, 8, { writable: true, alignment: 8 }),
      section(".bss", DATA + 8, 0x18, { writable: true, noBits: true, alignment: 8 }),
    ],
  };
}

function section(
  name: string,
  address: number,
  size: number,
  options: { executable?: boolean; writable?: boolean; noBits?: boolean; alignment: number },
) {
  return {
    name,
    address,
    size,
    alignment: options.alignment,
    noBits: options.noBits ?? false,
    executable: options.executable ?? false,
    writable: options.writable ?? false,
  };
}
