/**
 * Runs GNU binutils for RISC-V (Debian package binutils-riscv64-unknown-elf)
 * as the reference assembler and linker.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const PREFIX = "riscv64-unknown-elf-";
export const GNU_AS_FLAGS = ["-march=rv64ima_zicsr_zifencei", "-mabi=lp64", "-mno-relax"];

export type ToolStatus = { available: true } | { available: false; reason: string };

/** Whether as, ld, objcopy, readelf and objdump can be run. */
export function gnuToolStatus(): ToolStatus {
  for (const tool of ["as", "ld", "objcopy", "readelf", "objdump"]) {
    const result = spawnSync(PREFIX + tool, ["--version"], { encoding: "utf8" });
    if (result.error || result.status !== 0) {
      return {
        available: false,
        reason:
          `${PREFIX}${tool} not found; install GNU binutils for RISC-V ` +
          "(apt-get install -y binutils-riscv64-unknown-elf)",
      };
    }
  }
  return { available: true };
}

/**
 * The layout our assembler uses, as a linker script: code and read-only data
 * from `textAddress`, then data and bss from the next 4 KiB page.
 */
function linkerScript(textAddress: number): string {
  return `ENTRY(_start)
SECTIONS {
  . = 0x${textAddress.toString(16)};
  .text : { *(.text) *(.text.*) }
  .rodata : { *(.rodata) *(.rodata.*) }
  . = ALIGN(0x1000);
  .data : { *(.data) *(.data.*) }
  .bss : { *(.bss) *(.bss.*) }
}
`;
}

/** Runs `fn` with a fresh temporary directory, removed afterwards. */
export function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "faultline-gnu-"));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function run(tool: string, args: string[]): string {
  const result = spawnSync(PREFIX + tool, args, { encoding: "utf8" });
  if (result.status !== 0) {
    throw new Error(`${PREFIX}${tool} ${args.join(" ")} failed:\n${result.stderr}`);
  }
  return result.stdout;
}

export interface GnuBuildOptions {
  /** Extra flags for as, after GNU_AS_FLAGS (a later -march overrides). */
  asFlags?: string[];
  /** Flags for ld; a linker script, if given, is written to link.ld and passed with -T. */
  ldFlags?: string[];
  linkerScript?: string;
}

/** Assembles with GNU as and links with GNU ld; returns the output file's bytes. */
export function gnuBuild(source: string, options: GnuBuildOptions = {}): Uint8Array {
  return withTempDir((dir) => {
    const sourcePath = join(dir, "prog.s");
    writeFileSync(sourcePath, source);
    run("as", [...GNU_AS_FLAGS, ...(options.asFlags ?? []), sourcePath, "-o", join(dir, "prog.o")]);
    const ldFlags = ["--no-relax", "--no-warn-rwx-segments", ...(options.ldFlags ?? [])];
    if (options.linkerScript !== undefined) {
      writeFileSync(join(dir, "link.ld"), options.linkerScript);
      ldFlags.push("-T", join(dir, "link.ld"));
    }
    run("ld", [...ldFlags, join(dir, "prog.o"), "-o", join(dir, "prog.elf")]);
    return new Uint8Array(readFileSync(join(dir, "prog.elf")));
  });
}

/** GNU as + ld with a linker script reproducing our assembler's layout. */
export function gnuAssembleAndLink(source: string, textAddress: number): Uint8Array {
  return gnuBuild(source, { linkerScript: linkerScript(textAddress) });
}

/** Runs a binutils inspection tool on an ELF file; returns stdout and stderr. */
export function inspectElf(tool: "readelf" | "objdump", args: string[], elf: Uint8Array) {
  return withTempDir((dir) => {
    const path = join(dir, "prog.elf");
    writeFileSync(path, elf);
    const result = spawnSync(PREFIX + tool, [...args, path], { encoding: "utf8" });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  });
}

/** `objcopy -O binary`: the loadable contents from the lowest address, gaps zero-filled. */
export function objcopyBinary(elf: Uint8Array): Uint8Array {
  return withTempDir((dir) => {
    const input = join(dir, "prog.elf");
    const output = join(dir, "prog.bin");
    writeFileSync(input, elf);
    run("objcopy", ["-O", "binary", input, output]);
    return new Uint8Array(readFileSync(output));
  });
}
