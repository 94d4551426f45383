import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PAGE_SIZE } from "../../src/host/host-memory.js";
import {
  EXIT_MMIO,
  EXIT_RISCV_SBI,
  MEM_GUEST_MEMFD,
  MEM_LOG_DIRTY_PAGES,
  MEMORY_EXIT_FLAG_USERFAULT,
} from "../../src/kvm/uapi.js";
import {
  createTestVm,
  enableUserfault,
  expectMemoryFault,
  RAM_BASE,
  readGuestU64,
  runGuest,
  runToUcall,
  setUserfault,
  symbol,
  TRAP_EID,
  type TestVm,
  UCALL,
  writeGuestU64,
} from "./support.js";

/**
 * A guest with Sv39 paging on: the walk of its page tables is a guest
 * access like any other, so a page table that is USERFAULT stops the vCPU
 * with MEMORY_FAULT on the table's page, the A bit the walk sets is logged
 * as a write to that page, a leaf outside RAM is MMIO at the translated
 * address, and a page table outside RAM is an access fault for the guest.
 */

const V = 1n;
const R = 2n;
const W = 4n;
const X = 8n;
const A = 64n;
const D = 128n;
const SATP_SV39 = 8n << 60n;
const MMIO_GPA = 0x1000_0000n;
/** Guest-physical space with no memslot, where a page table cannot be read. */
const NOWHERE_GPA = 0x2000_0000n;

const PROGRAM = `
_start:
        csrw    satp, a0
        sfence.vma
        li      t0, 0x40000008
        ld      s1, 0(t0)               # data, through root -> l1 -> l0
        mv      a0, s1
        ${UCALL}
        li      t1, 0x40001004
        sb      s1, 0(t1)               # MMIO, through the page table
        li      t1, 0xc0000010
        ld      a0, 0(t1)               # a walk into no memory at all
        ${UCALL}
        .data
        .balign 4096
root:   .zero   4096
l1:     .zero   4096
l0:     .zero   4096
data:   .dword  0, 0x5eed
`;

/** Leaf or pointer PTE to physical `pa`. */
const pte = (pa: bigint, flags: bigint) => ((pa >> 12n) << 10n) | flags | V;

/** The page tables of PROGRAM; the leaf for its data gets `dataFlags`. Returns satp. */
function buildTables(t: TestVm, dataFlags: bigint): bigint {
  const [root, l1, l0, data] = ["root", "l1", "l0", "data"].map((s) => BigInt(symbol(t, s)));
  writeGuestU64(t.vm, Number(root) + 2 * 8, pte(BigInt(RAM_BASE), R | W | X | A | D)); // identity 1 GiB
  writeGuestU64(t.vm, Number(root) + 1 * 8, pte(l1, 0n)); // VA 0x40000000
  writeGuestU64(t.vm, Number(root) + 3 * 8, pte(NOWHERE_GPA, 0n)); // VA 0xc0000000
  writeGuestU64(t.vm, Number(l1), pte(l0, 0n));
  writeGuestU64(t.vm, Number(l0), pte(data, dataFlags));
  writeGuestU64(t.vm, Number(l0) + 8, pte(MMIO_GPA, R | W | A | D));
  return SATP_SV39 | (root >> 12n);
}

function pagedVm(dataFlags: bigint): TestVm {
  const t = createTestVm(PROGRAM);
  t.vcpu.hart.setRegister(10, buildTables(t, dataFlags));
  return t;
}

/** After the first ucall: the MMIO store exits at its guest-physical address, then the access fault. */
function expectMmioThenAccessFault(t: TestVm): void {
  runGuest(t.vcpu);
  assert.equal(t.vcpu.run.exitReason, EXIT_MMIO);
  assert.equal(t.vcpu.run.mmio.physAddr, Number(MMIO_GPA) + 4);
  assert.equal(t.vcpu.run.mmio.isWrite, true);
  assert.equal(t.vcpu.run.mmio.len, 1);
  assert.equal(t.vcpu.run.mmio.value, 0x5eedn & 0xffn);
  runGuest(t.vcpu);
  assert.equal(t.vcpu.run.exitReason, EXIT_RISCV_SBI);
  const sbi = t.vcpu.run.riscvSbi;
  assert.equal(sbi.extensionId, TRAP_EID, "the guest took a trap");
  assert.equal(sbi.args[0], 5n, "load access fault");
  assert.equal(sbi.args[2], 0xc000_0010n, "stval is the virtual address");
}

describe("a guest with Sv39 paging", () => {
  test("walks its tables through stage 2: data, MMIO at the translated address, an access fault", () => {
    const t = pagedVm(R | W | A | D);
    assert.equal(runToUcall(t.vcpu), 0x5eedn);
    expectMmioThenAccessFault(t);
  });

  test("a USERFAULT page table stops the walk with MEMORY_FAULT on the table's page", () => {
    const t = pagedVm(R | W | A | D);
    const l0 = symbol(t, "l0");
    enableUserfault(t);
    setUserfault(t.vm, l0, true);
    const fault = expectMemoryFault(t.vcpu);
    assert.equal(fault.gpa, l0);
    assert.equal(fault.size, PAGE_SIZE);
    assert.equal(fault.flags, MEMORY_EXIT_FLAG_USERFAULT, "a read, not a write or a fetch");
    setUserfault(t.vm, l0, false);
    assert.equal(runToUcall(t.vcpu), 0x5eedn);
  });

  test("the A bit the walk sets is a write: dirty logging reports the page table's page", () => {
    const t = pagedVm(R | W);
    t.vm.setUserMemoryRegion2({
      slot: 0,
      flags: MEM_GUEST_MEMFD | MEM_LOG_DIRTY_PAGES,
      guestPhysAddr: RAM_BASE,
      memorySize: 16 << 20,
      userspaceAddr: 0,
      guestMemfd: t.gmemFd,
      guestMemfdOffset: 0,
    });
    assert.equal(runToUcall(t.vcpu), 0x5eedn);
    const l0 = symbol(t, "l0");
    const bitmap = t.vm.getDirtyLog(0);
    const dirty: number[] = [];
    for (let i = 0; i < bitmap.length * 8; i++) {
      if (bitmap[i >> 3] & (1 << (i & 7))) dirty.push(RAM_BASE + i * PAGE_SIZE);
    }
    assert.deepEqual(dirty, [l0], "only the page table was written");
    assert.equal(readGuestU64(t.vm, l0) & 0xffn, V | R | W | A, "A set, D not (a load)");
  });
});
