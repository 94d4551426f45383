import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Worker } from "node:worker_threads";
import {
  FRAMES_PER_CHUNK,
  HostMemory,
  ORDER_1G,
  ORDER_2M,
  ORDER_4K,
} from "../../src/host/host-memory.js";
import { ErrnoError } from "../../src/host/errno.js";

describe("host memory", () => {
  test("frames are naturally aligned, never 0, and distinct", () => {
    const host = HostMemory.create({ ramBytes: 4 * 2 ** 30, arenaBytes: 1 << 20 });
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const pfn = host.allocateFrames(ORDER_4K, true);
      assert.notEqual(pfn, 0);
      assert.ok(!seen.has(pfn));
      seen.add(pfn);
    }
    const huge = host.allocateFrames(ORDER_2M, true);
    assert.equal(huge % 512, 0);
    const giant = host.allocateFrames(ORDER_1G, true);
    assert.equal(giant % FRAMES_PER_CHUNK, 0);
    assert.notEqual(giant, 0);
    assert.equal(host.framesInUse, 2000 + 512 + FRAMES_PER_CHUNK);
  });

  test("a reused frame comes back zeroed when asked", () => {
    const host = HostMemory.create({ ramBytes: 1 << 30, arenaBytes: 1 << 20 });
    const pfn = host.allocateFrames(ORDER_4K, true);
    host.frameBytes(pfn).fill(0xab);
    host.freeFrames(pfn, ORDER_4K);
    const again = host.allocateFrames(ORDER_4K, true);
    assert.equal(again, pfn, "the allocator reuses the most recently freed frame");
    assert.ok(host.frameBytes(again).every((b) => b === 0));
  });

  test("running out of frames is ENOMEM, not a crash", () => {
    const host = HostMemory.create({ ramBytes: 1 << 30, arenaBytes: 1 << 20 });
    assert.throws(() => host.allocateFrames(ORDER_1G, false), ErrnoError);
    for (let i = 0; i < 511; i++) host.allocateFrames(ORDER_2M, false);
    assert.throws(() => host.allocateFrames(ORDER_2M, false), ErrnoError);
  });

  test("an arena block larger than the arena is ENOMEM, even past 2 GiB", () => {
    const host = HostMemory.create({ ramBytes: 1 << 30, arenaBytes: 1 << 20 });
    for (const bytes of [2 << 20, 2 ** 31, 2 ** 32 + 8]) {
      assert.throws(() => host.arenaAllocate(bytes), { name: "ErrnoError", errno: "ENOMEM" });
    }
    assert.ok(host.arenaAllocate(64) > 0, "the arena still serves what fits");
  });

  test("a worker attached to the same host sees the same frames and allocator", async () => {
    const host = HostMemory.create({ ramBytes: 2 * 2 ** 30, arenaBytes: 1 << 20 });
    const pfn = host.allocateFrames(ORDER_4K, true);
    host.frameBytes(pfn)[7] = 99;
    const source = `
      const { parentPort, workerData } = require("node:worker_threads");
      import(workerData.module).then(({ HostMemory }) => {
        const host = HostMemory.attach(workerData.share);
        const seen = host.frameBytes(workerData.pfn)[7];
        const mine = host.allocateFrames(0, true);
        parentPort.postMessage({ seen, mine });
      });`;
    const worker = new Worker(source, {
      eval: true,
      workerData: {
        share: host.share(),
        pfn,
        module: new URL("../../src/host/host-memory.js", import.meta.url).href,
      },
    });
    const reply = await new Promise<{ seen: number; mine: number }>((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
    });
    await worker.terminate();
    assert.equal(reply.seen, 99);
    assert.notEqual(reply.mine, pfn);
    assert.equal(host.framesInUse, 2);
  });
});
