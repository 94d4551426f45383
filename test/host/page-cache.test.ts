import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ArenaHeap } from "../../src/host/arena-heap.js";
import { Host } from "../../src/host/host.js";
import { HostMemory } from "../../src/host/host-memory.js";
import {
  MAX_FILE_BYTES,
  PAGE_SIZE_1G,
  PAGE_SIZE_2M,
  PageCache,
} from "../../src/host/page-cache.js";
import { GiB, MiB, smallHost, throwsErrno } from "./helpers.js";

function bytesOf(host: Host, pfn: number): Uint8Array {
  return host.memory.frameBytes(pfn);
}

function page(fill: number): Uint8Array {
  return new Uint8Array(4096).fill(fill);
}

describe("page cache", () => {
  test("lookup, getOrAllocate, install, insert, isPresent and punchHole on 4 KiB pages", () => {
    const host = smallHost();
    const cache = host.pageCache(PageCache.create(host, 16 * 4096));
    assert.equal(cache.pages, 16);
    assert.equal(cache.lookup(3), 0);
    assert.equal(cache.isPresent(3), false);
    const pfn = cache.getOrAllocate(3, true);
    assert.ok(pfn > 0);
    assert.ok(bytesOf(host, pfn).every((b) => b === 0));
    assert.equal(cache.lookup(3), pfn);
    assert.equal(cache.isPresent(3), true);
    assert.equal(cache.getOrAllocate(3, true), pfn, "a present page is returned, not replaced");
    assert.equal(cache.framesPresent, 1);

    const installed = cache.install(5, page(0xaa));
    assert.equal(cache.lookup(5), installed);
    assert.ok(bytesOf(host, installed).every((b) => b === 0xaa));
    const data = new Uint8Array(3 * 4096).fill(0xbb, 4096, 8192);
    assert.equal(
      cache.install(5, data, 4096),
      installed,
      "install over a present page rewrites it",
    );
    assert.ok(bytesOf(host, installed).every((b) => b === 0xbb));
    assert.equal(cache.insert(5, page(1)), 0, "insert never replaces a page");
    assert.ok(bytesOf(host, installed).every((b) => b === 0xbb));
    const inserted = cache.insert(6, null);
    assert.ok(inserted > 0 && bytesOf(host, inserted).every((b) => b === 0));
    assert.equal(cache.framesPresent, 3);
    assert.equal(host.memory.framesInUse, 3);

    cache.punchHole(4, 2);
    assert.equal(cache.lookup(5), 0);
    assert.equal(cache.lookup(3), pfn);
    assert.equal(cache.framesPresent, 2);
    assert.equal(host.memory.framesInUse, 2);
    cache.punchHole(0, 1000); // past the end: clipped
    assert.equal(host.memory.framesInUse, 0);
    assert.equal(cache.framesPresent, 0);
  });

  test("out of range and malformed requests", () => {
    const host = smallHost();
    const cache = host.pageCache(PageCache.create(host, 8 * 4096, undefined, 16 * 4096));
    assert.equal(cache.lookup(8), 0);
    assert.equal(cache.lookup(-1), 0);
    assert.equal(cache.lookup(1e9), 0);
    throwsErrno(() => cache.getOrAllocate(8, true), "EINVAL"); // past the size, within capacity
    throwsErrno(() => cache.getOrAllocate(-1, true), "EINVAL");
    throwsErrno(() => cache.install(0, new Uint8Array(100)), "EINVAL");
    throwsErrno(() => cache.install(0, new Uint8Array(4096), 1), "EINVAL");
    throwsErrno(() => cache.punchHole(-1, 1), "EINVAL");
    throwsErrno(() => cache.punchHole(0, 1.5), "EINVAL");
    throwsErrno(() => PageCache.create(host, -4096), "EINVAL");
    throwsErrno(() => PageCache.create(host, 8192, 4096, 4096), "EINVAL");
    throwsErrno(() => PageCache.create(host, 4096, 8192 as 4096), "EINVAL");
    throwsErrno(() => PageCache.create(host, MAX_FILE_BYTES + 4096), "EFBIG");
    assert.equal(host.memory.framesInUse, 0);
  });

  test("a 2 MiB-backed file allocates aligned huge frames and answers for each 4 KiB piece", () => {
    const host = smallHost();
    throwsErrno(() => PageCache.create(host, 3 * MiB, PAGE_SIZE_2M), "EINVAL");
    throwsErrno(() => PageCache.create(host, 2 * MiB, PAGE_SIZE_2M, 3 * MiB), "EINVAL");
    const cache = host.pageCache(PageCache.create(host, 4 * MiB, PAGE_SIZE_2M));
    assert.equal(cache.pageSize, PAGE_SIZE_2M);
    const piece = cache.getOrAllocate(513, true);
    const head = cache.lookupHead(513);
    assert.equal(head % 512, 0, "naturally aligned");
    assert.equal(piece, head + 1);
    for (const index of [512, 700, 1023]) assert.equal(cache.lookup(index), head + index - 512);
    assert.equal(cache.lookup(511), 0);
    assert.equal(cache.framesPresent, 512);
    assert.equal(host.memory.framesInUse, 512);
    const other = cache.install(7, page(0x5a));
    assert.equal((other - 7) % 512, 0);
    assert.ok(bytesOf(host, other).every((b) => b === 0x5a));
    assert.ok(
      bytesOf(host, other - 1).every((b) => b === 0),
      "the rest of the huge page is zeroed",
    );
    throwsErrno(() => cache.insert(1, null), "EINVAL");
    throwsErrno(() => cache.punchHole(1, 511), "EINVAL");
    throwsErrno(() => cache.punchHole(0, 100), "EINVAL");
    cache.punchHole(512, 512);
    assert.equal(cache.lookup(513), 0);
    assert.equal(host.memory.framesInUse, 512);
    throwsErrno(() => cache.setSize(3 * MiB), "EINVAL");
    cache.setSize(2 * MiB);
    assert.equal(cache.pages, 512);
  });

  test("a 1 GiB-backed file takes one naturally aligned 1 GiB frame", () => {
    const host = smallHost({ ramBytes: 3 * GiB });
    const cache = host.pageCache(PageCache.create(host, GiB, PAGE_SIZE_1G));
    const pfn = cache.getOrAllocate(12345, true);
    const head = cache.lookupHead(0);
    assert.equal(head % (GiB / 4096), 0);
    assert.equal(pfn, head + 12345);
    assert.equal(host.memory.framesInUse, GiB / 4096);
    cache.destroy();
    assert.equal(host.memory.framesInUse, 0);
  });

  test("running out of frames is ENOMEM and leaves the file consistent", () => {
    const host = Host.create({ ramBytes: GiB, arenaBytes: 16 * MiB });
    const cache = host.pageCache(PageCache.create(host, 2 * GiB, PAGE_SIZE_2M));
    // Chunk 0 gives up one 2 MiB block to the 4 KiB frames, so 511 huge pages fit.
    for (let i = 0; i < 511; i++) cache.getOrAllocate(i * 512, false);
    throwsErrno(() => cache.getOrAllocate(511 * 512, true), "ENOMEM");
    throwsErrno(() => cache.install(511 * 512, page(1)), "ENOMEM");
    assert.equal(cache.lookup(511 * 512), 0);
    assert.equal(cache.framesPresent, 511 * 512);
    cache.punchHole(0, 512);
    assert.ok(cache.getOrAllocate(511 * 512, true) > 0);
  });

  test("a sparse 64 GiB file costs only the pages it touches", () => {
    const host = smallHost({ arenaBytes: 256 * MiB });
    const size = 64 * GiB;
    const cache = host.pageCache(PageCache.create(host, size));
    const touched = [0, 1, 123_456, size / 4096 - 1];
    for (const index of touched) cache.install(index, page(index & 0xff));
    assert.equal(cache.framesPresent, touched.length);
    assert.equal(host.memory.framesInUse, touched.length);
    for (const index of touched) assert.equal(bytesOf(host, cache.lookup(index))[9], index & 0xff);
    const started = performance.now();
    cache.destroy();
    assert.ok(performance.now() - started < 1000, "draining skips the untouched table");
    assert.equal(host.memory.framesInUse, 0);
  });

  test("shrinking frees the tail and zeroes a partial last page; growing stops at the maximum", () => {
    const host = smallHost();
    const cache = host.pageCache(PageCache.create(host, 4 * 4096, undefined, 8 * 4096));
    for (let i = 0; i < 4; i++) cache.install(i, page(0xee));
    cache.setSize(4096 + 100);
    assert.equal(cache.size, 4196);
    assert.equal(cache.pages, 2);
    assert.equal(cache.framesPresent, 2);
    const last = bytesOf(host, cache.lookup(1));
    assert.equal(last[99], 0xee);
    assert.equal(last[100], 0);
    assert.equal(last[4095], 0);
    cache.setSize(8 * 4096);
    assert.equal(cache.pages, 8);
    assert.equal(cache.lookup(3), 0, "pages past the old end came back as holes");
    throwsErrno(() => cache.setSize(9 * 4096), "EFBIG");
    throwsErrno(() => cache.setSize(-1), "EINVAL");
  });

  test("the owner hears of pages before their frames are freed", () => {
    const host = smallHost();
    const offset = PageCache.create(host, 16 * 4096);
    const cache = host.pageCache(offset);
    cache.getOrAllocate(2, true);
    cache.getOrAllocate(9, true);
    const heard: Array<[number, number, number, number]> = [];
    host.addPageCacheInvalidateListener((which, first, count) =>
      heard.push([which, first, count, host.memory.framesInUse]),
    );
    cache.punchHole(0, 4);
    cache.punchHole(4, 4); // nothing there: nobody is bothered
    cache.setSize(8 * 4096);
    assert.deepEqual(heard, [
      [offset, 0, 4, 2],
      [offset, 8, 8, 1],
    ]);
    assert.equal(host.memory.framesInUse, 0);
  });

  test("a destroyed file's table goes back to the arena heap and is reused", () => {
    const host = smallHost();
    const first = host.pageCache(PageCache.create(host, 32 * MiB));
    first.getOrAllocate(100, true);
    const arenaBefore = host.memory.arenaAllocate(8, 8);
    first.destroy();
    for (let round = 0; round < 50; round++) {
      const again = host.pageCache(PageCache.create(host, 32 * MiB));
      assert.equal(again.lookup(100), 0, "a reused table is empty");
      again.getOrAllocate(100, true);
      again.destroy();
    }
    const arenaAfter = host.memory.arenaAllocate(8, 8);
    // 50 files of 32 MiB would need 400 KiB of tables each without reuse; headers are 32 bytes.
    assert.ok(arenaAfter - arenaBefore < 50 * 64 + 64, `arena grew by ${arenaAfter - arenaBefore}`);
    assert.equal(host.memory.framesInUse, 0);
  });

  test("arena heap size classes stay within a quarter of the request", () => {
    for (const bytes of [1, 64, 65, 100, 4096, 4097, 5000, 64 * MiB + 2048, 3 * GiB]) {
      const size = ArenaHeap.blockSize(bytes);
      assert.ok(size >= bytes && size >= 64, `${bytes} -> ${size}`);
      assert.ok(size <= Math.max(64, bytes * 1.25), `${bytes} -> ${size}`);
    }
  });

  test("frames of a worker-visible file are the same memory (HostMemory chunk views)", () => {
    const host = smallHost();
    const cache = host.pageCache(PageCache.create(host, 4096));
    const pfn = cache.install(0, page(3));
    const attached = Host.attach(host.share());
    const view = attached.pageCache(cache.offset);
    assert.equal(view.lookup(0), pfn);
    assert.equal(attached.memory.chunkU8[HostMemory.chunkOf(pfn)][HostMemory.offsetOf(pfn)], 3);
  });
});
