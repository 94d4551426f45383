import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { assemble } from "../../src/riscv/asm/index.js";

const CLI = fileURLToPath(new URL("../../../bin/faultline.js", import.meta.url));
const DEMO = fileURLToPath(new URL("../../../src/guests/demo.s", import.meta.url));

function faultline(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A guest that prints through the UART, then shuts down with SRST and the given reason. */
function uartGuest(reason: number): string {
  return `
_start: la      s0, message
        li      s1, 0x10000000
1:      lbu     t0, 0(s0)
        beqz    t0, 2f
        sb      t0, 0(s1)
        addi    s0, s0, 1
        j       1b
2:      li      a7, 0x53525354
        li      a6, 0
        li      a0, 0
        li      a1, ${reason}
        ecall
        .data
message: .asciz "hello through the 16550\\n"
`;
}

describe("faultline run", () => {
  const dir = mkdtempSync(join(tmpdir(), "faultline-run-"));

  test("runs an assembly guest: console alone on stdout, exit 0 on a clean shutdown", async () => {
    const result = await faultline("run", DEMO, "--vcpus", "2");
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^faultline demo guest: hello from hart 0\n/);
    assert.match(result.stdout, /primes below 100000: 9592\n$/);
    assert.equal(result.stderr, "");
  });

  test("an ELF guest writing the UART; SRST system failure exits 1", async () => {
    const ok = join(dir, "ok.elf");
    const failing = join(dir, "fail.elf");
    writeFileSync(ok, assemble(uartGuest(0)).elf);
    writeFileSync(failing, assemble(uartGuest(1)).elf);
    for (const backing of ["guest_memfd", "anonymous", "shmem"]) {
      const result = await faultline("run", ok, "--backing", backing, "--hugepages", "2M");
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, "hello through the 16550\n");
    }
    const result = await faultline("run", failing);
    assert.equal(result.code, 1);
    assert.equal(result.stdout, "hello through the 16550\n");
  });

  test("bad arguments and bad images are clear errors with exit status 2", async () => {
    const garbage = join(dir, "garbage.elf");
    writeFileSync(garbage, new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 1, 2, 3]));
    const empty = join(dir, "empty.bin");
    writeFileSync(empty, new Uint8Array(0));
    const cases: [string[], RegExp][] = [
      [["run", garbage], /ELF/],
      [["run", empty], /empty guest image/],
      [["run", join(dir, "missing.s")], /ENOENT|no such file/],
      [["run", DEMO, "--mem", "lots"], /size/],
      [["run", DEMO, "--vcpus", "0"], /vcpus/],
      [["run", DEMO, "--backing", "floppy"], /backing/],
      [["run", DEMO, "--hugepages", "3M"], /4K, 2M or 1G/],
      [["run", DEMO, "--mem", "1M"], /does not fit|RAM/],
      [
        ["run", DEMO, "--mem", "2T"],
        /EINVAL: .* does not fit the guest-physical address space \(at most 510 GiB/,
      ],
    ];
    for (const [args, message] of cases) {
      const result = await faultline(...args);
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, message, args.join(" "));
      assert.equal(result.stdout, "");
    }
  });
});
