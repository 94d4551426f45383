import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from "../../src/host/address-space.js";
import { PAGE_SIZE } from "../../src/host/host-memory.js";
import {
  BASE_GET_SPEC_VERSION,
  EXT_BASE,
  EXT_STA,
  SBI_ERR_INVALID_ADDRESS,
  SBI_ERR_INVALID_PARAM,
  SBI_ERR_NOT_SUPPORTED,
  SBI_SUCCESS,
  STA_STEAL_TIME_SET_SHMEM,
} from "../../src/kvm/sbi/constants.js";
import {
  MEM_READONLY,
  MEMORY_EXIT_FLAG_USERFAULT,
  MEMORY_EXIT_FLAG_WRITE,
} from "../../src/kvm/uapi.js";
import {
  createTestVm,
  enableUserfault,
  expectMemoryFault,
  RAM_BASE,
  readGuest,
  runToUcall,
  SBI_LOOP,
  sbiCall,
  setSbiCall,
  setUserfault,
  sleep,
  type TestVm,
} from "./support.js";

/**
 * SBI STA: the guest registers a steal-time record, which the hypervisor
 * updates each time the vCPU enters KVM_RUN; a userfault record page makes
 * run() exit with a write MEMORY_FAULT instead of writing.
 */

/** A 64-byte aligned record in its own page, away from the code and the command page. */
const RECORD = RAM_BASE + 0x40_0000 + 0x140;
const ALL_ONES = (1n << 64n) - 1n;

function setup(): TestVm {
  const t = createTestVm(SBI_LOOP);
  assert.equal(runToUcall(t.vcpu), 0n);
  return t;
}

/** Register with STA; the loop then makes a call that changes nothing (BASE get_spec_version). */
function register(t: TestVm, lo: bigint, hi = 0n, flags = 0n): [number, bigint] {
  const result = sbiCall(t, EXT_STA, STA_STEAL_TIME_SET_SHMEM, [lo, hi, flags]);
  setSbiCall(t, EXT_BASE, BASE_GET_SPEC_VERSION);
  return result;
}

/** struct sbi_sta_struct: sequence (u32) and steal (u64, ns). */
function record(t: TestVm): { sequence: number; steal: bigint } {
  const view = new DataView(readGuest(t.vm, RECORD, 16).buffer);
  return { sequence: view.getUint32(0, true), steal: view.getBigUint64(8, true) };
}

describe("SBI steal time (STA)", () => {
  test("a registered record is updated on every entry: even sequence, growing steal time", async () => {
    const t = setup();
    assert.deepEqual(register(t, BigInt(RECORD)), [SBI_SUCCESS, 0n]);
    const first = record(t);
    assert.equal(first.sequence % 2, 0, "never left odd");
    assert.ok(first.sequence >= 2, "updated once registered");
    // Time spent outside KVM_RUN is what the guest sees stolen.
    await sleep(30);
    runToUcall(t.vcpu);
    const second = record(t);
    assert.equal(second.sequence, first.sequence + 2);
    assert.ok(
      second.steal - first.steal >= 25_000_000n,
      `steal grew by ${second.steal - first.steal} ns`,
    );
    // The rest of the record is the guest's.
    assert.deepEqual([...readGuest(t.vm, RECORD + 16, 48)], Array(48).fill(0));
  });

  test("with the record's page userfault, run() exits with a write MEMORY_FAULT instead of writing", () => {
    const t = setup();
    assert.deepEqual(register(t, BigInt(RECORD)), [SBI_SUCCESS, 0n]);
    const before = record(t);
    enableUserfault(t);
    setUserfault(t.vm, RECORD - (RECORD % PAGE_SIZE), true);
    for (let i = 0; i < 2; i++) {
      assert.deepEqual(expectMemoryFault(t.vcpu), {
        flags: MEMORY_EXIT_FLAG_USERFAULT | MEMORY_EXIT_FLAG_WRITE,
        gpa: RECORD - (RECORD % PAGE_SIZE),
        size: PAGE_SIZE,
      });
    }
    setUserfault(t.vm, RECORD - (RECORD % PAGE_SIZE), false);
    assert.deepEqual(record(t), before, "nothing was written while the page was userfault");
    runToUcall(t.vcpu);
    const after = record(t);
    assert.equal(after.sequence, before.sequence + 2, "one whole update, even again");
    assert.ok(after.steal >= before.steal);
  });

  test("registering a record on a userfault page: the first update exits", () => {
    const t = setup();
    enableUserfault(t);
    setUserfault(t.vm, RECORD - (RECORD % PAGE_SIZE), true);
    setSbiCall(t, EXT_STA, STA_STEAL_TIME_SET_SHMEM, [BigInt(RECORD), 0n, 0n]);
    assert.equal(expectMemoryFault(t.vcpu).gpa, RECORD - (RECORD % PAGE_SIZE));
    setUserfault(t.vm, RECORD - (RECORD % PAGE_SIZE), false);
    assert.equal(runToUcall(t.vcpu), BigInt(SBI_SUCCESS), "the SBI call itself succeeded");
    assert.equal(record(t).sequence % 2, 0);
    assert.ok(record(t).sequence >= 2);
  });

  test("bad flags, alignment and addresses are SBI errors; all-ones disables the record", () => {
    const t = setup();
    assert.deepEqual(register(t, BigInt(RECORD), 0n, 1n), [SBI_ERR_INVALID_PARAM, 0n]);
    assert.deepEqual(register(t, BigInt(RECORD + 8)), [SBI_ERR_INVALID_PARAM, 0n]);
    assert.deepEqual(register(t, BigInt(RECORD + 32)), [SBI_ERR_INVALID_PARAM, 0n]);
    assert.deepEqual(
      register(t, BigInt(RECORD), 1n),
      [SBI_ERR_INVALID_ADDRESS, 0n],
      "hi is 0 on RV64",
    );
    assert.deepEqual(register(t, 0x1000n), [SBI_ERR_INVALID_ADDRESS, 0n], "no memory there");
    assert.deepEqual(sbiCall(t, EXT_STA, 1, [BigInt(RECORD), 0n, 0n]), [SBI_ERR_NOT_SUPPORTED, 0n]);
    assert.deepEqual(record(t), { sequence: 0, steal: 0n }, "no failed call registered anything");
    // A read-only memslot cannot hold the record.
    const hva = t.host.mmap({
      length: 1 << 20,
      prot: PROT_READ | PROT_WRITE,
      flags: MAP_PRIVATE | MAP_ANONYMOUS,
    });
    const readonly = RAM_BASE + 0x1000_0000;
    t.vm.setUserMemoryRegion2({
      slot: 1,
      flags: MEM_READONLY,
      guestPhysAddr: readonly,
      memorySize: 1 << 20,
      userspaceAddr: hva,
    });
    assert.deepEqual(register(t, BigInt(readonly + 64)), [SBI_ERR_INVALID_ADDRESS, 0n]);
    runToUcall(t.vcpu);
    assert.deepEqual([...t.host.copyFromUser(hva + 64, 4)], [0, 0, 0, 0]);
    // Register, then disable: the record stops changing.
    assert.deepEqual(register(t, BigInt(RECORD)), [SBI_SUCCESS, 0n]);
    assert.deepEqual(register(t, ALL_ONES, ALL_ONES), [SBI_SUCCESS, 0n]);
    const stopped = record(t);
    runToUcall(t.vcpu);
    runToUcall(t.vcpu);
    assert.deepEqual(record(t), stopped);
  });

  test("a record whose memslot goes away is no longer updated, and run() keeps working", () => {
    const t = setup();
    const hva = t.host.mmap({
      length: 1 << 20,
      prot: PROT_READ | PROT_WRITE,
      flags: MAP_PRIVATE | MAP_ANONYMOUS,
    });
    const gpa = RAM_BASE + 0x1000_0000;
    const region = {
      slot: 1,
      flags: 0,
      guestPhysAddr: gpa,
      memorySize: 1 << 20,
      userspaceAddr: hva,
    };
    t.vm.setUserMemoryRegion2(region);
    assert.deepEqual(register(t, BigInt(gpa + 128)), [SBI_SUCCESS, 0n]);
    const sequence = new DataView(t.host.copyFromUser(hva + 128, 4).buffer).getUint32(0, true);
    assert.ok(sequence >= 2);
    t.vm.setUserMemoryRegion2({ ...region, memorySize: 0 });
    runToUcall(t.vcpu);
    runToUcall(t.vcpu);
    assert.equal(
      new DataView(t.host.copyFromUser(hva + 128, 4).buffer).getUint32(0, true),
      sequence,
    );
  });
});
