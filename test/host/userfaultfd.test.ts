/**
 * userfaultfd through the Host's system-call surface, on one thread: the
 * handshake, every ioctl and the errors Linux gives. Faults that sleep are
 * in userfaultfd-threads.test.ts (a sleeping fault needs another thread).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  FAULT_ATOMIC,
  FAULT_EAGAIN,
  FAULT_EFAULT,
  FAULT_WRITE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from "../../src/host/address-space.js";
import type { Host } from "../../src/host/host.js";
import { PAGE_SIZE_2M } from "../../src/host/page-cache.js";
import {
  _UFFDIO_CONTINUE,
  _UFFDIO_WRITEPROTECT,
  _UFFDIO_ZEROPAGE,
  O_CLOEXEC,
  O_NONBLOCK,
  POLLERR,
  UFFD_API,
  UFFD_API_FEATURES,
  UFFD_API_IOCTLS,
  UFFD_API_RANGE_IOCTLS,
  UFFD_API_RANGE_IOCTLS_BASIC,
  UFFD_FEATURE_EXACT_ADDRESS,
  UFFD_FEATURE_SIGBUS,
  UFFD_FEATURE_THREAD_ID,
  UFFDIO_CONTINUE_MODE_WP,
  UFFDIO_COPY_MODE_DONTWAKE,
  UFFDIO_COPY_MODE_WP,
  UFFDIO_REGISTER_MODE_MINOR,
  UFFDIO_REGISTER_MODE_MISSING,
  UFFDIO_REGISTER_MODE_WP,
  UFFDIO_WRITEPROTECT_MODE_DONTWAKE,
  UFFDIO_WRITEPROTECT_MODE_WP,
  type UffdioContinue,
  type UffdioCopy,
  type UffdioZeropage,
} from "../../src/host/userfaultfd.js";
import { MiB, rejectsErrno, smallHost, throwsErrno } from "./helpers.js";

const RW = PROT_READ | PROT_WRITE;
const P = 4096;
const MISSING = UFFDIO_REGISTER_MODE_MISSING;
const WP = UFFDIO_REGISTER_MODE_WP;
const MINOR = UFFDIO_REGISTER_MODE_MINOR;
const bit = (ioctl: number): bigint => 1n << BigInt(ioctl);

function anon(host: Host, length: number, hugePageSize?: number): number {
  return host.mmap({ length, prot: RW, flags: MAP_PRIVATE | MAP_ANONYMOUS, hugePageSize });
}

/** A memfd of `pages` pages mapped shared: its fd and address. */
function shared(host: Host, pages: number): { fd: number; hva: number } {
  const fd = host.memfdCreate("uffd", pages * P);
  return { fd, hva: host.mmap({ length: pages * P, prot: RW, flags: MAP_SHARED, fd }) };
}

/** userfaultfd(2) + UFFDIO_API. */
function uffdOf(host: Host, features = 0, flags = 0): number {
  const uffd = host.userfaultfd(flags);
  host.userfaultfds.api(uffd, { api: UFFD_API, features });
  return uffd;
}

function filled(byte: number, length = P): Uint8Array {
  return new Uint8Array(length).fill(byte);
}

describe("userfaultfd: creation and the UFFDIO_API handshake", () => {
  test("userfaultfd(2) flags", () => {
    const host = smallHost();
    throwsErrno(() => host.userfaultfd(1), "EINVAL");
    throwsErrno(() => host.userfaultfd(0.5), "EINVAL");
    const a = host.userfaultfd(O_NONBLOCK | O_CLOEXEC);
    const b = host.userfaultfd();
    assert.notEqual(a, b);
    host.close(a);
    host.close(b);
    assert.equal(host.files.openCount, 0);
  });

  test("nothing works before the handshake, and the handshake works once", async () => {
    const host = smallHost();
    const hva = anon(host, 4 * P);
    const uffd = host.userfaultfd(O_NONBLOCK);
    const u = host.userfaultfds;
    throwsErrno(() => u.register(uffd, { start: hva, len: P, mode: MISSING }), "EINVAL");
    throwsErrno(() => u.read(uffd), "EINVAL");
    await rejectsErrno(u.readAsync(uffd), "EINVAL");
    throwsErrno(() => u.copy(uffd, { dst: hva, src: filled(1), len: P, mode: 0 }), "EINVAL");
    throwsErrno(() => u.zeropage(uffd, { dst: hva, len: P, mode: 0 }), "EINVAL");
    throwsErrno(() => u.continue(uffd, { start: hva, len: P, mode: 0 }), "EINVAL");
    throwsErrno(() => u.wake(uffd, { start: hva, len: P }), "EINVAL");
    throwsErrno(() => u.writeProtect(uffd, { start: hva, len: P, mode: 0 }), "EINVAL");
    throwsErrno(() => u.unregister(uffd, { start: hva, len: P }), "EINVAL");
    throwsErrno(() => u.features(uffd), "EINVAL");
    assert.equal(u.poll(uffd, 0), POLLERR);

    throwsErrno(() => u.api(uffd, { api: 0xab, features: 0 }), "EINVAL");
    throwsErrno(() => u.api(uffd, { api: UFFD_API, features: 1 << 30 }), "EINVAL");
    throwsErrno(() => u.api(uffd, { api: UFFD_API, features: -1 }), "EINVAL");
    // Failed handshakes leave the context waiting for a good one.
    const features = UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_EXACT_ADDRESS;
    const result = u.api(uffd, { api: UFFD_API, features });
    assert.deepEqual(result, {
      api: UFFD_API,
      features: UFFD_API_FEATURES,
      ioctls: UFFD_API_IOCTLS,
    });
    assert.equal(u.features(uffd), features);
    throwsErrno(() => u.api(uffd, { api: UFFD_API, features: UFFD_FEATURE_SIGBUS }), "EINVAL");
    assert.equal(u.features(uffd), features, "a second handshake changes nothing");
    assert.equal(u.poll(uffd, 0), 0, "running, no message");
  });

  test("the ioctls want a userfaultfd: EBADF otherwise", () => {
    const host = smallHost();
    const efd = host.eventfd();
    throwsErrno(() => host.userfaultfds.api(efd, { api: UFFD_API, features: 0 }), "EBADF");
    throwsErrno(() => host.userfaultfds.read(99), "EBADF");
    const uffd = uffdOf(host);
    host.close(uffd);
    throwsErrno(() => host.userfaultfds.poll(uffd, 0), "EBADF");
    throwsErrno(() => host.userfaultfds.wake(uffd, { start: 0x100000, len: P }), "EBADF");
  });
});

describe("userfaultfd: UFFDIO_REGISTER and UFFDIO_UNREGISTER", () => {
  test("ranges and modes: the errors of validate_range and vma_can_userfault", () => {
    const host = smallHost();
    const hva = anon(host, 8 * P);
    const uffd = uffdOf(host);
    const reg = (start: number, len: number, mode: number) =>
      host.userfaultfds.register(uffd, { start, len, mode });
    throwsErrno(() => reg(hva, P, 0), "EINVAL");
    throwsErrno(() => reg(hva, P, 8), "EINVAL");
    throwsErrno(() => reg(hva, P, 1.5), "EINVAL");
    throwsErrno(() => reg(hva + 1, P, MISSING), "EINVAL");
    throwsErrno(() => reg(hva, 0, MISSING), "EINVAL");
    throwsErrno(() => reg(hva, P + 1, MISSING), "EINVAL");
    throwsErrno(() => reg(hva, -P, MISSING), "EINVAL");
    throwsErrno(() => reg(0x1000, P, MISSING), "EINVAL"); // below mmap_min_addr
    throwsErrno(() => reg(2 ** 47, P, MISSING), "EINVAL"); // past user space
    throwsErrno(() => reg(2 ** 47 - P, 2 * P, MISSING), "EINVAL");
    throwsErrno(() => reg(0x2000_0000, P, MISSING), "EINVAL"); // nothing mapped
    throwsErrno(() => reg(hva, P, MINOR), "EINVAL"); // MINOR on private memory
    assert.equal(host.mm.mappingsIn(hva, hva + P)[0].uffdMode, 0, "failures register nothing");
  });

  test("the ioctls a range offers depend on its mode and page size", () => {
    const host = smallHost();
    const uffd = uffdOf(host);
    const u = host.userfaultfds;
    const all = UFFD_API_RANGE_IOCTLS;
    const a = anon(host, 4 * P);
    assert.equal(
      u.register(uffd, { start: a, len: 4 * P, mode: MISSING }),
      all & ~bit(_UFFDIO_WRITEPROTECT) & ~bit(_UFFDIO_CONTINUE),
    );
    const b = anon(host, 4 * P);
    assert.equal(
      u.register(uffd, { start: b, len: 4 * P, mode: MISSING | WP }),
      all & ~bit(_UFFDIO_CONTINUE),
    );
    const m = shared(host, 4);
    assert.equal(
      u.register(uffd, { start: m.hva, len: 4 * P, mode: MINOR }),
      all & ~bit(_UFFDIO_WRITEPROTECT),
    );
    const huge = anon(host, 4 * MiB, PAGE_SIZE_2M);
    throwsErrno(() => u.register(uffd, { start: huge, len: P, mode: MISSING }), "EINVAL");
    throwsErrno(() => u.register(uffd, { start: huge + P, len: 2 * MiB, mode: MISSING }), "EINVAL");
    const ioctls = u.register(uffd, { start: huge, len: 2 * MiB, mode: MISSING | WP });
    assert.equal(ioctls, UFFD_API_RANGE_IOCTLS_BASIC & ~bit(_UFFDIO_CONTINUE));
    assert.equal(ioctls & bit(_UFFDIO_ZEROPAGE), 0n, "no ZEROPAGE on huge pages");
    const info = host.mm.mappingsIn(huge, huge + 1)[0];
    assert.deepEqual([info.uffdStart, info.uffdEnd, info.uffdMode], [huge, huge + 2 * MiB, 3]);
  });

  test("a range owned by another userfaultfd is EBUSY; the same one may grow or change", () => {
    const host = smallHost();
    const hva = anon(host, 8 * P);
    const one = uffdOf(host);
    const two = uffdOf(host);
    const u = host.userfaultfds;
    u.register(one, { start: hva, len: 2 * P, mode: MISSING });
    throwsErrno(() => u.register(two, { start: hva + 4 * P, len: P, mode: MISSING }), "EBUSY");
    u.register(one, { start: hva + 2 * P, len: 2 * P, mode: MISSING }); // adjoining: merged
    let info = host.mm.mappingsIn(hva, hva + 1)[0];
    assert.deepEqual([info.uffdStart, info.uffdEnd], [hva, hva + 4 * P]);
    u.register(one, { start: hva, len: 8 * P, mode: MISSING | WP }); // covering: replaced
    info = host.mm.mappingsIn(hva, hva + 1)[0];
    assert.deepEqual([info.uffdStart, info.uffdEnd, info.uffdMode], [hva, hva + 8 * P, 3]);
    throwsErrno(() => u.unregister(two, { start: hva, len: P }), "EINVAL");
    u.unregister(one, { start: hva, len: 8 * P });
    u.register(two, { start: hva, len: P, mode: MISSING });
    assert.equal(host.mm.mappingsIn(hva, hva + 1)[0].uffdContext !== 0, true);
  });

  test("one registration may span several mappings, and so may unregistering", () => {
    const host = smallHost();
    const lo = anon(host, 4 * P);
    const hi = anon(host, 4 * P);
    const [first, second] = lo < hi ? [lo, hi] : [hi, lo];
    const uffd = uffdOf(host);
    const u = host.userfaultfds;
    const end = second + 4 * P;
    u.register(uffd, { start: first, len: end - first, mode: MISSING });
    for (const m of host.mm.mappingsIn(first, end)) assert.equal(m.uffdMode, MISSING);
    assert.equal(host.mm.tryFaultIn(first, FAULT_ATOMIC), FAULT_EAGAIN);
    assert.equal(host.mm.tryFaultIn(second + 3 * P, FAULT_ATOMIC), FAULT_EAGAIN);
    u.unregister(uffd, { start: first, len: end - first });
    for (const m of host.mm.mappingsIn(first, end)) assert.equal(m.uffdMode, 0);
    assert.ok(host.faultIn(second, FAULT_WRITE) > 0);
  });

  test("unregistering part of a range keeps the rest; faults outside it populate as usual", () => {
    const host = smallHost();
    const hva = anon(host, 8 * P);
    const uffd = uffdOf(host);
    const u = host.userfaultfds;
    throwsErrno(() => u.unregister(uffd, { start: hva + 1, len: P }), "EINVAL");
    throwsErrno(() => u.unregister(uffd, { start: 0x2000_0000, len: P }), "EINVAL");
    u.unregister(uffd, { start: hva, len: P }); // nothing registered: nothing to do
    u.register(uffd, { start: hva, len: 8 * P, mode: MISSING });
    u.unregister(uffd, { start: hva + 6 * P, len: 2 * P });
    assert.ok(host.faultIn(hva + 7 * P, FAULT_WRITE) > 0, "unregistered: populated");
    assert.equal(host.mm.tryFaultIn(hva + 5 * P, FAULT_ATOMIC), FAULT_EAGAIN, "kept");
    u.unregister(uffd, { start: hva, len: 2 * P });
    assert.ok(host.faultIn(hva, 0) > 0);
    assert.equal(host.mm.tryFaultIn(hva + 2 * P, FAULT_ATOMIC), FAULT_EAGAIN);
    throwsErrno(() => u.unregister(uffd, { start: hva + 3 * P, len: P }), "EINVAL"); // middle
    const info = host.mm.mappingsIn(hva, hva + 1)[0];
    assert.deepEqual([info.uffdStart, info.uffdEnd], [hva + 2 * P, hva + 6 * P]);
  });
});

describe("userfaultfd: resolving ioctls", () => {
  test("UFFDIO_COPY installs whole pages and reports the bytes copied", () => {
    const host = smallHost();
    const hva = anon(host, 8 * P);
    const uffd = uffdOf(host);
    const u = host.userfaultfds;
    u.register(uffd, { start: hva, len: 6 * P, mode: MISSING });
    const src = new Uint8Array(3 * P);
    for (let i = 0; i < src.length; i++) src[i] = i % 251;
    const args: UffdioCopy = { dst: hva, src, len: 2 * P, mode: 0 };
    assert.equal(u.copy(uffd, args), 2 * P);
    assert.equal(args.copy, 2 * P);
    assert.deepEqual(host.copyFromUser(hva, 2 * P), src.subarray(0, 2 * P));
    const offset: UffdioCopy = { dst: hva + 2 * P, src, srcOffset: P, len: P, mode: 0 };
    u.copy(uffd, offset);
    assert.deepEqual(host.copyFromUser(hva + 2 * P, P), src.subarray(P, 2 * P));

    // EEXIST on the first page: the count field holds -EEXIST.
    const again: UffdioCopy = { dst: hva, src, len: P, mode: 0 };
    throwsErrno(() => u.copy(uffd, again), "EEXIST");
    assert.equal(again.copy, -17);
    // A later page already there: a short count and EAGAIN, the first pages done.
    const partial: UffdioCopy = { dst: hva + 3 * P, src: filled(9, 3 * P), len: 3 * P, mode: 0 };
    host.userfaultfds.zeropage(uffd, { dst: hva + 4 * P, len: P, mode: 0 });
    throwsErrno(() => u.copy(uffd, partial), "EAGAIN");
    assert.equal(partial.copy, P);
    assert.equal(host.copyFromUser(hva + 3 * P, 1)[0], 9);
    assert.equal(host.copyFromUser(hva + 4 * P, 1)[0], 0);

    const page = filled(1);
    throwsErrno(() => u.copy(uffd, { dst: hva + 7 * P, src: page, len: P, mode: 0 }), "ENOENT");
    throwsErrno(() => u.copy(uffd, { dst: hva + 5 * P, src: src, len: 2 * P, mode: 0 }), "ENOENT");
    throwsErrno(() => u.copy(uffd, { dst: 0x2000_0000, src: page, len: P, mode: 0 }), "ENOENT");
    throwsErrno(() => u.copy(uffd, { dst: hva + 5 * P, src: page, len: P, mode: 4 }), "EINVAL");
    throwsErrno(() => u.copy(uffd, { dst: hva + 5 * P + 8, src: page, len: P, mode: 0 }), "EINVAL");
    throwsErrno(() => u.copy(uffd, { dst: hva + 5 * P, src: page, len: 0, mode: 0 }), "EINVAL");
    const badMode: UffdioCopy = { dst: hva + 5 * P, src: page, len: P, mode: 8, copy: 7 };
    throwsErrno(() => u.copy(uffd, badMode), "EINVAL");
    assert.equal(badMode.copy, 7, "a validation error leaves the count alone");
    const unregistered: UffdioCopy = { dst: hva + 7 * P, src: page, len: P, mode: 0 };
    throwsErrno(() => u.copy(uffd, unregistered), "ENOENT");
    assert.equal(unregistered.copy, -2, "mfill's own error is written back");
    throwsErrno(() => u.copy(99, { dst: hva, src: page, len: P, mode: 8 }), "EBADF");
    throwsErrno(() => u.copy(uffd, { dst: hva + 5 * P, src: page, len: 2 * P, mode: 0 }), "EFAULT");
    throwsErrno(
      () => u.copy(uffd, { dst: hva + 5 * P, src: page, len: P, mode: UFFDIO_COPY_MODE_WP }),
      "EINVAL",
    );
    assert.equal(host.lookupPfn(hva + 5 * P), 0, "none of the failures installed anything");
    assert.equal(
      u.copy(uffd, { dst: hva + 5 * P, src: page, len: P, mode: UFFDIO_COPY_MODE_DONTWAKE }),
      P,
    );
    assert.equal(host.copyFromUser(hva + 5 * P, 1)[0], 1);
  });

  test("UFFDIO_COPY on shared memory fills the file; a page the file has is EEXIST", () => {
    const host = smallHost();
    const { fd, hva } = shared(host, 4);
    const uffd = uffdOf(host);
    const u = host.userfaultfds;
    u.register(uffd, { start: hva, len: 4 * P, mode: MISSING });
    u.copy(uffd, { dst: hva + P, src: filled(0x61), len: P, mode: 0 });
    assert.equal(host.memfds.pread(fd, 1, P)[0], 0x61, "in the page cache");
    host.memfds.pwrite(fd, filled(0x62, 1), 2 * P);
    throwsErrno(
      () => u.copy(uffd, { dst: hva + 2 * P, src: filled(1), len: P, mode: 0 }),
      "EEXIST",
    );
    throwsErrno(() => u.zeropage(uffd, { dst: hva + 2 * P, len: P, mode: 0 }), "EEXIST");
    assert.equal(host.copyFromUser(hva + 2 * P, 1)[0], 0x62);
  });

  test("UFFDIO_COPY on huge pages: whole, aligned huge pages", () => {
    const host = smallHost();
    const huge = anon(host, 4 * MiB, PAGE_SIZE_2M);
    const uffd = uffdOf(host);
    const u = host.userfaultfds;
    u.register(uffd, { start: huge, len: 4 * MiB, mode: MISSING });
    throwsErrno(() => u.copy(uffd, { dst: huge, src: filled(3), len: P, mode: 0 }), "EINVAL");
    throwsErrno(
      () => u.copy(uffd, { dst: huge + P, src: filled(3, 2 * MiB), len: 2 * MiB - P, mode: 0 }),
      "EINVAL",
    );
    throwsErrno(() => u.zeropage(uffd, { dst: huge, len: 2 * MiB, mode: 0 }), "EINVAL");
    assert.equal(
      u.copy(uffd, { dst: huge, src: filled(3, 2 * MiB), len: 2 * MiB, mode: 0 }),
      2 * MiB,
    );
    assert.equal(host.copyFromUser(huge + 2 * MiB - 1, 1)[0], 3);
    assert.equal(host.mm.residentFrames(huge), 512);
    assert.equal(host.mm.tryFaultIn(huge + 2 * MiB, FAULT_ATOMIC), FAULT_EAGAIN);
  });

  test("huge pages of a shared memfd: MINOR and CONTINUE, COPY of whole huge pages", () => {
    const host = smallHost();
    const fd = host.memfdCreate("huge", 6 * MiB, { hugePageSize: PAGE_SIZE_2M });
    const hva = host.mmap({ length: 6 * MiB, prot: RW, flags: MAP_SHARED, fd });
    const uffd = uffdOf(host);
    const u = host.userfaultfds;
    const ioctls = u.register(uffd, { start: hva, len: 6 * MiB, mode: MINOR | MISSING });
    assert.equal(ioctls, UFFD_API_RANGE_IOCTLS_BASIC & ~bit(_UFFDIO_WRITEPROTECT));
    host.memfds.pwrite(fd, filled(0x48, 8), 2 * MiB + 3 * P);
    assert.equal(host.mm.tryFaultIn(hva + 2 * MiB, FAULT_ATOMIC), FAULT_EAGAIN, "MINOR");
    throwsErrno(() => u.continue(uffd, { start: hva + 2 * MiB, len: P, mode: 0 }), "EINVAL");
    throwsErrno(() => u.continue(uffd, { start: hva, len: 2 * MiB, mode: 0 }), "EFAULT");
    assert.equal(u.continue(uffd, { start: hva + 2 * MiB, len: 2 * MiB, mode: 0 }), 2 * MiB);
    assert.equal(host.copyFromUser(hva + 2 * MiB + 3 * P, 1)[0], 0x48);
    assert.equal(host.mm.residentFrames(hva), 512);
    const big = filled(0x49, 2 * MiB);
    assert.equal(u.copy(uffd, { dst: hva + 4 * MiB, src: big, len: 2 * MiB, mode: 0 }), 2 * MiB);
    assert.equal(host.memfds.pread(fd, 1, 6 * MiB - 1)[0], 0x49, "in the file");
    throwsErrno(() => u.zeropage(uffd, { dst: hva, len: 2 * MiB, mode: 0 }), "EINVAL");
  });

  test("UFFDIO_ZEROPAGE", () => {
    const host = smallHost();
    const hva = anon(host, 4 * P);
    const uffd = uffdOf(host);
    const u = host.userfaultfds;
    u.register(uffd, { start: hva, len: 4 * P, mode: MISSING });
    const args: UffdioZeropage = { dst: hva, len: 2 * P, mode: 0 };
    assert.equal(u.zeropage(uffd, args), 2 * P);
    assert.equal(args.zeropage, 2 * P);
    assert.equal(host.mm.residentFrames(hva), 2);
    assert.deepEqual(host.copyFromUser(hva, 2 * P), new Uint8Array(2 * P));
    const again: UffdioZeropage = { dst: hva + P, len: P, mode: 0 };
    throwsErrno(() => u.zeropage(uffd, again), "EEXIST");
    assert.equal(again.zeropage, -17);
    throwsErrno(() => u.zeropage(uffd, { dst: hva + 2 * P, len: P, mode: 2 }), "EINVAL");
    throwsErrno(() => u.zeropage(uffd, { dst: hva + 2 * P, len: 3 * P, mode: 0 }), "ENOENT");
  });

  test("UFFDIO_CONTINUE maps what the file has (MINOR); not a page it lacks, nor private memory", () => {
    const host = smallHost();
    const { fd, hva } = shared(host, 4);
    const uffd = uffdOf(host);
    const u = host.userfaultfds;
    u.register(uffd, { start: hva, len: 4 * P, mode: MINOR | MISSING });
    host.memfds.pwrite(fd, filled(0x70, 2 * P), 0);
    assert.equal(host.mm.tryFaultIn(hva, FAULT_ATOMIC), FAULT_EAGAIN, "a MINOR fault would queue");
    const args: UffdioContinue = { start: hva, len: 2 * P, mode: 0 };
    assert.equal(u.continue(uffd, args), 2 * P);
    assert.equal(args.mapped, 2 * P);
    assert.equal(host.lookupPfn(hva + P), host.memfds.pageCache(fd).lookup(1), "the file's page");
    assert.equal(host.copyFromUser(hva + P, 1)[0], 0x70);
    const mappedTwice: UffdioContinue = { start: hva, len: P, mode: 0 };
    throwsErrno(() => u.continue(uffd, mappedTwice), "EEXIST");
    assert.equal(mappedTwice.mapped, -17);
    const missing: UffdioContinue = { start: hva + 2 * P, len: P, mode: 0 };
    throwsErrno(() => u.continue(uffd, missing), "EFAULT");
    assert.equal(missing.mapped, -14);
    throwsErrno(() => u.continue(uffd, { start: hva + 2 * P, len: P, mode: 4 }), "EINVAL");
    throwsErrno(
      () => u.continue(uffd, { start: hva + 2 * P, len: P, mode: UFFDIO_CONTINUE_MODE_WP }),
      "EINVAL",
    );
    const priv = anon(host, 2 * P);
    u.register(uffd, { start: priv, len: 2 * P, mode: MISSING });
    throwsErrno(() => u.continue(uffd, { start: priv, len: P, mode: 0 }), "EINVAL");
  });

  test("UFFDIO_WRITEPROTECT: WP-registered present pages; writes then need userfaultfd", () => {
    const host = smallHost();
    const hva = anon(host, 4 * P);
    const uffd = uffdOf(host);
    const u = host.userfaultfds;
    u.register(uffd, { start: hva, len: 4 * P, mode: MISSING | WP });
    const pfn = host.mm.lookupPfn(hva);
    assert.equal(pfn, 0);
    u.copy(uffd, { dst: hva, src: filled(5, 2 * P), len: 2 * P, mode: UFFDIO_COPY_MODE_WP });
    const page = host.faultIn(hva, 0);
    assert.equal(host.mm.tryFaultIn(hva, FAULT_WRITE | FAULT_ATOMIC), FAULT_EAGAIN);
    u.writeProtect(uffd, { start: hva, len: P, mode: 0 });
    assert.equal(host.mm.tryFaultIn(hva, FAULT_WRITE | FAULT_ATOMIC), page, "unprotected");
    assert.equal(host.mm.tryFaultIn(hva + P, FAULT_WRITE | FAULT_ATOMIC), FAULT_EAGAIN);
    u.writeProtect(uffd, { start: hva, len: 2 * P, mode: UFFDIO_WRITEPROTECT_MODE_DONTWAKE });
    assert.ok(host.mm.tryFaultIn(hva + P, FAULT_WRITE | FAULT_ATOMIC) > 0);
    u.writeProtect(uffd, { start: hva, len: 4 * P, mode: UFFDIO_WRITEPROTECT_MODE_WP });
    assert.equal(host.mm.tryFaultIn(hva, FAULT_WRITE | FAULT_ATOMIC), FAULT_EAGAIN);
    assert.equal(host.mm.tryFaultIn(hva, FAULT_ATOMIC), page, "reads go ahead");
    assert.equal(
      host.mm.tryFaultIn(hva + 2 * P, FAULT_ATOMIC),
      FAULT_EAGAIN,
      "absent pages stay MISSING",
    );

    const both = UFFDIO_WRITEPROTECT_MODE_WP | UFFDIO_WRITEPROTECT_MODE_DONTWAKE;
    throwsErrno(() => u.writeProtect(uffd, { start: hva, len: P, mode: both }), "EINVAL");
    throwsErrno(() => u.writeProtect(uffd, { start: hva, len: P, mode: 4 }), "EINVAL");
    throwsErrno(() => u.writeProtect(uffd, { start: hva + 1, len: P, mode: 0 }), "EINVAL");
    throwsErrno(() => u.writeProtect(uffd, { start: 0x2000_0000, len: P, mode: 0 }), "ENOENT");
    const other = anon(host, 2 * P);
    u.register(uffd, { start: other, len: 2 * P, mode: MISSING });
    throwsErrno(() => u.writeProtect(uffd, { start: other, len: P, mode: 1 }), "ENOENT");
    throwsErrno(
      () => u.copy(uffd, { dst: other, src: filled(1), len: P, mode: UFFDIO_COPY_MODE_WP }),
      "EINVAL",
    );
    const huge = anon(host, 2 * MiB, PAGE_SIZE_2M);
    u.register(uffd, { start: huge, len: 2 * MiB, mode: WP });
    throwsErrno(() => u.writeProtect(uffd, { start: huge, len: P, mode: 1 }), "EINVAL");
    u.writeProtect(uffd, { start: huge, len: 2 * MiB, mode: 1 });
  });

  test("WP on shared memory and huge pages: CONTINUE and COPY in WP mode, then unprotect", () => {
    const host = smallHost();
    const { fd, hva } = shared(host, 4);
    const uffd = uffdOf(host);
    const u = host.userfaultfds;
    u.register(uffd, { start: hva, len: 4 * P, mode: MINOR | WP });
    host.memfds.pwrite(fd, filled(0x57, P), 0);
    u.continue(uffd, { start: hva, len: P, mode: UFFDIO_CONTINUE_MODE_WP });
    const page = host.faultIn(hva, 0);
    assert.equal(page, host.memfds.pageCache(fd).lookup(0));
    assert.equal(host.mm.tryFaultIn(hva, FAULT_WRITE | FAULT_ATOMIC), FAULT_EAGAIN);
    u.writeProtect(uffd, { start: hva, len: P, mode: 0 });
    host.copyToUser(hva, filled(0x58, 1));
    assert.equal(host.memfds.pread(fd, 1, 0)[0], 0x58, "the write reached the file");

    const huge = anon(host, 4 * MiB, PAGE_SIZE_2M);
    u.register(uffd, { start: huge, len: 4 * MiB, mode: MISSING | WP });
    const data = filled(0x59, 2 * MiB);
    u.copy(uffd, { dst: huge, src: data, len: 2 * MiB, mode: UFFDIO_COPY_MODE_WP });
    assert.equal(host.mm.tryFaultIn(huge + MiB, FAULT_WRITE | FAULT_ATOMIC), FAULT_EAGAIN);
    assert.ok(host.mm.tryFaultIn(huge + MiB, FAULT_ATOMIC) > 0, "reads go ahead");
    u.writeProtect(uffd, { start: huge, len: 2 * MiB, mode: 0 });
    assert.ok(host.mm.tryFaultIn(huge + MiB, FAULT_WRITE | FAULT_ATOMIC) > 0);
  });

  test("UFFDIO_WAKE with nobody waiting, and its range checks", () => {
    const host = smallHost();
    const uffd = uffdOf(host);
    const u = host.userfaultfds;
    u.wake(uffd, { start: 0x10000, len: P });
    throwsErrno(() => u.wake(uffd, { start: 0x10001, len: P }), "EINVAL");
    throwsErrno(() => u.wake(uffd, { start: 0x10000, len: 0 }), "EINVAL");
    throwsErrno(() => u.wake(uffd, { start: 0x1000, len: P }), "EINVAL");
  });

  test("mode fields must be integers", () => {
    const host = smallHost();
    const hva = anon(host, P);
    const uffd = uffdOf(host);
    const u = host.userfaultfds;
    u.register(uffd, { start: hva, len: P, mode: MISSING });
    const bad = 0.5 as number;
    throwsErrno(() => u.copy(uffd, { dst: hva, src: filled(1), len: P, mode: bad }), "EINVAL");
    throwsErrno(() => u.zeropage(uffd, { dst: hva, len: P, mode: bad }), "EINVAL");
    throwsErrno(() => u.continue(uffd, { start: hva, len: P, mode: bad }), "EINVAL");
    throwsErrno(() => u.writeProtect(uffd, { start: hva, len: P, mode: bad }), "EINVAL");
    assert.equal(host.lookupPfn(hva), 0);
  });
});

describe("userfaultfd: faults that do not sleep, read and poll without messages, release", () => {
  test("atomic faults queue nothing; SIGBUS fails the fault instead of queueing", async () => {
    const host = smallHost();
    const hva = anon(host, 4 * P);
    const uffd = uffdOf(host, 0, O_NONBLOCK);
    const u = host.userfaultfds;
    u.register(uffd, { start: hva, len: 4 * P, mode: MISSING });
    assert.equal(host.mm.tryFaultIn(hva, FAULT_ATOMIC), FAULT_EAGAIN);
    assert.equal(host.mm.tryFaultIn(hva, FAULT_ATOMIC | FAULT_WRITE), FAULT_EAGAIN);
    assert.equal(u.poll(uffd, 0), 0, "no message");
    throwsErrno(() => u.read(uffd), "EAGAIN");
    await rejectsErrno(u.readAsync(uffd), "EAGAIN");

    const sigbus = uffdOf(host, UFFD_FEATURE_SIGBUS);
    const other = anon(host, 2 * P);
    u.register(sigbus, { start: other, len: 2 * P, mode: MISSING });
    assert.equal(host.mm.tryFaultIn(other, FAULT_WRITE), FAULT_EFAULT);
    throwsErrno(() => host.copyToUser(other + 8, filled(1, 8)), "EFAULT");
    assert.equal(u.poll(sigbus, 0), 0, "SIGBUS: nothing queued");
    u.zeropage(sigbus, { dst: other, len: P, mode: 0 });
    assert.ok(host.faultIn(other, FAULT_WRITE) > 0, "resolved: the access goes ahead");
  });

  test("poll waits out its timeout when no message comes", () => {
    const host = smallHost();
    const uffd = uffdOf(host);
    const start = performance.now();
    assert.equal(host.userfaultfds.poll(uffd, 60), 0);
    assert.ok(performance.now() - start >= 55, "poll slept for its timeout");
  });

  test("closing the last descriptor unregisters every range of the context", () => {
    const host = smallHost();
    const hva = anon(host, 4 * P);
    const { hva: shm } = shared(host, 2);
    const uffd = uffdOf(host);
    const keep = uffdOf(host);
    const u = host.userfaultfds;
    u.register(uffd, { start: hva, len: 4 * P, mode: MISSING | WP });
    u.register(uffd, { start: shm, len: 2 * P, mode: MINOR });
    const kept = anon(host, P);
    u.register(keep, { start: kept, len: P, mode: MISSING });
    u.copy(uffd, { dst: hva, src: filled(4), len: P, mode: UFFDIO_COPY_MODE_WP });
    host.close(uffd);
    for (const m of host.mm.mappingsIn(Math.min(hva, shm), Math.max(hva, shm) + 4 * P)) {
      if (m.start !== kept) assert.equal(m.uffdMode, 0);
    }
    assert.ok(host.faultIn(hva + P, FAULT_WRITE) > 0, "MISSING is gone");
    assert.ok(host.faultIn(hva, FAULT_WRITE) > 0, "a stale write protection is dropped");
    assert.equal(host.copyFromUser(hva, 1)[0], 4);
    assert.ok(host.faultIn(shm, 0) > 0, "MINOR is gone");
    assert.equal(host.mm.tryFaultIn(kept, FAULT_ATOMIC), FAULT_EAGAIN, "another fd's stays");
    // The range is free for another userfaultfd now.
    u.register(keep, { start: hva, len: 4 * P, mode: MISSING });
  });
});
