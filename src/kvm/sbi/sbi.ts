import { CSR_SATP, MIP_SSIP, MIP_STIP, PRIV_S, SSTATUS_SIE } from "../../riscv/cpu/constants.js";
import { setCsr } from "../../riscv/cpu/csr.js";
import { lowerInterrupt, raiseInterrupt } from "../../riscv/cpu/hart-control.js";
import { ErrnoError } from "../../host/errno.js";
import { PAGE_SIZE } from "../../host/host-memory.js";
import { Memslot } from "../memslots.js";
import { MEM_READONLY, SYSTEM_EVENT_RESET, SYSTEM_EVENT_SHUTDOWN } from "../uapi.js";
import type { Vcpu } from "../vcpu.js";
import {
  HSM_START_PENDING,
  HSM_STARTED,
  HSM_STOPPED,
  REQ_HSM,
  REQ_RECORD_STEAL,
  REQ_SYSTEM_EVENT,
  REQ_TLB_FLUSH,
  requestAllAndWait,
  V_HSM_OPAQUE,
  V_HSM_START_ADDR,
  V_HSM_STATE,
  V_STEAL_ADDR,
  V_STEAL_ENABLED,
  type VcpuShared,
} from "../vcpu-shared.js";
import type { Vm } from "../vm.js";
import * as S from "./constants.js";
import { updateStealTime } from "./steal-time.js";

const ALL_ONES = (1n << 64n) - 1n;

/** Extensions the hypervisor implements itself (probe_extension answers 1). */
const IN_KERNEL = new Set([
  S.EXT_BASE,
  S.EXT_TIME,
  S.EXT_IPI,
  S.EXT_RFENCE,
  S.EXT_HSM,
  S.EXT_SRST,
  S.EXT_DBCN,
  S.EXT_STA,
  S.EXT_LEGACY_SET_TIMER,
  S.EXT_LEGACY_CONSOLE_PUTCHAR,
  S.EXT_LEGACY_CONSOLE_GETCHAR,
  S.EXT_LEGACY_CLEAR_IPI,
  S.EXT_LEGACY_SEND_IPI,
  S.EXT_LEGACY_REMOTE_FENCE_I,
  S.EXT_LEGACY_REMOTE_SFENCE_VMA,
  S.EXT_LEGACY_REMOTE_SFENCE_VMA_ASID,
  S.EXT_LEGACY_SHUTDOWN,
]);

/**
 * The SBI implementation of the hypervisor (KVM's vcpu_sbi*.c): a guest's
 * ECALL from S-mode arrives here. Console calls (DBCN, legacy putchar and
 * getchar) and unknown extensions go out to the VMM as an SBI exit, as KVM
 * forwards them; everything else is answered here.
 */
export class Sbi {
  private readonly slot = new Memslot();

  constructor(private readonly vm: Vm) {}

  /** Handle the SBI call the vCPU just made; false to forward it to the VMM. */
  handle(vcpu: Vcpu): boolean {
    const hart = vcpu.hart;
    const eid = Number(hart.getRegister(17));
    const fid = Number(hart.getRegister(16));
    const a = (i: number) => hart.getRegister(10 + i);
    switch (eid) {
      case S.EXT_BASE:
        return this.base(vcpu, fid, a(0));
      case S.EXT_TIME:
        if (fid !== 0) return this.answer(vcpu, S.SBI_ERR_NOT_SUPPORTED);
        this.setTimer(vcpu, a(0));
        return this.answer(vcpu, S.SBI_SUCCESS);
      case S.EXT_IPI:
        if (fid !== 0) return this.answer(vcpu, S.SBI_ERR_NOT_SUPPORTED);
        return this.answer(vcpu, this.sendIpi(this.targets(a(0), a(1))));
      case S.EXT_RFENCE:
        return this.rfence(vcpu, fid, a(0), a(1));
      case S.EXT_HSM:
        return this.hsm(vcpu, fid, a(0), a(1), a(2));
      case S.EXT_SRST:
        return this.systemReset(vcpu, fid, a(0), a(1));
      case S.EXT_STA:
        return this.stealTimeSetShmem(vcpu, fid, a(0), a(1), a(2));
      case S.EXT_DBCN:
      case S.EXT_LEGACY_CONSOLE_PUTCHAR:
      case S.EXT_LEGACY_CONSOLE_GETCHAR:
        return false;
      case S.EXT_LEGACY_SET_TIMER:
        this.setTimer(vcpu, a(0));
        return this.answer(vcpu, S.SBI_SUCCESS);
      case S.EXT_LEGACY_CLEAR_IPI:
        lowerInterrupt(vcpu.shared.control, MIP_SSIP);
        return this.answer(vcpu, S.SBI_SUCCESS);
      case S.EXT_LEGACY_SEND_IPI:
        return this.answer(vcpu, this.sendIpi(this.legacyTargets(a(0))));
      case S.EXT_LEGACY_REMOTE_FENCE_I:
        return this.answer(vcpu, this.fence(vcpu, this.legacyTargets(a(0)), false));
      case S.EXT_LEGACY_REMOTE_SFENCE_VMA:
      case S.EXT_LEGACY_REMOTE_SFENCE_VMA_ASID:
        return this.answer(vcpu, this.fence(vcpu, this.legacyTargets(a(0)), true));
      case S.EXT_LEGACY_SHUTDOWN:
        this.vm.raiseSystemEvent(SYSTEM_EVENT_SHUTDOWN, S.SRST_REASON_NONE);
        return this.answer(vcpu, S.SBI_SUCCESS);
      default:
        return false;
    }
  }

  /** Set a0 (error) and a1 (value); the call is complete. */
  private answer(vcpu: Vcpu, error: number, value = 0n): true {
    vcpu.hart.setRegister(10, BigInt.asUintN(64, BigInt(error)));
    vcpu.hart.setRegister(11, value);
    return true;
  }

  private base(vcpu: Vcpu, fid: number, arg: bigint): boolean {
    switch (fid) {
      case S.BASE_GET_SPEC_VERSION:
        return this.answer(vcpu, S.SBI_SUCCESS, BigInt(S.SBI_SPEC_VERSION));
      case S.BASE_GET_IMPL_ID:
        return this.answer(vcpu, S.SBI_SUCCESS, BigInt(S.SBI_IMPL_ID_KVM));
      case S.BASE_GET_IMPL_VERSION:
        return this.answer(vcpu, S.SBI_SUCCESS, 1n);
      case S.BASE_PROBE_EXTENSION: {
        const eid = Number(arg & 0xffffffffn);
        const known = IN_KERNEL.has(eid) && arg <= 0xffffffffn;
        return this.answer(vcpu, S.SBI_SUCCESS, known ? 1n : 0n);
      }
      case S.BASE_GET_MVENDORID:
      case S.BASE_GET_MARCHID:
      case S.BASE_GET_MIMPID:
        return this.answer(vcpu, S.SBI_SUCCESS, 0n);
      default:
        return this.answer(vcpu, S.SBI_ERR_NOT_SUPPORTED);
    }
  }

  private setTimer(vcpu: Vcpu, ticks: bigint): void {
    // A deadline beyond what a double holds exactly is "never" for any guest.
    vcpu.hart.setTimer(ticks >= 1n << 53n ? Infinity : Number(ticks));
    lowerInterrupt(vcpu.shared.control, MIP_STIP);
  }

  /**
   * The harts named by (hart_mask, hart_mask_base); null when one of them
   * does not exist (SBI_ERR_INVALID_PARAM).
   */
  private targets(mask: bigint, maskBase: bigint): VcpuShared[] | null {
    const vcpus = this.vm.vcpuList();
    if (maskBase === ALL_ONES) return vcpus.slice();
    const result: VcpuShared[] = [];
    for (let bit = 0n; bit < 64n; bit++) {
      if (((mask >> bit) & 1n) === 0n) continue;
      const id = maskBase + bit;
      if (id >= BigInt(vcpus.length)) return null;
      result.push(vcpus[Number(id)]);
    }
    return result;
  }

  /**
   * Legacy calls pass a pointer to an unsigned long hart mask (0 = all
   * harts); undefined when the guest's pointer leads nowhere.
   */
  private legacyTargets(maskAddress: bigint): VcpuShared[] | null | undefined {
    if (maskAddress === 0n) return this.vm.vcpuList().slice();
    let mask: bigint;
    try {
      mask = this.vm.readGuestU64(Number(maskAddress));
    } catch (error) {
      if (error instanceof ErrnoError) return undefined;
      throw error;
    }
    return this.targets(mask, 0n);
  }

  private sendIpi(targets: VcpuShared[] | null | undefined): number {
    if (targets === undefined) return S.SBI_ERR_INVALID_ADDRESS;
    if (targets === null) return S.SBI_ERR_INVALID_PARAM;
    for (const t of targets) raiseInterrupt(t.control, MIP_SSIP);
    return S.SBI_SUCCESS;
  }

  private fence(vcpu: Vcpu, targets: VcpuShared[] | null | undefined, tlb: boolean): number {
    if (targets === undefined) return S.SBI_ERR_INVALID_ADDRESS;
    if (targets === null) return S.SBI_ERR_INVALID_PARAM;
    // Fetches read guest memory afresh, so FENCE.I needs nothing; SFENCE.VMA
    // flushes the targets' TLBs before the call returns.
    if (tlb) {
      if (targets.includes(vcpu.shared)) vcpu.hart.flushTlb();
      requestAllAndWait(
        targets.filter((t) => t !== vcpu.shared),
        REQ_TLB_FLUSH,
      );
    }
    return S.SBI_SUCCESS;
  }

  private rfence(vcpu: Vcpu, fid: number, mask: bigint, maskBase: bigint): boolean {
    if (fid === S.RFENCE_REMOTE_FENCE_I) {
      return this.answer(vcpu, this.fence(vcpu, this.targets(mask, maskBase), false));
    }
    if (fid === S.RFENCE_REMOTE_SFENCE_VMA || fid === S.RFENCE_REMOTE_SFENCE_VMA_ASID) {
      return this.answer(vcpu, this.fence(vcpu, this.targets(mask, maskBase), true));
    }
    return this.answer(vcpu, S.SBI_ERR_NOT_SUPPORTED);
  }

  private hsm(vcpu: Vcpu, fid: number, a0: bigint, a1: bigint, a2: bigint): boolean {
    const vcpus = this.vm.vcpuList();
    switch (fid) {
      case S.HSM_HART_START: {
        if (a0 >= BigInt(vcpus.length)) return this.answer(vcpu, S.SBI_ERR_INVALID_PARAM);
        const target = vcpus[Number(a0)];
        if ((a1 & 3n) !== 0n) return this.answer(vcpu, S.SBI_ERR_INVALID_ADDRESS);
        if (
          target.compareExchangeWord(V_HSM_STATE, HSM_STOPPED, HSM_START_PENDING) !== HSM_STOPPED
        ) {
          return this.answer(vcpu, S.SBI_ERR_ALREADY_AVAILABLE);
        }
        target.setPair(V_HSM_START_ADDR, a1);
        target.setPair(V_HSM_OPAQUE, a2);
        target.request(REQ_HSM);
        return this.answer(vcpu, S.SBI_SUCCESS);
      }
      case S.HSM_HART_STOP:
        vcpu.shared.setWord(V_HSM_STATE, HSM_STOPPED);
        return true;
      case S.HSM_HART_GET_STATUS:
        if (a0 >= BigInt(vcpus.length)) return this.answer(vcpu, S.SBI_ERR_INVALID_PARAM);
        return this.answer(vcpu, S.SBI_SUCCESS, BigInt(vcpus[Number(a0)].word(V_HSM_STATE)));
      case S.HSM_HART_SUSPEND: {
        const type = a0 & 0xffffffffn;
        if (type === 0n) {
          // Default retentive suspend behaves like WFI.
          vcpu.hart.waitForInterrupt();
          return this.answer(vcpu, S.SBI_SUCCESS);
        }
        if (type === 0x80000000n) return this.answer(vcpu, S.SBI_ERR_NOT_SUPPORTED);
        return this.answer(vcpu, S.SBI_ERR_INVALID_PARAM);
      }
      default:
        return this.answer(vcpu, S.SBI_ERR_NOT_SUPPORTED);
    }
  }

  private systemReset(vcpu: Vcpu, fid: number, type: bigint, reason: bigint): boolean {
    if (fid !== 0) return this.answer(vcpu, S.SBI_ERR_NOT_SUPPORTED);
    if (type > BigInt(S.SRST_TYPE_WARM_REBOOT) || reason > 0xffffffffn) {
      return this.answer(vcpu, S.SBI_ERR_INVALID_PARAM);
    }
    const event =
      type === BigInt(S.SRST_TYPE_SHUTDOWN) ? SYSTEM_EVENT_SHUTDOWN : SYSTEM_EVENT_RESET;
    this.vm.raiseSystemEvent(event, Number(reason));
    return this.answer(vcpu, S.SBI_SUCCESS);
  }

  private stealTimeSetShmem(
    vcpu: Vcpu,
    fid: number,
    lo: bigint,
    hi: bigint,
    flags: bigint,
  ): boolean {
    if (fid !== S.STA_STEAL_TIME_SET_SHMEM) return this.answer(vcpu, S.SBI_ERR_NOT_SUPPORTED);
    if (flags !== 0n) return this.answer(vcpu, S.SBI_ERR_INVALID_PARAM);
    const shared = vcpu.shared;
    if (lo === ALL_ONES && hi === ALL_ONES) {
      shared.setWord(V_STEAL_ENABLED, 0);
      return this.answer(vcpu, S.SBI_SUCCESS);
    }
    if ((lo & 63n) !== 0n) return this.answer(vcpu, S.SBI_ERR_INVALID_PARAM);
    // On RV64 the address is all in lo; hi must be 0 (as KVM's STA).
    if (hi !== 0n) return this.answer(vcpu, S.SBI_ERR_INVALID_ADDRESS);
    const address = lo;
    // The record must be in guest memory the hypervisor can write.
    if (!this.writableMemory(Number(address))) {
      return this.answer(vcpu, S.SBI_ERR_INVALID_ADDRESS);
    }
    shared.setPair(V_STEAL_ADDR, address);
    shared.setWord(V_STEAL_ENABLED, 1);
    shared.request(REQ_RECORD_STEAL);
    return this.answer(vcpu, S.SBI_SUCCESS);
  }

  private writableMemory(gpa: number): boolean {
    const slot = this.slot;
    return (
      gpa < 2 ** 53 &&
      this.vm.findMemslot(Math.floor(gpa / PAGE_SIZE), slot) &&
      (slot.flags & MEM_READONLY) === 0
    );
  }

  /**
   * Requests that concern SBI state, handled outside guest mode; true when
   * run() must return to the VMM (a system event, or a steal-time update
   * that hit a userfault page).
   */
  processRequests(vcpu: Vcpu, requests: number): boolean {
    if (requests & REQ_HSM && vcpu.shared.word(V_HSM_STATE) === HSM_START_PENDING) {
      this.startHart(vcpu);
    }
    if (requests & REQ_SYSTEM_EVENT) {
      vcpu.prepareSystemEventExit();
      return true;
    }
    if (requests & REQ_RECORD_STEAL && vcpu.shared.word(V_STEAL_ENABLED) !== 0) {
      return !updateStealTime(this.vm, vcpu);
    }
    return false;
  }

  /** HSM start: the target hart begins at start_addr in S-mode with a0 = hartid, a1 = opaque. */
  private startHart(vcpu: Vcpu): void {
    const hart = vcpu.hart;
    const shared = vcpu.shared;
    hart.pc = Number(shared.pair(V_HSM_START_ADDR));
    hart.setRegister(10, BigInt(vcpu.id));
    hart.setRegister(11, shared.pair(V_HSM_OPAQUE));
    // As the SBI spec hands a started hart over: S-mode, satp 0 (which
    // flushes the TLB), interrupts disabled.
    setCsr(hart, CSR_SATP, 0n);
    hart.setPrivilege(PRIV_S);
    hart.sstatus &= ~SSTATUS_SIE;
    shared.setWord(V_HSM_STATE, HSM_STARTED);
  }
}
