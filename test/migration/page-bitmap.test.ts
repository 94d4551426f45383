import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PageBitmap } from "../../src/migration/page-bitmap.js";

describe("PageBitmap", () => {
  test("set, count, runs, and the tail beyond the last page stays clear", () => {
    const map = new PageBitmap(70);
    map.setAll();
    assert.equal(map.count(), 70);
    assert.equal(map.words[2], 0b111111);
    for (const p of [0, 1, 31, 32, 69]) map.clear(p);
    const runs: [number, number][] = [];
    map.forEachRun((first, count) => runs.push([first, count]));
    assert.deepEqual(runs, [
      [2, 29],
      [33, 36],
    ]);
    assert.equal(map.count(), 65);
  });

  test("nextSet scans from a page, wraps around once, and says -1 when empty", () => {
    const map = new PageBitmap(100);
    assert.equal(map.nextSet(0), -1);
    map.set(5);
    map.set(64);
    assert.equal(map.nextSet(0), 5);
    assert.equal(map.nextSet(6), 64);
    assert.equal(map.nextSet(65), 5);
    assert.equal(map.nextSet(99), 5);
  });

  test("bytes round-trip (KVM's dirty-log layout), with bits past the end dropped", () => {
    const map = new PageBitmap(12);
    map.set(0);
    map.set(9);
    map.set(11);
    const bytes = Buffer.from(map.toBytes());
    assert.deepEqual([...bytes], [0b1, 0b1010]);
    bytes[1] |= 0xf0;
    const back = PageBitmap.fromBytes(12, bytes);
    assert.equal(back.count(), 3);
    assert.throws(() => PageBitmap.fromBytes(12, new Uint8Array(1)), /cannot hold 12 pages/);
    const other = new PageBitmap(12);
    other.set(9);
    back.andNot(other);
    assert.deepEqual([back.test(0), back.test(9), back.test(11)], [true, false, true]);
  });

  test("any, and the pages set in neither of two bitmaps (the tail not counted)", () => {
    const a = new PageBitmap(70);
    const b = new PageBitmap(70);
    assert.equal(a.any(), false);
    assert.equal(a.countNeither(b), 70);
    a.set(69);
    assert.equal(a.any(), true);
    for (let p = 0; p < 40; p++) b.set(p);
    b.set(50);
    assert.equal(a.countNeither(b), 70 - 40 - 2);
    a.setAll();
    assert.equal(a.countNeither(b), 0);
  });
});
