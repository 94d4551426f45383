import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { HostMemory, ORDER_2M, ORDER_4K } from "../../src/host/host-memory.js";
import { GfnBitmap } from "../../src/kvm/gfn-bitmap.js";
import { LEVEL_2M, LEVEL_4K, Stage2, Stage2Walk } from "../../src/kvm/stage2.js";

function newHost(): HostMemory {
  return HostMemory.create({ ramBytes: 2 * 2 ** 30, arenaBytes: 1 << 20 });
}

describe("gfn bitmap", () => {
  test("sets, tests and clears ranges across words and leaves, sparse over 1 TiB", () => {
    const host = newHost();
    const bits = new GfnBitmap(host, GfnBitmap.allocate(host));
    const before = host.framesInUse;
    bits.setRange(32760, 20); // crosses a leaf boundary at 32768
    bits.setRange(200_000_000, 1);
    assert.equal(host.framesInUse - before, 3, "one leaf frame per touched 128 MiB");
    for (let g = 32750; g < 32790; g++)
      assert.equal(bits.test(g), g >= 32760 && g < 32780, `gfn ${g}`);
    assert.ok(bits.test(200_000_000));
    assert.ok(!bits.test(199_999_999));
    assert.equal(bits.clearRange(32765, 5), true);
    assert.equal(bits.clearRange(32765, 5), false, "nothing left to clear");
    const seen: number[] = [];
    bits.forEachSet(32700, 200, (g) => seen.push(g));
    assert.deepEqual(
      seen,
      [
        32760, 32761, 32762, 32763, 32764, 32770, 32771, 32772, 32773, 32774, 32775, 32776, 32777,
        32778, 32779,
      ],
    );
  });
});

describe("gfn bitmap: forEachSet against a bit-by-bit walk", () => {
  test("random bits and ranges, across words and leaves, with absent leaves between", () => {
    const host = newHost();
    const bits = new GfnBitmap(host, GfnBitmap.allocate(host));
    // Deterministic pseudo-random numbers: a failure is reproducible.
    let seed = 12345;
    const random = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    // Leaves 0-2 touched, leaf 3 absent, leaf 4 touched.
    const span = 5 * 32768;
    for (let i = 0; i < 3000; i++) {
      const g = random(span);
      if (g + 40 < 3 * 32768 || g >= 4 * 32768) bits.setRange(g, 1 + random(40));
    }
    bits.setRange(31, 1); // bit 31 of a word: the sign bit
    for (let run = 0; run < 300; run++) {
      const from = random(span);
      const count = random(span - from + 1);
      const seen: number[] = [];
      bits.forEachSet(from, count, (g) => seen.push(g));
      const expected: number[] = [];
      for (let g = from; g < from + count; g++) if (bits.test(g)) expected.push(g);
      assert.deepEqual(seen, expected, `forEachSet(${from}, ${count})`);
    }
  });
});

describe("stage-2 table", () => {
  test("4 KiB and 2 MiB leaves walk to the right host frames and unmap whole", () => {
    const host = newHost();
    const arena = host.arenaAllocate(16, 8) >> 2;
    host.arenaI32[arena] = Stage2.allocateRoot(host);
    const s2 = new Stage2(host, arena, arena + 1);
    const walk = new Stage2Walk();
    const page = host.allocateFrames(ORDER_4K, true);
    const huge = host.allocateFrames(ORDER_2M, true);
    assert.equal(s2.walk(0x80000, walk), false);
    assert.ok(s2.map(0x80000, page, LEVEL_4K, true));
    assert.equal(s2.map(0x80000, page, LEVEL_4K, true), false, "a second install loses the race");
    assert.ok(s2.map(0x80200, huge, LEVEL_2M, false));
    assert.ok(s2.walk(0x80000, walk));
    assert.deepEqual([walk.pfn, walk.writable, walk.level], [page, true, LEVEL_4K]);
    assert.ok(s2.walk(0x80200 + 77, walk));
    assert.deepEqual([walk.pfn, walk.writable, walk.level], [huge + 77, false, LEVEL_2M]);
    assert.deepEqual(s2.mappingCounts(), [1, 1, 0]);
    assert.equal(s2.unmapRange(0x80300, 1), 1, "one page of a huge leaf unmaps the leaf");
    assert.equal(s2.walk(0x80201, walk), false);
    assert.ok(s2.walk(0x80000, walk));
    assert.deepEqual(s2.mappingCounts(), [1, 0, 0]);
    s2.writeProtectRange(0x80000, 1);
    assert.ok(s2.walk(0x80000, walk));
    assert.equal(walk.writable, false);
    assert.ok(s2.makeWritable(0x80000));
    assert.ok(s2.walk(0x80000, walk) && walk.writable);
  });
});
