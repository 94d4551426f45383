import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PAGE_SIZE } from "../../src/host/host-memory.js";
import {
  MEMORY_ATTRIBUTE_PRIVATE,
  MEMORY_ATTRIBUTE_USERFAULT,
  MEMORY_EXIT_FLAG_EXEC,
  MEMORY_EXIT_FLAG_PRIVATE,
  MEMORY_EXIT_FLAG_USERFAULT,
  MEMORY_EXIT_FLAG_WRITE,
} from "../../src/kvm/uapi.js";
import {
  UCALL_DONE,
  UCALL_REPORT,
  V_FAULT_FLAGS,
  V_FAULT_GFN,
  V_FAULTS,
  V_REPORTS,
  type VcpuReply,
} from "./kvm-worker.js";
import {
  createTestVm,
  enableUserfault,
  expectMemoryFault,
  installPage,
  pageOf,
  RAM_BASE,
  readGuestU64,
  runToUcall,
  setUserfault,
  symbol,
  UCALL,
  until,
  withTimeout,
} from "./support.js";
import { KvmWorkers } from "./workers.js";

/**
 * vCPU userfaults: on a stage-2 miss on a USERFAULT page, run() stops with
 * a MEMORY_FAULT exit (EFAULT) naming the page; once the VMM has installed
 * the page and cleared the bit, the instruction restarts and completes.
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

/** A read of page `a`, a write to page `b`, a call into page `c`, an AMO on page `d`. */
const THREE_KINDS = `
_start:
        la      s0, a
        ld      s1, 0x7f8(s0)
        la      s0, b
        li      t1, 5
        sw      t1, 0x10(s0)
        call    c
        la      s0, d
        li      t1, 3
        amoadd.d s2, t1, (s0)
        ld      s3, 0(s0)
        add     a0, s1, s2
        add     a0, a0, s3
        ${UCALL}
1:      j       1b
        .data
        .balign 4096
a:      .dword  0
        .balign 4096
b:      .dword  0
        .balign 4096
d:      .dword  0
        .text
        .balign 4096
c:      li      s4, 1
        ret
`;

describe("vCPU userfaults", () => {
  test("a write to a userfault page exits with MEMORY_FAULT and completes once released", () => {
    const t = createTestVm(TOUCH_DATA);
    enableUserfault(t);
    const data = symbol(t, "data");
    setUserfault(t.vm, data, true);
    const fault = expectMemoryFault(t.vcpu);
    assert.deepEqual(fault, {
      flags: MEMORY_EXIT_FLAG_USERFAULT | MEMORY_EXIT_FLAG_WRITE,
      gpa: data,
      size: PAGE_SIZE,
    });
    // Still userfault: running again faults again, nothing was written.
    expectMemoryFault(t.vcpu);
    // The VMM fills the page (as post-copy installs it) and releases it.
    const page = new Uint8Array(PAGE_SIZE);
    page[8] = 1;
    installPage(t, data, page);
    setUserfault(t.vm, data, false);
    assert.equal(runToUcall(t.vcpu), 42n, "the faulting store restarted and completed");
    assert.equal(
      readGuestU64(t.vm, data + 8),
      1n,
      "the installed contents around the store survive",
    );
  });

  test("read, write, fetch and AMO faults report their access; gpa is page aligned, size one page", () => {
    const t = createTestVm(THREE_KINDS);
    enableUserfault(t);
    const [a, b, c, d] = ["a", "b", "c", "d"].map((name) => symbol(t, name));
    for (const page of [a, b, c, d]) setUserfault(t.vm, page, true);
    installPage(t, a, pageOf(100n));
    installPage(t, d, pageOf(20n));
    const expected = [
      [a, MEMORY_EXIT_FLAG_USERFAULT],
      [b, MEMORY_EXIT_FLAG_USERFAULT | MEMORY_EXIT_FLAG_WRITE],
      [c, MEMORY_EXIT_FLAG_USERFAULT | MEMORY_EXIT_FLAG_EXEC],
      [d, MEMORY_EXIT_FLAG_USERFAULT | MEMORY_EXIT_FLAG_WRITE],
    ];
    for (const [gpa, flags] of expected) {
      assert.deepEqual(expectMemoryFault(t.vcpu), { flags, gpa, size: PAGE_SIZE });
      assert.deepEqual(expectMemoryFault(t.vcpu), { flags, gpa, size: PAGE_SIZE }, "again");
      setUserfault(t.vm, gpa, false);
    }
    // 100 (read) + 20 (AMO's old value) + 23 (after the AMO): each instruction ran once.
    assert.equal(runToUcall(t.vcpu), 143n);
    assert.equal(readGuestU64(t.vm, b + 0x10), 5n);
    assert.equal(t.vcpu.hart.getRegister(20), 1n, "the call into page c ran");
  });

  test("PRIVATE is reported with USERFAULT", () => {
    const t = createTestVm(TOUCH_DATA);
    enableUserfault(t);
    t.vm.setMemoryAttributes({
      address: RAM_BASE + 0x200000,
      size: PAGE_SIZE,
      attributes: MEMORY_ATTRIBUTE_USERFAULT | MEMORY_ATTRIBUTE_PRIVATE,
      flags: 0,
    });
    const fault = expectMemoryFault(t.vcpu);
    assert.equal(fault.gpa, RAM_BASE + 0x200000);
    assert.equal(
      fault.flags,
      MEMORY_EXIT_FLAG_USERFAULT | MEMORY_EXIT_FLAG_EXEC | MEMORY_EXIT_FLAG_PRIVATE,
    );
  });

  test("setting USERFAULT unmaps a page the vCPU already had mapped; clearing it unmaps nothing", () => {
    const t = createTestVm(TOUCH_DATA);
    enableUserfault(t);
    const data = symbol(t, "data");
    assert.equal(runToUcall(t.vcpu), 42n);
    assert.equal(runToUcall(t.vcpu), 42n, "the page stays mapped between runs");
    const mappedBefore = t.vm.stage2.mappingCounts()[0];
    setUserfault(t.vm, data, true);
    assert.equal(t.vm.stage2.mappingCounts()[0], mappedBefore - 1, "the stage-2 entry is gone");
    const fault = expectMemoryFault(t.vcpu);
    assert.equal(fault.gpa, data);
    assert.equal(fault.flags & MEMORY_EXIT_FLAG_WRITE, 0, "the loop reads the page");
    setUserfault(t.vm, data, false);
    assert.equal(runToUcall(t.vcpu), 42n);
    const mapped = t.vm.stage2.mappingCounts()[0];
    setUserfault(t.vm, data + PAGE_SIZE, true);
    setUserfault(t.vm, data + PAGE_SIZE, false);
    setUserfault(t.vm, data, false);
    assert.equal(t.vm.stage2.mappingCounts()[0], mapped, "clearing bits unmapped nothing");
    assert.equal(runToUcall(t.vcpu), 42n);
  });

  test("vCPUs running on other threads fault on their next access once setMemoryAttributes returns", async () => {
    // Each vCPU spins reading `data` and reports every value it sees change.
    const t = createTestVm(`
_start:
        la      t0, data
        li      s2, -1
        ld      s1, 0(t0)
        mv      a0, s1
        li      a1, ${UCALL_REPORT}
        ${UCALL}
1:      ld      t1, 0(t0)
        beq     t1, s1, 1b
        beq     t1, s2, 2f
        mv      s1, t1
        mv      a0, t1
        li      a1, ${UCALL_REPORT}
        ${UCALL}
        j       1b
2:      li      a1, ${UCALL_DONE}
        ${UCALL}
        .data
        .balign 4096
data:   .dword  1000
`);
    enableUserfault(t);
    const data = symbol(t, "data");
    t.kvm.createVcpu(t.vm, 1);
    const workers = new KvmWorkers(t);
    const vcpus = [0, 1];
    const runs = vcpus.map(
      (id) => workers.vcpu({ id, pc: t.entry, stvec: t.trap, onFault: "wait-release" }).reply,
    );
    try {
      const rounds = 40;
      for (let round = 0; round < rounds; round++) {
        for (const id of vcpus) await workers.reports(id, round + 1);
        // Both vCPUs are in their read loop with the page in their TLBs.
        setUserfault(t.vm, data, true);
        // Changed only now: a vCPU that still reached the old mapping would report it.
        const next = round + 1 === rounds ? -1n : BigInt(1001 + round);
        installPage(t, data, pageOf(next));
        for (const id of vcpus) {
          await until(
            () => workers.word(id, V_FAULTS) === round + 1,
            10_000,
            `vCPU ${id} faults`,
            () => assert.equal(workers.word(id, V_REPORTS), round + 1, `vCPU ${id} saw the change`),
          );
          assert.equal(workers.word(id, V_FAULT_GFN), data / PAGE_SIZE);
          assert.equal(workers.word(id, V_FAULT_FLAGS), MEMORY_EXIT_FLAG_USERFAULT);
        }
        setUserfault(t.vm, data, false);
        workers.released();
      }
      const replies: VcpuReply[] = await withTimeout(Promise.all(runs), 10_000, "the vCPUs");
      for (const reply of replies) {
        assert.equal(reply.stop, "done", reply.message);
        assert.deepEqual(
          reply.reports,
          Array.from({ length: rounds }, (_, i) => BigInt(1000 + i)),
        );
      }
    } finally {
      await workers.close();
    }
  });
});
