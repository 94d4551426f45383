/**
 * userfaultfd across threads: faults that sleep in the host fault path on
 * worker threads (Atomics.wait, no CPU) until the main thread or a reader
 * worker resolves them; DONTWAKE and WAKE; release on close; poll; and
 * stress with many faulting threads and one or several readers.
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, test } from "node:test";
import {
  FAULT_ATOMIC,
  FAULT_EAGAIN,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from "../../src/host/address-space.js";
import type { Host } from "../../src/host/host.js";
import { PAGE_SIZE_2M } from "../../src/host/page-cache.js";
import {
  gettid,
  O_NONBLOCK,
  POLLERR,
  POLLIN,
  UFFD_API,
  UFFD_EVENT_PAGEFAULT,
  UFFD_FEATURE_EXACT_ADDRESS,
  UFFD_FEATURE_THREAD_ID,
  UFFD_PAGEFAULT_FLAG_MINOR,
  UFFD_PAGEFAULT_FLAG_WP,
  UFFD_PAGEFAULT_FLAG_WRITE,
  UFFDIO_CONTINUE_MODE_DONTWAKE,
  UFFDIO_COPY_MODE_DONTWAKE,
  UFFDIO_COPY_MODE_WP,
  UFFDIO_REGISTER_MODE_MINOR,
  UFFDIO_REGISTER_MODE_MISSING,
  UFFDIO_REGISTER_MODE_WP,
  UFFDIO_WRITEPROTECT_MODE_DONTWAKE,
  UFFDIO_ZEROPAGE_MODE_DONTWAKE,
  type UffdMsg,
} from "../../src/host/userfaultfd.js";
import { MiB, random, shuffled, smallHost } from "./helpers.js";
import type { PushReply, ReaderReply, TouchReply, UffdOrder } from "./uffd-worker.js";
import { stamp } from "./uffd-worker.js";
import { HostWorkers } from "./workers.js";

const RW = PROT_READ | PROT_WRITE;
const P = 4096;
const MISSING = UFFDIO_REGISTER_MODE_MISSING;
const ALL_FEATURES = UFFD_FEATURE_THREAD_ID;

function anon(host: Host, length: number, hugePageSize?: number): number {
  return host.mmap({ length, prot: RW, flags: MAP_PRIVATE | MAP_ANONYMOUS, hugePageSize });
}

function uffdOf(host: Host, features = ALL_FEATURES, flags = 0): number {
  const uffd = host.userfaultfd(flags);
  host.userfaultfds.api(uffd, { api: UFFD_API, features });
  return uffd;
}

/** A page whose first word is `word`. */
function pageWith(word: number, length = P): Uint8Array {
  const page = new Uint8Array(length);
  new Int32Array(page.buffer)[0] = word;
  return page;
}

/** A worker's reply as a promise that can be asked whether it has settled. */
interface Pending<T> {
  promise: Promise<T>;
  settled: () => boolean;
}

class UffdWorkers {
  readonly pool: HostWorkers;

  constructor(host: Host, count: number) {
    this.pool = new HostWorkers(host, count, "./uffd-worker.js");
  }

  /**
   * Send `order` to worker `index`. Its reply fails the test after `ms`
   * (a fault that is never woken), so that a lost wake-up is a failure
   * naming the order rather than a hung test.
   */
  ask<T>(index: number, order: UffdOrder, ms = 30_000): Pending<T> {
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const reply = this.pool.ask<T | { error: string }, UffdOrder>(index, order).then((reply) => {
      done = true;
      if (reply !== null && typeof reply === "object" && "error" in reply) {
        throw new Error(`worker ${index}: ${reply.error}`);
      }
      return reply as T;
    });
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`worker ${index}: no reply to ${order.kind} in ${ms} ms`)),
        ms,
      );
      timer.unref();
    });
    const promise = Promise.race([reply, timeout]).finally(() => clearTimeout(timer));
    promise.catch(() => undefined);
    return { promise, settled: () => done };
  }

  touch(index: number, hvas: number[], write = false): Pending<TouchReply> {
    return this.ask<TouchReply>(index, { kind: "touch", hvas, write });
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** Wait until `pending` settles or `ms` pass; true if it settled. */
async function settlesWithin(pending: Pending<unknown>, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (!pending.settled() && performance.now() < deadline) await sleep(5);
  return pending.settled();
}

/** The main thread's read, with a time limit so that a lost message fails the test. */
async function readWithin(host: Host, uffd: number, ms = 10_000): Promise<UffdMsg> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no userfaultfd message in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([host.userfaultfds.readAsync(uffd), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe("userfaultfd: a fault sleeps until it is resolved", () => {
  test("a worker's fault sleeps, using no CPU, until the main thread copies the page", async () => {
    const host = smallHost();
    const hva = anon(host, 8 * P);
    const uffd = uffdOf(host);
    host.userfaultfds.register(uffd, { start: hva, len: 8 * P, mode: MISSING });
    const workers = new UffdWorkers(host, 1);
    try {
      const toucher = workers.touch(0, [hva + 3 * P + 100], true);
      const msg = await readWithin(host, uffd);
      assert.equal(msg.event, UFFD_EVENT_PAGEFAULT);
      assert.equal(msg.address, hva + 3 * P, "page aligned without EXACT_ADDRESS");
      assert.equal(msg.flags, UFFD_PAGEFAULT_FLAG_WRITE);
      assert.ok(msg.ptid > 0 && msg.ptid !== gettid(), "the faulting thread's id");
      await sleep(50);
      const before = process.cpuUsage();
      await sleep(300);
      const used = process.cpuUsage(before);
      assert.ok(used.user + used.system < 120_000, `CPU while asleep: ${JSON.stringify(used)}`);
      assert.equal(toucher.settled(), false, "the fault sleeps");
      assert.equal(host.userfaultfds.poll(uffd, 0), 0, "its message was read");
      host.userfaultfds.copy(uffd, { dst: msg.address, src: pageWith(0x1234), len: P, mode: 0 });
      const reply = await toucher.promise;
      assert.equal(reply.tid, msg.ptid);
      assert.deepEqual(reply.words, [0x1234]);
      assert.equal(reply.pfns[0], host.lookupPfn(hva + 3 * P));
    } finally {
      await workers.close();
    }
  });

  test("EXACT_ADDRESS and no THREAD_ID; the VMM's own access sleeps too", async () => {
    const host = smallHost();
    const hva = anon(host, 4 * P);
    const uffd = uffdOf(host, UFFD_FEATURE_EXACT_ADDRESS);
    host.userfaultfds.register(uffd, { start: hva, len: 4 * P, mode: MISSING });
    const workers = new UffdWorkers(host, 1);
    try {
      const writer = workers.ask<{ tid: number }>(0, {
        kind: "copy-to-user",
        hva: hva + P + 12,
        value: 77,
      });
      const msg = await readWithin(host, uffd);
      assert.deepEqual(msg, {
        event: UFFD_EVENT_PAGEFAULT,
        flags: UFFD_PAGEFAULT_FLAG_WRITE,
        address: hva + P + 12,
        ptid: 0,
      });
      host.userfaultfds.zeropage(uffd, { dst: hva + P, len: P, mode: 0 });
      await writer.promise;
      assert.equal(new Int32Array(host.copyFromUser(hva + P + 12, 4).buffer)[0], 77);
    } finally {
      await workers.close();
    }
  });

  test("MINOR on shared memory: CONTINUE maps the file's page; a huge MISSING page", async () => {
    const host = smallHost();
    const fd = host.memfdCreate("minor", 4 * P);
    const shm = host.mmap({ length: 4 * P, prot: RW, flags: MAP_SHARED, fd });
    host.memfds.pwrite(fd, pageWith(0x4d494e), 2 * P);
    const huge = anon(host, 4 * MiB, PAGE_SIZE_2M);
    const uffd = uffdOf(host);
    const u = host.userfaultfds;
    u.register(uffd, { start: shm, len: 4 * P, mode: UFFDIO_REGISTER_MODE_MINOR | MISSING });
    u.register(uffd, { start: huge, len: 4 * MiB, mode: MISSING });
    const workers = new UffdWorkers(host, 2);
    try {
      const minor = workers.touch(0, [shm + 2 * P + 4]);
      let msg = await readWithin(host, uffd);
      assert.equal(msg.address, shm + 2 * P);
      assert.equal(msg.flags, UFFD_PAGEFAULT_FLAG_MINOR);
      u.continue(uffd, { start: msg.address, len: P, mode: 0 });
      assert.deepEqual((await minor.promise).pfns, [host.memfds.pageCache(fd).lookup(2)]);

      const hugeTouch = workers.touch(1, [huge + 2 * MiB + 5 * P], true);
      msg = await readWithin(host, uffd);
      assert.equal(msg.address, huge + 2 * MiB, "the huge page's address");
      u.copy(uffd, { dst: msg.address, src: pageWith(6, 2 * MiB), len: 2 * MiB, mode: 0 });
      const reply = await hugeTouch.promise;
      assert.equal(reply.pfns[0], host.lookupPfn(huge + 2 * MiB) + 5);

      const missing = workers.touch(0, [shm]);
      msg = await readWithin(host, uffd);
      assert.deepEqual([msg.address, msg.flags], [shm, 0], "no page in the file: MISSING");
      u.copy(uffd, { dst: shm, src: pageWith(8), len: P, mode: 0 });
      assert.deepEqual((await missing.promise).words, [8]);
    } finally {
      await workers.close();
    }
  });

  test("WP: a write to a protected page sleeps until the range is unprotected", async () => {
    const host = smallHost();
    const hva = anon(host, 4 * P);
    const uffd = uffdOf(host);
    const u = host.userfaultfds;
    u.register(uffd, { start: hva, len: 4 * P, mode: MISSING | UFFDIO_REGISTER_MODE_WP });
    u.copy(uffd, { dst: hva, src: pageWith(1), len: P, mode: UFFDIO_COPY_MODE_WP });
    const workers = new UffdWorkers(host, 1);
    try {
      const reader = workers.touch(0, [hva]);
      assert.deepEqual((await reader.promise).words, [1], "reads go ahead");
      const writer = workers.touch(0, [hva + 8], true);
      const msg = await readWithin(host, uffd);
      assert.deepEqual(
        [msg.address, msg.flags],
        [hva, UFFD_PAGEFAULT_FLAG_WRITE | UFFD_PAGEFAULT_FLAG_WP],
      );
      const mode = UFFDIO_WRITEPROTECT_MODE_DONTWAKE;
      u.writeProtect(uffd, { start: hva, len: P, mode });
      assert.equal(await settlesWithin(writer, 150), false, "DONTWAKE: still asleep");
      u.wake(uffd, { start: hva, len: P });
      assert.deepEqual((await writer.promise).words, [1]);
    } finally {
      await workers.close();
    }
  });

  test("DONTWAKE resolutions leave the fault asleep until UFFDIO_WAKE covers it", async () => {
    const host = smallHost();
    const hva = anon(host, 8 * P);
    const fd = host.memfdCreate("dontwake", 2 * P);
    const shm = host.mmap({ length: 2 * P, prot: RW, flags: MAP_SHARED, fd });
    host.memfds.pwrite(fd, pageWith(3), 0);
    const uffd = uffdOf(host);
    const u = host.userfaultfds;
    u.register(uffd, { start: hva, len: 8 * P, mode: MISSING });
    u.register(uffd, { start: shm, len: 2 * P, mode: UFFDIO_REGISTER_MODE_MINOR });
    const workers = new UffdWorkers(host, 3);
    try {
      const a = workers.touch(0, [hva + 2 * P]);
      const b = workers.touch(1, [hva + 5 * P]);
      const c = workers.touch(2, [shm]);
      const addresses = new Set<number>();
      for (let i = 0; i < 3; i++) addresses.add((await readWithin(host, uffd)).address);
      assert.deepEqual(addresses, new Set([hva + 2 * P, hva + 5 * P, shm]));
      u.copy(uffd, { dst: hva + 2 * P, src: pageWith(2), len: P, mode: UFFDIO_COPY_MODE_DONTWAKE });
      u.zeropage(uffd, { dst: hva + 5 * P, len: P, mode: UFFDIO_ZEROPAGE_MODE_DONTWAKE });
      u.continue(uffd, { start: shm, len: P, mode: UFFDIO_CONTINUE_MODE_DONTWAKE });
      await sleep(150);
      assert.deepEqual([a.settled(), b.settled(), c.settled()], [false, false, false]);
      u.wake(uffd, { start: hva + 3 * P, len: 2 * P }); // wakes nobody: no fault in there
      assert.equal(await settlesWithin(b, 100), false);
      u.wake(uffd, { start: hva, len: 8 * P });
      assert.deepEqual((await a.promise).words, [2]);
      assert.deepEqual((await b.promise).words, [0]);
      assert.equal(await settlesWithin(c, 100), false, "another range's fault sleeps on");
      u.wake(uffd, { start: shm, len: P });
      assert.deepEqual((await c.promise).words, [3]);
    } finally {
      await workers.close();
    }
  });

  test("a resolution wakes a fault whose message nobody read; the message goes with it", async () => {
    const host = smallHost();
    const hva = anon(host, 4 * P);
    const uffd = uffdOf(host, ALL_FEATURES, O_NONBLOCK);
    const u = host.userfaultfds;
    u.register(uffd, { start: hva, len: 4 * P, mode: MISSING });
    const workers = new UffdWorkers(host, 1);
    try {
      const a = workers.touch(0, [hva + P]);
      while (u.poll(uffd, 0) === 0) await sleep(5);
      await sleep(30);
      assert.equal(a.settled(), false, "queued, unread, asleep");
      u.copy(uffd, { dst: hva + P, src: pageWith(21), len: P, mode: 0 });
      assert.deepEqual((await a.promise).words, [21]);
      assert.equal(u.poll(uffd, 0), 0, "the woken fault's message is gone");
      assert.throws(() => u.read(uffd), /EAGAIN/);
    } finally {
      await workers.close();
    }
  });

  test("a wake without a resolution retries the fault, which queues a new message", async () => {
    const host = smallHost();
    const hva = anon(host, 2 * P);
    const uffd = uffdOf(host);
    host.userfaultfds.register(uffd, { start: hva, len: 2 * P, mode: MISSING });
    const workers = new UffdWorkers(host, 1);
    try {
      const t = workers.touch(0, [hva]);
      const first = await readWithin(host, uffd);
      host.userfaultfds.wake(uffd, { start: hva, len: P });
      const second = await readWithin(host, uffd);
      assert.deepEqual(second, first, "the same fault, again");
      assert.equal(t.settled(), false);
      host.userfaultfds.copy(uffd, { dst: hva, src: pageWith(11), len: P, mode: 0 });
      assert.deepEqual((await t.promise).words, [11]);
    } finally {
      await workers.close();
    }
  });

  test("poll on a worker sleeps until a fault queues a message", async () => {
    const host = smallHost();
    const hva = anon(host, 4 * P);
    const uffd = uffdOf(host);
    host.userfaultfds.register(uffd, { start: hva, len: 4 * P, mode: MISSING });
    const workers = new UffdWorkers(host, 2);
    try {
      const poll = workers.ask<{ revents: number }>(0, { kind: "poll", fd: uffd, timeoutMs: -1 });
      const timed = workers.ask<{ revents: number }>(1, { kind: "poll", fd: uffd, timeoutMs: 50 });
      assert.equal((await timed.promise).revents, 0, "timed out");
      assert.equal(poll.settled(), false, "no message: poll sleeps");
      const t = workers.touch(1, [hva + 2 * P]);
      assert.equal((await poll.promise).revents, POLLIN);
      const msg = await readWithin(host, uffd);
      assert.equal(msg.address, hva + 2 * P);
      host.userfaultfds.zeropage(uffd, { dst: msg.address, len: P, mode: 0 });
      assert.ok((await t.promise).pfns[0] > 0);
    } finally {
      await workers.close();
    }
  });

  test("pollAsync on the main thread: a timeout, then POLLIN when a worker faults", async () => {
    const host = smallHost();
    const hva = anon(host, 4 * P);
    const waiting = host.userfaultfd();
    assert.equal(await host.userfaultfds.pollAsync(waiting, 0), POLLERR, "before UFFDIO_API");
    const uffd = uffdOf(host, ALL_FEATURES, O_NONBLOCK);
    host.userfaultfds.register(uffd, { start: hva, len: 4 * P, mode: MISSING });
    const workers = new UffdWorkers(host, 1);
    try {
      const start = performance.now();
      assert.equal(await host.userfaultfds.pollAsync(uffd, 60), 0);
      assert.ok(performance.now() - start >= 55, "waited for its timeout");
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 5);
      const polled = host.userfaultfds.pollAsync(uffd);
      await sleep(60);
      const t = workers.touch(0, [hva + 3 * P]);
      assert.equal(await polled, POLLIN);
      clearInterval(ticker);
      assert.ok(ticks >= 5, "the event loop ran while pollAsync waited");
      const msg = host.userfaultfds.read(uffd);
      assert.equal(msg.address, hva + 3 * P);
      host.userfaultfds.zeropage(uffd, { dst: msg.address, len: P, mode: 0 });
      assert.ok((await t.promise).pfns[0] > 0);
      // Its reference is gone once it returns: closing releases the context.
      host.close(uffd);
      assert.equal(host.mm.mappingsIn(hva, hva + 1)[0].uffdMode, 0);
    } finally {
      await workers.close();
    }
  });

  test("a reader worker blocked in read() resolves another worker's fault", async () => {
    const host = smallHost();
    const hva = anon(host, 4 * P);
    const uffd = uffdOf(host);
    host.userfaultfds.register(uffd, { start: hva, len: 4 * P, mode: MISSING });
    const workers = new UffdWorkers(host, 2);
    try {
      const read = workers.ask<UffdMsg>(0, { kind: "read", fd: uffd });
      await sleep(100);
      assert.equal(read.settled(), false, "read() blocks while nothing is queued");
      const t = workers.touch(1, [hva + P]);
      const msg = await read.promise;
      assert.equal(msg.address, hva + P);
      assert.equal(t.settled(), false);
      host.userfaultfds.copy(uffd, { dst: hva + P, src: pageWith(5), len: P, mode: 0 });
      const reply = await t.promise;
      assert.equal(reply.tid, msg.ptid);
      assert.deepEqual(reply.words, [5]);
    } finally {
      await workers.close();
    }
  });
});

describe("userfaultfd: unregister and release wake the sleepers", () => {
  test("UFFDIO_UNREGISTER wakes the faults in the range; they populate as usual", async () => {
    const host = smallHost();
    const hva = anon(host, 4 * P);
    const uffd = uffdOf(host);
    host.userfaultfds.register(uffd, { start: hva, len: 4 * P, mode: MISSING });
    const workers = new UffdWorkers(host, 2);
    try {
      const a = workers.touch(0, [hva]);
      const b = workers.touch(1, [hva + 3 * P]);
      await readWithin(host, uffd);
      await readWithin(host, uffd);
      host.userfaultfds.unregister(uffd, { start: hva + 2 * P, len: 2 * P });
      assert.deepEqual((await b.promise).words, [0], "woken and populated with zeros");
      assert.equal(await settlesWithin(a, 100), false, "the kept range's fault sleeps on");
      host.userfaultfds.unregister(uffd, { start: hva, len: P });
      assert.ok((await a.promise).pfns[0] > 0);
    } finally {
      await workers.close();
    }
  });

  test("closing the userfaultfd wakes every sleeping fault, read or not", async () => {
    const host = smallHost();
    const hva = anon(host, 8 * P);
    const fd = host.memfdCreate("release", 2 * P);
    const shm = host.mmap({ length: 2 * P, prot: RW, flags: MAP_SHARED, fd });
    host.memfds.pwrite(fd, pageWith(9), P);
    const uffd = uffdOf(host);
    host.userfaultfds.register(uffd, { start: hva, len: 8 * P, mode: MISSING });
    host.userfaultfds.register(uffd, {
      start: shm,
      len: 2 * P,
      mode: UFFDIO_REGISTER_MODE_MINOR,
    });
    const workers = new UffdWorkers(host, 4);
    try {
      const faults = [
        workers.touch(0, [hva]),
        workers.touch(1, [hva + 5 * P], true),
        workers.touch(2, [hva + 7 * P]),
        workers.touch(3, [shm + P]),
      ];
      await readWithin(host, uffd); // one read, three still pending
      while (host.userfaultfds.poll(uffd, 0) === 0) await sleep(5);
      await sleep(50); // let them all queue
      assert.equal(faults.filter((f) => f.settled()).length, 0);
      host.close(uffd);
      const replies = await Promise.all(faults.map((f) => f.promise));
      assert.deepEqual(
        replies.map((r) => r.words[0]),
        [0, 0, 0, 9],
      );
      for (const r of replies) assert.ok(r.pfns[0] > 0);
      assert.equal(host.mm.mappingsIn(hva, hva + 1)[0].uffdMode, 0);
    } finally {
      await workers.close();
    }
  });

  test("faults arriving while the context is released retry and populate as usual", async () => {
    const host = smallHost();
    const pages = 64;
    const hva = anon(host, pages * P);
    const uffd = uffdOf(host);
    host.userfaultfds.register(uffd, { start: hva, len: pages * P, mode: MISSING });
    const workers = new UffdWorkers(host, 3);
    try {
      const next = random(7);
      const touches = [0, 1, 2].map((w) =>
        workers.touch(
          w,
          shuffled(pages, next).map((p) => hva + p * P),
        ),
      );
      await readWithin(host, uffd);
      host.close(uffd); // the others fault before, during and after the release
      const replies = await Promise.all(touches.map((t) => t.promise));
      for (const reply of replies) {
        for (let i = 0; i < pages; i++) assert.ok(reply.pfns[i] > 0);
      }
      assert.equal(host.mm.residentFrames(hva), pages);
    } finally {
      await workers.close();
    }
  });
});

interface StressOptions {
  faulters: number;
  readers: number;
  pagesPerFaulter: number;
  /** Every faulter touches every page (in its own order) instead of its own pages. */
  overlap: boolean;
  seed: number;
  dontwakeShare: number;
  delayUs: number;
  /** Part of the range is a memfd whose pages are in the file: MINOR faults there. */
  minor: boolean;
}

async function stress(o: StressOptions): Promise<void> {
  const host = smallHost();
  const total = o.overlap ? o.pagesPerFaulter : o.faulters * o.pagesPerFaulter;
  const hva = anon(host, total * P);
  const uffd = uffdOf(host, UFFD_FEATURE_THREAD_ID, O_NONBLOCK);
  const u = host.userfaultfds;
  u.register(uffd, { start: hva, len: total * P, mode: MISSING });
  let shm = 0;
  if (o.minor) {
    const fd = host.memfdCreate("stress", total * P);
    shm = host.mmap({ length: total * P, prot: RW, flags: MAP_SHARED, fd });
    for (let p = 0; p < total; p++) host.memfds.pwrite(fd, pageWith(stamp(shm + p * P)), p * P);
    u.register(uffd, { start: shm, len: total * P, mode: UFFDIO_REGISTER_MODE_MINOR });
  }
  const stop = new SharedArrayBuffer(4);
  const workers = new UffdWorkers(host, o.faulters + o.readers);
  const next = random(o.seed);
  try {
    const readers = Array.from({ length: o.readers }, (_, r) =>
      workers.ask<ReaderReply>(o.faulters + r, {
        kind: "reader",
        fd: uffd,
        stop,
        seed: o.seed * 100 + r,
        dontwakeShare: o.dontwakeShare,
        delayUs: o.delayUs,
      }),
    );
    const wanted: number[][] = [];
    const touches = Array.from({ length: o.faulters }, (_, f) => {
      const pages = o.overlap
        ? shuffled(total, next)
        : shuffled(o.pagesPerFaulter, next).map((p) => f * o.pagesPerFaulter + p);
      const hvas = pages.map((p) => (o.minor && next() < 0.5 ? shm : hva) + p * P + 8);
      wanted.push(hvas);
      return workers.touch(f, hvas, next() < 0.5);
    });
    const replies = await Promise.all(touches.map((t) => t.promise));
    Atomics.store(new Int32Array(stop), 0, 1);
    const readerReplies = await Promise.all(readers.map((r) => r.promise));

    // Every access saw the page its resolution installed (or the file's page).
    const tids = new Set<number>();
    replies.forEach((reply, f) => {
      tids.add(reply.tid);
      wanted[f].forEach((at, i) => {
        const page = at - 8;
        assert.ok(reply.pfns[i] > 0, `faulter ${f} at ${page}: ${reply.pfns[i]}`);
        assert.equal(reply.words[i], stamp(page), `faulter ${f}: the content of ${page}`);
      });
    });
    // Every page that was faulted on was resolved exactly once, by one reader.
    const resolved = new Map<number, number>();
    let messages = 0;
    for (const r of readerReplies) {
      for (const address of r.resolved) resolved.set(address, (resolved.get(address) ?? 0) + 1);
      messages += r.messages.length / 3;
      for (let i = 0; i < r.messages.length; i += 3) {
        assert.ok(tids.has(r.messages[i + 2]), "ptid names a faulting thread");
      }
    }
    const touched = new Set(wanted.flat().map((at) => at - 8));
    for (const page of touched) assert.equal(resolved.get(page), 1, `page ${page} resolved once`);
    assert.equal(resolved.size, touched.size, "nothing resolved that nobody faulted on");
    const eexist = readerReplies.reduce((n, r) => n + r.eexist, 0);
    if (!o.overlap) {
      // One fault per page, so one message per page: nothing lost, nothing twice.
      assert.equal(messages, touched.size);
      assert.equal(eexist, 0);
    } else {
      assert.equal(messages, touched.size + eexist, "every other message found its page there");
    }
    assert.equal(u.poll(uffd, 0), 0, "no message left behind");
  } finally {
    Atomics.store(new Int32Array(stop), 0, 1);
    await workers.close();
  }
}

describe("userfaultfd: many faulting threads", () => {
  test("6 faulting threads, one reader, own pages", { timeout: 120_000 }, async () => {
    await stress({
      faulters: 6,
      readers: 1,
      pagesPerFaulter: 48,
      overlap: false,
      seed: 1,
      dontwakeShare: 0,
      delayUs: 0,
      minor: false,
    });
  });

  test(
    "6 faulting threads, 3 readers, DONTWAKE and slow handling",
    { timeout: 120_000 },
    async () => {
      await stress({
        faulters: 6,
        readers: 3,
        pagesPerFaulter: 40,
        overlap: false,
        seed: 2,
        dontwakeShare: 0.3,
        delayUs: 200,
        minor: false,
      });
    },
  );

  test(
    "5 faulting threads on the same pages, 2 readers, MISSING and MINOR",
    { timeout: 120_000 },
    async () => {
      await stress({
        faulters: 5,
        readers: 2,
        pagesPerFaulter: 64,
        overlap: true,
        seed: 3,
        dontwakeShare: 0.2,
        delayUs: 50,
        minor: true,
      });
    },
  );

  test(
    "random interleavings: several seeds, shapes and reader counts",
    { timeout: 300_000 },
    async () => {
      const next = random(99);
      for (let round = 0; round < 4; round++) {
        await stress({
          faulters: 2 + Math.floor(next() * 4),
          readers: 1 + Math.floor(next() * 3),
          pagesPerFaulter: 16 + Math.floor(next() * 32),
          overlap: next() < 0.5,
          seed: 1000 + round,
          dontwakeShare: next() * 0.5,
          delayUs: Math.floor(next() * 100),
          minor: next() < 0.5,
        });
      }
    },
  );
});

test(
  "a background push resolves faults whose messages readers are taking at the same time",
  { timeout: 120_000 },
  async () => {
    const next = random(77);
    for (let round = 0; round < 4; round++) {
      const faulters = 4;
      const pages = 96;
      const host = smallHost();
      const hva = anon(host, faulters * pages * P);
      const uffd = uffdOf(host, UFFD_FEATURE_THREAD_ID, O_NONBLOCK);
      host.userfaultfds.register(uffd, { start: hva, len: faulters * pages * P, mode: MISSING });
      const workers = new UffdWorkers(host, faulters + 4);
      const stop = new SharedArrayBuffer(4);
      try {
        // Two readers only take messages (as post-copy's page requests); two
        // pushers copy every page in their own order, racing the readers' reads.
        const readers = [0, 1].map((r) =>
          workers.ask<ReaderReply>(faulters + r, {
            kind: "reader",
            fd: uffd,
            stop,
            seed: round * 10 + r,
            dontwakeShare: 0,
            delayUs: 0,
            resolve: false,
          }),
        );
        const all = Array.from({ length: faulters * pages }, (_, i) => hva + i * P);
        const touches = Array.from({ length: faulters }, (_, f) =>
          workers.touch(
            f,
            shuffled(pages, next).map((p) => hva + (f * pages + p) * P),
          ),
        );
        await sleep(5 + Math.floor(next() * 20));
        const pushers = [2, 3].map((k) =>
          workers.ask<PushReply>(faulters + k, {
            kind: "push",
            fd: uffd,
            hvas: shuffled(all.length, next).map((i) => all[i]),
          }),
        );
        const replies = await Promise.all(touches.map((t) => t.promise));
        const pushed = await Promise.all(pushers.map((p) => p.promise));
        Atomics.store(new Int32Array(stop), 0, 1);
        const read = await Promise.all(readers.map((r) => r.promise));
        replies.forEach((reply, f) => {
          reply.words.forEach((word, i) => assert.ok(reply.pfns[i] > 0 && word !== 0, `${f}`));
        });
        for (const at of all) {
          const word = new Int32Array(host.copyFromUser(at, 4).buffer)[0];
          assert.equal(word, stamp(at));
        }
        assert.equal(pushed[0].copied + pushed[1].copied, all.length, "each page copied once");
        const messages = read.reduce((n, r) => n + r.messages.length / 3, 0);
        assert.ok(messages <= all.length, "no page faulted twice");
      } finally {
        Atomics.store(new Int32Array(stop), 0, 1);
        await workers.close();
      }
    }
  },
);

test("an atomic fault on a worker fails at once while another sleeps on the same page", async () => {
  const host = smallHost();
  const hva = anon(host, 2 * P);
  const uffd = uffdOf(host);
  host.userfaultfds.register(uffd, { start: hva, len: 2 * P, mode: MISSING });
  const workers = new UffdWorkers(host, 2);
  try {
    const sleeper = workers.touch(0, [hva]);
    await readWithin(host, uffd);
    const atomic = workers.ask<TouchReply>(1, {
      kind: "touch",
      hvas: [hva],
      write: false,
      atomic: true,
    });
    assert.deepEqual((await atomic.promise).pfns, [FAULT_EAGAIN]);
    assert.equal(host.mm.tryFaultIn(hva, FAULT_ATOMIC), FAULT_EAGAIN);
    assert.equal(host.userfaultfds.poll(uffd, 0), 0, "the atomic faults queued nothing");
    host.userfaultfds.zeropage(uffd, { dst: hva, len: P, mode: 0 });
    assert.ok((await sleeper.promise).pfns[0] > 0);
  } finally {
    await workers.close();
  }
});

test("the main thread's own fault sleeps (blocking its event loop) until a reader worker resolves it", async () => {
  const host = smallHost();
  const hva = anon(host, 4 * P);
  const uffd = uffdOf(host, ALL_FEATURES, O_NONBLOCK);
  host.userfaultfds.register(uffd, { start: hva, len: 4 * P, mode: MISSING });
  const workers = new UffdWorkers(host, 1);
  const stop = new SharedArrayBuffer(4);
  try {
    const reader = workers.ask<ReaderReply>(0, {
      kind: "reader",
      fd: uffd,
      stop,
      seed: 1,
      dontwakeShare: 0,
      delayUs: 0,
    });
    await sleep(50); // the reader is polling
    const start = performance.now();
    const data = host.copyFromUser(hva + 2 * P, 4); // sleeps in Atomics.wait
    assert.equal(new Int32Array(data.buffer)[0], stamp(hva + 2 * P));
    assert.ok(performance.now() - start < 10_000);
    Atomics.store(new Int32Array(stop), 0, 1);
    const r = await reader.promise;
    assert.deepEqual(r.resolved, [hva + 2 * P]);
    assert.deepEqual(r.messages, [hva + 2 * P, 0, gettid()], "the main thread's id");
  } finally {
    Atomics.store(new Int32Array(stop), 0, 1);
    await workers.close();
  }
});
