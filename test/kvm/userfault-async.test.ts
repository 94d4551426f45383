import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PAGE_SIZE } from "../../src/host/host-memory.js";
import {
  CAP_USERFAULT,
  USERFAULT_ASYNC_ALL,
  USERFAULT_DISABLE,
  USERFAULT_ENABLE,
} from "../../src/kvm/uapi.js";
import { VM_UF_USERS } from "../../src/kvm/vm-layout.js";
import type { AccessReply } from "./kvm-worker.js";
import { UCALL_DONE, UCALL_REPORT, V_FAULTS } from "./kvm-worker.js";
import {
  assertErrno,
  createTestVm,
  enableUserfault,
  eventfdSignalled,
  installPage,
  pageOf,
  RAM_BASE,
  setUserfault,
  sleep,
  symbol,
  type TestVm,
  UCALL,
  withTimeout,
} from "./support.js";
import { KvmWorkers } from "./workers.js";

/**
 * Asynchronous userfaults: a hypervisor accessor that cannot unwind to
 * userspace (here a worker thread calling accessGuest, as an in-kernel
 * device worker does) queues the gfn, signals the eventfd and sleeps until
 * the VMM releases the page, disables userfault, or destroys the VM.
 */

const IDLE = `_start: j _start`;
const PAGE_A = RAM_BASE + 0x10_0000;
const PAGE_B = RAM_BASE + 0x20_0000;
const PAGE_C = RAM_BASE + 0x30_0000;

/** Tracks whether a promise has settled, to check that an accessor still sleeps. */
function track<T>(promise: Promise<T>): { settled: () => boolean; promise: Promise<T> } {
  let done = false;
  const tracked = promise.finally(() => {
    done = true;
  });
  return { settled: () => done, promise: tracked };
}

/** Read eventfd signals until `count` have arrived in all. */
async function signals(t: TestVm, eventfd: number, count: number): Promise<void> {
  let total = 0n;
  while (total < BigInt(count)) total += await eventfdSignalled(t.host, eventfd);
  assert.equal(total, BigInt(count), "no extra signals");
}

function setup(options = USERFAULT_ENABLE): { t: TestVm; eventfd: number; workers: KvmWorkers } {
  const t = createTestVm(IDLE);
  const eventfd = enableUserfault(t, options);
  return { t, eventfd, workers: new KvmWorkers(t) };
}

describe("asynchronous userfaults", () => {
  test("an accessor queues the gfn once, signals, sleeps, and reads what was installed before the release", async () => {
    const { t, eventfd, workers } = setup();
    try {
      installPage(t, PAGE_A, pageOf(0x1111n));
      setUserfault(t.vm, PAGE_A, true);
      const access = track(
        workers.access({ gpa: PAGE_A + 40, length: 16, write: false, atomic: false }).reply,
      );
      assert.equal(await eventfdSignalled(t.host, eventfd), 1n);
      assert.deepEqual(t.vm.readUserfault(), { gpa: PAGE_A });
      assertErrno(() => t.vm.readUserfault(), "ENOENT");
      await sleep(100);
      assert.equal(access.settled(), false, "the accessor sleeps while the page is userfault");
      // The VMM installs the page, then releases it.
      installPage(t, PAGE_A, pageOf(0x0123_4567_89ab_cdefn));
      setUserfault(t.vm, PAGE_A, false);
      const reply = await withTimeout(access.promise, 5000, "the accessor");
      assert.ok(reply.ok, reply.message);
      assert.deepEqual(
        [...new BigUint64Array(reply.data!.slice().buffer)],
        [0x0123_4567_89ab_cdefn, 0x0123_4567_89ab_cdefn],
      );
      assertErrno(() => t.vm.readUserfault(), "ENOENT");
      assert.equal(t.host.eventfds.peek(eventfd), 0n, "no further signal");
    } finally {
      await workers.close();
    }
  });

  test("a write access waits too, and its data lands in the page the VMM installed", async () => {
    const { t, eventfd, workers } = setup();
    try {
      setUserfault(t.vm, PAGE_A, true);
      const access = workers.access({
        gpa: PAGE_A + PAGE_SIZE - 8,
        length: 16,
        write: true,
        atomic: false,
        fill: 0x5a,
      });
      // The access spans two pages; only the first is userfault.
      await eventfdSignalled(t.host, eventfd);
      assert.deepEqual(t.vm.readUserfault(), { gpa: PAGE_A });
      installPage(t, PAGE_A, pageOf(0x0101_0101_0101_0101n));
      setUserfault(t.vm, PAGE_A, false);
      assert.ok((await withTimeout(access.reply, 5000, "the accessor")).ok);
      const bytes = new Uint8Array(24);
      t.vm.accessGuest(PAGE_A + PAGE_SIZE - 16, bytes, false, true);
      assert.deepEqual([...bytes], [...Array(8).fill(1), ...Array(16).fill(0x5a)]);
    } finally {
      await workers.close();
    }
  });

  test("duplicate accessors of one gfn make one pending entry until it is read", async () => {
    const { t, eventfd, workers } = setup();
    try {
      setUserfault(t.vm, PAGE_A, true);
      setUserfault(t.vm, PAGE_B, true);
      const first = workers.access({ gpa: PAGE_A, length: 8, write: false, atomic: false });
      const second = workers.access({ gpa: PAGE_A + 8, length: 8, write: true, atomic: false });
      await signals(t, eventfd, 2);
      assert.deepEqual(t.vm.readUserfault(), { gpa: PAGE_A });
      assertErrno(() => t.vm.readUserfault(), "ENOENT");
      // Once handed over, a new accessor of the same page queues it again,
      // after another page that is waited for.
      const other = workers.access({ gpa: PAGE_B, length: 8, write: false, atomic: false });
      await signals(t, eventfd, 1);
      const third = workers.access({ gpa: PAGE_A + 16, length: 8, write: false, atomic: false });
      await signals(t, eventfd, 1);
      assert.deepEqual(t.vm.readUserfault(), { gpa: PAGE_B });
      assert.deepEqual(t.vm.readUserfault(), { gpa: PAGE_A });
      assertErrno(() => t.vm.readUserfault(), "ENOENT");
      setUserfault(t.vm, PAGE_A, false);
      setUserfault(t.vm, PAGE_B, false);
      const replies = await withTimeout(
        Promise.all([first.reply, second.reply, other.reply, third.reply]),
        5000,
        "the accessors",
      );
      for (const reply of replies) assert.ok(reply.ok, reply.message);
    } finally {
      await workers.close();
    }
  });

  test("sleeping accessors use no CPU", async () => {
    const { t, eventfd, workers } = setup();
    try {
      setUserfault(t.vm, PAGE_A, true);
      setUserfault(t.vm, PAGE_B, true);
      const a = workers.access({ gpa: PAGE_A, length: 8, write: false, atomic: false });
      const b = workers.access({ gpa: PAGE_B, length: 8, write: false, atomic: false });
      await signals(t, eventfd, 2);
      // Let the workers settle into their wait; a spinning accessor would burn the interval.
      await sleep(50);
      const before = process.cpuUsage();
      await sleep(400);
      const used = process.cpuUsage(before);
      assert.ok(used.user + used.system < 150_000, `CPU while asleep: ${JSON.stringify(used)}`);
      setUserfault(t.vm, PAGE_A, false, PAGE_B + PAGE_SIZE - PAGE_A);
      for (const reply of await Promise.all([a.reply, b.reply])) assert.ok(reply.ok);
    } finally {
      await workers.close();
    }
  });

  test("disabling userfault fails every sleeper with EFAULT and returns only after they left", async () => {
    const { t, eventfd, workers } = setup();
    try {
      const pages = [PAGE_A, PAGE_B, PAGE_C];
      for (const page of pages) setUserfault(t.vm, page, true);
      const accesses = pages.map(
        (gpa) => workers.access({ gpa, length: 8, write: false, atomic: false }).reply,
      );
      await signals(t, eventfd, 3);
      t.vm.enableCap({ cap: CAP_USERFAULT, flags: 0, args: [USERFAULT_DISABLE, 0] });
      assert.equal(
        Atomics.load(t.vm.words, t.vm.base + VM_UF_USERS),
        0,
        "no accessor is inside the userfault context once disable returns",
      );
      const replies: AccessReply[] = await withTimeout(Promise.all(accesses), 5000, "sleepers");
      for (const reply of replies) {
        assert.equal(reply.ok, false);
        assert.equal(reply.errno, "EFAULT");
      }
      assertErrno(() => t.vm.readUserfault(), "ENOENT");
      // With userfault off the same pages are ordinary memory.
      const again = workers.access({ gpa: PAGE_A, length: 8, write: false, atomic: false });
      assert.ok((await withTimeout(again.reply, 5000, "access after disable")).ok);
      // Enabling again (new eventfd) brings the surviving bits back into force.
      const eventfd2 = enableUserfault(t);
      const later = track(
        workers.access({ gpa: PAGE_B, length: 8, write: false, atomic: false }).reply,
      );
      await eventfdSignalled(t.host, eventfd2);
      assert.equal(t.host.eventfds.peek(eventfd), 0n, "the old eventfd is not signalled");
      assert.deepEqual(t.vm.readUserfault(), { gpa: PAGE_B });
      setUserfault(t.vm, PAGE_B, false);
      assert.ok((await withTimeout(later.promise, 5000, "access after re-enable")).ok);
    } finally {
      await workers.close();
    }
  });

  test("destroying the VM fails every sleeper", async () => {
    const { t, eventfd, workers } = setup();
    try {
      setUserfault(t.vm, PAGE_A, true);
      setUserfault(t.vm, PAGE_B, true);
      const accesses = [PAGE_A, PAGE_A + 8, PAGE_B].map(
        (gpa) => workers.access({ gpa, length: 8, write: false, atomic: false }).reply,
      );
      await signals(t, eventfd, 3);
      t.vm.destroy();
      for (const reply of await withTimeout(Promise.all(accesses), 5000, "sleepers")) {
        assert.equal(reply.ok, false);
        assert.equal(reply.errno, "EFAULT");
      }
      // The sleepers' two pages are still queued, in either order.
      const queued = [t.vm.readUserfault().gpa, t.vm.readUserfault().gpa];
      assert.deepEqual(new Set(queued), new Set([PAGE_A, PAGE_B]));
      // An access after the destroy fails at once: nothing is queued or signalled.
      const signalled = t.host.eventfds.peek(eventfd);
      assertErrno(() => t.vm.accessGuest(PAGE_A, new Uint8Array(8), false, false), "EFAULT");
      assertErrno(() => t.vm.readUserfault(), "ENOENT");
      assert.equal(t.host.eventfds.peek(eventfd), signalled);
    } finally {
      await workers.close();
    }
  });
});

/** Reads `data`, reports it (REPORT), then ends (DONE). */
const READ_DATA = `
_start:
        la      t0, data
        ld      a0, 0(t0)
        li      a1, ${UCALL_REPORT}
        ${UCALL}
        li      a1, ${UCALL_DONE}
        ${UCALL}
1:      j       1b
        .data
        .balign 4096
data:   .dword  7
`;

describe("USERFAULT_ASYNC_ALL", () => {
  test("a vCPU fault does not exit: it queues like an asynchronous fault and continues once released", async () => {
    const t = createTestVm(READ_DATA);
    const eventfd = enableUserfault(t, USERFAULT_ENABLE | USERFAULT_ASYNC_ALL);
    const workers = new KvmWorkers(t);
    try {
      const data = symbol(t, "data");
      setUserfault(t.vm, data, true);
      const vcpu = track(workers.vcpu({ id: 0, pc: t.entry, onFault: "stop" }).reply);
      await eventfdSignalled(t.host, eventfd);
      assert.deepEqual(t.vm.readUserfault(), { gpa: data });
      await sleep(50);
      const before = process.cpuUsage();
      await sleep(300);
      const used = process.cpuUsage(before);
      assert.ok(used.user + used.system < 120_000, `CPU while asleep: ${JSON.stringify(used)}`);
      assert.equal(vcpu.settled(), false, "the vCPU sleeps in the hypervisor");
      assert.equal(workers.word(0, V_FAULTS), 0, "no MEMORY_FAULT exit");
      installPage(t, data, pageOf(77n));
      setUserfault(t.vm, data, false);
      const reply = await withTimeout(vcpu.promise, 5000, "the vCPU");
      assert.equal(reply.stop, "done", reply.message);
      assert.deepEqual(reply.reports, [77n]);
    } finally {
      await workers.close();
    }
  });

  test("disabling userfault lets the sleeping vCPU map the page; destroying the VM makes it exit", async () => {
    for (const end of ["disable", "destroy"] as const) {
      const t = createTestVm(READ_DATA);
      const eventfd = enableUserfault(t, USERFAULT_ENABLE | USERFAULT_ASYNC_ALL);
      const workers = new KvmWorkers(t);
      try {
        const data = symbol(t, "data");
        setUserfault(t.vm, data, true);
        const vcpu = workers.vcpu({ id: 0, pc: t.entry, onFault: "stop" });
        await eventfdSignalled(t.host, eventfd);
        if (end === "disable") {
          t.vm.enableCap({ cap: CAP_USERFAULT, flags: 0, args: [USERFAULT_DISABLE, 0] });
          const reply = await withTimeout(vcpu.reply, 5000, "the vCPU");
          assert.equal(reply.stop, "done", reply.message);
          assert.deepEqual(reply.reports, [7n], "the page as it was");
        } else {
          t.vm.destroy();
          const reply = await withTimeout(vcpu.reply, 5000, "the vCPU");
          assert.equal(reply.stop, "exit");
          assert.equal(reply.errno, "EFAULT");
          assert.equal(reply.memoryFault.gpa, data);
        }
      } finally {
        await workers.close();
      }
    }
  });
});
