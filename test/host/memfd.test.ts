import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FILE_MEMFD } from "../../src/host/files.js";
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  MFD_CLOEXEC,
  MFD_HUGETLB,
} from "../../src/host/memfd.js";
import { PAGE_SIZE_2M } from "../../src/host/page-cache.js";
import { GiB, MiB, smallHost, throwsErrno } from "./helpers.js";

describe("memfd", () => {
  test("create, name, size, and the page cache behind it", () => {
    const host = smallHost();
    const fd = host.memfdCreate("guest-ram", 64 * 1024, { flags: MFD_CLOEXEC });
    assert.equal(host.files.typeOf(fd), FILE_MEMFD);
    assert.equal(host.memfds.name(fd), "guest-ram");
    assert.equal(host.memfds.size(fd), 64 * 1024);
    assert.equal(host.pageCacheOf(fd), host.memfds.pageCache(fd));
    assert.equal(host.memory.framesInUse, 0, "a new memfd has no pages");
    throwsErrno(() => host.memfdCreate("x".repeat(250), 4096), "EINVAL");
    throwsErrno(() => host.memfdCreate("bad flags", 4096, { flags: 0x100 }), "EINVAL");
    throwsErrno(() => host.memfdCreate("negative", -1), "EINVAL");
    // Its page table alone would outgrow the host kernel's arena.
    throwsErrno(() => host.memfdCreate("too large", 2 * 2 ** 40), "ENOMEM");
    throwsErrno(() => host.pageCacheOf(host.eventfd()), "ENODEV");
  });

  test("pwrite and pread across page boundaries; holes read as zeros and stay holes", () => {
    const host = smallHost();
    const fd = host.memfdCreate("rw", 4 * 4096);
    const data = Uint8Array.from({ length: 6000 }, (_, i) => i & 0xff);
    assert.equal(host.memfds.pwrite(fd, data, 3000), 6000);
    assert.equal(host.memory.framesInUse, 3, "pages 0, 1 and 2 were touched");
    assert.deepEqual(host.memfds.pread(fd, 6000, 3000), data);
    const all = host.memfds.pread(fd, 5 * 4096, 0);
    assert.equal(all.length, 4 * 4096, "a read stops at the end of the file");
    assert.ok(all.subarray(0, 3000).every((b) => b === 0));
    assert.ok(all.subarray(9000).every((b) => b === 0));
    assert.equal(host.memory.framesInUse, 3, "reading the hole at page 3 allocated nothing");
    assert.equal(host.memfds.pread(fd, 10, 4 * 4096).length, 0);
    // A whole aligned page goes through the page-install primitive.
    host.memfds.pwrite(fd, new Uint8Array(4096).fill(9), 3 * 4096);
    assert.ok(host.memfds.pread(fd, 4096, 3 * 4096).every((b) => b === 9));
    throwsErrno(() => host.memfds.pread(fd, -1, 0), "EINVAL");
    throwsErrno(() => host.memfds.pwrite(fd, data, -5), "EINVAL");
  });

  test("pwrite past the end grows the file up to its maximum size", () => {
    const host = smallHost();
    const fd = host.memfdCreate("grow", 4096, { maxSize: 3 * 4096 });
    host.memfds.pwrite(fd, new Uint8Array([1, 2, 3]), 5000);
    assert.equal(host.memfds.size(fd), 5003);
    throwsErrno(() => host.memfds.pwrite(fd, new Uint8Array(10), 3 * 4096 - 5), "EFBIG");
  });

  test("ftruncate shrinks (freeing pages) and grows", () => {
    const host = smallHost();
    const fd = host.memfdCreate("trunc", 8 * 4096);
    host.memfds.pwrite(fd, new Uint8Array(8 * 4096).fill(1), 0);
    assert.equal(host.memory.framesInUse, 8);
    host.memfds.ftruncate(fd, 2 * 4096);
    assert.equal(host.memory.framesInUse, 2);
    host.memfds.ftruncate(fd, 8 * 4096);
    assert.ok(host.memfds.pread(fd, 4096, 5 * 4096).every((b) => b === 0));
    throwsErrno(() => host.memfds.ftruncate(fd, 9 * 4096), "EFBIG");
    throwsErrno(() => host.memfds.ftruncate(host.eventfd(), 0), "EBADF");
  });

  test("fallocate punches holes and allocates ranges", () => {
    const host = smallHost();
    const fd = host.memfdCreate("falloc", 8 * 4096, { maxSize: 16 * 4096 });
    host.memfds.fallocate(fd, 0, 0, 8 * 4096);
    assert.equal(host.memory.framesInUse, 8);
    host.memfds.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 3 * 4096);
    // Only whole pages inside [100, 100 + 3 pages) go: pages 1 and 2.
    assert.equal(host.memory.framesInUse, 6);
    assert.equal(host.memfds.pageCache(fd).lookup(0) > 0, true);
    assert.equal(host.memfds.pageCache(fd).lookup(1), 0);
    host.memfds.fallocate(fd, 0, 10 * 4096, 4096);
    assert.equal(host.memfds.size(fd), 11 * 4096);
    assert.equal(host.memory.framesInUse, 7);
    throwsErrno(() => host.memfds.fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096), "EINVAL");
    throwsErrno(() => host.memfds.fallocate(fd, 0, 0, 0), "EINVAL");
  });

  test("huge memfds: sizes and holes in whole huge pages", () => {
    const host = smallHost();
    throwsErrno(() => host.memfdCreate("odd", 3 * MiB, { hugePageSize: PAGE_SIZE_2M }), "EINVAL");
    const fd = host.memfdCreate("huge", 4 * MiB, { flags: MFD_HUGETLB });
    const cache = host.memfds.pageCache(fd);
    assert.equal(cache.pageSize, PAGE_SIZE_2M);
    host.memfds.pwrite(fd, new Uint8Array([1]), 3 * MiB);
    assert.equal(host.memory.framesInUse, 512);
    assert.equal(cache.lookupHead(3 * 256) % 512, 0);
    throwsErrno(() => host.memfds.ftruncate(fd, MiB), "EINVAL");
    throwsErrno(
      () => host.memfds.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, MiB, 2 * MiB),
      "EINVAL",
    );
    host.memfds.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2 * MiB, 2 * MiB);
    assert.equal(host.memory.framesInUse, 0);
  });

  test("closing the last descriptor frees the pages", () => {
    const host = smallHost();
    const fd = host.memfdCreate("bye", GiB);
    host.memfds.pwrite(fd, new Uint8Array(10 * 4096).fill(1), 12345 * 4096);
    assert.equal(host.memory.framesInUse, 10);
    host.close(fd);
    assert.equal(host.memory.framesInUse, 0);
    throwsErrno(() => host.memfds.size(fd), "EBADF");
  });
});
