/**
 * The reference tools the device tree is checked against: dtc (Debian
 * package device-tree-compiler) and QEMU's virt machine, which dumps the
 * tree it would give a guest (qemu-system-misc).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export type ToolStatus = { available: true } | { available: false; reason: string };

const QEMU = "qemu-system-riscv64";

function status(command: string, install: string): ToolStatus {
  const result = spawnSync(command, ["--version"], { encoding: "utf8" });
  if (result.error || result.status !== 0) {
    return { available: false, reason: `${command} not found; install it (${install})` };
  }
  return { available: true };
}

export function dtcStatus(): ToolStatus {
  return status("dtc", "apt-get install -y device-tree-compiler");
}

export function qemuStatus(): ToolStatus {
  return status(QEMU, "apt-get install -y qemu-system-misc");
}

export interface DtcResult {
  output: Buffer;
  /** Warnings; dtc exits 0 with warnings, so callers that want none check this is empty. */
  stderr: string;
}

/**
 * Runs dtc on `input`; fails on a non-zero exit. The input goes through a
 * file, not a pipe: dtc stops reading a blob at its totalsize, and a writer
 * still filling the pipe would get EPIPE.
 */
export function dtc(args: readonly string[], input: Uint8Array | string): DtcResult {
  const dir = mkdtempSync(join(tmpdir(), "faultline-dtc-"));
  try {
    const path = join(dir, "input");
    writeFileSync(path, input);
    const result = spawnSync("dtc", [...args, path]);
    if (result.error) throw result.error;
    const stderr = result.stderr.toString("utf8");
    if (result.status !== 0) {
      throw new Error(`dtc ${args.join(" ")} exited ${result.status}: ${stderr}`);
    }
    return { output: result.stdout, stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Decompiles a DTB to dts text, failing on any dtc warning. */
export function decompile(dtb: Uint8Array): string {
  const { output, stderr } = dtc(["-I", "dtb", "-O", "dts"], dtb);
  if (stderr !== "") throw new Error(`dtc warned about the blob:\n${stderr}`);
  return output.toString("utf8");
}

/** Compiles dts text to a DTB, failing on any dtc warning. */
export function compile(dts: string, extraArgs: readonly string[] = []): Uint8Array {
  const { output, stderr } = dtc(["-I", "dts", "-O", "dtb", ...extraArgs], dts);
  if (stderr !== "") throw new Error(`dtc warned about the source:\n${stderr}`);
  return new Uint8Array(output);
}

/** The device tree QEMU's virt machine builds for `harts` harts and `memory` of RAM. */
export function qemuVirtDtb(harts: number, memory: string): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), "faultline-virt-dtb-"));
  try {
    const path = join(dir, "virt.dtb");
    const result = spawnSync(
      QEMU,
      ["-machine", `virt,dumpdtb=${path}`, "-smp", String(harts), "-m", memory, "-nographic"],
      { encoding: "utf8", timeout: 60_000 },
    );
    if (result.error) throw result.error;
    if (result.status !== 0) throw new Error(`${QEMU} exited ${result.status}: ${result.stderr}`);
    return new Uint8Array(readFileSync(path));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
