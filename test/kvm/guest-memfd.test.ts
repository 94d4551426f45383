import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MAP_SHARED, PROT_READ, PROT_WRITE } from "../../src/host/address-space.js";
import { PAGE_SIZE } from "../../src/host/host-memory.js";
import { Memslot } from "../../src/kvm/memslots.js";
import {
  GUEST_MEMFD_FLAG_HUGE_1G,
  GUEST_MEMFD_FLAG_HUGE_2M,
  GUEST_MEMFD_FLAG_MMAP,
  MEM_GUEST_MEMFD,
  MEMORY_ATTRIBUTE_PRIVATE,
  MEMORY_EXIT_FLAG_PRIVATE,
  MEMORY_EXIT_FLAG_USERFAULT,
  MEMORY_EXIT_FLAG_WRITE,
} from "../../src/kvm/uapi.js";
import type { Vm } from "../../src/kvm/vm.js";
import {
  assertErrno,
  createTestVm,
  expectMemoryFault,
  pageOf,
  RAM_BASE,
  readGuest,
  runToUcall,
  symbol,
  type TestVm,
  UCALL,
} from "./support.js";

/** Reads `data` and reports it; then writes `data + 8` and reports again; loops. */
const READ_THEN_WRITE = `
_start:
        la      t0, data
1:      ld      t1, 0(t0)
        mv      a0, t1
        ${UCALL}
        sd      t1, 8(t0)
        mv      a0, t1
        ${UCALL}
        j       1b
        .data
        .balign 4096
data:   .dword  7
`;

const IDLE = `_start: j _start`;

function slotZero(vm: Vm): Memslot {
  const slot = new Memslot();
  assert.ok(vm.memslots.get(0, slot));
  return slot;
}

/** Poison the guest_memfd page behind `gpa` (slot 0), as a memory failure would. */
function poison(t: TestVm, gpa: number): void {
  const slot = slotZero(t.vm);
  t.vm.backing.guestMemfd(slot.gmem).poisonPage((gpa - RAM_BASE) / PAGE_SIZE);
}

describe("guest_memfd", () => {
  test("createGuestMemfd rejects bad sizes and flags", () => {
    const { vm } = createTestVm(IDLE);
    const create = (size: number, flags = 0) => vm.createGuestMemfd({ size, flags });
    for (const size of [0, -PAGE_SIZE, 100, PAGE_SIZE + 1, 1.5, NaN]) {
      assertErrno(() => create(size), "EINVAL");
    }
    assertErrno(() => create(PAGE_SIZE, 1 << 5), "EINVAL");
    assertErrno(() => create(PAGE_SIZE, -1), "EINVAL");
    assertErrno(() => create(PAGE_SIZE, 2 ** 32), "EINVAL");
    assertErrno(() => create(PAGE_SIZE, 2 ** 32 + GUEST_MEMFD_FLAG_MMAP), "EINVAL");
    assertErrno(
      () => create(2 << 30, GUEST_MEMFD_FLAG_HUGE_2M | GUEST_MEMFD_FLAG_HUGE_1G),
      "EINVAL",
    );
    assertErrno(() => create(3 << 20, GUEST_MEMFD_FLAG_HUGE_2M), "EINVAL");
    assertErrno(() => create(PAGE_SIZE, GUEST_MEMFD_FLAG_HUGE_2M), "EINVAL");
    assertErrno(() => create(2 << 20, GUEST_MEMFD_FLAG_HUGE_1G), "EINVAL");
    assert.ok(create(4 << 20, GUEST_MEMFD_FLAG_HUGE_2M | GUEST_MEMFD_FLAG_MMAP) > 0);
    assert.ok(create(1 << 30, GUEST_MEMFD_FLAG_HUGE_1G) > 0);
  });

  test("the VMM can map and fill a guest_memfd only with GUEST_MEMFD_FLAG_MMAP", () => {
    const t = createTestVm(READ_THEN_WRITE);
    const mmap = (fd: number) =>
      t.host.mmap({ length: 16 << 20, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED, fd });
    assertErrno(() => mmap(t.gmemFd), "ENODEV");
    const fd = t.vm.createGuestMemfd({ size: 16 << 20, flags: GUEST_MEMFD_FLAG_MMAP });
    const hva = mmap(fd);
    // Fill it as a VMM populates memory, then make it the guest's RAM.
    for (const gpa of [t.entry, symbol(t, "data")]) {
      const page = gpa - (gpa % PAGE_SIZE);
      t.host.copyToUser(hva + (page - RAM_BASE), readGuest(t.vm, page, PAGE_SIZE));
    }
    t.vm.setUserMemoryRegion2({
      slot: 0,
      flags: 0,
      guestPhysAddr: 0,
      memorySize: 0,
      userspaceAddr: 0,
    });
    t.vm.setUserMemoryRegion2({
      slot: 0,
      flags: MEM_GUEST_MEMFD,
      guestPhysAddr: RAM_BASE,
      memorySize: 16 << 20,
      userspaceAddr: hva,
      guestMemfd: fd,
      guestMemfdOffset: 0,
    });
    const data = symbol(t, "data");
    t.host.copyToUser(hva + (data - RAM_BASE), new Uint8Array([0x2a]));
    assert.equal(runToUcall(t.vcpu), 0x2an);
    assert.equal(runToUcall(t.vcpu), 0x2an);
    // The guest's store is in the file, seen through the VMM's mapping.
    assert.deepEqual([...t.host.copyFromUser(hva + (data - RAM_BASE) + 8, 2)], [0x2a, 0]);
  });

  test("HUGE_2M backing maps 2 MiB at stage 2 when userfault is off", () => {
    const t = createTestVm(READ_THEN_WRITE, {
      memBytes: 8 << 20,
      gmemFlags: GUEST_MEMFD_FLAG_HUGE_2M,
    });
    assert.equal(runToUcall(t.vcpu), 7n);
    assert.equal(runToUcall(t.vcpu), 7n);
    assert.deepEqual(t.vm.stage2.mappingCounts(), [0, 1, 0], "code and data share one 2 MiB leaf");
    assert.equal(t.host.pageCacheOf(t.gmemFd).framesPresent, 512, "one whole huge page");
  });

  test("HUGE_1G backing maps 1 GiB at stage 2 when userfault is off", () => {
    const t = createTestVm(READ_THEN_WRITE, {
      memBytes: 1 << 30,
      gmemFlags: GUEST_MEMFD_FLAG_HUGE_1G,
    });
    assert.equal(runToUcall(t.vcpu), 7n);
    assert.equal(runToUcall(t.vcpu), 7n);
    assert.deepEqual(t.vm.stage2.mappingCounts(), [0, 0, 1]);
  });

  test("huge backing bound at a gpa not aligned like the file maps 4 KiB", () => {
    const t = createTestVm(READ_THEN_WRITE);
    const fd = t.vm.createGuestMemfd({ size: 4 << 20, flags: GUEST_MEMFD_FLAG_HUGE_2M });
    const gpa = RAM_BASE + (64 << 20) + PAGE_SIZE * 16;
    t.vm.setUserMemoryRegion2({
      slot: 1,
      flags: MEM_GUEST_MEMFD,
      guestPhysAddr: gpa,
      memorySize: 2 << 20,
      userspaceAddr: 0,
      guestMemfd: fd,
      guestMemfdOffset: 2 << 20,
    });
    assert.equal(runToUcall(t.vcpu), 7n);
    const counts = t.vm.stage2.mappingCounts();
    t.host.pageCacheOf(fd).install(512 + 3, pageOf(0xabn));
    t.vcpu.hart.setRegister(5, BigInt(gpa + 3 * PAGE_SIZE));
    // Point the guest's load at slot 1: t0, and the pc back to \`ld a0, 0(t0)\` after \`la\`.
    t.vcpu.hart.pc = t.entry + 8;
    assert.equal(runToUcall(t.vcpu), 0xabn);
    const after = t.vm.stage2.mappingCounts();
    assert.deepEqual([after[0] - counts[0], after[1] - counts[1]], [1, 0], "a 4 KiB mapping");
  });

  test("a poisoned page makes run() fail with EHWPOISON and a MEMORY_FAULT exit", () => {
    const t = createTestVm(READ_THEN_WRITE);
    const data = symbol(t, "data");
    poison(t, data);
    for (let i = 0; i < 2; i++) {
      const fault = expectMemoryFault(t.vcpu, "EHWPOISON");
      assert.deepEqual(fault, { flags: 0, gpa: data, size: PAGE_SIZE }, "no USERFAULT flag");
    }
    assertErrno(() => readGuest(t.vm, data, 8), "EHWPOISON");
    assertErrno(() => t.vm.guestPfnForKernel(data / PAGE_SIZE, false), "EHWPOISON");
    // PRIVATE is reported as for any memory fault exit.
    t.vm.setMemoryAttributes({
      address: data,
      size: PAGE_SIZE,
      attributes: MEMORY_ATTRIBUTE_PRIVATE,
      flags: 0,
    });
    assert.equal(expectMemoryFault(t.vcpu, "EHWPOISON").flags, MEMORY_EXIT_FLAG_PRIVATE);
  });

  test("poisoning a page the guest has mapped unmaps it: the next access reports EHWPOISON", () => {
    const t = createTestVm(READ_THEN_WRITE);
    const data = symbol(t, "data");
    assert.equal(runToUcall(t.vcpu), 7n);
    assert.equal(runToUcall(t.vcpu), 7n);
    poison(t, data);
    const fault = expectMemoryFault(t.vcpu, "EHWPOISON");
    assert.equal(fault.gpa, data);
    assert.equal(fault.flags & MEMORY_EXIT_FLAG_USERFAULT, 0);
    assert.equal(
      fault.flags,
      fault.flags & MEMORY_EXIT_FLAG_WRITE,
      "a read or a write, nothing else",
    );
  });

  test("a poisoned page inside a huge page is never mapped through a huge mapping", () => {
    const t = createTestVm(READ_THEN_WRITE, {
      memBytes: 8 << 20,
      gmemFlags: GUEST_MEMFD_FLAG_HUGE_2M,
    });
    const data = symbol(t, "data");
    assert.equal(runToUcall(t.vcpu), 7n);
    assert.deepEqual(t.vm.stage2.mappingCounts(), [0, 1, 0]);
    poison(t, data);
    assert.deepEqual(t.vm.stage2.mappingCounts(), [0, 0, 0], "the huge mapping is gone");
    // The code's page, in the same 2 MiB, faults back in: in 4 KiB this time.
    const fault = expectMemoryFault(t.vcpu, "EHWPOISON");
    assert.equal(fault.gpa, data);
    assert.deepEqual(t.vm.stage2.mappingCounts(), [1, 0, 0]);
    expectMemoryFault(t.vcpu, "EHWPOISON");
  });

  test("poisonPage beyond the file is EINVAL", () => {
    const t = createTestVm(IDLE);
    const gmem = t.vm.backing.guestMemfd(slotZero(t.vm).gmem);
    assertErrno(() => gmem.poisonPage(4096), "EINVAL");
    assertErrno(() => gmem.poisonPage(-1), "EINVAL");
    assert.equal(gmem.isPoisoned(0), false);
  });
});
