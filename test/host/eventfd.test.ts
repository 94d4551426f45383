import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { EFD_CLOEXEC, EFD_NONBLOCK, EFD_SEMAPHORE, EVENTFD_MAX } from "../../src/host/eventfd.js";
import { FILE_EVENTFD } from "../../src/host/files.js";
import { rejectsErrno, smallHost, throwsErrno } from "./helpers.js";
import { HostWorkers } from "./workers.js";

describe("eventfd", () => {
  test("read returns the counter and resets it; writes add up", () => {
    const host = smallHost();
    const fd = host.eventfd(5, EFD_NONBLOCK | EFD_CLOEXEC);
    assert.equal(host.files.typeOf(fd), FILE_EVENTFD);
    assert.equal(host.eventfds.read(fd), 5n);
    throwsErrno(() => host.eventfds.read(fd), "EAGAIN");
    host.eventfds.write(fd, 3);
    host.eventfds.write(fd, 4n);
    host.eventfds.signal(fd);
    assert.equal(host.eventfds.peek(fd), 8n);
    assert.equal(host.eventfds.read(fd), 8n);
    host.eventfds.write(fd, 0);
    throwsErrno(() => host.eventfds.read(fd), "EAGAIN");
  });

  test("semaphore mode reads 1 at a time", () => {
    const host = smallHost();
    const fd = host.eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK);
    assert.equal(host.eventfds.read(fd), 1n);
    assert.equal(host.eventfds.read(fd), 1n);
    throwsErrno(() => host.eventfds.read(fd), "EAGAIN");
  });

  test("the counter is 64-bit: up to 2^64 - 2, EAGAIN past it, EINVAL for 2^64 - 1", () => {
    const host = smallHost();
    const fd = host.eventfd(0, EFD_NONBLOCK);
    host.eventfds.write(fd, EVENTFD_MAX - 1n);
    host.eventfds.write(fd, 1n);
    assert.equal(host.eventfds.peek(fd), EVENTFD_MAX);
    throwsErrno(() => host.eventfds.write(fd, 1), "EAGAIN");
    host.eventfds.signal(fd); // saturates, never blocks
    assert.equal(host.eventfds.peek(fd), EVENTFD_MAX);
    assert.equal(host.eventfds.read(fd), EVENTFD_MAX);
    throwsErrno(() => host.eventfds.write(fd, EVENTFD_MAX + 1n), "EINVAL");
    throwsErrno(() => host.eventfds.write(fd, -1), "EINVAL");
    throwsErrno(() => host.eventfds.write(fd, 1.5), "EINVAL");
  });

  test("bad flags and initial values are EINVAL", () => {
    const host = smallHost();
    throwsErrno(() => host.eventfd(0, 0x10), "EINVAL");
    throwsErrno(() => host.eventfd(2 ** 32), "EINVAL");
    throwsErrno(() => host.eventfd(-1), "EINVAL");
  });

  test("readAsync returns at once when the counter is set, EAGAIN when nonblocking", async () => {
    const host = smallHost();
    const fd = host.eventfd(9);
    assert.equal(await host.eventfds.readAsync(fd), 9n);
    const nonblocking = host.eventfd(0, EFD_NONBLOCK);
    await rejectsErrno(host.eventfds.readAsync(nonblocking), "EAGAIN");
    await rejectsErrno(host.eventfds.readAsync(99), "EBADF");
  });

  test("a worker blocked in read is woken by the main thread's write, without spinning", async () => {
    const host = smallHost();
    const fd = host.eventfd();
    const workers = new HostWorkers(host, 1);
    try {
      // A first read that returns at once: the worker is up and done loading.
      const warm = host.eventfd(1);
      assert.equal(
        (await workers.ask<{ value: bigint }>(0, { kind: "eventfd-read", fd: warm })).value,
        1n,
      );
      const reply = workers.ask<{ value: bigint }>(0, { kind: "eventfd-read", fd });
      // Let the worker block; a spinning reader would burn ~the whole interval of CPU.
      await sleep(50);
      const before = process.cpuUsage();
      await sleep(300);
      const used = process.cpuUsage(before);
      assert.ok(used.user + used.system < 150_000, `CPU while blocked: ${JSON.stringify(used)}`);
      host.eventfds.write(fd, 42);
      assert.equal((await reply).value, 42n);
      assert.equal(host.eventfds.peek(fd), 0n);
    } finally {
      await workers.close();
    }
  });

  test("the main thread's readAsync is woken by a worker's write, and the event loop keeps running", async () => {
    const host = smallHost();
    const fd = host.eventfd();
    const workers = new HostWorkers(host, 1);
    try {
      const warm = host.eventfd();
      await workers.ask(0, { kind: "eventfd-write", fd: warm, value: 1, delayMs: 0 });
      const written = workers.ask(0, { kind: "eventfd-write", fd, value: 7, delayMs: 300 });
      let ticks = 0;
      const timer = setInterval(() => ticks++, 10);
      const before = process.cpuUsage();
      const value = await host.eventfds.readAsync(fd);
      const used = process.cpuUsage(before);
      clearInterval(timer);
      await written;
      assert.equal(value, 7n);
      assert.ok(ticks >= 5, `the event loop ran ${ticks} timer ticks while waiting`);
      assert.ok(used.user + used.system < 200_000, `CPU while waiting: ${JSON.stringify(used)}`);
    } finally {
      await workers.close();
    }
  });

  test("many writes from several workers are all counted", async () => {
    const host = smallHost();
    const fd = host.eventfd();
    const workers = new HostWorkers(host, 3);
    try {
      let total = 0n;
      const writes = [0, 1, 2].map((i) =>
        workers.ask(i, { kind: "eventfd-write", fd, value: i + 1, delayMs: 10 * i }),
      );
      while (total < 6n) total += await host.eventfds.readAsync(fd);
      await Promise.all(writes);
      assert.equal(total, 6n);
    } finally {
      await workers.close();
    }
  });
});
