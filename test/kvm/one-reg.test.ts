import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  CORE_MODE,
  CORE_PC,
  coreReg,
  CSR_REG_SATP,
  CSR_REG_SCAUSE,
  CSR_REG_SIE,
  CSR_REG_SIP,
  CSR_REG_SSCRATCH,
  CSR_REG_STVEC,
  csrReg,
  KVM_MP_STATE_RUNNABLE,
  KVM_MP_STATE_STOPPED,
  KVM_REG_RISCV,
  KVM_REG_SIZE_U64,
  KVM_RISCV_MODE_S,
  KVM_RISCV_MODE_U,
  KVM_RISCV_TIMER_STATE_OFF,
  KVM_RISCV_TIMER_STATE_ON,
  STA_REG_SHMEM_HI,
  STA_REG_SHMEM_LO,
  staReg,
  TIMER_REG_COMPARE,
  TIMER_REG_FREQUENCY,
  TIMER_REG_STATE,
  TIMER_REG_TIME,
  timerReg,
} from "../../src/kvm/one-reg.js";
import * as S from "../../src/kvm/sbi/constants.js";
import { MIP_SSIP, MIP_STIP, TIMEBASE_FREQUENCY } from "../../src/riscv/cpu/constants.js";
import {
  assertErrno,
  createTestVm,
  RAM_BASE,
  runToUcall,
  SBI_LOOP,
  sbiCall,
  type TestVm,
  UCALL,
} from "./support.js";

const ALL_ONES = (1n << 64n) - 1n;

/**
 * Sets up state a migration must carry (CSRs, a callee-saved register, the
 * mode it runs in stays S), stops at a ucall with a0 = 1, then reports each
 * piece with a ucall of its own.
 */
const STATE_GUEST = `
_start: li      t0, 0x1122334455667788
        csrw    sscratch, t0
        la      t0, handler
        csrw    stvec, t0
        li      t0, 0x222
        csrw    sie, t0
        li      s1, 0x5a5a5a5a
        li      a0, 1
        ${UCALL}
        csrr    a0, sscratch
        ${UCALL}
        csrr    a0, stvec
        ${UCALL}
        csrr    a0, sie
        ${UCALL}
        mv      a0, s1
        ${UCALL}
        rdtime  a0
        ${UCALL}
1:      j       1b
        .balign 4
handler: j      handler
`;

function saveAll(t: TestVm): Map<bigint, bigint> {
  return new Map(t.vcpu.getRegList().map((id) => [id, t.vcpu.getOneReg(id)]));
}

describe("vCPU registers (KVM_GET/SET_ONE_REG) and MP state", () => {
  test("the register list holds the core, CSR, timer and STA registers, each readable", () => {
    const t = createTestVm(SBI_LOOP);
    const ids = t.vcpu.getRegList();
    assert.equal(ids.length, 33 + 11 + 4 + 2);
    assert.equal(new Set(ids).size, ids.length);
    for (const id of ids) assert.equal(typeof t.vcpu.getOneReg(id), "bigint");
    assert.equal(t.vcpu.getOneReg(coreReg(CORE_PC)), BigInt(t.entry));
    assert.equal(t.vcpu.getOneReg(coreReg(CORE_MODE)), KVM_RISCV_MODE_S);
    assert.equal(t.vcpu.getOneReg(timerReg(TIMER_REG_FREQUENCY)), BigInt(TIMEBASE_FREQUENCY));
  });

  test("state saved from a vCPU stopped at an exit, restored into another VM, runs on there", () => {
    const a = createTestVm(STATE_GUEST);
    assert.equal(runToUcall(a.vcpu), 1n);
    // Far from where a fresh VM's clock starts, so that only a restored clock gets there.
    const farTime = 50n * BigInt(TIMEBASE_FREQUENCY) * 3600n;
    a.vcpu.setOneReg(timerReg(TIMER_REG_TIME), farTime);
    const saved = saveAll(a);

    const b = createTestVm(STATE_GUEST);
    for (const [id, value] of saved) b.vcpu.setOneReg(id, value);
    for (const [id, value] of saved) {
      if (id === timerReg(TIMER_REG_TIME)) continue;
      assert.equal(b.vcpu.getOneReg(id), value, `register 0x${id.toString(16)}`);
    }
    assert.equal(runToUcall(b.vcpu), 0x1122334455667788n, "sscratch");
    assert.equal(runToUcall(b.vcpu), BigInt(Number(b.symbols.get("handler"))), "stvec");
    assert.equal(runToUcall(b.vcpu), 0x222n, "sie");
    assert.equal(runToUcall(b.vcpu), 0x5a5a5a5an, "s1");
    const time = runToUcall(b.vcpu);
    assert.ok(time >= farTime && time < farTime + BigInt(TIMEBASE_FREQUENCY) * 60n, `${time}`);
  });

  test("the timer: time moves for the whole VM, compare and state follow SBI set_timer", () => {
    const t = createTestVm(SBI_LOOP);
    assert.equal(runToUcall(t.vcpu), 0n);
    const other = t.kvm.createVcpu(t.vm, 1);
    t.vcpu.setOneReg(timerReg(TIMER_REG_TIME), 10n ** 12n);
    const now = t.vcpu.getOneReg(timerReg(TIMER_REG_TIME));
    assert.ok(now >= 10n ** 12n && now < 10n ** 12n + BigInt(TIMEBASE_FREQUENCY), `${now}`);
    assert.ok(other.getOneReg(timerReg(TIMER_REG_TIME)) >= 10n ** 12n, "the VM's clock moved");

    assert.equal(t.vcpu.getOneReg(timerReg(TIMER_REG_STATE)), KVM_RISCV_TIMER_STATE_OFF);
    assert.equal(t.vcpu.getOneReg(timerReg(TIMER_REG_COMPARE)), ALL_ONES);
    const deadline = 10n ** 12n + 10n ** 9n;
    assert.equal(sbiCall(t, S.EXT_TIME, 0, [deadline])[0], S.SBI_SUCCESS);
    assert.equal(t.vcpu.getOneReg(timerReg(TIMER_REG_COMPARE)), deadline);
    assert.equal(t.vcpu.getOneReg(timerReg(TIMER_REG_STATE)), KVM_RISCV_TIMER_STATE_ON);
    t.vcpu.setOneReg(timerReg(TIMER_REG_STATE), KVM_RISCV_TIMER_STATE_OFF);
    assert.equal(t.vcpu.getOneReg(timerReg(TIMER_REG_COMPARE)), ALL_ONES);
    t.vcpu.setOneReg(timerReg(TIMER_REG_COMPARE), deadline);
    assert.equal(t.vcpu.getOneReg(timerReg(TIMER_REG_STATE)), KVM_RISCV_TIMER_STATE_ON);
  });

  test("the VM clock (KVM_GET/SET_CLOCK) is the timer's time on every vCPU, and what the guest reads", () => {
    const t = createTestVm(`_start: rdtime a0\n${UCALL}\n1: j 1b\n`);
    const start = 7n * 10n ** 11n;
    t.vm.setClock(start);
    assert.ok(t.vm.getClock() >= start && t.vm.getClock() < start + BigInt(TIMEBASE_FREQUENCY));
    assert.ok(t.vcpu.getOneReg(timerReg(TIMER_REG_TIME)) >= start);
    const read = runToUcall(t.vcpu);
    assert.ok(read >= start && read < start + BigInt(TIMEBASE_FREQUENCY) * 60n, `${read}`);
    assertErrno(() => t.vm.setClock(-1n), "EINVAL");
    assertErrno(() => t.vm.setClock(1n << 63n), "EINVAL");
    assert.ok(t.vm.getClock() >= start, "a refused setClock changed nothing");
  });

  test("sip restores every pending supervisor interrupt; other CSRs are legalized as on a write", () => {
    const t = createTestVm(SBI_LOOP);
    t.vcpu.setOneReg(csrReg(CSR_REG_SIP), BigInt(MIP_SSIP | MIP_STIP) | (1n << 40n));
    assert.equal(t.vcpu.getOneReg(csrReg(CSR_REG_SIP)), BigInt(MIP_SSIP | MIP_STIP));
    t.vcpu.setOneReg(csrReg(CSR_REG_SIE), ALL_ONES);
    assert.equal(t.vcpu.getOneReg(csrReg(CSR_REG_SIE)), 0x222n);
    t.vcpu.setOneReg(csrReg(CSR_REG_STVEC), 0x8020_0003n);
    assert.notEqual(t.vcpu.getOneReg(csrReg(CSR_REG_STVEC)) & 3n, 3n, "reserved MODE ignored");
    t.vcpu.setOneReg(csrReg(CSR_REG_SCAUSE), ALL_ONES);
    assert.equal(t.vcpu.getOneReg(csrReg(CSR_REG_SCAUSE)), ALL_ONES);
    // satp: Sv39 is taken (ASIDLEN 0: the ASID reads 0); Sv48, which this hart lacks, is ignored.
    const sv39 = (8n << 60n) | 0x8_0123n;
    t.vcpu.setOneReg(csrReg(CSR_REG_SATP), sv39 | (0xffffn << 44n));
    assert.equal(t.vcpu.getOneReg(csrReg(CSR_REG_SATP)), sv39);
    t.vcpu.setOneReg(csrReg(CSR_REG_SATP), (9n << 60n) | 0x8_0456n);
    assert.equal(t.vcpu.getOneReg(csrReg(CSR_REG_SATP)), sv39);
    t.vcpu.setOneReg(csrReg(CSR_REG_SATP), 0n);
    t.vcpu.setOneReg(coreReg(CORE_MODE), KVM_RISCV_MODE_U);
    assert.equal(t.vcpu.getOneReg(coreReg(CORE_MODE)), KVM_RISCV_MODE_U);
    t.vcpu.setOneReg(coreReg(0), 0n);
    t.vcpu.setOneReg(coreReg(5), ALL_ONES);
    assert.equal(t.vcpu.getOneReg(coreReg(5)), ALL_ONES);
  });

  test("the steal-time registration (SBI STA) as shmem_lo/shmem_hi", () => {
    const t = createTestVm(SBI_LOOP);
    assert.equal(runToUcall(t.vcpu), 0n);
    assert.equal(t.vcpu.getOneReg(staReg(STA_REG_SHMEM_LO)), ALL_ONES, "none registered");
    const record = BigInt(RAM_BASE + 0x10_0000);
    assert.equal(sbiCall(t, S.EXT_STA, S.STA_STEAL_TIME_SET_SHMEM, [record, 0n, 0n])[0], 0);
    assert.equal(t.vcpu.getOneReg(staReg(STA_REG_SHMEM_LO)), record);
    assert.equal(t.vcpu.getOneReg(staReg(STA_REG_SHMEM_HI)), 0n);
    t.vcpu.setOneReg(staReg(STA_REG_SHMEM_LO), ALL_ONES);
    assert.equal(t.vcpu.getOneReg(staReg(STA_REG_SHMEM_LO)), ALL_ONES);
    assert.equal(t.vcpu.getOneReg(staReg(STA_REG_SHMEM_HI)), ALL_ONES);
    t.vcpu.setOneReg(staReg(STA_REG_SHMEM_LO), record + 64n);
    assert.equal(t.vcpu.getOneReg(staReg(STA_REG_SHMEM_LO)), record + 64n);
  });

  test("MP state: STOPPED and RUNNABLE; a pending HSM start is applied when read", () => {
    const t = createTestVm(SBI_LOOP);
    assert.equal(runToUcall(t.vcpu), 0n);
    const second = t.kvm.createVcpu(t.vm, 1);
    second.setMpState(KVM_MP_STATE_STOPPED);
    assert.equal(second.getMpState(), KVM_MP_STATE_STOPPED);
    const startAt = BigInt(RAM_BASE + 0x3000);
    const [error] = sbiCall(t, S.EXT_HSM, S.HSM_HART_START, [1n, startAt, 0xabcdn]);
    assert.equal(error, S.SBI_SUCCESS);
    assert.equal(second.getMpState(), KVM_MP_STATE_RUNNABLE);
    assert.equal(second.getOneReg(coreReg(CORE_PC)), startAt);
    assert.equal(second.getOneReg(coreReg(10)), 1n, "a0 = hart id");
    assert.equal(second.getOneReg(coreReg(11)), 0xabcdn, "a1 = opaque");
    assert.equal(sbiCall(t, S.EXT_HSM, S.HSM_HART_GET_STATUS, [1n])[1], 0n, "STARTED");
    second.setMpState(KVM_MP_STATE_STOPPED);
    assert.equal(sbiCall(t, S.EXT_HSM, S.HSM_HART_GET_STATUS, [1n])[1], 1n, "STOPPED");
    second.setMpState(KVM_MP_STATE_RUNNABLE);
    assert.equal(second.getMpState(), KVM_MP_STATE_RUNNABLE);
  });

  test("errors: ENOENT for ids no register has, EINVAL for values a register cannot hold", () => {
    const t = createTestVm(SBI_LOOP);
    const v = t.vcpu;
    const u64 = KVM_REG_RISCV | KVM_REG_SIZE_U64;
    for (const id of [
      0n,
      coreReg(33),
      csrReg(11),
      timerReg(4),
      staReg(2),
      u64 | (0x01n << 24n),
      u64 | (0x05n << 24n),
      (coreReg(CORE_PC) & ~KVM_REG_SIZE_U64) | (0x2n << 52n),
      csrReg(CSR_REG_SSCRATCH) | (1n << 16n),
    ]) {
      assertErrno(() => v.getOneReg(id), "ENOENT");
      assertErrno(() => v.setOneReg(id, 0n), "ENOENT");
    }
    assertErrno(() => v.setOneReg(coreReg(CORE_MODE), 2n), "EINVAL");
    assertErrno(() => v.setOneReg(coreReg(1), -1n), "EINVAL");
    assertErrno(() => v.setOneReg(coreReg(1), 1n << 64n), "EINVAL");
    assertErrno(() => v.setOneReg(coreReg(CORE_PC), 1n << 60n), "EINVAL");
    assertErrno(() => v.setOneReg(timerReg(TIMER_REG_FREQUENCY), 1_000_000n), "EINVAL");
    assertErrno(() => v.setOneReg(timerReg(TIMER_REG_STATE), 2n), "EINVAL");
    assertErrno(() => v.setOneReg(staReg(STA_REG_SHMEM_LO), BigInt(RAM_BASE + 8)), "EINVAL");
    assertErrno(() => v.setOneReg(staReg(STA_REG_SHMEM_HI), 1n), "EINVAL");
    assertErrno(() => v.setMpState(3), "EINVAL");
    // Nothing changed by the failed calls.
    assert.equal(v.getOneReg(coreReg(CORE_MODE)), KVM_RISCV_MODE_S);
    assert.equal(v.getOneReg(timerReg(TIMER_REG_FREQUENCY)), BigInt(TIMEBASE_FREQUENCY));
    assert.equal(v.getMpState(), KVM_MP_STATE_RUNNABLE);
  });
});
