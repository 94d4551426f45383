import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  FILE_EVENTFD,
  FILE_MEMFD,
  FILE_VM,
  FIRST_FD,
  initFileObject,
  putFile,
  registerFileType,
  tryGetFile,
} from "../../src/host/files.js";
import { MAP_SHARED, PROT_READ, PROT_WRITE } from "../../src/host/address-space.js";
import { smallHost, throwsErrno } from "./helpers.js";
import type { SyscallsReply } from "./host-worker.js";
import { HostWorkers } from "./workers.js";

describe("file table", () => {
  test("descriptors start at 3 and the lowest free one is reused", () => {
    const host = smallHost();
    const a = host.eventfd();
    const b = host.eventfd();
    const c = host.memfdCreate("c", 4096);
    assert.deepEqual([a, b, c], [FIRST_FD, FIRST_FD + 1, FIRST_FD + 2]);
    host.close(b);
    assert.equal(host.files.typeOf(b), 0);
    assert.equal(host.eventfd(), b);
    assert.equal(host.files.openCount, 3);
    assert.equal(host.files.typeOf(c), FILE_MEMFD);
  });

  test("EBADF for a closed, never-opened, reserved, out-of-range or wrongly typed descriptor", () => {
    const host = smallHost();
    const efd = host.eventfd();
    const mfd = host.memfdCreate("m", 4096);
    for (const fd of [0, 1, 2, -1, 99, 1024, 5000, 3.5, NaN]) {
      throwsErrno(() => host.files.lookup(fd, FILE_EVENTFD), "EBADF");
    }
    throwsErrno(() => host.files.lookup(efd, FILE_MEMFD), "EBADF");
    throwsErrno(() => host.files.get(mfd, FILE_EVENTFD), "EBADF");
    throwsErrno(() => host.eventfds.write(mfd, 1), "EBADF");
    throwsErrno(() => host.memfds.pread(efd, 1, 0), "EBADF");
    host.close(efd);
    throwsErrno(() => host.close(efd), "EBADF");
    throwsErrno(() => host.eventfds.read(efd), "EBADF");
    throwsErrno(() => host.files.getAny(efd), "EBADF");
    assert.equal(host.files.lookup(mfd, FILE_MEMFD) > 0, true);
  });

  test("a full table is EMFILE, and the object of the failed install is released", () => {
    const host = smallHost({ maxFiles: 8 });
    for (let i = FIRST_FD; i < 8; i++) host.memfdCreate(`m${i}`, 8192);
    for (let i = FIRST_FD; i < 8; i++) host.memfds.pwrite(i, new Uint8Array([1]), 0);
    const frames = host.memory.framesInUse;
    throwsErrno(() => host.memfdCreate("one too many", 4096), "EMFILE");
    throwsErrno(() => host.eventfd(), "EMFILE");
    assert.equal(host.memory.framesInUse, frames);
    host.close(5);
    assert.equal(host.eventfd(), 5);
  });

  test("a file lives until its last reference: close while mapped keeps the pages", () => {
    const host = smallHost();
    const fd = host.memfdCreate("shared", 64 * 1024);
    const hva = host.mmap({
      length: 64 * 1024,
      prot: PROT_READ | PROT_WRITE,
      flags: MAP_SHARED,
      fd,
    });
    host.copyToUser(hva, new Uint8Array([7, 8, 9]));
    host.close(fd);
    assert.deepEqual([...host.copyFromUser(hva, 3)], [7, 8, 9]);
    assert.equal(host.memory.framesInUse, 1);
    host.munmap(hva, 64 * 1024);
    assert.equal(host.memory.framesInUse, 0, "the last reference freed the page cache");
  });

  test("references: get/put, and a released object cannot be revived", () => {
    const host = smallHost();
    const released: number[] = [];
    registerFileType(FILE_VM, "vm", (_, object) => released.push(object));
    const object = host.memory.arenaAllocate(32, 8);
    initFileObject(host.memory, object, FILE_VM, 0, 0);
    const fd = host.files.install(FILE_VM, object);
    const held = host.files.get(fd, FILE_VM);
    assert.equal(held, object);
    host.close(fd);
    assert.deepEqual(released, []);
    putFile(host, held);
    assert.deepEqual(released, [object]);
    assert.equal(tryGetFile(host.memory, object), false);
    assert.throws(() => putFile(host, object), /released twice/);
  });

  test("a worker thread makes system calls on the same kernel", async () => {
    const host = smallHost();
    const mine = host.eventfd();
    const workers = new HostWorkers(host, 1);
    try {
      const { fd, hva } = await workers.ask<SyscallsReply>(0, { kind: "syscalls", closeFd: mine });
      assert.equal(host.files.typeOf(mine), 0, "the worker closed the main thread's eventfd");
      assert.equal(host.memfds.name(fd), "from-worker");
      assert.equal(new TextDecoder().decode(host.memfds.pread(fd, 5, 4096)), "hello");
      assert.equal(new TextDecoder().decode(host.copyFromUser(hva + 4096, 5)), "hello");
      host.munmap(hva, 8192);
      host.close(fd);
      assert.equal(host.memory.framesInUse, 0);
    } finally {
      await workers.close();
    }
  });
});
