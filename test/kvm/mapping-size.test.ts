import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from "../../src/host/address-space.js";
import { PAGE_SIZE } from "../../src/host/host-memory.js";
import { GFN_LIMIT } from "../../src/kvm/gfn-bitmap.js";
import {
  CAP_USERFAULT,
  GUEST_MEMFD_FLAG_HUGE_1G,
  GUEST_MEMFD_FLAG_HUGE_2M,
  USERFAULT_DISABLE,
} from "../../src/kvm/uapi.js";
import {
  ACCESS_LOOP,
  assertErrno,
  createTestVm,
  enableUserfault,
  guestAccess,
  RAM_BASE,
  runToUcall,
  setUserfault,
  type TestVm,
  UCALL,
} from "./support.js";

/**
 * Stage-2 mapping sizes under userfault: while it is enabled every new
 * mapping is 4 KiB, so a fault never maps a neighbouring userfault page;
 * collapsePageTables rebuilds huge mappings afterwards.
 */

/** Writes 42 to `data`, reads it back, and reports it; then loops reading it again. */
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

function disable(t: TestVm): void {
  t.vm.enableCap({ cap: CAP_USERFAULT, flags: 0, args: [USERFAULT_DISABLE, 0] });
}

describe("mapping sizes and collapsing page tables", () => {
  test("while userfault is enabled mappings are 4 KiB; collapsePageTables restores 2 MiB after disable", () => {
    const t = createTestVm(TOUCH_DATA, { memBytes: 8 << 20, gmemFlags: GUEST_MEMFD_FLAG_HUGE_2M });
    assert.equal(runToUcall(t.vcpu), 42n);
    assert.deepEqual(t.vm.stage2.mappingCounts(), [0, 1, 0], "huge backing maps 2 MiB at once");
    enableUserfault(t);
    // Making one page userfault unmaps its whole 2 MiB mapping; it returns in 4 KiB pieces.
    setUserfault(t.vm, RAM_BASE + 0x300000, true);
    assert.deepEqual(t.vm.stage2.mappingCounts(), [0, 0, 0]);
    assert.equal(runToUcall(t.vcpu), 42n);
    const [small, huge] = t.vm.stage2.mappingCounts();
    assert.equal(huge, 0);
    assert.equal(small, 2, "code and data pages mapped separately");
    assertErrno(() => t.vm.collapsePageTables({ address: RAM_BASE, size: 8 << 20 }), "EBUSY");
    disable(t);
    // Without collapsing, the 4 KiB mappings stay.
    assert.equal(runToUcall(t.vcpu), 42n);
    assert.deepEqual(t.vm.stage2.mappingCounts(), [2, 0, 0]);
    t.vm.collapsePageTables({ address: RAM_BASE, size: 8 << 20 });
    assert.deepEqual(t.vm.stage2.mappingCounts(), [0, 0, 0]);
    assert.equal(runToUcall(t.vcpu), 42n);
    assert.deepEqual(t.vm.stage2.mappingCounts(), [0, 1, 0]);
  });

  test("pages without the bit map 4 KiB too while enabled, and 1 GiB backing collapses to 1 GiB", () => {
    const t = createTestVm(TOUCH_DATA, { memBytes: 1 << 30, gmemFlags: GUEST_MEMFD_FLAG_HUGE_1G });
    enableUserfault(t);
    assert.equal(runToUcall(t.vcpu), 42n);
    assert.deepEqual(t.vm.stage2.mappingCounts(), [2, 0, 0]);
    disable(t);
    t.vm.collapsePageTables({ address: RAM_BASE, size: 1 << 30 });
    assert.equal(runToUcall(t.vcpu), 42n);
    assert.deepEqual(t.vm.stage2.mappingCounts(), [0, 0, 1]);
  });

  test("collapsing covers only its range, and works for a traditional slot on 2 MiB host pages", () => {
    const t = createTestVm(ACCESS_LOOP);
    assert.equal(runToUcall(t.vcpu), 0n);
    const gpa = RAM_BASE + 0x1000_0000;
    const hva = t.host.mmap({
      length: 4 << 20,
      prot: PROT_READ | PROT_WRITE,
      flags: MAP_PRIVATE | MAP_ANONYMOUS,
      hugePageSize: 2 << 20,
    });
    t.vm.setUserMemoryRegion2({
      slot: 1,
      flags: 0,
      guestPhysAddr: gpa,
      memorySize: 4 << 20,
      userspaceAddr: hva,
    });
    enableUserfault(t);
    guestAccess(t, t.entry); // maps the command page
    const base = t.vm.stage2.mappingCounts();
    guestAccess(t, gpa + 8, 1n);
    guestAccess(t, gpa + (2 << 20) + 8, 2n);
    assert.deepEqual(t.vm.stage2.mappingCounts(), [base[0] + 2, 0, 0]);
    disable(t);
    t.vm.collapsePageTables({ address: gpa, size: 2 << 20 });
    assert.equal(guestAccess(t, gpa + 8), 1n);
    assert.equal(guestAccess(t, gpa + (2 << 20) + 8), 2n);
    assert.deepEqual(
      t.vm.stage2.mappingCounts(),
      [base[0] + 1, 1, 0],
      "only the first 2 MiB collapsed",
    );
    t.vm.collapsePageTables({ address: gpa + (2 << 20), size: 2 << 20 });
    assert.equal(guestAccess(t, gpa + (2 << 20) + 8), 2n);
    assert.deepEqual(t.vm.stage2.mappingCounts(), [base[0], 2, 0]);
  });

  test("collapsePageTables rejects bad ranges (EINVAL) and is EBUSY while userfault is enabled", () => {
    const t = createTestVm(TOUCH_DATA);
    const collapse = (address: number, size: number) => t.vm.collapsePageTables({ address, size });
    for (const [address, size] of [
      [RAM_BASE + 1, PAGE_SIZE],
      [RAM_BASE, 100],
      [RAM_BASE, 0],
      [RAM_BASE, -PAGE_SIZE],
      [-PAGE_SIZE, 2 * PAGE_SIZE],
      [(GFN_LIMIT - 1) * PAGE_SIZE, 2 * PAGE_SIZE],
    ]) {
      assertErrno(() => collapse(address, size), "EINVAL");
    }
    collapse(RAM_BASE, 16 << 20);
    enableUserfault(t);
    assertErrno(() => collapse(RAM_BASE, 16 << 20), "EBUSY");
    assertErrno(() => collapse(RAM_BASE + 1, PAGE_SIZE), "EINVAL");
  });
});
