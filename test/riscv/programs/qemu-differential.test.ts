/**
 * Differential test against QEMU: every guest program in guests/ is
 * assembled by our assembler and run on faultline and on QEMU's virt machine
 * behind OpenSBI (Debian's QEMU 7.2 with OpenSBI 1.1). Everything a program
 * prints after its start line must be identical, and on faultline it must
 * reach its SBI SRST shutdown with reason 0 ("no reason": every self-check
 * passed).
 *
 * Without qemu-system-riscv64 the test is skipped, except under CI (which
 * installs it) where it fails.
 *
 * FAULTLINE_UPDATE_EXPECTED=1 also writes each program's QEMU output to
 * guests/<name>.expected, the reference of faultline-expected.test.ts.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { describe, test } from "node:test";
import { assertSameOutput } from "./compare.js";
import {
  buildGuest,
  expectedPath,
  programNames,
  qemuStatus,
  runOnFaultlineInWorker,
  runOnQemu,
} from "./guest-programs.js";

const status = qemuStatus();
const skip = status.available || process.env.CI ? false : `skipped: ${status.reason}`;
const update = process.env.FAULTLINE_UPDATE_EXPECTED === "1";

/** Either side runs a program in well under a second; a hang is stopped after this. */
const TIMEOUT_MS = 60_000;
const CONCURRENCY = Math.max(2, Math.min(8, availableParallelism()));

describe("guest programs: faultline vs QEMU", { skip, concurrency: CONCURRENCY }, () => {
  for (const name of programNames()) {
    test(name, async () => {
      if (!status.available) assert.fail(`QEMU is required under CI: ${status.reason}`);
      const elf = buildGuest(name);
      const [ours, qemu] = await Promise.all([
        runOnFaultlineInWorker(elf, TIMEOUT_MS),
        runOnQemu(name, elf, TIMEOUT_MS),
      ]);

      assert.ok(
        !qemu.timedOut,
        `QEMU did not shut down within ${TIMEOUT_MS} ms; console:\n${qemu.console}`,
      );
      assert.notEqual(
        qemu.output,
        null,
        `QEMU never printed the start line (exit ${qemu.exitCode}); console:\n` +
          `${qemu.console}\nstderr:\n${qemu.stderr}`,
      );
      const reference = qemu.output ?? "";
      if (update) writeFileSync(expectedPath(name), reference, "latin1");
      assertSameOutput(ours.console, reference, "faultline", "QEMU");
      assert.equal(ours.stop, "shutdown", `faultline stopped by ${ours.stop}, not a shutdown`);
      assert.equal(ours.shutdownReason, 0, "faultline shut down with a failure reason");
    });
  }
});
