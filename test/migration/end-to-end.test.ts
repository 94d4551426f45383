import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { migrateLocally } from "../../src/migration/local-pair.js";
import { CLI, vmArgs } from "./support.js";

/**
 * Two real processes on loopback: the source boots the dirtier guest on
 * four vCPUs (each writing its part of RAM and a running checksum of what
 * it reads back), lets it run, and migrates it while it runs; the
 * destination runs it to the end and compares its checksums with those the
 * same guest computes without migration (--verify).
 */
/** A verified post-copy of the small guest; the destination's stats. */
async function verifiedPostcopy(
  vm: Record<string, string>,
  listenArgs: string[],
): Promise<Record<string, number>> {
  const run = await migrateLocally({
    cli: CLI,
    vmArgs: vmArgs(vm),
    listenArgs: ["--verify", ...listenArgs],
    sendArgs: ["--mode", "postcopy", "--warmup", "100"],
    timeoutMs: 80_000,
  });
  assert.equal(run.destinationCode, 0, run.destination.stderr);
  assert.equal(run.sourceCode, 0, run.source.stderr);
  const result = run.destination.event("result")!;
  assert.equal(result.verified, true, JSON.stringify(result));
  return result.stats as Record<string, number>;
}

describe("migration end to end, two processes over loopback TCP", () => {
  for (const hugepages of ["4K", "2M"]) {
    for (const mode of ["precopy", "postcopy", "hybrid"]) {
      test(
        `${mode}, ${hugepages} pages: the guest's checksums come out as without migration`,
        { timeout: 90_000 },
        async () => {
          const run = await migrateLocally({
            cli: CLI,
            vmArgs: vmArgs({ hugepages }),
            listenArgs: ["--verify"],
            sendArgs: ["--mode", mode, "--warmup", "100", "--max-rounds", "4"],
            timeoutMs: 80_000,
          });
          const result = run.destination.event("result");
          assert.equal(run.destinationCode, 0, run.destination.stderr);
          assert.equal(run.sourceCode, 0, run.source.stderr);
          assert.ok(result, run.destination.stderr);
          assert.equal(result.verified, true, JSON.stringify(result));
          const source = run.source.event("result")!.stats as Record<string, number>;
          assert.equal(source.status as unknown, "completed");
          // The guest was still busy on every vCPU when it was stopped for the switchover.
          assert.equal(source.vcpusRunningAtSwitchover, 4, JSON.stringify(source));
          const dest = result.stats as Record<string, number>;
          if (mode === "precopy") {
            assert.ok(source.precopyRounds >= 1);
            assert.equal(dest.postcopyBytes, 0);
          } else if (mode === "postcopy") {
            assert.equal(source.precopyRounds, 0);
            assert.ok(dest.postcopyBytes > 0);
          } else {
            assert.ok(source.precopyRounds >= 1);
          }
          assert.ok(
            source.downtimeMs >= 0 && source.downtimeMs < 5000,
            `downtime ${source.downtimeMs}`,
          );
        },
      );
    }
  }

  test(
    "post-copy with USERFAULT_ASYNC_ALL: vCPU faults served from readUserfault and the eventfd",
    { timeout: 90_000 },
    async () => {
      const stats = await verifiedPostcopy({}, ["--async-all"]);
      assert.ok(stats.asyncFaults > 0, JSON.stringify(stats));
    },
  );

  test(
    "post-copy while vCPU 0 reads its disk: the virtio-blk worker's accesses to missing pages " +
      "come as asynchronous userfaults and are served; the device's state moved with the guest",
    { timeout: 90_000 },
    async () => {
      // A disk read every iteration of 16 stores, and RAM enough for the
      // post-copy to outlast its cold start: vCPU 0 reads all through it,
      // and the block worker meets missing pages (10-18 times in trials).
      const stats = await verifiedPostcopy(
        { mem: "128M", "io-every": "1", stores: "16", iterations: "40000" },
        [],
      );
      // Without USERFAULT_ASYNC_ALL a vCPU's fault is an exit: every asynchronous fault is the device's.
      assert.ok(stats.asyncFaults > 0, JSON.stringify(stats));
    },
  );

  for (const [backing, hugepages] of [
    ["guest_memfd", "2M"],
    ["anonymous", "4K"],
  ]) {
    test(
      `post-copy into destination RAM preallocated (--prealloc), ${backing} ${hugepages}: same checksums`,
      { timeout: 90_000 },
      async () => {
        const stats = await verifiedPostcopy({ backing, hugepages }, ["--prealloc"]);
        // Every page is there from the start: USERFAULT alone kept the vCPUs off the missing ones.
        assert.ok(stats.faults > 0, JSON.stringify(stats));
      },
    );
  }

  for (const mode of ["postcopy", "hybrid"]) {
    test(
      `${mode} over userfaultfd on shmem (the uffd fault mechanism): same checksums`,
      { timeout: 90_000 },
      async () => {
        const run = await migrateLocally({
          cli: CLI,
          vmArgs: vmArgs({ backing: "shmem", "fault-mechanism": "uffd" }),
          listenArgs: ["--verify"],
          sendArgs: ["--mode", mode, "--warmup", "100"],
          timeoutMs: 80_000,
        });
        assert.equal(run.destinationCode, 0, run.destination.stderr);
        assert.equal(run.sourceCode, 0, run.source.stderr);
        const result = run.destination.event("result")!;
        assert.equal(result.verified, true, JSON.stringify(result));
        const stats = result.stats as {
          faultMechanism: string;
          asyncFaults: number;
          blocktimeMs: number;
        };
        assert.equal(stats.faultMechanism, "uffd");
        // vCPUs sleep in the host's fault path; the VMM learns of them from userfaultfd messages.
        assert.ok(stats.asyncFaults > 0, JSON.stringify(stats));
        assert.ok(stats.blocktimeMs > 0, JSON.stringify(stats));
      },
    );
  }
});
