import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { MigrationProcess } from "../../src/migration/local-pair.js";
import { createNetnsPair } from "../support/netns.js";
import { CLI, vmArgs } from "./support.js";

/**
 * Post-copy between two "hosts": network namespaces joined by a veth pair
 * with 2 ms of one-way delay (netem, or a delaying proxy where the kernel
 * has none), so that every page request pays a real round trip; over TLS
 * with a pre-shared key, as migration off loopback must be. Skipped,
 * with the reason, where namespaces cannot be made (not root, no iproute2).
 */
describe("migration between network namespaces", () => {
  test("post-copy over veth with added latency: same checksums", { timeout: 90_000 }, async (t) => {
    const made = createNetnsPair(2);
    if ("unavailable" in made) {
      t.skip(made.unavailable);
      return;
    }
    const pair = made.pair;
    // Off loopback, migration streams are authenticated: TLS with a pre-shared key.
    const psk = join(tmpdir(), `faultline-test-${process.pid}.psk`);
    writeFileSync(psk, randomBytes(32).toString("hex"));
    t.diagnostic(`latency by ${pair.latency}, ${pair.delayMs} ms each way`);
    let destination: MigrationProcess | null = null;
    let source: MigrationProcess | null = null;
    try {
      destination = new MigrationProcess(
        "destination",
        CLI,
        [
          "listen",
          "--host",
          pair.destinationAddress,
          "--port",
          "0",
          "--verify",
          "--psk-file",
          psk,
          ...vmArgs(),
        ],
        undefined,
        pair.exec(pair.destination),
      );
      const { port } = (await destination.waitFor("listening", 30_000)) as unknown as {
        port: number;
      };
      const to = await pair.route(port);
      source = new MigrationProcess(
        "source",
        CLI,
        [
          "send",
          "--to",
          `${to.host}:${to.port}`,
          "--mode",
          "hybrid",
          "--warmup",
          "50",
          "--psk-file",
          psk,
          ...vmArgs(),
        ],
        undefined,
        pair.exec(pair.source),
      );
      const timeout = setTimeout(() => {
        source?.kill();
        destination?.kill();
      }, 80_000);
      const [sourceCode, destinationCode] = await Promise.all([source.exited, destination.exited]);
      clearTimeout(timeout);
      assert.equal(destinationCode, 0, destination.stderr);
      assert.equal(sourceCode, 0, source.stderr);
      const result = destination.event("result")!;
      assert.equal(result.verified, true, JSON.stringify(result));
      const latency = (result.stats as { faultLatencyUs: { p50: number } }).faultLatencyUs;
      t.diagnostic(`fault latency p50 ${latency.p50} µs over the delayed link`);
    } finally {
      source?.kill();
      destination?.kill();
      pair.close();
      rmSync(psk, { force: true });
    }
  });
});
