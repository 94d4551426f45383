import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  TASK_SIZE,
} from "../../src/host/address-space.js";
import { PAGE_SIZE } from "../../src/host/host-memory.js";
import {
  EXIT_MMIO,
  MEM_GUEST_MEMFD,
  MEM_LOG_DIRTY_PAGES,
  MEM_READONLY,
  MEMORY_EXIT_FLAG_USERFAULT,
  MEMORY_EXIT_FLAG_WRITE,
} from "../../src/kvm/uapi.js";
import type { UserMemoryRegion2 } from "../../src/kvm/vm.js";
import {
  ACCESS_LOOP,
  assertErrno,
  command,
  createTestVm,
  guestAccess,
  expectMemoryFault,
  RAM_BASE,
  readGuest,
  runGuest,
  runToUcall,
  type TestVm,
  UCALL,
} from "./support.js";

/** Slot 1, above the guest_memfd RAM of slot 0 (which holds the code). */
const SLOT1_GPA = RAM_BASE + 0x1000_0000;
const SLOT1_BYTES = 1 << 20;

function anonymous(t: TestVm, length = SLOT1_BYTES): number {
  return t.host.mmap({ length, prot: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS });
}

function setup(): TestVm {
  const t = createTestVm(ACCESS_LOOP);
  assert.equal(runToUcall(t.vcpu), 0n);
  return t;
}

describe("memslots", () => {
  test("slot ids, flags and alignment are checked (EINVAL)", () => {
    const t = setup();
    const hva = anonymous(t);
    const region = (changes: Partial<UserMemoryRegion2>): UserMemoryRegion2 => ({
      slot: 1,
      flags: 0,
      guestPhysAddr: SLOT1_GPA,
      memorySize: SLOT1_BYTES,
      userspaceAddr: hva,
      ...changes,
    });
    const set = (changes: Partial<UserMemoryRegion2>) => t.vm.setUserMemoryRegion2(region(changes));
    for (const slot of [-1, 32, 1.5, NaN, 0x10001, 1 << 16, 2 ** 32, 2 ** 32 + 1])
      assertErrno(() => set({ slot }), "EINVAL");
    // A slot id past 32 bits is no alias of a small one: slot 0 is not deleted.
    assertErrno(() => set({ slot: 2 ** 32, memorySize: 0 }), "EINVAL");
    assert.equal(readGuest(t.vm, RAM_BASE, 1).length, 1);
    for (const flags of [1 << 4, 1 << 10, -1, 0.5, 2 ** 31, 2 ** 32, 2 ** 32 + MEM_READONLY]) {
      assertErrno(() => set({ flags }), "EINVAL");
    }
    assertErrno(
      () => set({ flags: MEM_READONLY | MEM_GUEST_MEMFD, guestMemfd: t.gmemFd }),
      "EINVAL",
    );
    for (const guestPhysAddr of [SLOT1_GPA + 1, SLOT1_GPA + 512, -PAGE_SIZE]) {
      assertErrno(() => set({ guestPhysAddr }), "EINVAL");
    }
    for (const memorySize of [100, PAGE_SIZE + 8, -PAGE_SIZE]) {
      assertErrno(() => set({ memorySize }), "EINVAL");
    }
    assertErrno(() => set({ userspaceAddr: hva + 8 }), "EINVAL");
    assertErrno(() => set({ userspaceAddr: -PAGE_SIZE }), "EINVAL");
    for (const userspaceAddr of [TASK_SIZE - PAGE_SIZE, TASK_SIZE, 2 ** 52]) {
      assertErrno(() => set({ userspaceAddr }), "EINVAL");
    }
    assertErrno(
      () => set({ guestPhysAddr: 512 * 2 ** 30 - PAGE_SIZE, memorySize: 2 * PAGE_SIZE }),
      "EINVAL",
    );
    const gmem = t.vm.createGuestMemfd({ size: 4 * SLOT1_BYTES, flags: 0 });
    assertErrno(
      () => set({ flags: MEM_GUEST_MEMFD, guestMemfd: gmem, guestMemfdOffset: 100 }),
      "EINVAL",
    );
    // Nothing of the failed calls remains: slot 1 can be made now.
    set({});
    assert.equal(guestAccess(t, SLOT1_GPA), 0n);
    // Without MEM_GUEST_MEMFD the guest_memfd fields are not looked at, as in KVM.
    set({ memorySize: 0 });
    set({ guestMemfd: 999, guestMemfdOffset: 100 });
    assert.equal(guestAccess(t, SLOT1_GPA), 0n);
  });

  test("guest_memfd bindings: past the end, already bound, another VM's file, bad descriptors", () => {
    const t = setup();
    const size = 4 * SLOT1_BYTES;
    const gmem = t.vm.createGuestMemfd({ size, flags: 0 });
    const bind = (slot: number, gpa: number, offset: number, fd = gmem, bytes = SLOT1_BYTES) =>
      t.vm.setUserMemoryRegion2({
        slot,
        flags: MEM_GUEST_MEMFD,
        guestPhysAddr: gpa,
        memorySize: bytes,
        userspaceAddr: 0,
        guestMemfd: fd,
        guestMemfdOffset: offset,
      });
    assertErrno(() => bind(1, SLOT1_GPA, size - SLOT1_BYTES + PAGE_SIZE), "EINVAL");
    assertErrno(() => bind(1, SLOT1_GPA, 0, gmem, size + PAGE_SIZE), "EINVAL");
    bind(1, SLOT1_GPA, SLOT1_BYTES);
    // The same file pages for another slot: EINVAL, even overlapping by one page.
    assertErrno(() => bind(2, SLOT1_GPA + size, 2 * SLOT1_BYTES - PAGE_SIZE), "EINVAL");
    assertErrno(() => bind(2, SLOT1_GPA + size, 0, gmem, SLOT1_BYTES + PAGE_SIZE), "EINVAL");
    // Next to it is fine: one file, two slots.
    bind(2, SLOT1_GPA + size, 2 * SLOT1_BYTES);
    bind(3, SLOT1_GPA + 2 * size, 0);
    const other = t.kvm.createVm();
    const foreign = other.createGuestMemfd({ size, flags: 0 });
    assertErrno(() => bind(4, SLOT1_GPA + 3 * size, 0, foreign), "EINVAL");
    for (const fd of [999, -1, t.host.eventfd()])
      assertErrno(() => bind(4, SLOT1_GPA + 3 * size, 0, fd), "EBADF");
    const closed = t.vm.createGuestMemfd({ size, flags: 0 });
    t.host.close(closed);
    assertErrno(() => bind(4, SLOT1_GPA + 3 * size, 0, closed), "EBADF");
    // Deleting slot 1 frees its file pages for another slot.
    t.vm.setUserMemoryRegion2({
      slot: 1,
      flags: 0,
      guestPhysAddr: 0,
      memorySize: 0,
      userspaceAddr: 0,
    });
    bind(4, SLOT1_GPA + 3 * size, SLOT1_BYTES);
    // The file is guest memory: slots 2 and 4 see their own pages of it.
    t.host.pageCacheOf(gmem).install(SLOT1_BYTES / PAGE_SIZE, new Uint8Array(PAGE_SIZE).fill(4));
    t.host
      .pageCacheOf(gmem)
      .install((2 * SLOT1_BYTES) / PAGE_SIZE, new Uint8Array(PAGE_SIZE).fill(2));
    assert.equal(guestAccess(t, SLOT1_GPA + 3 * size), 0x0404_0404_0404_0404n);
    assert.equal(guestAccess(t, SLOT1_GPA + size), 0x0202_0202_0202_0202n);
  });

  test("overlapping slots are EEXIST; deleting a missing slot is EINVAL; all 32 slots can be used", () => {
    const t = setup();
    const hva = anonymous(t, 64 * SLOT1_BYTES);
    const set = (slot: number, gpa: number, bytes: number, flags = 0) =>
      t.vm.setUserMemoryRegion2({
        slot,
        flags,
        guestPhysAddr: gpa,
        memorySize: bytes,
        userspaceAddr: bytes === 0 ? 0 : hva,
      });
    set(1, SLOT1_GPA, SLOT1_BYTES);
    assertErrno(() => set(2, SLOT1_GPA + SLOT1_BYTES - PAGE_SIZE, SLOT1_BYTES), "EEXIST");
    assertErrno(() => set(2, SLOT1_GPA - PAGE_SIZE, 2 * PAGE_SIZE), "EEXIST");
    assertErrno(() => set(2, SLOT1_GPA - PAGE_SIZE, 4 * SLOT1_BYTES), "EEXIST");
    assertErrno(() => set(2, RAM_BASE + PAGE_SIZE, PAGE_SIZE), "EEXIST");
    set(2, SLOT1_GPA + SLOT1_BYTES, SLOT1_BYTES);
    set(2, 0, 0);
    assertErrno(() => set(2, 0, 0), "EINVAL");
    assertErrno(() => set(31, 0, 0), "EINVAL");
    for (let slot = 2; slot < 32; slot++) set(slot, SLOT1_GPA + slot * SLOT1_BYTES, SLOT1_BYTES);
    assert.equal(guestAccess(t, SLOT1_GPA + 31 * SLOT1_BYTES, 31n), 31n);
  });

  test("an existing slot may only change its flags", () => {
    const t = setup();
    const hva = anonymous(t, 2 * SLOT1_BYTES);
    const region: UserMemoryRegion2 = {
      slot: 1,
      flags: 0,
      guestPhysAddr: SLOT1_GPA,
      memorySize: SLOT1_BYTES,
      userspaceAddr: hva,
    };
    t.vm.setUserMemoryRegion2(region);
    assert.equal(guestAccess(t, SLOT1_GPA + 8, 5n), 5n);
    for (const changes of [
      { guestPhysAddr: SLOT1_GPA + SLOT1_BYTES },
      { memorySize: 2 * SLOT1_BYTES },
      { userspaceAddr: hva + SLOT1_BYTES },
      { flags: MEM_READONLY },
      { flags: MEM_GUEST_MEMFD, guestMemfd: t.gmemFd },
    ]) {
      assertErrno(() => t.vm.setUserMemoryRegion2({ ...region, ...changes }), "EINVAL");
    }
    t.vm.setUserMemoryRegion2({ ...region, flags: MEM_LOG_DIRTY_PAGES });
    t.vm.setUserMemoryRegion2(region);
    assert.equal(guestAccess(t, SLOT1_GPA + 8), 5n, "the slot's memory is untouched");
    // Slot 0 (guest_memfd): its file and offset cannot change either.
    const slot0: UserMemoryRegion2 = {
      slot: 0,
      flags: MEM_GUEST_MEMFD,
      guestPhysAddr: RAM_BASE,
      memorySize: 16 << 20,
      userspaceAddr: 0,
      guestMemfd: t.gmemFd,
      guestMemfdOffset: 0,
    };
    const gmem = t.vm.createGuestMemfd({ size: 32 << 20, flags: 0 });
    assertErrno(() => t.vm.setUserMemoryRegion2({ ...slot0, guestMemfd: gmem }), "EINVAL");
    assertErrno(
      () => t.vm.setUserMemoryRegion2({ ...slot0, guestMemfdOffset: PAGE_SIZE }),
      "EINVAL",
    );
    t.vm.setUserMemoryRegion2({ ...slot0, flags: MEM_GUEST_MEMFD | MEM_LOG_DIRTY_PAGES });
    assert.equal(guestAccess(t, SLOT1_GPA + 8), 5n);
  });

  test("a traditional slot on an anonymous mapping is the VMM's memory", () => {
    const t = setup();
    const hva = anonymous(t);
    t.vm.setUserMemoryRegion2({
      slot: 1,
      flags: 0,
      guestPhysAddr: SLOT1_GPA,
      memorySize: SLOT1_BYTES,
      userspaceAddr: hva,
    });
    assert.equal(guestAccess(t, SLOT1_GPA + 0x2008, 0x1234n), 0x1234n);
    assert.deepEqual([...t.host.copyFromUser(hva + 0x2008, 2)], [0x34, 0x12]);
    t.host.copyToUser(hva + 0x3000, new Uint8Array([0x78, 0x56]));
    assert.equal(guestAccess(t, SLOT1_GPA + 0x3000), 0x5678n);
    assert.equal(t.host.mm.residentFrames(hva), 2);
  });

  test("a traditional slot on a shared memfd mapping is the file's pages", () => {
    const t = setup();
    const fd = t.host.memfdCreate("guest", SLOT1_BYTES);
    const hva = t.host.mmap({
      length: SLOT1_BYTES,
      prot: PROT_READ | PROT_WRITE,
      flags: MAP_SHARED,
      fd,
    });
    t.vm.setUserMemoryRegion2({
      slot: 1,
      flags: 0,
      guestPhysAddr: SLOT1_GPA,
      memorySize: SLOT1_BYTES,
      userspaceAddr: hva,
    });
    assert.equal(guestAccess(t, SLOT1_GPA + 0x5010, 0xfeedn), 0xfeedn);
    assert.deepEqual([...t.host.memfds.pread(fd, 2, 0x5010)], [0xed, 0xfe]);
    // pwrite into the page the guest has mapped: the guest sees it at once.
    t.host.memfds.pwrite(fd, new Uint8Array([0x11, 0x22]), 0x5010);
    assert.equal(guestAccess(t, SLOT1_GPA + 0x5010), 0x2211n);
    t.host.memfds.pwrite(fd, new Uint8Array([0x33]), 0x9000);
    assert.equal(guestAccess(t, SLOT1_GPA + 0x9000), 0x33n);
  });

  test("deleting a slot unmaps its pages from the vCPU: the next access is MMIO", () => {
    const t = setup();
    const hva = anonymous(t);
    const region = {
      slot: 1,
      flags: 0,
      guestPhysAddr: SLOT1_GPA,
      memorySize: SLOT1_BYTES,
      userspaceAddr: hva,
    };
    t.vm.setUserMemoryRegion2(region);
    assert.equal(guestAccess(t, SLOT1_GPA + 16, 9n), 9n);
    command(t, SLOT1_GPA + 16);
    assert.equal(runToUcall(t.vcpu), 9n, "mapped");
    t.vm.setUserMemoryRegion2({ ...region, memorySize: 0 });
    runGuest(t.vcpu);
    assert.equal(t.vcpu.run.exitReason, EXIT_MMIO);
    assert.deepEqual(
      [t.vcpu.run.mmio.physAddr, t.vcpu.run.mmio.len, t.vcpu.run.mmio.isWrite],
      [SLOT1_GPA + 16, 8, false],
    );
    t.vcpu.run.mmio.value = 0xabcn;
    assert.equal(runToUcall(t.vcpu), 0xabcn, "the load completes with the VMM's value");
    // Back again: the VMM's memory kept its contents.
    t.vm.setUserMemoryRegion2(region);
    assert.equal(guestAccess(t, SLOT1_GPA + 16), 9n);
  });

  test("a READONLY slot: reads work, a guest write exits as MMIO and changes nothing", () => {
    const t = setup();
    const hva = anonymous(t);
    t.host.copyToUser(hva + 0x100, new Uint8Array([0x42]));
    t.vm.setUserMemoryRegion2({
      slot: 1,
      flags: MEM_READONLY,
      guestPhysAddr: SLOT1_GPA,
      memorySize: SLOT1_BYTES,
      userspaceAddr: hva,
    });
    assert.equal(guestAccess(t, SLOT1_GPA + 0x100), 0x42n);
    command(t, SLOT1_GPA + 0x100, 0x77n);
    runGuest(t.vcpu);
    assert.equal(t.vcpu.run.exitReason, EXIT_MMIO);
    const mmio = t.vcpu.run.mmio;
    assert.deepEqual(
      [mmio.physAddr, mmio.len, mmio.isWrite, mmio.value],
      [SLOT1_GPA + 0x100, 8, true, 0x77n],
    );
    // The store is done (the VMM dropped it); the load that follows reads memory.
    assert.equal(runToUcall(t.vcpu), 0x42n);
    assert.deepEqual([...t.host.copyFromUser(hva + 0x100, 1)], [0x42]);
    // A never-touched page: a write first exits too, then reads map it.
    command(t, SLOT1_GPA + 0x8000, 1n);
    runGuest(t.vcpu);
    assert.equal(t.vcpu.run.exitReason, EXIT_MMIO);
    assert.equal(runToUcall(t.vcpu), 0n);
    assert.deepEqual(readGuest(t.vm, SLOT1_GPA + 0x8000, 1), new Uint8Array([0]));
  });

  test("a traditional slot whose VMM mapping is gone: the vCPU exits with a MEMORY_FAULT and EFAULT", () => {
    const t = setup();
    const hva = anonymous(t);
    t.vm.setUserMemoryRegion2({
      slot: 1,
      flags: 0,
      guestPhysAddr: SLOT1_GPA,
      memorySize: SLOT1_BYTES,
      userspaceAddr: hva,
    });
    assert.equal(guestAccess(t, SLOT1_GPA + 8, 3n), 3n);
    t.host.munmap(hva, SLOT1_BYTES);
    command(t, SLOT1_GPA + 8, 4n);
    const fault = expectMemoryFault(t.vcpu);
    assert.deepEqual(fault, { flags: MEMORY_EXIT_FLAG_WRITE, gpa: SLOT1_GPA, size: PAGE_SIZE });
    assert.equal(fault.flags & MEMORY_EXIT_FLAG_USERFAULT, 0);
    // The VMM maps memory there again: the access completes.
    const again = anonymous(t);
    assert.equal(again, hva, "the same address is reused");
    assert.equal(runToUcall(t.vcpu), 4n);
  });

  test("guest memory is sparse: a 64 GiB guest_memfd slot costs only the pages the guest touches", () => {
    const base = 0x10_0000_0000;
    const spread = 8;
    const t = createTestVm(
      `
_start:
        li      t0, ${base}
        li      t1, ${8 * 2 ** 30 + PAGE_SIZE}
        li      t2, ${spread}
1:      sd      t2, 0(t0)
        add     t0, t0, t1
        addi    t2, t2, -1
        bnez    t2, 1b
        ${UCALL}
`,
      { host: { arenaBytes: 256 << 20 } },
    );
    const memory = t.host.memory;
    const before = memory.framesInUse;
    const gmem = t.vm.createGuestMemfd({ size: 64 * 2 ** 30, flags: 0 });
    t.vm.setUserMemoryRegion2({
      slot: 1,
      flags: MEM_GUEST_MEMFD,
      guestPhysAddr: base,
      memorySize: 64 * 2 ** 30,
      userspaceAddr: 0,
      guestMemfd: gmem,
      guestMemfdOffset: 0,
    });
    assert.equal(memory.framesInUse, before, "creating the memory costs no frames");
    runToUcall(t.vcpu);
    assert.equal(t.host.pageCacheOf(gmem).framesPresent, spread);
    const used = memory.framesInUse - before;
    // The pages, their stage-2 tables (one per GiB and per 2 MiB touched), and the code's page.
    assert.ok(used >= spread && used <= 3 * spread + 4, `${used} frames for ${spread} pages`);
    for (let i = 0; i < spread; i++) {
      const gpa = base + i * (8 * 2 ** 30 + PAGE_SIZE);
      assert.equal(readGuest(t.vm, gpa, 1)[0], spread - i);
    }
  });
});
