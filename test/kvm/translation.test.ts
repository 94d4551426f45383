import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MFILL_COPY,
  PROT_READ,
  PROT_WRITE,
  setUserfaultHandler,
  UFFD_MISSING,
} from "../../src/host/address-space.js";
import { PAGE_SIZE } from "../../src/host/host-memory.js";
import { CAP_USERFAULT, MEM_GUEST_MEMFD, USERFAULT_DISABLE } from "../../src/kvm/uapi.js";
import { UserfaultError } from "../../src/kvm/vm.js";
import {
  assertErrno,
  createTestVm,
  enableUserfault,
  installPage,
  pageOf,
  RAM_BASE,
  readGuest,
  setUserfault,
  type TestVm,
} from "./support.js";

/**
 * Translation for the hypervisor's own accesses (kvm_read_guest,
 * kvm_vcpu_map): gfn -> page for guest_memfd, gfn -> hva -> host fault path
 * for traditional memslots; a userfault page fails instead of translating.
 */

const IDLE = `_start: j _start`;
const PAGE = RAM_BASE + 0x4000;
/** A traditional memslot (slot 1) above the guest_memfd RAM. */
const TRAD_GPA = RAM_BASE + 0x1000_0000;
const TRAD_BYTES = 1 << 20;

function withTraditionalSlot(t: TestVm): number {
  const hva = t.host.mmap({
    length: TRAD_BYTES,
    prot: PROT_READ | PROT_WRITE,
    flags: MAP_PRIVATE | MAP_ANONYMOUS,
  });
  t.vm.setUserMemoryRegion2({
    slot: 1,
    flags: 0,
    guestPhysAddr: TRAD_GPA,
    memorySize: TRAD_BYTES,
    userspaceAddr: hva,
  });
  return hva;
}

describe("translation for hypervisor accesses", () => {
  test("an atomic access to a userfault page fails at once with UserfaultError, queueing nothing", () => {
    const t = createTestVm(IDLE);
    const eventfd = enableUserfault(t);
    installPage(t, PAGE, pageOf(0x42n));
    setUserfault(t.vm, PAGE, true);
    for (const write of [false, true]) {
      const start = performance.now();
      assert.throws(
        () => t.vm.accessGuest(PAGE + 8, new Uint8Array(8), write, true),
        (error: unknown) => {
          assert.ok(error instanceof UserfaultError, String(error));
          assert.equal(error.errno, "EFAULT");
          assert.equal(error.gfn, PAGE / PAGE_SIZE);
          return true;
        },
      );
      assert.ok(performance.now() - start < 100, "no wait");
    }
    assert.equal(t.vm.guestPfnForKernel(PAGE / PAGE_SIZE, false), -1);
    assertErrno(() => t.vm.readUserfault(), "ENOENT");
    assert.equal(t.host.eventfds.peek(eventfd), 0n, "the eventfd was not signalled");
    // An access spanning into the userfault page fails too; one before it works.
    assert.throws(() => t.vm.accessGuest(PAGE - 4, new Uint8Array(8), false, true), UserfaultError);
    assert.deepEqual([...readGuest(t.vm, PAGE - 8, 8)], Array(8).fill(0));
    // Released: the access translates and sees the page.
    setUserfault(t.vm, PAGE, false);
    assert.deepEqual([...readGuest(t.vm, PAGE + 8, 2)], [0x42, 0]);
  });

  test("the USERFAULT attribute means nothing while userfault is disabled", () => {
    const t = createTestVm(IDLE);
    enableUserfault(t);
    setUserfault(t.vm, PAGE, true);
    t.vm.enableCap({ cap: CAP_USERFAULT, flags: 0, args: [USERFAULT_DISABLE, 0] });
    assert.deepEqual([...readGuest(t.vm, PAGE, 1)], [0]);
    assert.ok(t.vm.guestPfnForKernel(PAGE / PAGE_SIZE, false) > 0);
  });

  test("guest_memfd translation is the file's page; memslot changes are seen at once", () => {
    const t = createTestVm(IDLE);
    const cache = t.host.pageCacheOf(t.gmemFd);
    installPage(t, PAGE, pageOf(0x77n));
    const index = (PAGE - RAM_BASE) / PAGE_SIZE;
    assert.equal(t.vm.guestPfnForKernel(PAGE / PAGE_SIZE, false), cache.lookup(index));
    assertErrno(() => t.vm.guestPfnForKernel(0x1000, false), "EFAULT");
    assertErrno(() => readGuest(t.vm, RAM_BASE - 8, 8), "EFAULT");
    // Move the memory: delete the slot and bind the same file elsewhere.
    t.vm.setUserMemoryRegion2({
      slot: 0,
      flags: 0,
      guestPhysAddr: 0,
      memorySize: 0,
      userspaceAddr: 0,
    });
    assertErrno(() => readGuest(t.vm, PAGE, 8), "EFAULT");
    const moved = 0x1_0000_0000;
    t.vm.setUserMemoryRegion2({
      slot: 3,
      flags: MEM_GUEST_MEMFD,
      guestPhysAddr: moved,
      memorySize: 16 << 20,
      userspaceAddr: 0,
      guestMemfd: t.gmemFd,
      guestMemfdOffset: 0,
    });
    assert.deepEqual([...readGuest(t.vm, moved + (PAGE - RAM_BASE), 1)], [0x77]);
  });

  test("traditional memslots go through the host fault path", () => {
    const t = createTestVm(IDLE);
    const hva = withTraditionalSlot(t);
    assert.equal(t.host.mm.residentFrames(hva), 0);
    const data = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
    t.vm.accessGuest(TRAD_GPA + PAGE_SIZE + 4, data, true, false);
    assert.equal(t.host.mm.residentFrames(hva), 1, "the host populated the page");
    assert.deepEqual([...t.host.copyFromUser(hva + PAGE_SIZE + 4, 8)], [...data]);
    assert.equal(
      t.vm.guestPfnForKernel(TRAD_GPA / PAGE_SIZE + 1, false),
      t.host.lookupPfn(hva + PAGE_SIZE),
    );
    // The VMM's writes through its mapping are what the hypervisor reads.
    t.host.copyToUser(hva + 3 * PAGE_SIZE, new Uint8Array([9, 9]));
    assert.deepEqual([...readGuest(t.vm, TRAD_GPA + 3 * PAGE_SIZE, 3)], [9, 9, 0]);
    // Unmapping the VMM's memory leaves the hypervisor nothing to translate.
    t.host.munmap(hva, TRAD_BYTES);
    assertErrno(() => readGuest(t.vm, TRAD_GPA, 8), "EFAULT");
  });

  test("a userfault page of a traditional slot fails without a host fault", () => {
    const t = createTestVm(IDLE);
    const hva = withTraditionalSlot(t);
    enableUserfault(t);
    setUserfault(t.vm, TRAD_GPA, true);
    assert.throws(() => readGuest(t.vm, TRAD_GPA, 8), UserfaultError);
    assert.equal(t.host.mm.residentFrames(hva), 0, "the host page was never touched");
  });

  test("userfaultfd on the VMM mapping sees a sleeping hypervisor access; an atomic one gets EAGAIN", () => {
    const t = createTestVm(IDLE);
    const hva = withTraditionalSlot(t);
    t.host.mm.setUserfaultRange(hva, TRAD_BYTES, UFFD_MISSING, 1);
    const faults: number[] = [];
    setUserfaultHandler((space, _slot, _gen, at) => {
      faults.push(at);
      const page = at - (at % PAGE_SIZE);
      space.mfill(page, MFILL_COPY, pageOf(0x3131_3131_3131_3131n));
      return 0;
    });
    try {
      assertErrno(() => readGuest(t.vm, TRAD_GPA + 2 * PAGE_SIZE, 8), "EAGAIN");
      assert.deepEqual(faults, [], "an atomic access never reaches userfaultfd");
      const data = new Uint8Array(4);
      t.vm.accessGuest(TRAD_GPA + 2 * PAGE_SIZE + 16, data, false, false);
      assert.deepEqual(faults, [hva + 2 * PAGE_SIZE], "one fault, on the page");
      assert.deepEqual([...data], [0x31, 0x31, 0x31, 0x31]);
      // Present now: the atomic access works.
      assert.deepEqual([...readGuest(t.vm, TRAD_GPA + 2 * PAGE_SIZE, 1)], [0x31]);
    } finally {
      setUserfaultHandler(null);
    }
  });
});
