import assert from "node:assert/strict";
import { test } from "node:test";
import { FaultLocality } from "../../src/migration/postcopy/fault-locality.js";

/** xorshift32: the same scattered pages on every run. */
function scattered(seed: number, pages: number, count: number): number[] {
  let x = seed;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.push((x >>> 0) % pages);
  }
  return out;
}

test("scattered faults make no run: the pusher carries on in order", () => {
  const locality = new FaultLocality();
  // Four vCPUs faulting at random in their own 256 MiB, as the dirtier does.
  const streams = [1, 2, 3, 4].map((v) => scattered(v * 0x9e3779b9, 65536, 5000));
  let runs = 0;
  for (let i = 0; i < 5000; i++) {
    for (let v = 0; v < 4; v++) if (locality.inRun(v * 65536 + streams[v][i])) runs++;
  }
  assert.ok(runs <= 2, `${runs} of 20000 scattered faults counted as runs`);
});

test("a guest streaming through memory makes a run from its third fault on", () => {
  const locality = new FaultLocality();
  const seen = [1000, 1001, 1003, 1004, 1008].map((page) => locality.inRun(page));
  assert.deepEqual(seen, [false, false, true, true, true]);
});

test("runs of several vCPUs are told apart when their faults interleave, among scattered ones", () => {
  const locality = new FaultLocality();
  const noise = scattered(7, 1 << 18, 100);
  const found: boolean[][] = [[], [], []];
  for (let i = 0; i < 10; i++) {
    for (let s = 0; s < 3; s++) found[s].push(locality.inRun(100_000 * (s + 1) + 2 * i));
    locality.inRun(noise[i]);
  }
  for (const stream of found) assert.deepEqual(stream.slice(2), Array(8).fill(true));
});

test("the same page again makes no run (a vCPU and a device waiting on one page)", () => {
  const locality = new FaultLocality();
  assert.deepEqual(
    [5, 5, 5, 5].map((page) => locality.inRun(page)),
    [false, false, false, false],
  );
});
