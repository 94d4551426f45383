/**
 * userfaultfd on a guest_memfd that the VMM maps (GUEST_MEMFD_FLAG_MMAP),
 * registered MISSING and MINOR as Linux 7.1 allows: userfaultfd sees the
 * VMM's accesses through its mapping and the hypervisor's accesses made
 * through that mapping (a traditional memslot on it), but never a vCPU's
 * stage-2 fault on the guest_memfd slot, which asks the file for the page.
 */
import assert from "node:assert/strict";
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
import { PAGE_SIZE } from "../../src/host/host-memory.js";
import {
  O_NONBLOCK,
  UFFD_API,
  UFFD_FEATURE_THREAD_ID,
  UFFD_PAGEFAULT_FLAG_MINOR,
  UFFD_PAGEFAULT_FLAG_WP,
  UFFD_PAGEFAULT_FLAG_WRITE,
  UFFDIO_COPY_MODE_WP,
  UFFDIO_REGISTER_MODE_MINOR,
  UFFDIO_REGISTER_MODE_MISSING,
  UFFDIO_REGISTER_MODE_WP,
  type UffdMsg,
} from "../../src/host/userfaultfd.js";
import { GUEST_MEMFD_FLAG_MMAP } from "../../src/kvm/uapi.js";
import { type ReaderReply, stamp, type TouchReply, type UffdOrder } from "../host/uffd-worker.js";
import { HostWorkers } from "../host/workers.js";
import {
  createTestVm,
  installPage,
  pageOf,
  RAM_BASE,
  readGuestU64,
  sleep,
  symbol,
  type TestVm,
  UCALL,
  withTimeout,
} from "./support.js";
import { KvmWorkers } from "./workers.js";

const MEM = 16 << 20;
/** Data pages, far from the program: the file has none of them until a test puts one there. */
const DATA = RAM_BASE + (8 << 20);
const page = (n: number) => DATA + n * PAGE_SIZE;
/** A traditional memslot (slot 1) on the VMM's mapping of the same guest_memfd. */
const ALIAS = RAM_BASE + 0x1000_0000;

/** Load from a0, store 0x3333 at a1, and finish (done ucall) with the loaded value in a0. */
const LOAD_STORE = `
_start:
        mv      s0, a0
        mv      s1, a1
        ld      a0, 0(s0)
        li      t1, 0x3333
        sd      t1, 0(s1)
        li      a1, 1
        ${UCALL}
        j       _start

/* Sum the first doubleword of a1 pages from a0 on; finish with the sum in a0. */
sum_pages:
        mv      s0, a0
        mv      s1, a1
        li      a0, 0
        li      t2, 4096
1:      ld      t1, 0(s0)
        add     a0, a0, t1
        add     s0, s0, t2
        addi    s1, s1, -1
        bnez    s1, 1b
        li      a1, 1
        ${UCALL}
        j       sum_pages
`;

interface Setup {
  t: TestVm;
  /** The VMM's mapping of the guest_memfd (file offset 0 at `map`). */
  map: number;
  uffd: number;
  kvmWorkers: KvmWorkers;
  vmmWorkers: HostWorkers;
}

function setup(): Setup {
  const t = createTestVm(LOAD_STORE, { memBytes: MEM, gmemFlags: GUEST_MEMFD_FLAG_MMAP });
  const map = t.host.mmap({
    length: MEM,
    prot: PROT_READ | PROT_WRITE,
    flags: MAP_SHARED,
    fd: t.gmemFd,
  });
  const uffd = t.host.userfaultfd(O_NONBLOCK);
  t.host.userfaultfds.api(uffd, { api: UFFD_API, features: UFFD_FEATURE_THREAD_ID });
  t.host.userfaultfds.register(uffd, {
    start: map,
    len: MEM,
    mode: UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR,
  });
  return {
    t,
    map,
    uffd,
    kvmWorkers: new KvmWorkers(t),
    vmmWorkers: new HostWorkers(t.host, 1, "./uffd-worker.js"),
  };
}

async function teardown(s: Setup): Promise<void> {
  // Closing the userfaultfd wakes anything a failed test left asleep in it.
  s.t.host.close(s.uffd);
  await s.kvmWorkers.close();
  await s.vmmWorkers.close();
}

/** The VMM's mapping address of guest-physical `gpa` in the guest_memfd slot. */
function hvaOf(s: Setup, gpa: number): number {
  return s.map + (gpa - RAM_BASE);
}

function fileHas(s: Setup, gpa: number): boolean {
  return s.t.host.pageCacheOf(s.t.gmemFd).isPresent((gpa - RAM_BASE) / PAGE_SIZE);
}

async function nextMessage(s: Setup): Promise<UffdMsg> {
  for (let i = 0; i < 2000; i++) {
    if (s.t.host.userfaultfds.poll(s.uffd, 0) !== 0) return s.t.host.userfaultfds.read(s.uffd);
    await sleep(5);
  }
  throw new Error("no userfaultfd message in 10 s");
}

function noMessage(s: Setup, what: string): void {
  assert.equal(s.t.host.userfaultfds.poll(s.uffd, 0), 0, `${what}: no userfaultfd message`);
}

/** Run LOAD_STORE on a vCPU thread: the value loaded from `load`. */
function runVcpu(s: Setup, load: number, store: number) {
  const { reply } = s.kvmWorkers.vcpu({
    id: 0,
    pc: s.t.entry,
    stvec: s.t.trap,
    a0: BigInt(load),
    a1: BigInt(store),
    onFault: "stop",
  });
  let settled = false;
  void reply.then(
    () => (settled = true),
    () => (settled = true),
  );
  return { reply, settled: () => settled };
}

describe("userfaultfd on a mapped guest_memfd", () => {
  test("a vCPU's stage-2 faults on the guest_memfd slot never reach userfaultfd", async () => {
    const s = setup();
    try {
      installPage(s.t, page(1), pageOf(0x1111n));
      // Page 0 is in nobody's hands (MISSING for the mapping), page 1 only in the
      // file (MINOR for the mapping): the vCPU reads page 1 and writes page 0.
      const vcpu = runVcpu(s, page(1) + 8, page(0) + 16);
      const reply = await withTimeout(vcpu.reply, 10_000, "the vCPU (asleep in userfaultfd?)");
      assert.equal(reply.stop, "done", reply.message);
      assert.equal(reply.a0, 0x1111n);
      noMessage(s, "vCPU faults");
      assert.ok(fileHas(s, page(0)), "the guest_memfd gave the page itself");
      assert.throws(
        () =>
          s.t.host.userfaultfds.register(s.uffd, {
            start: s.map,
            len: MEM,
            mode: UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
          }),
        (e: unknown) => (e as { errno?: string }).errno === "EINVAL",
        "a guest_memfd mapping takes MISSING and MINOR only",
      );
      assert.equal(s.t.host.lookupPfn(hvaOf(s, page(0))), 0, "the VMM's mapping is untouched");
      assert.equal(s.t.host.lookupPfn(hvaOf(s, page(1))), 0);

      // The hypervisor's own non-atomic access to the slot asks the file too.
      const access = s.kvmWorkers.access({ gpa: page(2), length: 8, write: true, atomic: false });
      const done = await withTimeout(access.reply, 10_000, "the hypervisor access");
      assert.ok(done.ok, done.message);
      assert.equal(readGuestU64(s.t.vm, page(0) + 16), 0x3333n);
      noMessage(s, "hypervisor accesses by file offset");
    } finally {
      await teardown(s);
    }
  });

  test("the VMM's accesses through its mapping fault: MINOR for a page only the file has, MISSING otherwise", async () => {
    const s = setup();
    try {
      // The guest writes page 0: the file has it, the VMM's mapping does not.
      const reply = await withTimeout(runVcpu(s, page(3), page(0)).reply, 10_000, "the vCPU");
      assert.equal(reply.stop, "done", reply.message);
      noMessage(s, "vCPU faults");

      const touch = (hvas: number[], write = false) =>
        s.vmmWorkers.ask<TouchReply, UffdOrder>(0, { kind: "touch", hvas, write });
      let vmm = touch([hvaOf(s, page(0))]);
      let msg = await nextMessage(s);
      assert.equal(msg.address, hvaOf(s, page(0)));
      assert.equal(msg.flags, UFFD_PAGEFAULT_FLAG_MINOR);
      s.t.host.userfaultfds.continue(s.uffd, { start: msg.address, len: PAGE_SIZE, mode: 0 });
      let seen = await withTimeout(vmm, 10_000, "the VMM's read");
      assert.equal(seen.tid, msg.ptid, "the faulting thread is the VMM's");
      assert.deepEqual(seen.words, [0x3333], "the guest's store, through the VMM's mapping");

      // A page nobody has: MISSING; COPY puts it in the guest_memfd, where the guest finds it.
      vmm = touch([hvaOf(s, page(5)) + 40], true);
      msg = await nextMessage(s);
      assert.deepEqual([msg.address, msg.flags], [hvaOf(s, page(5)), UFFD_PAGEFAULT_FLAG_WRITE]);
      assert.equal(fileHas(s, page(5)), false);
      s.t.host.userfaultfds.copy(s.uffd, {
        dst: msg.address,
        src: pageOf(0x5555n),
        len: PAGE_SIZE,
        mode: 0,
      });
      seen = await withTimeout(vmm, 10_000, "the VMM's write");
      assert.ok(fileHas(s, page(5)));
      const again = await withTimeout(runVcpu(s, page(5), page(6)).reply, 10_000, "the vCPU");
      assert.equal(again.a0, 0x5555n, "the vCPU reads what the VMM copied in");
      noMessage(s, "vCPU faults");
    } finally {
      await teardown(s);
    }
  });

  test("the hypervisor's accesses through the mapping fault, a vCPU's on a traditional slot on it too", async () => {
    const s = setup();
    try {
      s.t.vm.setUserMemoryRegion2({
        slot: 1,
        flags: 0,
        guestPhysAddr: ALIAS,
        memorySize: MEM,
        userspaceAddr: s.map,
      });
      const alias = (gpa: number) => ALIAS + (gpa - RAM_BASE);

      // An atomic hypervisor access through the mapping gets EAGAIN and queues nothing.
      assert.throws(
        () => readGuestU64(s.t.vm, alias(page(7))),
        (e: unknown) => (e as { errno?: string }).errno === "EAGAIN",
      );
      assert.equal(s.t.host.mm.tryFaultIn(hvaOf(s, page(7)), FAULT_ATOMIC), FAULT_EAGAIN);
      noMessage(s, "atomic accesses");

      // A sleeping one is a userfaultfd fault on the VMM's address.
      const access = s.kvmWorkers.access({
        gpa: alias(page(7)),
        length: 8,
        write: false,
        atomic: false,
      });
      let msg = await nextMessage(s);
      assert.deepEqual([msg.address, msg.flags], [hvaOf(s, page(7)), 0]);
      s.t.host.userfaultfds.copy(s.uffd, {
        dst: msg.address,
        src: pageOf(0x7777n),
        len: PAGE_SIZE,
        mode: 0,
      });
      const done = await withTimeout(access.reply, 10_000, "the hypervisor access");
      assert.ok(done.ok, done.message);
      assert.equal(new DataView(done.data!.buffer).getBigUint64(0, true), 0x7777n);

      // A vCPU's fault on the traditional slot goes through the host fault path as well.
      const vcpu = runVcpu(s, alias(page(8)), alias(page(9)));
      msg = await nextMessage(s);
      assert.deepEqual([msg.address, msg.flags], [hvaOf(s, page(8)), 0]);
      await sleep(50);
      assert.equal(vcpu.settled(), false, "the vCPU sleeps in userfaultfd");
      s.t.host.userfaultfds.copy(s.uffd, {
        dst: msg.address,
        src: pageOf(0x8888n),
        len: PAGE_SIZE,
        mode: 0,
      });
      msg = await nextMessage(s);
      assert.deepEqual([msg.address, msg.flags], [hvaOf(s, page(9)), UFFD_PAGEFAULT_FLAG_WRITE]);
      s.t.host.userfaultfds.zeropage(s.uffd, { dst: msg.address, len: PAGE_SIZE, mode: 0 });
      const reply = await withTimeout(vcpu.reply, 10_000, "the vCPU");
      assert.equal(reply.stop, "done", reply.message);
      assert.equal(reply.a0, 0x8888n);

      // The same file pages through the guest_memfd slot: no fault at all.
      const direct = await withTimeout(
        runVcpu(s, page(9), page(10)).reply,
        10_000,
        "the vCPU on the guest_memfd slot",
      );
      assert.equal(direct.a0, 0x3333n, "the store made through the alias is in the file");
      noMessage(s, "vCPU faults on the guest_memfd slot");
      assert.equal(s.t.host.lookupPfn(hvaOf(s, page(10))), 0);
    } finally {
      await teardown(s);
    }
  });

  test("vCPUs faulting through a traditional slot on the mapping sleep in userfaultfd until reader threads resolve each page once", async () => {
    const s = setup();
    const readerPool = new HostWorkers(s.t.host, 2, "./uffd-worker.js");
    const stop = new SharedArrayBuffer(4);
    const VCPUS = 4;
    const PAGES = 24;
    try {
      s.t.vm.setUserMemoryRegion2({
        slot: 1,
        flags: 0,
        guestPhysAddr: ALIAS,
        memorySize: MEM,
        userspaceAddr: s.map,
      });
      const alias = (gpa: number) => ALIAS + (gpa - RAM_BASE);
      for (let id = 1; id < VCPUS; id++) s.t.kvm.createVcpu(s.t.vm, id);
      const readers = [0, 1].map((r) =>
        readerPool.ask<ReaderReply, UffdOrder>(r, {
          kind: "reader",
          fd: s.uffd,
          stop,
          seed: r + 1,
          dontwakeShare: 0.25,
          delayUs: 20,
        }),
      );
      const first = (id: number) => page(16 + id * PAGES);
      const vcpus = Array.from({ length: VCPUS }, (_, id) =>
        s.kvmWorkers.vcpu({
          id,
          pc: symbol(s.t, "sum_pages"),
          stvec: s.t.trap,
          a0: BigInt(alias(first(id))),
          a1: BigInt(PAGES),
          onFault: "stop",
        }),
      );
      const replies = await withTimeout(
        Promise.all(vcpus.map((v) => v.reply)),
        60_000,
        "the vCPUs",
      );
      Atomics.store(new Int32Array(stop), 0, 1);
      const read = await withTimeout(Promise.all(readers), 10_000, "the readers");
      replies.forEach((reply, id) => {
        assert.equal(reply.stop, "done", reply.message);
        let sum = 0n;
        for (let i = 0; i < PAGES; i++) {
          sum += BigInt(stamp(hvaOf(s, first(id) + i * PAGE_SIZE)) >>> 0);
        }
        assert.equal(reply.a0, sum, `vCPU ${id} saw every page the readers copied`);
      });
      const resolved = read.flatMap((r) => r.resolved);
      assert.equal(resolved.length, VCPUS * PAGES, "one resolution per page");
      assert.equal(new Set(resolved).size, VCPUS * PAGES);
      assert.equal(
        read.reduce((n, r) => n + r.messages.length / 3, 0),
        VCPUS * PAGES,
      );
      for (const r of read) {
        for (let i = 0; i < r.messages.length; i += 3) {
          assert.ok(r.messages[i + 2] > 0, "the faulting vCPU thread's id");
        }
      }
      // The pages are in the guest_memfd now; through its own slot, no fault at all.
      for (const hva of resolved) assert.ok(fileHas(s, RAM_BASE + (hva - s.map)));
      const direct = await withTimeout(
        s.kvmWorkers.vcpu({
          id: 0,
          pc: symbol(s.t, "sum_pages"),
          stvec: s.t.trap,
          a0: BigInt(first(1)),
          a1: BigInt(PAGES),
          onFault: "stop",
        }).reply,
        10_000,
        "the vCPU on the guest_memfd slot",
      );
      assert.equal(direct.a0, replies[1].a0);
      noMessage(s, "vCPU faults on the guest_memfd slot");
    } finally {
      Atomics.store(new Int32Array(stop), 0, 1);
      await readerPool.close();
      await teardown(s);
    }
  });

  test("a vCPU's read of a write-protected page maps it read-only: its write then reaches userfaultfd WP", async () => {
    const s = setup();
    try {
      const length = 1 << 20;
      const hva = s.t.host.mmap({
        length,
        prot: PROT_READ | PROT_WRITE,
        flags: MAP_PRIVATE | MAP_ANONYMOUS,
      });
      const gpa = ALIAS + 2 * MEM;
      s.t.vm.setUserMemoryRegion2({
        slot: 2,
        flags: 0,
        guestPhysAddr: gpa,
        memorySize: length,
        userspaceAddr: hva,
      });
      const u = s.t.host.userfaultfds;
      u.register(s.uffd, {
        start: hva,
        len: length,
        mode: UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
      });
      u.copy(s.uffd, { dst: hva, src: pageOf(5n), len: PAGE_SIZE, mode: UFFDIO_COPY_MODE_WP });
      // The same vCPU reads the page (a read fault) and then writes it.
      const vcpu = runVcpu(s, gpa, gpa + 8);
      const msg = await nextMessage(s);
      assert.deepEqual(
        [msg.address, msg.flags],
        [hva, UFFD_PAGEFAULT_FLAG_WRITE | UFFD_PAGEFAULT_FLAG_WP],
      );
      await sleep(50);
      assert.equal(vcpu.settled(), false, "the write waits for the page to be unprotected");
      u.writeProtect(s.uffd, { start: hva, len: PAGE_SIZE, mode: 0 });
      const reply = await withTimeout(vcpu.reply, 10_000, "the vCPU");
      assert.equal(reply.stop, "done", reply.message);
      assert.equal(reply.a0, 5n);
      assert.deepEqual([...s.t.host.copyFromUser(hva + 8, 2)], [0x33, 0x33]);
    } finally {
      await teardown(s);
    }
  });
});
