import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { assemble } from "../riscv/asm/index.js";
import { parseElf, physicalEntry, rawImage } from "../riscv/elf/index.js";
import type { ProgramImage } from "../riscv/elf/image.js";

const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46];

/**
 * A guest as `faultline run` accepts it: an ELF executable (loaded at its
 * physical addresses), RISC-V assembly source (assembled first), or a raw
 * image (loaded at 0x8020_0000, as OpenSBI loads a kernel).
 */
export function readGuestImage(path: string): { image: ProgramImage; entry: number } {
  const bytes = new Uint8Array(readFileSync(path));
  // A raw image of nothing would run whatever zeros are in RAM.
  if (bytes.length === 0) throw new Error(`${path}: empty guest image`);
  if (ELF_MAGIC.every((b, i) => bytes[i] === b)) {
    const image = parseElf(bytes);
    return { image, entry: physicalEntry(image) };
  }
  if (/\.(s|S|asm)$/.test(path)) {
    const program = assemble(new TextDecoder().decode(bytes), { fileName: basename(path) });
    return { image: program.image, entry: physicalEntry(program.image) };
  }
  const image = rawImage(bytes);
  return { image, entry: image.entry };
}
