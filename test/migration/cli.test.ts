import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createServer } from "node:net";
import { describe, test } from "node:test";
import { promisify } from "node:util";
import type { BenchMigrateResult } from "../../src/cli/commands/bench-migrate.js";
import { CLI } from "./support.js";

const run = promisify(execFile);

/** The keys DESIGN.md section 8 lists for `bench migrate --json` (README documents them). */
const BENCH_MIGRATE_KEYS = [
  "mode",
  "faultMechanism",
  "prealloc",
  "memBytes",
  "totalTimeMs",
  "downtimeMs",
  "setupTimeMs",
  "transferredBytes",
  "precopyRounds",
  "postcopyRequests",
  "blocktimeMs",
  "faultLatencyUs",
  "throughputBytesPerSecond",
  "rawTcpBytesPerSecond",
  "guestRate",
  "maxStallMs",
  "switchoverStallMs",
  "maxStallBeforeMs",
  "maxStallAfterMs",
  "checksumVerified",
];

/** A short `bench migrate --json` of a 2-vCPU guest (typed, and open to check for keys). */
async function benchMigrateJson(
  options: string[],
): Promise<BenchMigrateResult & Record<string, unknown>> {
  const { stdout } = await run(
    process.execPath,
    [
      CLI,
      "bench",
      "migrate",
      "--vcpus",
      "2",
      "--seconds",
      "3",
      "--warmup",
      "200",
      ...options,
      "--json",
    ],
    { timeout: 80_000 },
  );
  return JSON.parse(stdout) as BenchMigrateResult & Record<string, unknown>;
}

describe("the migration commands", () => {
  test(
    "faultline demo migrates the busy guest and verifies its checksums",
    { timeout: 60_000 },
    async () => {
      const { stdout } = await run(process.execPath, [CLI, "demo"], { timeout: 50_000 });
      assert.match(stdout, /migrated while running: downtime [\d.]+ ms/);
      assert.match(stdout, /asynchronous userfaults \(disk reads into missing pages\): \d+/);
      assert.match(stdout, /verified: the same as the guest computes without migration/);
    },
  );

  test("faultline bench migrate --json has every documented key", { timeout: 90_000 }, async () => {
    const result = await benchMigrateJson(["--mem", "16M"]);
    for (const key of BENCH_MIGRATE_KEYS) assert.ok(key in result, `missing ${key}`);
    assert.deepEqual(Object.keys(result.faultLatencyUs), ["p50", "p99", "max"]);
    assert.deepEqual(Object.keys(result.guestRate), ["before", "duringPostcopy", "after"]);
    assert.equal(result.mode, "postcopy");
    assert.equal(result.faultMechanism, "userfault");
    assert.equal(result.memBytes, 16 * 2 ** 20);
    assert.equal(result.checksumVerified, true);
    assert.ok(result.rawTcpBytesPerSecond > 0);
    // The guest cannot have seen less than the downtime across the switchover.
    assert.ok(result.vcpusRunningAtSwitchover > 0);
    assert.ok(result.switchoverStallMs >= result.downtimeMs, JSON.stringify(result));
    assert.ok(result.maxStallMs >= result.switchoverStallMs);
    assert.ok(result.maxStallBeforeMs > 0 && result.maxStallAfterMs > 0);
  });

  test(
    "--postcopy-slow-start caps the pusher at 100 MB/s for as long as it says",
    { timeout: 90_000 },
    async () => {
      const result = await benchMigrateJson(["--mem", "64M", "--postcopy-slow-start", "60000"]);
      assert.equal(result.postcopySlowStartMs, 60_000);
      assert.equal(result.checksumVerified, true);
      // 100 MB/s pushed, plus the pages the two vCPUs' faults brought on the preempt channel.
      assert.ok(result.throughputBytesPerSecond < 160e6, `${result.throughputBytesPerSecond} B/s`);
    },
  );

  test(
    "a port it cannot listen on is refused at once, with the reason",
    { timeout: 30_000 },
    async () => {
      const taken = createServer();
      await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
      const { port } = taken.address() as { port: number };
      try {
        for (const [value, reason] of [
          [port, /EADDRINUSE: address already in use 127\.0\.0\.1:\d+/],
          [65536, /'--port <n>' argument '65536' is invalid\. a TCP port number, 0 to 65535/],
        ] as const) {
          // The VM made before listening is closed again: the process exits.
          await assert.rejects(
            run(process.execPath, [CLI, "migrate", "listen", "--mem", "16M", "--port", `${value}`]),
            (error: { code: number; stderr: string }) => {
              assert.equal(error.code, 2);
              assert.match(error.stderr, reason);
              return true;
            },
          );
        }
      } finally {
        taken.close();
      }
    },
  );

  test(
    "--max-postcopy-bandwidth holds the pusher to that rate after the slow start",
    { timeout: 90_000 },
    async () => {
      const result = await benchMigrateJson([
        ...["--mem", "64M", "--postcopy-slow-start", "0"],
        ...["--max-postcopy-bandwidth", "40M"],
      ]);
      assert.equal(result.maxPostcopyBandwidth, 40 * 2 ** 20);
      assert.equal(result.checksumVerified, true);
      // Every page came once, pushed or requested by a fault (half of them
      // or so, at this rate): the pushed share of the throughput is the
      // pusher's rate (unlimited, about 380 MB/s here).
      const pushed = 1 - (result.postcopyRequests * 4096) / result.memBytes;
      const pushedRate = pushed * result.throughputBytesPerSecond;
      assert.ok(pushedRate < 1.25 * 40 * 2 ** 20, `${pushedRate} B/s pushed`);
    },
  );

  test("bad arguments are refused with the reason", { timeout: 30_000 }, async () => {
    for (const [args, reason] of [
      [[], /error: --to HOST:PORT is required/],
      [["--resume", "--to", "127.0.0.1:1"], /error: --resume needs --control PATH/],
      [["--cancel"], /error: --cancel needs --control PATH/],
      [
        ["--cancel", "--resume", "--control", "x"],
        /'--cancel' cannot be used with option '--resume'/,
      ],
    ] as const) {
      await assert.rejects(
        run(process.execPath, [CLI, "migrate", "send", ...args]),
        (error: { code: number; stderr: string }) => {
          assert.equal(error.code, 2);
          assert.match(error.stderr, reason, args.join(" "));
          return true;
        },
      );
    }
    await assert.rejects(
      run(process.execPath, [CLI, "migrate", "send", "--to", "nohostport"]),
      (error: { code: number; stderr: string }) => {
        assert.equal(error.code, 2);
        assert.match(error.stderr, /"nohostport" is not HOST:PORT/);
        return true;
      },
    );
    await assert.rejects(
      run(process.execPath, [CLI, "migrate", "listen", "--host", "10.9.8.7", "--port", "0"]),
      (error: { code: number; stderr: string }) => {
        assert.equal(error.code, 2);
        assert.match(error.stderr, /needs authentication: give both ends --psk-file/);
        return true;
      },
    );
    await assert.rejects(
      run(process.execPath, [
        CLI,
        "migrate",
        "listen",
        "--port",
        "0",
        "--prealloc",
        "--backing",
        "shmem",
        "--fault-mechanism",
        "uffd",
      ]),
      (error: { code: number; stderr: string }) => {
        assert.equal(error.code, 2);
        assert.match(error.stderr, /--prealloc needs the userfault fault mechanism/);
        return true;
      },
    );
    await assert.rejects(
      run(process.execPath, [CLI, "migrate", "listen", "--fault-mechanism", "magic"]),
      (error: { code: number; stderr: string }) => {
        assert.equal(error.code, 2);
        assert.match(error.stderr, /fault-mechanism/);
        return true;
      },
    );
  });
});
