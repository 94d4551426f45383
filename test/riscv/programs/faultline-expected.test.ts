/**
 * Every guest program in guests/ on faultline alone, against the output QEMU
 * produced for it (guests/<name>.expected, written by qemu-differential.test.ts
 * with FAULTLINE_UPDATE_EXPECTED=1 and committed): a faultline regression
 * shows even where QEMU is not installed.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { describe, test } from "node:test";
import { assertSameOutput } from "./compare.js";
import {
  buildGuest,
  expectedPath,
  GUESTS_DIR,
  programNames,
  runOnFaultlineInWorker,
} from "./guest-programs.js";

const names = programNames();
/** A program runs in well under a second; a hang is stopped after this. */
const TIMEOUT_MS = 60_000;
const CONCURRENCY = Math.max(2, Math.min(8, availableParallelism()));

test("every guest program has an expected output, and every expected output a program", () => {
  assert.ok(names.length > 0, `no programs in ${GUESTS_DIR}`);
  const missing = names.filter((name) => !existsSync(expectedPath(name)));
  assert.deepEqual(missing, [], "programs without .expected (regenerate them from QEMU)");
  const orphans = readdirSync(GUESTS_DIR)
    .filter((file) => file.endsWith(".expected"))
    .map((file) => file.slice(0, -".expected".length))
    .filter((name) => !names.includes(name));
  assert.deepEqual(orphans, [], ".expected files without a program");
});

describe(
  "guest programs on faultline vs their expected output",
  { concurrency: CONCURRENCY },
  () => {
    for (const name of names) {
      test(name, async (t) => {
        if (!existsSync(expectedPath(name))) {
          t.skip("no .expected file (see the test above)");
          return;
        }
        const expected = readFileSync(expectedPath(name), "latin1");
        const result = await runOnFaultlineInWorker(buildGuest(name), TIMEOUT_MS);
        assertSameOutput(result.console, expected, "faultline", "expected (QEMU)");
        assert.equal(result.stop, "shutdown", `stopped by ${result.stop}, not a shutdown`);
        assert.equal(result.shutdownReason, 0, "shut down with a failure reason");
      });
    }
  },
);
