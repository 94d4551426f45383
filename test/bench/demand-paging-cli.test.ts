import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";

/** The command as a user runs it: a child process of its own. */

const CLI = fileURLToPath(new URL("../../../bin/faultline.js", import.meta.url));

/** `faultline bench demand-paging` with `flags` (space-separated), as a child process. */
function benchDemandPaging(
  flags: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const args = [CLI, "bench", "demand-paging", ...flags.split(" ")];
  return new Promise((resolve) => {
    execFile(process.execPath, args, { timeout: 120_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe("faultline bench demand-paging", () => {
  test("--json prints the documented keys", async () => {
    const { code, stdout, stderr } = await benchDemandPaging("-k -v 2 -b 1M --json");
    assert.equal(code, 0, stderr);
    const r = JSON.parse(stdout) as Record<string, unknown>;
    assert.equal(r.mode, "kvm-userfault");
    assert.equal(r.vcpus, 2);
    assert.equal(r.pages, 512);
    assert.equal(typeof r.pagesPerSecond, "number");
    assert.equal((r.perVcpuPagesPerSecond as number[]).length, 2);
    const latency = r.faultLatencyUs as Record<string, number>;
    for (const key of ["p50", "p99", "max"]) assert.equal(typeof latency[key], "number");
    const limits = r.limits as Record<string, unknown>;
    assert.equal(typeof limits.touchPagesPerSecond, "number");
    assert.equal(typeof limits.copyInstallPagesPerSecond, "number");
    assert.equal(limits.memory, "fresh");
    assert.equal(r.machineWarmupBytes, 0);
  });

  test("--machine-warmup: a child process touches and frees the run's memory first", async () => {
    const { code, stdout, stderr } = await benchDemandPaging("-k -b 1M --machine-warmup");
    assert.equal(code, 0, stderr);
    const warmed = /a child process touched and freed (\d+) MiB first/.exec(stdout);
    assert.ok(warmed, stdout);
    // At least the demand-paged memory and the limits' samples.
    assert.ok(Number(warmed[1]) > 128, stdout);
  });

  test("the text output names the limits and the memory state", async () => {
    const { code, stdout, stderr } = await benchDemandPaging("-u MISSING -b 1M");
    assert.equal(code, 0, stderr);
    assert.match(stdout, /demand paging by userfaultfd MISSING/);
    assert.match(stdout, /vCPU {2}0: .* pages\/s, latency p50/);
    assert.match(stdout, /overall: 256 pages/);
    assert.match(stdout, /fresh memory, never touched by the host/);
    assert.match(stdout, /the guest touching pages with no userfault in the way/);
    assert.match(stdout, /one thread copying and installing 4 KiB pages/);
  });

  test("guest_memfd with -u alone is refused, exit 2, with the reason", async () => {
    const { code, stderr } = await benchDemandPaging("-u MINOR -s guest_memfd");
    assert.equal(code, 2);
    assert.match(stderr, /never goes through a host mapping, so userfaultfd never sees it/);
  });

  test("an unknown letter exits 2", async () => {
    const { code, stderr } = await benchDemandPaging("-k -q");
    assert.equal(code, 2);
    assert.match(stderr, /unknown option '-q'/);
  });
});
