import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  FAULT_ATOMIC,
  FAULT_EAGAIN,
  FAULT_EFAULT,
  FAULT_ENOMEM,
  FAULT_WRITE,
  MADV_DONTNEED,
  MADV_REMOVE,
  MAP_ANONYMOUS,
  MAP_HUGETLB,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  MFILL_CONTINUE,
  MFILL_COPY,
  MFILL_WP,
  MFILL_ZEROPAGE,
  MMAP_TOP,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  setUserfaultHandler,
  UFFD_MINOR,
  UFFD_MISSING,
  UFFD_WP,
} from "../../src/host/address-space.js";
import { ErrnoError } from "../../src/host/errno.js";
import { Host } from "../../src/host/host.js";
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE } from "../../src/host/memfd.js";
import { PAGE_SIZE_1G, PAGE_SIZE_2M } from "../../src/host/page-cache.js";
import { GiB, MiB, smallHost, throwsErrno } from "./helpers.js";
import { HostWorkers } from "./workers.js";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

function anon(host: Host, length: number, extra: { hugePageSize?: number; flags?: number } = {}) {
  return host.mmap({
    length,
    prot: RW,
    flags: ANON | (extra.flags ?? 0),
    hugePageSize: extra.hugePageSize,
  });
}

describe("address space: mappings", () => {
  test("an anonymous mapping is populated with zeroed frames on first touch", () => {
    const host = smallHost();
    const hva = anon(host, 64 * 1024);
    assert.equal(hva % 4096, 0);
    assert.ok(hva < MMAP_TOP);
    assert.equal(host.lookupPfn(hva + 5000), 0);
    assert.equal(host.memory.framesInUse, 0);
    const pfn = host.faultIn(hva + 5000, 0);
    assert.ok(host.memory.frameBytes(pfn).every((b) => b === 0));
    assert.equal(host.faultIn(hva + 4096, FAULT_WRITE), pfn, "same page, same frame");
    assert.equal(host.lookupPfn(hva + 8191), pfn);
    assert.equal(host.mm.residentFrames(hva), 1);
    assert.equal(host.memory.framesInUse, 1);
    const info = host.mm.mapping(hva + 100);
    assert.deepEqual(info, {
      start: hva,
      length: 64 * 1024,
      prot: RW,
      flags: ANON,
      pageSize: 4096,
      shared: false,
      fileOffset: 0,
      residentFrames: 1,
    });
    assert.equal(host.mm.mapping(hva + 64 * 1024), null);
  });

  test("copyToUser and copyFromUser cross pages", () => {
    const host = smallHost();
    const hva = anon(host, 5 * 4096 + 1); // rounded up to 6 pages
    const data = Uint8Array.from({ length: 3 * 4096 }, (_, i) => (i * 7) & 0xff);
    host.copyToUser(hva + 4000, data);
    assert.deepEqual(host.copyFromUser(hva + 4000, data.length), data);
    const into = new Uint8Array(10);
    host.mm.copyFromUserInto(hva + 4000, into);
    assert.deepEqual(into, data.subarray(0, 10));
    assert.equal(host.mm.residentFrames(hva), 4);
    assert.equal(host.mm.mapping(hva)?.length, 6 * 4096);
  });

  test("bad mmap requests", () => {
    const host = smallHost();
    const efd = host.eventfd();
    const mfd = host.memfdCreate("m", 4 * MiB);
    const bad: Array<[Parameters<Host["mmap"]>[0], string]> = [
      [{ length: 0, prot: RW, flags: ANON }, "EINVAL"],
      [{ length: -4096, prot: RW, flags: ANON }, "EINVAL"],
      [{ length: 4096, prot: 8, flags: ANON }, "EINVAL"],
      [{ length: 4096, prot: RW, flags: MAP_ANONYMOUS }, "EINVAL"],
      [{ length: 4096, prot: RW, flags: ANON | MAP_SHARED }, "EINVAL"],
      [{ length: 4096, prot: RW, flags: ANON | 0x1000000 }, "EINVAL"],
      [{ length: 4096, prot: RW, flags: ANON, hugePageSize: 8192 }, "EINVAL"],
      [{ length: 4096, prot: RW, flags: MAP_SHARED }, "EBADF"],
      [{ length: 4096, prot: RW, flags: MAP_SHARED, fd: 77 }, "EBADF"],
      [{ length: 4096, prot: RW, flags: MAP_SHARED, fd: efd }, "ENODEV"],
      [{ length: 4096, prot: RW, flags: MAP_PRIVATE, fd: mfd }, "EINVAL"],
      [{ length: 4096, prot: RW, flags: MAP_SHARED, fd: mfd, offset: 100 }, "EINVAL"],
      [{ length: 4096, prot: RW, flags: MAP_SHARED, fd: mfd, offset: -4096 }, "EINVAL"],
      [
        { length: 4096, prot: RW, flags: MAP_SHARED, fd: mfd, hugePageSize: PAGE_SIZE_2M },
        "EINVAL",
      ],
    ];
    for (const [options, errno] of bad) {
      throwsErrno(() => host.mmap(options), errno as "EINVAL");
    }
    assert.equal(host.mm.mappingCount, 0);
    // Failed mmaps of the memfd dropped the references they took: closing frees it.
    host.memfds.pwrite(mfd, new Uint8Array([1]), 0);
    host.close(mfd);
    assert.equal(host.memory.framesInUse, 0);
  });

  test("faults on unmapped addresses and against the protection are EFAULT", () => {
    const host = smallHost();
    const ro = host.mmap({ length: 8192, prot: PROT_READ, flags: ANON });
    const none = host.mmap({ length: 8192, prot: PROT_NONE, flags: ANON });
    const rw = anon(host, 8192);
    assert.ok(host.faultIn(ro, 0) > 0, "reading a read-only mapping is fine");
    throwsErrno(() => host.faultIn(ro, FAULT_WRITE), "EFAULT");
    throwsErrno(() => host.copyToUser(ro + 10, new Uint8Array(1)), "EFAULT");
    throwsErrno(() => host.faultIn(none, 0), "EFAULT");
    assert.equal(host.mm.tryFaultIn(none, FAULT_WRITE), FAULT_EFAULT);
    for (const hva of [0, 4096, rw - 1, rw + 8192, MMAP_TOP, 2 ** 52]) {
      throwsErrno(() => host.faultIn(hva, 0), "EFAULT");
      assert.equal(host.mm.tryFaultIn(hva, 0), FAULT_EFAULT);
      assert.equal(host.lookupPfn(hva), 0);
    }
    host.faultIn(rw, FAULT_WRITE);
    host.munmap(rw, 8192);
    throwsErrno(() => host.faultIn(rw, 0), "EFAULT");
    assert.equal(host.lookupPfn(rw), 0);
    throwsErrno(() => host.copyFromUser(rw, 1), "EFAULT");
  });

  test("munmap takes whole mappings only, and frees their private pages", () => {
    const host = smallHost();
    const hva = anon(host, 16 * 4096);
    host.copyToUser(hva, new Uint8Array(16 * 4096).fill(1));
    assert.equal(host.memory.framesInUse, 16);
    throwsErrno(() => host.munmap(hva + 4096, 15 * 4096), "EINVAL");
    throwsErrno(() => host.munmap(hva, 8 * 4096), "EINVAL");
    throwsErrno(() => host.munmap(hva, 17 * 4096), "EINVAL");
    throwsErrno(() => host.munmap(hva, 0), "EINVAL");
    throwsErrno(() => host.munmap(0x1000, 4096), "EINVAL");
    host.munmap(hva, 16 * 4096 - 100); // rounded up to the mapping's length
    assert.equal(host.memory.framesInUse, 0);
    assert.equal(host.mm.mappingCount, 0);
    throwsErrno(() => host.munmap(hva, 16 * 4096), "EINVAL");
  });

  test("mappings never overlap, are aligned to their page size, and reuse freed ranges", () => {
    const host = smallHost();
    const sizes = [4096, 3 * 4096, 2 * MiB, 5 * MiB, 4096, GiB];
    const made: Array<[number, number]> = [];
    for (const [i, length] of sizes.entries()) {
      const pageSize = i === 5 ? PAGE_SIZE_1G : i % 3 === 2 ? PAGE_SIZE_2M : 4096;
      const hva = anon(host, length, pageSize === 4096 ? {} : { hugePageSize: pageSize });
      assert.equal(hva % pageSize, 0);
      assert.equal(host.mm.mapping(hva)?.pageSize, pageSize);
      made.push([hva, hva + Math.ceil(length / pageSize) * pageSize]);
    }
    assert.equal(made[0][0], MMAP_TOP - 4096, "placed top-down");
    const sorted = [...made].sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < sorted.length; i++)
      assert.ok(sorted[i - 1][1] <= sorted[i][0], "no overlap");
    for (const [start, end] of made) host.munmap(start, end - start);
    assert.equal(anon(host, 4096), made[0][0], "freed ranges are used again");
  });

  test("the mapping table is finite: ENOMEM when full", () => {
    const host = smallHost({ maxMappings: 4 });
    const made = [0, 1, 2, 3].map(() => anon(host, 4096));
    throwsErrno(() => anon(host, 4096), "ENOMEM");
    host.munmap(made[1], 4096);
    anon(host, 4096);
    assert.equal(host.mm.mappingCount, 4);
  });

  test("page tables that do not fit in the kernel arena are ENOMEM", () => {
    const host = smallHost({ arenaBytes: 4 * MiB });
    throwsErrno(() => anon(host, 64 * GiB), "ENOMEM");
    throwsErrno(() => host.memfdCreate("big", 64 * GiB), "ENOMEM");
    throwsErrno(
      () => host.mmap({ length: 64 * GiB, prot: RW, flags: MAP_SHARED | MAP_ANONYMOUS }),
      "ENOMEM",
    );
    assert.equal(host.mm.mappingCount, 0);
    assert.equal(host.files.openCount, 0);
    const hva = anon(host, 64 * MiB);
    assert.ok(host.faultIn(hva, FAULT_WRITE) > 0);
  });

  test("MAP_POPULATE faults every page in at once", () => {
    const host = smallHost();
    const hva = anon(host, 10 * 4096, { flags: MAP_POPULATE });
    assert.equal(host.mm.residentFrames(hva), 10);
    assert.equal(host.memory.framesInUse, 10);
  });
});

describe("address space: shared and huge mappings", () => {
  test("two mappings of one memfd see the same memory, each with its own page table", () => {
    const host = smallHost();
    const fd = host.memfdCreate("shared", 16 * 4096);
    const a = host.mmap({ length: 16 * 4096, prot: RW, flags: MAP_SHARED, fd });
    const b = host.mmap({
      length: 8 * 4096,
      prot: PROT_READ,
      flags: MAP_SHARED,
      fd,
      offset: 8 * 4096,
    });
    host.copyToUser(a + 9 * 4096 + 5, new Uint8Array([1, 2, 3]));
    assert.equal(host.mm.residentFrames(b), 0, "b has not mapped the page yet");
    assert.deepEqual([...host.copyFromUser(b + 4096 + 5, 3)], [1, 2, 3]);
    assert.equal(host.lookupPfn(a + 9 * 4096), host.lookupPfn(b + 4096));
    assert.equal(host.memfds.pageCache(fd).lookup(9), host.lookupPfn(b + 4096));
    assert.deepEqual([...host.memfds.pread(fd, 3, 9 * 4096 + 5)], [1, 2, 3]);
    host.memfds.pwrite(fd, new Uint8Array([9]), 9 * 4096 + 5);
    assert.deepEqual([...host.copyFromUser(a + 9 * 4096 + 5, 1)], [9]);
    assert.equal(host.memory.framesInUse, 1);
    assert.equal(host.mm.residentFrames(a) + host.mm.residentFrames(b), 2);
    assert.equal(host.mm.mapping(b)?.fileOffset, 8 * 4096);
    assert.equal(host.mm.mapping(b)?.shared, true);
    host.munmap(a, 16 * 4096);
    host.munmap(b, 8 * 4096);
    assert.equal(host.memory.framesInUse, 1, "the pages belong to the file");
    host.close(fd);
    assert.equal(host.memory.framesInUse, 0);
  });

  test("a mapping reaching past the end of its file faults EFAULT there until the file grows", () => {
    const host = smallHost();
    const fd = host.memfdCreate("short", 4096, { maxSize: 4 * 4096 });
    const hva = host.mmap({ length: 4 * 4096, prot: RW, flags: MAP_SHARED, fd });
    host.faultIn(hva, FAULT_WRITE);
    throwsErrno(() => host.faultIn(hva + 4096, FAULT_WRITE), "EFAULT");
    host.memfds.ftruncate(fd, 4 * 4096);
    assert.ok(host.faultIn(hva + 3 * 4096, FAULT_WRITE) > 0);
  });

  test("MAP_SHARED | MAP_ANONYMOUS is shared memory of its own, freed by munmap", () => {
    const host = smallHost();
    const hva = host.mmap({ length: 3 * 4096, prot: RW, flags: MAP_SHARED | MAP_ANONYMOUS });
    host.copyToUser(hva, new Uint8Array(3 * 4096).fill(4));
    assert.equal(host.mm.mapping(hva)?.shared, true);
    assert.equal(host.memory.framesInUse, 3);
    host.munmap(hva, 3 * 4096);
    assert.equal(host.memory.framesInUse, 0);
  });

  test("huge anonymous mappings get naturally aligned 2 MiB and 1 GiB frames", () => {
    const host = smallHost({ ramBytes: 3 * GiB });
    const m2 = anon(host, 4 * MiB, { flags: MAP_HUGETLB });
    assert.equal(m2 % (2 * MiB), 0);
    assert.equal(host.mm.mapping(m2)?.pageSize, PAGE_SIZE_2M);
    assert.equal(host.mm.pageSizeAt(m2 + 3 * MiB), PAGE_SIZE_2M);
    assert.equal(host.mm.pageSizeAt(m2 + 4 * MiB), 0);
    const pfn = host.faultIn(m2 + 2 * MiB + 3 * 4096 + 7, FAULT_WRITE);
    assert.equal((pfn - 3) % 512, 0);
    assert.equal(host.lookupPfn(m2 + 2 * MiB), pfn - 3);
    assert.equal(host.lookupPfn(m2 + 4 * MiB - 1), pfn - 3 + 511);
    assert.equal(host.lookupPfn(m2), 0);
    assert.equal(host.mm.residentFrames(m2), 512);
    assert.equal(host.memory.framesInUse, 512);

    const m1 = anon(host, GiB, { hugePageSize: PAGE_SIZE_1G });
    assert.equal(m1 % GiB, 0);
    const giant = host.faultIn(m1 + 5 * 4096, 0);
    assert.equal((giant - 5) % (GiB / 4096), 0);
    assert.equal(host.memory.framesInUse, 512 + GiB / 4096);
    host.munmap(m1, GiB);
    host.munmap(m2, 4 * MiB);
    assert.equal(host.memory.framesInUse, 0);
  });

  test("a huge memfd maps huge pages; its offsets must be huge-aligned", () => {
    const host = smallHost();
    const fd = host.memfdCreate("huge", 8 * MiB, { hugePageSize: PAGE_SIZE_2M });
    throwsErrno(
      () => host.mmap({ length: 2 * MiB, prot: RW, flags: MAP_SHARED, fd, offset: 4096 }),
      "EINVAL",
    );
    const hva = host.mmap({ length: 4 * MiB, prot: RW, flags: MAP_SHARED, fd, offset: 4 * MiB });
    assert.equal(hva % (2 * MiB), 0);
    const pfn = host.faultIn(hva + 2 * MiB + 4096, FAULT_WRITE);
    assert.equal(host.memfds.pageCache(fd).lookup(6 * 256 + 1), pfn);
    assert.equal(host.memfds.pageCache(fd).lookupHead(6 * 256) % 512, 0);
    assert.equal(host.mm.residentFrames(hva), 512);
  });

  test("a sparse 64 GiB memfd mapped whole costs only the pages touched", () => {
    const host = smallHost({ arenaBytes: 512 * MiB });
    const size = 64 * GiB;
    const fd = host.memfdCreate("guest", size);
    const hva = host.mmap({ length: size, prot: RW, flags: MAP_SHARED, fd });
    const anonymous = anon(host, size);
    const offsets = [0, 4096 * 1000, 33 * GiB + 12345, size - 1];
    for (const offset of offsets) {
      host.copyToUser(hva + offset, new Uint8Array([0x11]));
      host.copyToUser(anonymous + offset, new Uint8Array([0x22]));
    }
    assert.equal(host.memory.framesInUse, 2 * offsets.length);
    assert.equal(host.memfds.pageCache(fd).framesPresent, offsets.length);
    assert.equal(host.mm.residentFrames(hva), offsets.length);
    assert.equal(host.mm.residentFrames(anonymous), offsets.length);
    assert.deepEqual([...host.memfds.pread(fd, 1, 33 * GiB + 12345)], [0x11]);
    const started = performance.now();
    host.munmap(anonymous, size);
    host.munmap(hva, size);
    host.close(fd);
    assert.ok(performance.now() - started < 2000, "tearing down skips untouched tables");
    assert.equal(host.memory.framesInUse, 0);
  });
});

describe("address space: zapping", () => {
  test("MADV_DONTNEED frees private pages (they come back zero) and unmaps shared ones", () => {
    const host = smallHost();
    const hva = anon(host, 8 * 4096);
    host.copyToUser(hva, new Uint8Array(8 * 4096).fill(3));
    host.mm.madvise(hva + 2 * 4096, 3 * 4096, MADV_DONTNEED);
    assert.equal(host.memory.framesInUse, 5);
    assert.equal(host.lookupPfn(hva + 2 * 4096), 0);
    assert.deepEqual([...host.copyFromUser(hva + 2 * 4096 - 1, 2)], [3, 0]);

    const fd = host.memfdCreate("s", 4 * 4096);
    const shared = host.mmap({ length: 4 * 4096, prot: RW, flags: MAP_SHARED, fd });
    host.copyToUser(shared, new Uint8Array(4 * 4096).fill(5));
    const before = host.memory.framesInUse;
    host.mm.madvise(shared, 4 * 4096, MADV_DONTNEED);
    assert.equal(host.mm.residentFrames(shared), 0);
    assert.equal(host.memory.framesInUse, before, "the file keeps its pages");
    assert.deepEqual([...host.copyFromUser(shared + 4095, 2)], [5, 5]);

    host.mm.madvise(shared, 2 * 4096, MADV_REMOVE);
    assert.equal(host.memory.framesInUse, before - 2);
    assert.deepEqual([...host.copyFromUser(shared + 4095, 2)], [0, 0]);

    throwsErrno(() => host.mm.madvise(hva, 4096, MADV_REMOVE), "EINVAL");
    throwsErrno(() => host.mm.madvise(hva + 1, 4096, MADV_DONTNEED), "EINVAL");
    throwsErrno(() => host.mm.madvise(hva, 9 * 4096, MADV_DONTNEED), "EINVAL");
    throwsErrno(() => host.mm.madvise(hva, 4096, 12345), "EINVAL");
    throwsErrno(() => host.mm.madvise(0x2000, 4096, MADV_DONTNEED), "ENOMEM");
  });

  test("punching a hole in a memfd unmaps the pages from every mapping", () => {
    const host = smallHost();
    const fd = host.memfdCreate("holes", 4 * 4096);
    const a = host.mmap({ length: 4 * 4096, prot: RW, flags: MAP_SHARED, fd });
    const b = host.mmap({ length: 4 * 4096, prot: RW, flags: MAP_SHARED, fd });
    host.copyToUser(a, new Uint8Array(4 * 4096).fill(8));
    host.copyFromUser(b, 4 * 4096);
    const old = host.lookupPfn(b + 4096);
    host.memfds.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 2 * 4096);
    for (const hva of [a, b]) {
      assert.equal(host.lookupPfn(hva + 4096), 0);
      assert.equal(host.lookupPfn(hva + 2 * 4096), 0);
      assert.ok(host.lookupPfn(hva) > 0);
      assert.equal(host.mm.residentFrames(hva), 2);
    }
    assert.equal(host.memory.framesInUse, 2);
    assert.deepEqual([...host.copyFromUser(b + 4096, 1)], [0]);
    assert.equal(host.lookupPfn(a + 4096), 0, "a has not touched the new page yet");
    assert.equal(host.faultIn(a + 4096, 0), host.lookupPfn(b + 4096));
    assert.ok(old > 0);
  });

  test("invalidate listeners hear of unmapped ranges before the frames go", () => {
    const host = smallHost();
    const heard: Array<[number, number, number]> = [];
    const listener = (start: number, end: number) =>
      heard.push([start, end, host.memory.framesInUse]);
    host.mm.addInvalidateListener(listener);
    const hva = anon(host, 4 * 4096);
    host.copyToUser(hva, new Uint8Array(4 * 4096));
    host.mm.madvise(hva, 4096, MADV_DONTNEED);
    host.mm.madvise(hva, 4096, MADV_DONTNEED); // nothing mapped there now: silent
    const fd = host.memfdCreate("f", 4096);
    const shared = host.mmap({ length: 4096, prot: RW, flags: MAP_SHARED, fd });
    host.faultIn(shared, FAULT_WRITE);
    host.memfds.ftruncate(fd, 0);
    host.munmap(hva, 4 * 4096);
    host.mm.removeInvalidateListener(listener);
    host.munmap(shared, 4096);
    assert.deepEqual(heard, [
      [hva, hva + 4096, 4],
      [shared, shared + 4096, 4],
      [hva, hva + 4 * 4096, 3],
    ]);
  });
});

describe("address space: faults that fail", () => {
  test("running out of frames is ENOMEM from the fault path", () => {
    const host = Host.create({ ramBytes: GiB, arenaBytes: 16 * MiB });
    const hva = anon(host, GiB, { hugePageSize: PAGE_SIZE_2M });
    for (let i = 0; i < 511; i++) host.faultIn(hva + i * 2 * MiB, FAULT_WRITE);
    assert.equal(host.mm.tryFaultIn(hva + 511 * 2 * MiB, FAULT_WRITE), FAULT_ENOMEM);
    throwsErrno(() => host.faultIn(hva + 511 * 2 * MiB, 0), "ENOMEM");
    assert.equal(host.lookupPfn(hva + 511 * 2 * MiB), 0);
    host.munmap(hva, GiB);
    assert.equal(host.memory.framesInUse, 0);
  });
});

describe("address space: the userfaultfd hook", () => {
  test("MISSING on private memory: atomic callers get EAGAIN, others go to the handler", () => {
    const host = smallHost();
    const hva = anon(host, 8 * 4096);
    host.mm.setUserfaultRange(hva + 4096, 4 * 4096, UFFD_MISSING, 1234);
    assert.ok(host.faultIn(hva, FAULT_WRITE) > 0, "outside the range: populated as usual");
    assert.equal(host.mm.tryFaultIn(hva + 4096, FAULT_ATOMIC), FAULT_EAGAIN);
    throwsErrno(() => host.faultIn(hva + 4096, FAULT_ATOMIC | FAULT_WRITE), "EAGAIN");
    assert.equal(host.lookupPfn(hva + 4096), 0, "nothing was populated");
    // The real handler (installed when host.js loaded userfaultfd.js) refuses a
    // context that is not a userfaultfd instead of queueing on it.
    assert.throws(() => host.faultIn(hva + 4096, 0), /not a userfaultfd/);
    const real = setUserfaultHandler(null);
    assert.ok(real !== null, "loading the host installs the userfaultfd handler");
    try {
      assert.throws(() => host.faultIn(hva + 4096, 0), /no userfault handler/);
    } finally {
      setUserfaultHandler(real);
    }
    assert.equal(host.lookupPfn(hva + 4096), 0, "still nothing populated");

    const calls: Array<[number, number, number]> = [];
    const previous = setUserfaultHandler((space, slot, gen, address, reason, flags) => {
      assert.ok(space.isLive(slot, gen));
      assert.equal(space.userfaultContext(slot), 1234);
      calls.push([address, reason, flags]);
      space.mfill(address - (address % 4096), MFILL_COPY, new Uint8Array(4096).fill(0x77));
      return 0;
    });
    try {
      const pfn = host.faultIn(hva + 4096 + 10, FAULT_WRITE);
      assert.equal(host.memory.frameBytes(pfn)[0], 0x77);
      assert.deepEqual(calls, [[hva + 4096 + 10, UFFD_MISSING, FAULT_WRITE]]);
      assert.equal(host.faultIn(hva + 4096, 0), pfn, "resolved: no second message");
      assert.equal(calls.length, 1);
      host.mm.setUserfaultRange(hva + 4096, 4 * 4096, 0, 0);
      assert.ok(host.faultIn(hva + 2 * 4096, 0) > 0);
      assert.equal(calls.length, 1, "unregistered: populated as usual");
    } finally {
      setUserfaultHandler(previous);
    }
  });

  test("shared memory: MISSING when the file has no page, MINOR when it is only unmapped here", () => {
    const host = smallHost();
    const fd = host.memfdCreate("minor", 4 * 4096);
    const hva = host.mmap({ length: 4 * 4096, prot: RW, flags: MAP_SHARED, fd });
    host.memfds.pwrite(fd, new Uint8Array(4096).fill(0x42), 4096); // page 1 is in the cache
    host.mm.setUserfaultRange(hva, 4 * 4096, UFFD_MISSING | UFFD_MINOR, 1);
    const reasons: number[] = [];
    const previous = setUserfaultHandler((space, _slot, _gen, address, reason) => {
      reasons.push(reason);
      const page = address - (address % 4096);
      space.mfill(page, reason === UFFD_MINOR ? MFILL_CONTINUE : MFILL_ZEROPAGE);
      return 0;
    });
    try {
      assert.deepEqual([...host.copyFromUser(hva + 4096, 1)], [0x42]);
      assert.deepEqual([...host.copyFromUser(hva, 1)], [0]);
      assert.deepEqual(reasons, [UFFD_MINOR, UFFD_MISSING]);
      assert.equal(host.memfds.pageCache(fd).framesPresent, 2);
      assert.equal(host.mm.tryFaultIn(hva + 2 * 4096, FAULT_ATOMIC), FAULT_EAGAIN);
    } finally {
      setUserfaultHandler(previous);
    }
    throwsErrno(() => host.mm.setUserfaultRange(anon(host, 4096), 4096, UFFD_MINOR, 1), "EINVAL");
  });

  test("a handler's error fails the fault; WP faults only on writes to marked pages", () => {
    const host = smallHost();
    const hva = anon(host, 4 * 4096);
    host.mm.setUserfaultRange(hva, 4 * 4096, UFFD_MISSING | UFFD_WP, 1);
    const previous = setUserfaultHandler(() => FAULT_EFAULT);
    try {
      throwsErrno(() => host.faultIn(hva, 0), "EFAULT");
    } finally {
      setUserfaultHandler(previous);
    }
    const pfn = host.mm.mfill(hva, MFILL_COPY | MFILL_WP, new Uint8Array(4096).fill(1));
    assert.equal(host.faultIn(hva, 0), pfn, "reads of a write-protected page go ahead");
    assert.equal(host.mm.tryFaultIn(hva, FAULT_WRITE | FAULT_ATOMIC), FAULT_EAGAIN);
    const reasons: number[] = [];
    const again = setUserfaultHandler((_space, _slot, _gen, _address, reason) => {
      reasons.push(reason);
      host.mm.setUserfaultRange(hva, 4 * 4096, UFFD_MISSING, 1); // drop WP: the marker is stale now
      return 0;
    });
    try {
      assert.equal(host.faultIn(hva, FAULT_WRITE), pfn);
      assert.deepEqual(reasons, [UFFD_WP]);
      assert.equal(host.faultIn(hva, FAULT_WRITE), pfn);
    } finally {
      setUserfaultHandler(again);
    }
  });

  test("mfill errors", () => {
    const host = smallHost();
    const hva = anon(host, 4 * 4096);
    const page = new Uint8Array(4096);
    host.mm.mfill(hva, MFILL_ZEROPAGE);
    throwsErrno(() => host.mm.mfill(hva, MFILL_COPY, page), "EEXIST");
    throwsErrno(() => host.mm.mfill(hva + 4096, MFILL_COPY, new Uint8Array(100)), "EINVAL");
    throwsErrno(() => host.mm.mfill(hva + 4096, MFILL_COPY), "EINVAL");
    throwsErrno(() => host.mm.mfill(hva + 4096, MFILL_CONTINUE), "EINVAL");
    throwsErrno(() => host.mm.mfill(hva + 10, MFILL_ZEROPAGE), "EINVAL");
    throwsErrno(() => host.mm.mfill(hva, 77), "EINVAL");
    throwsErrno(() => host.mm.mfill(0x3000, MFILL_ZEROPAGE), "ENOENT");
    const fd = host.memfdCreate("f", 2 * 4096);
    const shared = host.mmap({ length: 4 * 4096, prot: RW, flags: MAP_SHARED, fd });
    throwsErrno(() => host.mm.mfill(shared, MFILL_CONTINUE), "EFAULT");
    throwsErrno(() => host.mm.mfill(shared + 3 * 4096, MFILL_ZEROPAGE), "EFAULT");
    host.memfds.pwrite(fd, new Uint8Array([1]), 0);
    throwsErrno(() => host.mm.mfill(shared, MFILL_COPY, page), "EEXIST");
    host.mm.mfill(shared, MFILL_CONTINUE);
    throwsErrno(() => host.mm.mfill(shared, MFILL_CONTINUE), "EEXIST");
    const huge = anon(host, 2 * MiB, { hugePageSize: PAGE_SIZE_2M });
    throwsErrno(() => host.mm.mfill(huge, MFILL_COPY, page), "EINVAL");
    const head = host.mm.mfill(huge, MFILL_COPY, new Uint8Array(2 * MiB).fill(6));
    assert.equal(head % 512, 0);
    assert.equal(host.memory.frameBytes(head + 511)[4095], 6);
  });

  test("a worker's fault sleeps in the handler until the main thread installs the page", async () => {
    const host = smallHost();
    const hva = anon(host, 4 * 4096);
    host.mm.setUserfaultRange(hva, 4 * 4096, UFFD_MISSING, 1);
    const efd = host.eventfd();
    const workers = new HostWorkers(host, 1);
    try {
      const reply = workers.ask<{ pfn: number; first: number; seen: number[] }>(0, {
        kind: "userfault",
        hva: hva + 2 * 4096 + 8,
        eventfd: efd,
      });
      assert.equal(await host.eventfds.readAsync(efd), 1n);
      assert.equal(host.lookupPfn(hva + 2 * 4096), 0);
      const pfn = host.mm.mfill(hva + 2 * 4096, MFILL_COPY, new Uint8Array(4096).fill(0x3c));
      Atomics.add(workers.controlWords, 2, 1);
      Atomics.notify(workers.controlWords, 2);
      const answer = await reply;
      assert.deepEqual(answer, { pfn, first: 0x3c, seen: [UFFD_MISSING, hva + 2 * 4096 + 8] });
    } finally {
      await workers.close();
    }
  });
});

test("errors from the fault path are ErrnoErrors naming the address", () => {
  const host = smallHost();
  try {
    host.faultIn(0x1234_5000, 0);
    assert.fail("no fault");
  } catch (error) {
    assert.ok(error instanceof ErrnoError);
    assert.match(error.message, /0x12345000/);
  }
});
