import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PAGE_SIZE } from "../../src/host/host-memory.js";
import {
  CAP_USERFAULT,
  EXIT_MEMORY_FAULT,
  GUEST_MEMFD_FLAG_HUGE_2M,
  MEMORY_ATTRIBUTE_PRIVATE,
  MEMORY_ATTRIBUTE_USERFAULT,
  MEMORY_EXIT_FLAG_EXEC,
  MEMORY_EXIT_FLAG_PRIVATE,
  MEMORY_EXIT_FLAG_USERFAULT,
  MEMORY_EXIT_FLAG_WRITE,
  USERFAULT_DISABLE,
  USERFAULT_ENABLE,
} from "../../src/kvm/uapi.js";
import { assertErrno, createTestVm, RAM_BASE, runToUcall, type TestVm, UCALL } from "./support.js";

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

function enableUserfault(t: TestVm): void {
  t.vm.enableCap({ cap: CAP_USERFAULT, flags: 0, args: [USERFAULT_ENABLE, t.host.eventfd()] });
}

function dataAddress(t: TestVm): number {
  return Number(t.symbols.get("data"));
}

function setUserfault(t: TestVm, gpa: number, on: boolean): void {
  t.vm.setMemoryAttributesDelta({
    address: gpa,
    size: PAGE_SIZE,
    set: on ? MEMORY_ATTRIBUTE_USERFAULT : 0,
    clear: on ? 0 : MEMORY_ATTRIBUTE_USERFAULT,
  });
}

/** run() must throw EFAULT with a MEMORY_FAULT exit; returns the fault. */
function expectMemoryFault(t: TestVm): { flags: number; gpa: number; size: number } {
  assert.throws(
    () => t.vcpu.runGuest(),
    (e: unknown) => t.vcpu.isMemoryFault(e) && (e as { errno: string }).errno === "EFAULT",
  );
  assert.equal(t.vcpu.run.exitReason, EXIT_MEMORY_FAULT);
  return { ...t.vcpu.run.memoryFault };
}

describe("vCPU userfaults", () => {
  test("a write to a userfault page exits with MEMORY_FAULT and completes once released", () => {
    const t = createTestVm(TOUCH_DATA);
    enableUserfault(t);
    const data = dataAddress(t);
    setUserfault(t, data, true);
    const fault = expectMemoryFault(t);
    assert.deepEqual(fault, {
      flags: MEMORY_EXIT_FLAG_USERFAULT | MEMORY_EXIT_FLAG_WRITE,
      gpa: data,
      size: PAGE_SIZE,
    });
    // Still userfault: running again faults again, nothing was written.
    expectMemoryFault(t);
    // The VMM fills the page (as post-copy installs it) and releases it.
    const page = new Uint8Array(PAGE_SIZE);
    page[8] = 1;
    t.host.pageCacheOf(t.gmemFd).install((data - RAM_BASE) / PAGE_SIZE, page);
    setUserfault(t, data, false);
    assert.equal(runToUcall(t.vcpu), 42n, "the faulting store restarted and completed");
    const read = new Uint8Array(16);
    t.vm.accessGuest(data, read, false, true);
    assert.equal(read[8], 1, "the installed contents around the store survive");
  });

  test("an instruction fetch from a userfault page reports EXEC; PRIVATE is reported too", () => {
    const t = createTestVm(TOUCH_DATA);
    enableUserfault(t);
    t.vm.setMemoryAttributes({
      address: RAM_BASE + 0x200000,
      size: PAGE_SIZE,
      attributes: MEMORY_ATTRIBUTE_USERFAULT | MEMORY_ATTRIBUTE_PRIVATE,
      flags: 0,
    });
    const fault = expectMemoryFault(t);
    assert.equal(fault.gpa, RAM_BASE + 0x200000);
    assert.equal(
      fault.flags,
      MEMORY_EXIT_FLAG_USERFAULT | MEMORY_EXIT_FLAG_EXEC | MEMORY_EXIT_FLAG_PRIVATE,
    );
  });

  test("setting USERFAULT unmaps a page the vCPU already had mapped; clearing it unmaps nothing", () => {
    const t = createTestVm(TOUCH_DATA);
    enableUserfault(t);
    const data = dataAddress(t);
    assert.equal(runToUcall(t.vcpu), 42n);
    assert.equal(runToUcall(t.vcpu), 42n, "the page stays mapped between runs");
    const mappedBefore = t.vm.stage2.mappingCounts()[0];
    setUserfault(t, data, true);
    assert.equal(t.vm.stage2.mappingCounts()[0], mappedBefore - 1, "the stage-2 entry is gone");
    const fault = expectMemoryFault(t);
    assert.equal(fault.gpa, data);
    assert.equal(fault.flags & MEMORY_EXIT_FLAG_WRITE, 0, "the loop reads the page");
    setUserfault(t, data, false);
    assert.equal(runToUcall(t.vcpu), 42n);
    const mapped = t.vm.stage2.mappingCounts()[0];
    setUserfault(t, data + PAGE_SIZE, false);
    assert.equal(t.vm.stage2.mappingCounts()[0], mapped, "clearing the bit unmapped nothing");
  });

  test("while userfault is enabled mappings are 4 KiB; collapsePageTables restores 2 MiB after disable", () => {
    const t = createTestVm(TOUCH_DATA, { memBytes: 8 << 20, gmemFlags: GUEST_MEMFD_FLAG_HUGE_2M });
    assert.equal(runToUcall(t.vcpu), 42n);
    assert.deepEqual(t.vm.stage2.mappingCounts(), [0, 1, 0], "huge backing maps 2 MiB at once");
    const eventfd = t.host.eventfd();
    t.vm.enableCap({ cap: CAP_USERFAULT, flags: 0, args: [USERFAULT_ENABLE, eventfd] });
    // Making one page userfault unmaps its whole 2 MiB mapping; it returns in 4 KiB pieces.
    setUserfault(t, RAM_BASE + 0x300000, true);
    assert.equal(runToUcall(t.vcpu), 42n);
    const [small, huge] = t.vm.stage2.mappingCounts();
    assert.equal(huge, 0);
    assert.ok(small >= 2, `code and data pages mapped separately (${small})`);
    assertErrno(() => t.vm.collapsePageTables({ address: RAM_BASE, size: 8 << 20 }), "EBUSY");
    t.vm.enableCap({ cap: CAP_USERFAULT, flags: 0, args: [USERFAULT_DISABLE, 0] });
    t.vm.collapsePageTables({ address: RAM_BASE, size: 8 << 20 });
    assert.equal(runToUcall(t.vcpu), 42n);
    assert.deepEqual(t.vm.stage2.mappingCounts(), [0, 1, 0]);
  });
});
