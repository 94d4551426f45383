import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PAGE_SIZE } from "../../src/host/host-memory.js";
import { GFN_LIMIT } from "../../src/kvm/gfn-bitmap.js";
import {
  CAP_USERFAULT,
  MEM_GUEST_MEMFD,
  MEMORY_ATTRIBUTE_PRIVATE,
  MEMORY_ATTRIBUTE_USERFAULT,
  MEMORY_EXIT_FLAG_PRIVATE,
  MEMORY_EXIT_FLAG_USERFAULT,
  MEMORY_EXIT_FLAG_WRITE,
  USERFAULT_DISABLE,
} from "../../src/kvm/uapi.js";
import { UserfaultError } from "../../src/kvm/vm.js";
import {
  ACCESS_LOOP,
  assertErrno,
  command,
  createTestVm,
  enableUserfault,
  eventfdSignalled,
  expectMemoryFault,
  guestAccess,
  RAM_BASE,
  readGuest,
  runToUcall,
  setUserfault,
  sleep,
  withTimeout,
} from "./support.js";
import { KvmWorkers } from "./workers.js";

/**
 * KVM_SET_MEMORY_ATTRIBUTES (exact sets) and faultline's delta form: the
 * attributes live in per-gfn bitmaps over the whole guest-physical space,
 * whether or not a memslot is there.
 */

const U = MEMORY_ATTRIBUTE_USERFAULT;
const P = MEMORY_ATTRIBUTE_PRIVATE;
const IDLE = `_start: j _start`;

describe("memory attributes", () => {
  test("attribute calls reject bad ranges, flags and attributes", () => {
    const t = createTestVm(IDLE);
    const set = (address: number, size: number, attributes: number, flags = 0) =>
      t.vm.setMemoryAttributes({ address, size, attributes, flags });
    const delta = (address: number, size: number, setBits: number, clear: number) =>
      t.vm.setMemoryAttributesDelta({ address, size, set: setBits, clear });
    assertErrno(() => set(RAM_BASE, PAGE_SIZE, U), "EINVAL");
    assertErrno(() => delta(RAM_BASE, PAGE_SIZE, U, 0), "EINVAL");
    assertErrno(() => delta(RAM_BASE, PAGE_SIZE, 0, U), "EINVAL");
    enableUserfault(t);
    for (const [address, size] of [
      [RAM_BASE + 1, PAGE_SIZE],
      [RAM_BASE, 100],
      [RAM_BASE, 0],
      [RAM_BASE, -PAGE_SIZE],
      [-PAGE_SIZE, 2 * PAGE_SIZE],
      [(GFN_LIMIT - 1) * PAGE_SIZE, 2 * PAGE_SIZE],
      [RAM_BASE, 2 ** 60],
      [RAM_BASE, 1.5 * PAGE_SIZE],
    ]) {
      assertErrno(() => set(address, size, 0), "EINVAL");
      assertErrno(() => delta(address, size, U, 0), "EINVAL");
    }
    assertErrno(() => set(RAM_BASE, PAGE_SIZE, 1 << 7), "EINVAL");
    assertErrno(() => set(RAM_BASE, PAGE_SIZE, -1), "EINVAL");
    assertErrno(() => set(RAM_BASE, PAGE_SIZE, U + 2 ** 32), "EINVAL");
    assertErrno(() => delta(RAM_BASE, PAGE_SIZE, U + 2 ** 32, 0), "EINVAL");
    assertErrno(() => delta(RAM_BASE, PAGE_SIZE, 0, U + 2 ** 35), "EINVAL");
    assertErrno(() => set(RAM_BASE, PAGE_SIZE, 0, 1), "EINVAL");
    assertErrno(() => delta(RAM_BASE, PAGE_SIZE, 1 << 2, 0), "EINVAL");
    assertErrno(() => delta(RAM_BASE, PAGE_SIZE, U, U), "EINVAL");
    assert.equal(t.vm.memoryAttributes(RAM_BASE), 0, "failed calls changed nothing");
    set((GFN_LIMIT - 1) * PAGE_SIZE, PAGE_SIZE, U);
    assert.equal(t.vm.memoryAttributes((GFN_LIMIT - 1) * PAGE_SIZE), U, "the last gfn");
  });

  test("the exact-set call replaces the set; the delta call keeps what it is not given", () => {
    const t = createTestVm(IDLE);
    enableUserfault(t);
    const set = (address: number, size: number, attributes: number) =>
      t.vm.setMemoryAttributes({ address, size, attributes, flags: 0 });
    set(RAM_BASE, 4 * PAGE_SIZE, P | U);
    t.vm.setMemoryAttributesDelta({
      address: RAM_BASE + PAGE_SIZE,
      size: PAGE_SIZE,
      set: 0,
      clear: U,
    });
    assert.equal(t.vm.memoryAttributes(RAM_BASE + PAGE_SIZE), P, "clearing USERFAULT kept PRIVATE");
    t.vm.setMemoryAttributesDelta({
      address: RAM_BASE + 2 * PAGE_SIZE,
      size: PAGE_SIZE,
      set: 0,
      clear: P,
    });
    assert.equal(t.vm.memoryAttributes(RAM_BASE + 2 * PAGE_SIZE), U);
    assert.equal(t.vm.memoryAttributes(RAM_BASE), P | U);
    set(RAM_BASE, PAGE_SIZE, U);
    assert.equal(t.vm.memoryAttributes(RAM_BASE), U, "the exact set dropped PRIVATE");
    set(RAM_BASE + 3 * PAGE_SIZE, PAGE_SIZE, 0);
    assert.deepEqual(
      [0, 1, 2, 3, 4].map((i) => t.vm.memoryAttributes(RAM_BASE + i * PAGE_SIZE)),
      [U, P, U, 0, 0],
    );
    // Large ranges are bit operations: 64 GiB set and cleared quickly.
    const start = performance.now();
    t.vm.setMemoryAttributesDelta({ address: 2 ** 36, size: 2 ** 36, set: U, clear: 0 });
    assert.equal(t.vm.memoryAttributes(2 ** 37 - PAGE_SIZE), U);
    t.vm.setMemoryAttributesDelta({ address: 2 ** 36, size: 2 ** 36, set: 0, clear: U });
    assert.equal(t.vm.memoryAttributes(2 ** 36), 0);
    assert.ok(performance.now() - start < 5000);
  });

  test("attributes of gfns outside any memslot persist and apply once a slot is there", () => {
    const t = createTestVm(ACCESS_LOOP);
    enableUserfault(t);
    assert.equal(runToUcall(t.vcpu), 0n);
    const gpa = RAM_BASE + 0x4000_0000;
    t.vm.setMemoryAttributes({ address: gpa, size: 2 * PAGE_SIZE, attributes: U | P, flags: 0 });
    assert.equal(t.vm.memoryAttributes(gpa + PAGE_SIZE), U | P);
    const gmem = t.vm.createGuestMemfd({ size: 1 << 20, flags: 0 });
    t.vm.setUserMemoryRegion2({
      slot: 1,
      flags: MEM_GUEST_MEMFD,
      guestPhysAddr: gpa,
      memorySize: 1 << 20,
      userspaceAddr: 0,
      guestMemfd: gmem,
      guestMemfdOffset: 0,
    });
    assert.throws(() => readGuest(t.vm, gpa, 8), UserfaultError);
    command(t, gpa + PAGE_SIZE + 8, 6n);
    assert.deepEqual(expectMemoryFault(t.vcpu), {
      flags: MEMORY_EXIT_FLAG_USERFAULT | MEMORY_EXIT_FLAG_WRITE | MEMORY_EXIT_FLAG_PRIVATE,
      gpa: gpa + PAGE_SIZE,
      size: PAGE_SIZE,
    });
    // Deleting the slot keeps them too.
    setUserfault(t.vm, gpa + PAGE_SIZE, false);
    assert.equal(runToUcall(t.vcpu), 6n);
    t.vm.setUserMemoryRegion2({
      slot: 1,
      flags: 0,
      guestPhysAddr: 0,
      memorySize: 0,
      userspaceAddr: 0,
    });
    assert.deepEqual(
      [t.vm.memoryAttributes(gpa), t.vm.memoryAttributes(gpa + PAGE_SIZE)],
      [U | P, P],
    );
  });

  test("clearing USERFAULT wakes only the sleepers of the pages it releases", async () => {
    const t = createTestVm(IDLE);
    const eventfd = enableUserfault(t);
    const workers = new KvmWorkers(t);
    try {
      // Pages 64 apart share a wait word: a release of one must not complete the other.
      const pages = [
        RAM_BASE + 0x10_0000,
        RAM_BASE + 0x10_0000 + 64 * PAGE_SIZE,
        RAM_BASE + 0x20_0000,
      ];
      for (const gpa of pages) setUserfault(t.vm, gpa, true);
      const done: boolean[] = pages.map(() => false);
      const replies = pages.map((gpa, i) =>
        workers.access({ gpa, length: 8, write: false, atomic: false }).reply.then((reply) => {
          done[i] = true;
          return reply;
        }),
      );
      let signals = 0n;
      while (signals < 3n) signals += await eventfdSignalled(t.host, eventfd);
      setUserfault(t.vm, pages[0], false);
      assert.ok((await withTimeout(replies[0], 5000, "the released accessor")).ok);
      await sleep(100);
      assert.deepEqual(done, [true, false, false], "the other sleepers still sleep");
      // Clearing PRIVATE, or USERFAULT on a neighbouring page, releases nothing.
      t.vm.setMemoryAttributesDelta({ address: pages[1], size: PAGE_SIZE, set: 0, clear: P });
      setUserfault(t.vm, pages[1] + PAGE_SIZE, false);
      await sleep(50);
      assert.deepEqual(done, [true, false, false]);
      // The exact-set call releases too, when it leaves USERFAULT out.
      t.vm.setMemoryAttributes({ address: pages[1], size: PAGE_SIZE, attributes: P, flags: 0 });
      assert.ok((await withTimeout(replies[1], 5000, "the second accessor")).ok);
      await sleep(50);
      assert.deepEqual(done, [true, true, false]);
      setUserfault(t.vm, pages[2], false);
      assert.ok((await withTimeout(replies[2], 5000, "the third accessor")).ok);
    } finally {
      await workers.close();
    }
  });

  test("a page whose bit survived a disable faults again once userfault is enabled again", () => {
    const t = createTestVm(ACCESS_LOOP);
    const data = RAM_BASE + 0x10_0000;
    assert.equal(runToUcall(t.vcpu), 0n);
    enableUserfault(t);
    setUserfault(t.vm, data, true);
    t.vm.enableCap({ cap: CAP_USERFAULT, flags: 0, args: [USERFAULT_DISABLE, 0] });
    assert.equal(guestAccess(t, data, 3n), 3n, "ordinary memory while disabled: now mapped");
    assert.equal(t.vm.memoryAttributes(data), U);
    enableUserfault(t);
    command(t, data);
    assert.equal(expectMemoryFault(t.vcpu).gpa, data);
    setUserfault(t.vm, data, false);
    assert.equal(runToUcall(t.vcpu), 3n);
  });
});
