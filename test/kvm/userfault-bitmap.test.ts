import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from "../../src/host/address-space.js";
import { HostMemory, PAGE_SIZE } from "../../src/host/host-memory.js";
import {
  GUEST_MEMFD_FLAG_HUGE_2M,
  MEM_GUEST_MEMFD,
  MEM_USERFAULT,
  MEMORY_EXIT_FLAG_USERFAULT,
  MEMORY_EXIT_FLAG_WRITE,
  USERFAULT_ASYNC_ALL,
  USERFAULT_ENABLE,
} from "../../src/kvm/uapi.js";
import { UCALL_DONE, UCALL_REPORT, V_FAULT_FLAGS, V_FAULTS } from "./kvm-worker.js";
import {
  assertErrno,
  createTestVm,
  enableUserfault,
  expectMemoryFault,
  installPage,
  pageOf,
  RAM_BASE,
  readGuest,
  runToUcall,
  symbol,
  type TestVm,
  UCALL,
  withTimeout,
} from "./support.js";
import { KvmWorkers } from "./workers.js";

/**
 * The later upstream shape of KVM Userfault: memslot flag MEM_USERFAULT with
 * a bitmap in VMM memory, one bit per 4 KiB page of the slot. A vCPU fault on
 * a page whose bit is set exits as in the attribute shape; the VMM releases
 * the page with a plain release store to its own memory, and no call.
 */

const TOUCH_DATA = `
_start:
        la      t0, data
        li      t1, 42
        sd      t1, 0(t0)
1:      ld      a0, 0(t0)
        ${UCALL}
        j       1b
        .data
        .balign 4096
data:   .dword  7
`;

interface BitmapVm extends TestVm {
  /** hva of the VMM's bitmap. */
  bitmap: number;
  memBytes: number;
}

function createBitmapVm(source: string, memBytes = 16 << 20, gmemFlags = 0): BitmapVm {
  const t = createTestVm(source, { memBytes, gmemFlags });
  const bitmap = t.host.mmap({
    length: PAGE_SIZE,
    prot: PROT_READ | PROT_WRITE,
    flags: MAP_PRIVATE | MAP_ANONYMOUS,
  });
  return { ...t, bitmap, memBytes };
}

function setSlotFlags(t: BitmapVm, flags: number, userfaultBitmap?: number): void {
  t.vm.setUserMemoryRegion2({
    slot: 0,
    flags: MEM_GUEST_MEMFD | flags,
    guestPhysAddr: RAM_BASE,
    memorySize: t.memBytes,
    userspaceAddr: 0,
    guestMemfd: t.gmemFd,
    guestMemfdOffset: 0,
    userfaultBitmap,
  });
}

/** The VMM sets a bit with an ordinary store to its memory. */
function setBit(t: BitmapVm, gpa: number): void {
  const bit = (gpa - RAM_BASE) / PAGE_SIZE;
  const at = t.bitmap + (bit >>> 5) * 4;
  const word = new DataView(t.host.copyFromUser(at, 4).buffer).getUint32(0, true);
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, (word | (1 << (bit & 31))) >>> 0, true);
  t.host.copyToUser(at, bytes);
}

/** The VMM clears a bit with an atomic release store on its page, and makes no call. */
function clearBit(t: BitmapVm, gpa: number): void {
  const bit = (gpa - RAM_BASE) / PAGE_SIZE;
  const hva = t.bitmap + (bit >>> 5) * 4;
  const pfn = t.host.lookupPfn(hva);
  assert.ok(pfn !== 0, "the bitmap page is populated");
  const words = t.host.memory.chunkI32[HostMemory.chunkOf(pfn)];
  Atomics.and(words, (HostMemory.offsetOf(pfn) + (hva % PAGE_SIZE)) >> 2, ~(1 << (bit & 31)));
}

describe("MEM_USERFAULT memslots with a VMM bitmap", () => {
  test("a vCPU fault on a page whose bit is set exits; a release store lets it proceed", () => {
    const t = createBitmapVm(TOUCH_DATA);
    const data = symbol(t, "data");
    setBit(t, data);
    setSlotFlags(t, MEM_USERFAULT, t.bitmap);
    const fault = expectMemoryFault(t.vcpu);
    assert.deepEqual(fault, {
      flags: MEMORY_EXIT_FLAG_USERFAULT | MEMORY_EXIT_FLAG_WRITE,
      gpa: data,
      size: PAGE_SIZE,
    });
    expectMemoryFault(t.vcpu);
    installPage(t, data, pageOf(5n));
    clearBit(t, data);
    assert.equal(runToUcall(t.vcpu), 42n);
    assert.equal(runToUcall(t.vcpu), 42n);
  });

  test("the bit's neighbours and other words of the bitmap are not userfault", () => {
    const t = createBitmapVm(TOUCH_DATA);
    const data = symbol(t, "data");
    // Bits of the next page, in the next byte, and in the next word (`data - 4 KiB` is code).
    for (const n of [1, 8, 31, 32]) setBit(t, data + n * PAGE_SIZE);
    setSlotFlags(t, MEM_USERFAULT, t.bitmap);
    assert.equal(runToUcall(t.vcpu), 42n);
  });

  test("setting the flag on a live slot unmaps it and forces 4 KiB mappings; clearing it restores huge ones", () => {
    const t = createBitmapVm(TOUCH_DATA, 8 << 20, GUEST_MEMFD_FLAG_HUGE_2M);
    assert.equal(runToUcall(t.vcpu), 42n);
    assert.deepEqual(t.vm.stage2.mappingCounts(), [0, 1, 0]);
    setSlotFlags(t, MEM_USERFAULT, t.bitmap);
    assert.deepEqual(t.vm.stage2.mappingCounts(), [0, 0, 0], "the slot was unmapped");
    assert.equal(runToUcall(t.vcpu), 42n);
    const [small, huge] = t.vm.stage2.mappingCounts();
    assert.equal(huge, 0);
    assert.ok(small >= 2, `4 KiB mappings only (${small})`);
    // A bit set on a page already mapped takes effect once the flag is set again.
    setBit(t, symbol(t, "data"));
    setSlotFlags(t, MEM_USERFAULT, t.bitmap);
    assert.equal(runToUcall(t.vcpu), 42n, "the same flags again change nothing");
    setSlotFlags(t, 0);
    setSlotFlags(t, MEM_USERFAULT, t.bitmap);
    expectMemoryFault(t.vcpu);
    setSlotFlags(t, 0);
    assert.deepEqual(t.vm.stage2.mappingCounts(), [0, 0, 0]);
    assert.equal(runToUcall(t.vcpu), 42n, "no bitmap without the flag");
    assert.deepEqual(t.vm.stage2.mappingCounts(), [0, 1, 0], "huge mapping again");
  });

  test("the flag needs an 8-byte aligned bitmap address", () => {
    const t = createBitmapVm(TOUCH_DATA);
    assertErrno(() => setSlotFlags(t, MEM_USERFAULT), "EINVAL");
    assertErrno(() => setSlotFlags(t, MEM_USERFAULT, 0), "EINVAL");
    assertErrno(() => setSlotFlags(t, MEM_USERFAULT, t.bitmap + 4), "EINVAL");
    assertErrno(() => setSlotFlags(t, MEM_USERFAULT, -8), "EINVAL");
    assert.equal(runToUcall(t.vcpu), 42n, "the slot is unchanged");
  });

  test("hypervisor accesses are not caught: they translate as usual", async () => {
    const t = createBitmapVm(TOUCH_DATA);
    const data = symbol(t, "data");
    installPage(t, data, pageOf(0x99n));
    setBit(t, data);
    setSlotFlags(t, MEM_USERFAULT, t.bitmap);
    assert.deepEqual([...readGuest(t.vm, data, 2)], [0x99, 0], "atomic access");
    assert.equal(
      t.vm.guestPfnForKernel(data / PAGE_SIZE, false),
      t.vm.guestPfnForAccess(data / PAGE_SIZE, false, true),
    );
    const workers = new KvmWorkers(t);
    try {
      const access = workers.access({ gpa: data, length: 2, write: false, atomic: false });
      const reply = await withTimeout(access.reply, 5000, "a sleeping-capable access");
      assert.ok(reply.ok, reply.message);
      assert.deepEqual([...reply.data!], [0x99, 0]);
    } finally {
      await workers.close();
    }
    // The vCPU is still caught.
    expectMemoryFault(t.vcpu);
  });

  test("under USERFAULT_ASYNC_ALL a bitmap page still exits: the asynchronous queue is the attribute's", async () => {
    const t = createBitmapVm(TOUCH_DATA);
    const data = symbol(t, "data");
    enableUserfault(t, USERFAULT_ENABLE | USERFAULT_ASYNC_ALL);
    setBit(t, data);
    setSlotFlags(t, MEM_USERFAULT, t.bitmap);
    // On a worker: a vCPU that neither exits nor sleeps would never return.
    const workers = new KvmWorkers(t);
    try {
      const reply = await withTimeout(
        workers.vcpu({ id: 0, pc: t.entry, onFault: "stop" }).reply,
        5000,
        "the vCPU",
      );
      assert.equal(reply.stop, "exit", reply.message);
      assert.equal(reply.errno, "EFAULT");
      assert.deepEqual(reply.memoryFault, {
        flags: MEMORY_EXIT_FLAG_USERFAULT | MEMORY_EXIT_FLAG_WRITE,
        gpa: data,
        size: PAGE_SIZE,
      });
      assertErrno(() => t.vm.readUserfault(), "ENOENT");
    } finally {
      await workers.close();
    }
  });

  test("a vCPU on another thread waits for its page and proceeds after the release store", async () => {
    const t = createBitmapVm(`
_start:
        la      t0, data
        ld      a0, 0(t0)
        li      a1, ${UCALL_REPORT}
        ${UCALL}
        li      a1, ${UCALL_DONE}
        ${UCALL}
        .data
        .balign 4096
data:   .dword  7
`);
    const data = symbol(t, "data");
    setBit(t, data);
    setSlotFlags(t, MEM_USERFAULT, t.bitmap);
    const workers = new KvmWorkers(t);
    try {
      const vcpu = workers.vcpu({
        id: 0,
        pc: t.entry,
        onFault: "wait-release",
        userfaultBitmap: { hva: t.bitmap, baseGfn: RAM_BASE / PAGE_SIZE },
      });
      await workers.faults(0, 1);
      assert.equal(workers.word(0, V_FAULT_FLAGS), MEMORY_EXIT_FLAG_USERFAULT);
      installPage(t, data, pageOf(1234n));
      clearBit(t, data);
      workers.released();
      const reply = await withTimeout(vcpu.reply, 5000, "the vCPU");
      assert.equal(reply.stop, "done", reply.message);
      assert.deepEqual(reply.reports, [1234n]);
      assert.equal(workers.word(0, V_FAULTS), 1, "one fault");
    } finally {
      await workers.close();
    }
  });
});
