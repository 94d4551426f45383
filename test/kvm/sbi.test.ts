import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PAGE_SIZE } from "../../src/host/host-memory.js";
import { MIP_SSIP } from "../../src/riscv/cpu/constants.js";
import {
  CSR_REG_SATP,
  csrReg,
  KVM_MP_STATE_RUNNABLE,
  KVM_MP_STATE_STOPPED,
} from "../../src/kvm/one-reg.js";
import * as S from "../../src/kvm/sbi/constants.js";
import {
  EXIT_RISCV_SBI,
  EXIT_SYSTEM_EVENT,
  SYSTEM_EVENT_RESET,
  SYSTEM_EVENT_SHUTDOWN,
} from "../../src/kvm/uapi.js";
import { UCALL_DONE, UCALL_REPORT, type VcpuReply } from "./kvm-worker.js";
import {
  createTestVm,
  RAM_BASE,
  runGuest,
  runToUcall,
  SBI_LOOP,
  sbiCall,
  setSbiCall,
  type TestVm,
  UCALL,
  UCALL_EID,
  withTimeout,
  writeGuestU64,
} from "./support.js";
import { KvmWorkers } from "./workers.js";

/**
 * The SBI implementation in the hypervisor (KVM's vcpu_sbi*.c): calls it
 * answers itself, calls it forwards to the VMM as EXIT_RISCV_SBI, and the
 * multi-hart extensions with every vCPU on its own thread.
 */

const ALL_ONES = (1n << 64n) - 1n;
/** A scratch page for legacy hart masks. */
const SCRATCH = RAM_BASE + 0x40_0000;

function setup(): TestVm {
  const t = createTestVm(SBI_LOOP);
  assert.equal(runToUcall(t.vcpu), 0n);
  return t;
}

/** Start vCPUs 1..count-1 and run every vCPU on a worker: a0 = hart id. */
function runHarts(
  t: TestVm,
  count: number,
  options: { stopped?: number[] } = {},
): { workers: KvmWorkers; replies: Promise<VcpuReply>[] } {
  // Stopped before any vCPU runs (KVM_SET_MP_STATE), so that no hart sees another still started.
  for (let id = 1; id < count; id++) {
    t.kvm
      .createVcpu(t.vm, id)
      .setMpState(options.stopped?.includes(id) ? KVM_MP_STATE_STOPPED : KVM_MP_STATE_RUNNABLE);
  }
  const workers = new KvmWorkers(t);
  const replies = Array.from(
    { length: count },
    (_, id) =>
      workers.vcpu({
        id,
        pc: t.entry,
        a0: BigInt(id),
        stvec: t.trap,
        onFault: "stop",
      }).reply,
  );
  return { workers, replies };
}

describe("SBI in the hypervisor", () => {
  test("BASE: spec version, implementation, probing", () => {
    const t = setup();
    assert.deepEqual(sbiCall(t, S.EXT_BASE, S.BASE_GET_SPEC_VERSION), [0, 0x0200_0000n]);
    assert.deepEqual(sbiCall(t, S.EXT_BASE, S.BASE_GET_IMPL_ID), [0, BigInt(S.SBI_IMPL_ID_KVM)]);
    assert.equal(sbiCall(t, S.EXT_BASE, S.BASE_GET_IMPL_VERSION)[0], 0);
    for (const fid of [S.BASE_GET_MVENDORID, S.BASE_GET_MARCHID, S.BASE_GET_MIMPID]) {
      assert.deepEqual(sbiCall(t, S.EXT_BASE, fid), [0, 0n]);
    }
    const probe = (eid: bigint) => sbiCall(t, S.EXT_BASE, S.BASE_PROBE_EXTENSION, [eid]);
    for (const eid of [
      S.EXT_BASE,
      S.EXT_TIME,
      S.EXT_IPI,
      S.EXT_RFENCE,
      S.EXT_HSM,
      S.EXT_SRST,
      S.EXT_DBCN,
      S.EXT_STA,
      ...[0, 1, 2, 3, 4, 5, 6, 7, 8],
    ]) {
      assert.deepEqual(probe(BigInt(eid)), [0, 1n], `extension 0x${eid.toString(16)}`);
    }
    for (const eid of [0x1234_5678n, BigInt(UCALL_EID), 9n, (1n << 32n) | BigInt(S.EXT_TIME)]) {
      assert.deepEqual(probe(eid), [0, 0n], `extension 0x${eid.toString(16)}`);
    }
    assert.deepEqual(sbiCall(t, S.EXT_BASE, 7), [S.SBI_ERR_NOT_SUPPORTED, 0n]);
  });

  test("TIME set_timer delivers a supervisor timer interrupt at the deadline; legacy set_timer too", () => {
    const t = createTestVm(`
_start:
        la      t0, handler
        csrw    stvec, t0
        li      t0, 0x20                # STIE
        csrs    sie, t0
        csrsi   sstatus, 2              # SIE
        csrr    t1, time
        li      t2, 200000              # 20 ms at 10 MHz
        add     a0, t1, t2
        li      a7, ${S.EXT_TIME}
        li      a6, 0
        ecall
        mv      s1, a0
        csrr    s2, time
1:      wfi
        j       1b
handler:
        csrr    a0, scause
        csrr    a1, time
        sub     a1, a1, s2
        ${UCALL}
        li      a0, -1                  # never: clears the pending interrupt
        li      a7, ${S.EXT_TIME}
        li      a6, 0
        ecall
        csrr    a0, sip
        mv      a1, s1
        ${UCALL}
        csrr    t1, time                # legacy set_timer, waited for with SIE off
        addi    a0, t1, 1000
        li      a7, 0
        ecall
2:      wfi
        csrr    a0, sip
        andi    t0, a0, 0x20
        beqz    t0, 2b
        ${UCALL}
3:      j       3b
`);
    const start = performance.now();
    assert.equal(runToUcall(t.vcpu), (1n << 63n) | 5n, "a supervisor timer interrupt");
    assert.ok(performance.now() - start >= 15, "not before the deadline");
    assert.ok(
      t.vcpu.run.riscvSbi.args[1] >= 150_000n,
      `waited ${t.vcpu.run.riscvSbi.args[1]} ticks`,
    );
    assert.equal(runToUcall(t.vcpu) & 0x20n, 0n, "STIP cleared by the next set_timer");
    assert.equal(t.vcpu.run.riscvSbi.args[1], 0n, "set_timer succeeded");
    assert.equal(runToUcall(t.vcpu) & 0x20n, 0x20n, "the legacy timer fired");
  });

  test("IPI: one vCPU interrupts another running on its own thread; bad hart masks are INVALID_PARAM", async () => {
    const t = createTestVm(`
_start:
        mv      s0, a0
        la      t0, handler
        csrw    stvec, t0
        bnez    s0, hart1
        la      t0, ready
1:      ld      t1, 0(t0)
        beqz    t1, 1b
        li      a7, ${S.EXT_IPI}
        li      a6, 0
        li      a0, 2                   # hart 1
        li      a1, 0
        ecall
        mv      s1, a0
        li      a7, ${S.EXT_IPI}
        li      a6, 0
        li      a0, 1
        li      a1, 5                   # hart 5 does not exist
        ecall
        mv      s2, a0
        li      a7, ${S.EXT_IPI}
        li      a6, 1                   # no such function
        ecall
        mv      s3, a0
        mv      a0, s1
        li      a1, ${UCALL_REPORT}
        ${UCALL}
        mv      a0, s2
        li      a1, ${UCALL_REPORT}
        ${UCALL}
        mv      a0, s3
        li      a1, ${UCALL_REPORT}
        ${UCALL}
        li      a1, ${UCALL_DONE}
        ${UCALL}
hart1:
        li      t0, 2                   # SSIE
        csrs    sie, t0
        csrsi   sstatus, 2
        la      t0, ready
        li      t1, 1
        sd      t1, 0(t0)
2:      wfi
        j       2b
handler:
        csrr    a0, scause
        csrr    a2, sip
        li      t0, 2
        csrc    sip, t0
        li      a1, ${UCALL_DONE}
        ${UCALL}
        .data
        .balign 8
ready:  .dword  0
`);
    const { workers, replies } = runHarts(t, 2);
    try {
      const [hart0, hart1] = await withTimeout(Promise.all(replies), 10_000, "both harts");
      assert.equal(hart0.stop, "done", hart0.message);
      assert.deepEqual(
        hart0.reports.map((v) => Number(BigInt.asIntN(64, v))),
        [S.SBI_SUCCESS, S.SBI_ERR_INVALID_PARAM, S.SBI_ERR_NOT_SUPPORTED],
      );
      assert.equal(hart1.stop, "done", hart1.message);
      assert.equal(hart1.a0, (1n << 63n) | 1n, "a supervisor software interrupt");
      assert.equal(hart1.a2 & 2n, 2n, "SSIP was pending");
    } finally {
      await workers.close();
    }
  });

  test("IPI, RFENCE and the legacy calls on one vCPU", () => {
    const t = setup();
    const sip = () => t.vcpu.hart.readSip() & MIP_SSIP;
    assert.deepEqual(sbiCall(t, S.EXT_IPI, 0, [1n, ALL_ONES]), [0, 0n], "base -1: every hart");
    assert.equal(sip(), MIP_SSIP);
    assert.equal(sbiCall(t, S.EXT_LEGACY_CLEAR_IPI, 0)[0], 0);
    assert.equal(sip(), 0);
    // Legacy calls take a pointer to a hart mask (0: all harts).
    writeGuestU64(t.vm, SCRATCH, 1n);
    assert.equal(sbiCall(t, S.EXT_LEGACY_SEND_IPI, 0, [BigInt(SCRATCH)])[0], 0);
    assert.equal(sip(), MIP_SSIP);
    sbiCall(t, S.EXT_LEGACY_CLEAR_IPI, 0);
    assert.equal(sbiCall(t, S.EXT_LEGACY_SEND_IPI, 0, [0n])[0], 0);
    assert.equal(sip(), MIP_SSIP);
    sbiCall(t, S.EXT_LEGACY_CLEAR_IPI, 0);
    writeGuestU64(t.vm, SCRATCH, 2n);
    assert.equal(
      sbiCall(t, S.EXT_LEGACY_SEND_IPI, 0, [BigInt(SCRATCH)])[0],
      S.SBI_ERR_INVALID_PARAM,
    );
    assert.equal(sip(), 0);
    // A mask pointer to nowhere is an error for the guest, not for the VMM.
    assert.equal(sbiCall(t, S.EXT_LEGACY_SEND_IPI, 0, [0x1000n])[0], S.SBI_ERR_INVALID_ADDRESS);
    for (const eid of [
      S.EXT_LEGACY_REMOTE_FENCE_I,
      S.EXT_LEGACY_REMOTE_SFENCE_VMA,
      S.EXT_LEGACY_REMOTE_SFENCE_VMA_ASID,
    ]) {
      assert.equal(sbiCall(t, eid, 0, [0n, 0n, BigInt(PAGE_SIZE)])[0], 0);
    }
    for (const fid of [
      S.RFENCE_REMOTE_FENCE_I,
      S.RFENCE_REMOTE_SFENCE_VMA,
      S.RFENCE_REMOTE_SFENCE_VMA_ASID,
    ]) {
      assert.deepEqual(sbiCall(t, S.EXT_RFENCE, fid, [1n, 0n, 0n, ALL_ONES]), [0, 0n]);
      assert.deepEqual(sbiCall(t, S.EXT_RFENCE, fid, [0n, ALL_ONES]), [0, 0n]);
      assert.deepEqual(sbiCall(t, S.EXT_RFENCE, fid, [2n, 0n]), [S.SBI_ERR_INVALID_PARAM, 0n]);
    }
    assert.deepEqual(sbiCall(t, S.EXT_RFENCE, 3, [1n, 0n]), [S.SBI_ERR_NOT_SUPPORTED, 0n]);
    assert.deepEqual(sbiCall(t, S.EXT_TIME, 1), [S.SBI_ERR_NOT_SUPPORTED, 0n]);
    // Legacy shutdown is a system event.
    setSbiCall(t, S.EXT_LEGACY_SHUTDOWN, 0);
    runGuest(t.vcpu);
    assert.equal(t.vcpu.run.exitReason, EXIT_SYSTEM_EVENT);
    assert.deepEqual({ ...t.vcpu.run.systemEvent }, { type: SYSTEM_EVENT_SHUTDOWN, reason: 0 });
  });

  test("console calls and unknown extensions exit to the VMM with EXIT_RISCV_SBI", () => {
    const t = setup();
    const exitFor = (eid: number, fid: number, args: bigint[]) => {
      setSbiCall(t, eid, fid, args);
      runGuest(t.vcpu);
      assert.equal(t.vcpu.run.exitReason, EXIT_RISCV_SBI);
      return t.vcpu.run.riscvSbi;
    };
    let sbi = exitFor(S.EXT_LEGACY_CONSOLE_PUTCHAR, 0, [0x41n]);
    assert.deepEqual([sbi.extensionId, sbi.args[0]], [S.EXT_LEGACY_CONSOLE_PUTCHAR, 0x41n]);
    sbi.ret[0] = 0n;
    assert.equal(runToUcall(t.vcpu), 0n);
    sbi = exitFor(S.EXT_LEGACY_CONSOLE_GETCHAR, 0, []);
    assert.equal(sbi.extensionId, S.EXT_LEGACY_CONSOLE_GETCHAR);
    sbi.ret[0] = 0x7an;
    assert.equal(runToUcall(t.vcpu), 0x7an, "the VMM's answer is the guest's a0");
    sbi = exitFor(S.EXT_DBCN, 0, [5n, BigInt(SCRATCH), 0n]);
    assert.deepEqual(
      [sbi.extensionId, sbi.functionId, sbi.args[0], sbi.args[1], sbi.args[2]],
      [S.EXT_DBCN, 0, 5n, BigInt(SCRATCH), 0n],
    );
    sbi.ret[0] = 0n;
    sbi.ret[1] = 5n;
    assert.equal(runToUcall(t.vcpu), 0n);
    assert.equal(t.vcpu.run.riscvSbi.args[1], 5n);
    sbi = exitFor(0x0a00_0000, 3, [1n, 2n, 3n, 4n, 5n, 6n]);
    assert.deepEqual(
      [sbi.extensionId, sbi.functionId, ...sbi.args],
      [0x0a00_0000, 3, 1n, 2n, 3n, 4n, 5n, 6n],
    );
    // Left unanswered, an unknown extension is NOT_SUPPORTED for the guest.
    assert.equal(BigInt.asIntN(64, runToUcall(t.vcpu)), BigInt(S.SBI_ERR_NOT_SUPPORTED));
  });

  test("SRST on one vCPU: type and reason reported; bad arguments are SBI errors", () => {
    const t = setup();
    assert.deepEqual(sbiCall(t, S.EXT_SRST, 0, [3n, 0n]), [S.SBI_ERR_INVALID_PARAM, 0n]);
    assert.deepEqual(sbiCall(t, S.EXT_SRST, 0, [0n, 1n << 32n]), [S.SBI_ERR_INVALID_PARAM, 0n]);
    assert.deepEqual(sbiCall(t, S.EXT_SRST, 1, [0n, 0n]), [S.SBI_ERR_NOT_SUPPORTED, 0n]);
    setSbiCall(t, S.EXT_SRST, 0, [
      BigInt(S.SRST_TYPE_WARM_REBOOT),
      BigInt(S.SRST_REASON_SYSTEM_FAILURE),
    ]);
    runGuest(t.vcpu);
    assert.equal(t.vcpu.run.exitReason, EXIT_SYSTEM_EVENT);
    assert.deepEqual({ ...t.vcpu.run.systemEvent }, { type: SYSTEM_EVENT_RESET, reason: 1 });
  });

  test("HSM: start, status, already started, bad hart ids, stop; SRST stops every vCPU, stopped ones too", async () => {
    const t = createTestVm(`
        .equ    HSM, ${S.EXT_HSM}
_start:
        bnez    a0, 9f                  # only hart 0 starts here
        li      a7, HSM                 # status of hart 1: STOPPED
        li      a6, 2
        li      a0, 1
        ecall
        mv      a0, a1
        call    report
        li      a7, HSM                 # status of hart 0 itself: STARTED
        li      a6, 2
        li      a0, 0
        ecall
        mv      a0, a1
        call    report
        li      a7, HSM                 # start hart 1 at secondary, opaque 0x1234
        li      a6, 0
        li      a0, 1
        la      a1, secondary
        li      a2, 0x1234
        ecall
        call    report
        li      a7, HSM                 # again: ALREADY_AVAILABLE
        li      a6, 0
        li      a0, 1
        la      a1, secondary
        li      a2, 0
        ecall
        call    report
        li      a7, HSM                 # hart 7: INVALID_PARAM
        li      a6, 0
        li      a0, 7
        la      a1, secondary
        ecall
        call    report
        li      a7, HSM
        li      a6, 2
        li      a0, 7
        ecall
        call    report
        la      t0, go                  # now hart 1 may stop
        li      t1, 1
        sd      t1, 0(t0)
1:      li      a7, HSM                 # wait until hart 1 has stopped itself
        li      a6, 2
        li      a0, 1
        ecall
        li      t0, 1
        bne     a1, t0, 1b
        mv      a0, a1
        call    report
        li      a7, ${S.EXT_SRST}       # shutdown, reason none
        li      a6, 0
        li      a0, 0
        li      a1, 0
        ecall
        li      a1, 2
        ${UCALL}
9:      li      a1, 2                   # a hart that started without HSM: fail
        ${UCALL}
report:
        li      a1, ${UCALL_REPORT}
        li      a7, ${UCALL_EID}
        ecall
        ret
secondary:
        mv      s0, a1
        call    report                  # a0: hart id
        mv      a0, s0
        call    report                  # the opaque value
        la      t0, go                  # stay started until hart 0 is done checking
2:      ld      t1, 0(t0)
        beqz    t1, 2b
        li      a7, HSM                 # stop: does not return
        li      a6, 1
        ecall
        li      a1, 2
        ${UCALL}
        .data
        .balign 8
go:     .dword  0
`);
    const { workers, replies } = runHarts(t, 2, { stopped: [1] });
    try {
      const [hart0, hart1] = await withTimeout(Promise.all(replies), 10_000, "both harts");
      assert.equal(hart0.stop, "exit", hart0.message);
      assert.equal(hart0.exitReason, EXIT_SYSTEM_EVENT);
      assert.deepEqual(hart0.systemEvent, { type: SYSTEM_EVENT_SHUTDOWN, reason: 0 });
      assert.deepEqual(
        hart0.reports.map((v) => Number(BigInt.asIntN(64, v))),
        [
          1,
          0,
          S.SBI_SUCCESS,
          S.SBI_ERR_ALREADY_AVAILABLE,
          S.SBI_ERR_INVALID_PARAM,
          S.SBI_ERR_INVALID_PARAM,
          1,
        ],
      );
      assert.deepEqual(hart1.reports, [1n, 0x1234n]);
      assert.equal(hart1.stop, "exit", hart1.message);
      assert.equal(hart1.exitReason, EXIT_SYSTEM_EVENT, "the stopped hart left run() too");
      assert.deepEqual(hart1.systemEvent, { type: SYSTEM_EVENT_SHUTDOWN, reason: 0 });
    } finally {
      await workers.close();
    }
  });

  test("HSM start hands the hart over with satp 0 (the MMU off), whatever it held before", () => {
    const t = createTestVm(`
_start:
        bnez    a0, secondary
        li      a7, ${S.EXT_HSM}        # start hart 1 at secondary
        li      a6, 0
        li      a0, 1
        la      a1, secondary
        li      a2, 0
        ecall
        ${UCALL}
secondary:
        csrr    a0, satp
        ${UCALL}
`);
    const hart1 = t.kvm.createVcpu(t.vm, 1);
    // Sv39 with a root table nowhere: a hart that kept it could not fetch.
    hart1.setOneReg(csrReg(CSR_REG_SATP), (8n << 60n) | 0x1234n);
    hart1.setMpState(KVM_MP_STATE_STOPPED);
    assert.equal(runToUcall(t.vcpu), 0n, "hart_start succeeded");
    assert.equal(runToUcall(hart1), 0n, "satp read 0 on the started hart");
  });

  test("SRST from one vCPU makes every vCPU leave run(), even one sleeping in WFI", async () => {
    const t = createTestVm(`
_start:
        bnez    a0, 2f
        la      t0, ready
1:      ld      t1, 0(t0)
        beqz    t1, 1b
        li      a7, ${S.EXT_SRST}
        li      a6, 0
        li      a0, ${S.SRST_TYPE_COLD_REBOOT}
        li      a1, ${S.SRST_REASON_SYSTEM_FAILURE}
        ecall
4:      j       4b
2:      la      t0, ready
        li      t1, 1
        sd      t1, 0(t0)
3:      wfi
        j       3b
        .data
        .balign 8
ready:  .dword  0
`);
    const { workers, replies } = runHarts(t, 3);
    try {
      for (const reply of await withTimeout(Promise.all(replies), 10_000, "every hart")) {
        assert.equal(reply.exitReason, EXIT_SYSTEM_EVENT, reply.message);
        assert.deepEqual(reply.systemEvent, { type: SYSTEM_EVENT_RESET, reason: 1 });
      }
    } finally {
      await workers.close();
    }
  });
});
