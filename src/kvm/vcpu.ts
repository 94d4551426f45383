import { ErrnoError } from "../host/errno.js";
import { PAGE_SIZE } from "../host/host-memory.js";
import { ACCESS_FETCH, ACCESS_WRITE } from "../riscv/cpu/constants.js";
import { CTRL_REQUESTS, CTRL_WAKE, sleepOnHart, takeRequests } from "../riscv/cpu/hart-control.js";
import {
  EXIT_BUDGET,
  EXIT_GUEST_PAGE_FAULT,
  EXIT_REQUEST,
  EXIT_SBI,
  Hart,
} from "../riscv/cpu/hart.js";
import { Memslot } from "./memslots.js";
import { regList } from "./one-reg.js";
import { RunState } from "./run-state.js";
import { Stage2Mmu } from "./stage2-mmu.js";
import {
  EXIT_INTERNAL_ERROR,
  EXIT_MEMORY_FAULT,
  EXIT_MMIO,
  EXIT_RISCV_SBI,
  EXIT_SYSTEM_EVENT,
  INTERNAL_ERROR_EMULATION,
  MEMORY_EXIT_FLAG_EXEC,
  MEMORY_EXIT_FLAG_PRIVATE,
  MEMORY_EXIT_FLAG_USERFAULT,
  MEMORY_EXIT_FLAG_WRITE,
} from "./uapi.js";
import {
  HSM_STARTED,
  REQ_KICK,
  REQ_RECORD_STEAL,
  REQ_TLB_FLUSH,
  V_HSM_STATE,
  V_STEAL_ENABLED,
  VcpuShared,
} from "./vcpu-shared.js";
import { getMpState, getOneReg, setMpState, setOneReg } from "./vcpu-regs.js";
import type { Vm } from "./vm.js";
import {
  FAULT_HWPOISON,
  FAULT_MAPPED,
  FAULT_MMIO,
  FAULT_USERFAULT,
  handleStage2Fault,
} from "./fault.js";

/** What the last run() exit left for the next run() to complete. */
const PENDING_NONE = 0;
const PENDING_MMIO_LOAD = 1;
const PENDING_MMIO_STORE = 2;
const PENDING_SBI = 3;

/**
 * A vCPU attached on the thread that runs it (the VMM's vCPU thread): the
 * hart, its stage-2 MMU hook, and KVM_RUN. Other threads reach it only
 * through its shared record (requests, interrupts, HSM).
 */
export class Vcpu {
  readonly hart: Hart;
  readonly run = new RunState();
  readonly shared: VcpuShared;
  private pending = PENDING_NONE;
  /** performance.now() when run() last returned; -1 while the time is accounted. */
  private runLeftAt = -1;
  private readonly slot = new Memslot();
  /**
   * Thrown by run() for a MEMORY_FAULT exit. Made once: userfault exits are
   * the post-copy hot path, and a fresh Error would capture a stack each time.
   */
  private readonly memoryFaultError = new ErrnoError("EFAULT", "KVM_RUN: memory fault exit");
  /** Thrown by run() for a MEMORY_FAULT exit on a poisoned page (KVM_RUN's -EHWPOISON). */
  private readonly hwpoisonError = new ErrnoError(
    "EHWPOISON",
    "KVM_RUN: memory fault exit on a poisoned page",
  );
  /** What run() throws for the MEMORY_FAULT exit it prepared. */
  private memoryFaultThrow = this.memoryFaultError;

  constructor(
    readonly vm: Vm,
    readonly id: number,
    recordOffset: number,
  ) {
    this.shared = new VcpuShared(vm.memory, recordOffset);
    this.hart = new Hart({
      hartId: id,
      memory: new Stage2Mmu(vm.memory, vm.stage2),
      control: this.shared.control,
      timeEpochMs: vm.timeEpochMs,
    });
  }

  /**
   * True when an error thrown by run() is its MEMORY_FAULT exit: EFAULT (a
   * userfault when memoryFault.flags has USERFAULT) or EHWPOISON.
   */
  isMemoryFault(error: unknown): boolean {
    return error === this.memoryFaultError || error === this.hwpoisonError;
  }

  /**
   * KVM_RUN: run the guest until an exit the VMM must handle; the exit is
   * described in `this.run`. A MEMORY_FAULT exit throws EFAULT (as the ioctl
   * returns -EFAULT) with run.exitReason = EXIT_MEMORY_FAULT. When emulating
   * what the guest did fails inside the hypervisor (an in-kernel device, the
   * SBI or fault path), run() returns EXIT_INTERNAL_ERROR instead of letting
   * the failure escape as if KVM_RUN had crashed.
   */
  runGuest(): void {
    const error = this.tryRunGuest();
    if (error !== null) throw error;
  }

  /**
   * KVM_RUN as the ioctl answers it: null, or the error runGuest() would
   * throw for a MEMORY_FAULT exit (EFAULT, or EHWPOISON on a poisoned
   * page). For VMM loops where userfault exits are the common case: a throw
   * costs V8 a walk of the stack and a message object each time.
   */
  tryRunGuest(): ErrnoError | null {
    try {
      return this.runUntilExit() ? this.memoryFaultThrow : null;
    } catch (error) {
      if (error instanceof ErrnoError) throw error;
      this.shared.exitGuestMode();
      this.leaveRun();
      this.run.exitReason = EXIT_INTERNAL_ERROR;
      this.run.internal.suberror = INTERNAL_ERROR_EMULATION;
      this.run.internal.message = error instanceof Error ? error.message : String(error);
      return null;
    }
  }

  /** Runs until an exit for the VMM; true for a MEMORY_FAULT exit (run() throws it). */
  private runUntilExit(): boolean {
    this.completePendingExit();
    const hart = this.hart;
    // Guest time is the VM's; another vCPU may have moved it (KVM_SET_ONE_REG of the timer's time).
    hart.timeEpochMs = this.vm.timeEpochMs;
    // Being scheduled in: the steal-time record is updated before guest code runs.
    if (this.shared.word(V_STEAL_ENABLED) !== 0) this.shared.requestSelf(REQ_RECORD_STEAL);
    for (;;) {
      const requests = takeRequests(this.shared.control);
      if (requests !== 0 && this.processRequests(requests)) {
        this.leaveRun();
        return this.run.exitReason === EXIT_MEMORY_FAULT;
      }
      if (this.shared.word(V_HSM_STATE) !== HSM_STARTED) {
        this.waitWhileStopped();
        continue;
      }
      if (this.shared.enterGuestMode() !== 0) {
        this.shared.exitGuestMode();
        continue;
      }
      const exit = hart.run();
      this.shared.exitGuestMode();
      if (exit === EXIT_REQUEST || exit === EXIT_BUDGET) continue;
      if (exit === EXIT_SBI) {
        if (this.vm.sbi.handle(this)) continue;
        this.prepareSbiExit();
      } else if (exit === EXIT_GUEST_PAGE_FAULT && this.handleGuestPageFault()) {
        continue;
      }
      this.leaveRun();
      return this.run.exitReason === EXIT_MEMORY_FAULT;
    }
  }

  /** A vCPU stopped by SBI HSM sleeps until another hart starts it (or a request comes). */
  private waitWhileStopped(): void {
    const control = this.shared.control;
    const seq = Atomics.load(control, CTRL_WAKE);
    if (this.shared.word(V_HSM_STATE) === HSM_STARTED) return;
    if (Atomics.load(control, CTRL_REQUESTS) !== 0) return;
    sleepOnHart(control, seq);
  }

  /** Only steal time needs the time run() returned; the clock read is skipped without it. */
  private leaveRun(): void {
    this.runLeftAt = this.shared.word(V_STEAL_ENABLED) !== 0 ? performance.now() : -1;
  }

  /** Nanoseconds spent outside KVM_RUN since the last call (steal time's measure). */
  takeTimeOutsideRunNs(): number {
    if (this.runLeftAt < 0) return 0;
    const ns = (performance.now() - this.runLeftAt) * 1e6;
    this.runLeftAt = -1;
    return ns;
  }

  /** KVM_GET_ONE_REG (ids from one-reg.ts); on this vCPU's thread, outside run(). */
  getOneReg(id: bigint): bigint {
    return getOneReg(this, id);
  }

  /** KVM_SET_ONE_REG; on this vCPU's thread, outside run(). */
  setOneReg(id: bigint, value: bigint): void {
    setOneReg(this, id, value);
  }

  /** KVM_GET_REG_LIST: every id getOneReg answers. */
  getRegList(): bigint[] {
    return regList();
  }

  /** KVM_GET_MP_STATE: KVM_MP_STATE_RUNNABLE or KVM_MP_STATE_STOPPED. */
  getMpState(): number {
    return getMpState(this);
  }

  /** KVM_SET_MP_STATE. */
  setMpState(state: number): void {
    setMpState(this, state);
  }

  /** A MEMORY_FAULT exit; run() throws EFAULT (or EHWPOISON) once it returns to the VMM. */
  prepareMemoryFaultExit(gpa: number, flags: number, hwpoison = false): void {
    const m = this.run.memoryFault;
    this.memoryFaultThrow = hwpoison ? this.hwpoisonError : this.memoryFaultError;
    this.run.exitReason = EXIT_MEMORY_FAULT;
    m.gpa = gpa;
    m.size = PAGE_SIZE;
    m.flags = flags | (this.vm.privateBits.test(gpa / PAGE_SIZE) ? MEMORY_EXIT_FLAG_PRIVATE : 0);
  }

  prepareSystemEventExit(): void {
    const event = this.vm.systemEvent();
    this.run.exitReason = EXIT_SYSTEM_EVENT;
    this.run.systemEvent.type = event.type;
    this.run.systemEvent.reason = event.reason;
  }

  /** Handle request bits; true when run() must return to the VMM. */
  private processRequests(requests: number): boolean {
    if (requests & REQ_TLB_FLUSH) this.hart.flushTlb();
    return this.vm.sbi.processRequests(this, requests) || (requests & REQ_KICK) !== 0;
  }

  /** Returns true to keep running, false when run() returns with an exit prepared. */
  private handleGuestPageFault(): boolean {
    const fault = this.hart.fault;
    const outcome = handleStage2Fault(this.vm, this.slot, fault.gpa, fault.access);
    if (outcome === FAULT_MAPPED) return true;
    if (outcome === FAULT_MMIO) {
      if (fault.access === ACCESS_FETCH || fault.atomic || fault.pageTableWalk) {
        // None can be emulated as MMIO: the guest takes an access fault.
        this.hart.raiseException(fault.accessFaultCause, fault.tvalLo, fault.tvalHi);
        return true;
      }
      // A device of the in-kernel MMIO bus is emulated here, without an exit.
      if (this.vm.ioBus.handleMmio(this.hart)) return true;
      this.prepareMmioExit();
      return false;
    }
    this.prepareMemoryFaultExit(
      Math.floor(fault.gpa / PAGE_SIZE) * PAGE_SIZE,
      (outcome === FAULT_USERFAULT ? MEMORY_EXIT_FLAG_USERFAULT : 0) |
        (fault.access === ACCESS_WRITE ? MEMORY_EXIT_FLAG_WRITE : 0) |
        (fault.access === ACCESS_FETCH ? MEMORY_EXIT_FLAG_EXEC : 0),
      outcome === FAULT_HWPOISON,
    );
    return false;
  }

  private prepareMmioExit(): void {
    const fault = this.hart.fault;
    const mmio = this.run.mmio;
    this.run.exitReason = EXIT_MMIO;
    mmio.physAddr = fault.gpa;
    mmio.len = fault.size;
    mmio.isWrite = fault.access === ACCESS_WRITE;
    mmio.value = mmio.isWrite ? this.hart.faultStoreValue() : 0n;
    this.pending = mmio.isWrite ? PENDING_MMIO_STORE : PENDING_MMIO_LOAD;
  }

  private prepareSbiExit(): void {
    const sbi = this.run.riscvSbi;
    this.run.exitReason = EXIT_RISCV_SBI;
    sbi.extensionId = Number(this.hart.getRegister(17));
    sbi.functionId = Number(this.hart.getRegister(16));
    for (let i = 0; i < 6; i++) sbi.args[i] = this.hart.getRegister(10 + i);
    // An unhandled extension answers SBI_ERR_NOT_SUPPORTED unless the VMM says otherwise.
    sbi.ret[0] = BigInt.asUintN(64, -2n);
    sbi.ret[1] = 0n;
    this.pending = PENDING_SBI;
  }

  /** Complete what the previous exit left open, as KVM does on re-entry. */
  private completePendingExit(): void {
    const pending = this.pending;
    this.pending = PENDING_NONE;
    if (pending === PENDING_MMIO_LOAD) this.hart.completeMmioLoad(this.run.mmio.value);
    else if (pending === PENDING_MMIO_STORE) this.hart.completeMmioStore();
    else if (pending === PENDING_SBI) {
      this.hart.setRegister(10, this.run.riscvSbi.ret[0]);
      this.hart.setRegister(11, this.run.riscvSbi.ret[1]);
    }
  }
}
