import {
  ACCESS_FETCH,
  ACCESS_READ,
  ACCESS_WRITE,
  type AccessType,
  CAUSE_FETCH_ACCESS,
  CAUSE_LOAD_ACCESS,
  CAUSE_STORE_ACCESS,
  IRQ_S_EXT,
  IRQ_S_SOFT,
  IRQ_S_TIMER,
  MIP_SEIP,
  MIP_SSIP,
  MIP_STIP,
  PAGE_SIZE,
  PRIV_S,
  PRIV_U,
  SATP_MODE_SV39,
  SSTATUS_SIE,
  SSTATUS_SPIE,
  SSTATUS_SPP,
  TIMEBASE_FREQUENCY,
} from "./constants.js";
import {
  CTRL_IRQ_PENDING,
  CTRL_REQUESTS,
  CTRL_WAKE,
  createHartControl,
  sleepOnHart,
} from "./hart-control.js";
import { pairIsSafe, pairToNumber } from "./int64.js";
import { type GuestPhysicalMemory, Translation } from "./physical-memory.js";
import { translateSv39 } from "./sv39.js";
import { SoftTlb, TLB_INVALID } from "./tlb.js";
import { execute } from "./execute.js";

/** Why `run()` returned. */
export const EXIT_BUDGET = 0;
/** ECALL from S-mode: an SBI call; pc is already past the ecall. */
export const EXIT_SBI = 1;
/** A guest-physical access missed in the translation hook; see `fault`. */
export const EXIT_GUEST_PAGE_FAULT = 2;
/** Another thread posted request bits (see hart-control). */
export const EXIT_REQUEST = 3;
export type ExitReason =
  typeof EXIT_BUDGET | typeof EXIT_SBI | typeof EXIT_GUEST_PAGE_FAULT | typeof EXIT_REQUEST;

/** Outcome of an out-of-line instruction helper, read by the interpreter loop. */
export const STEP_DONE = 0;
export const STEP_TRAP = 1;
export const STEP_EXIT = 2;
/** Completed, but state that gates interrupts changed: end the slice. */
export const STEP_RECHECK = 3;

/** Instructions between checks of interrupts, requests and the timer. */
const SLICE = 4096;

/** Details of the last EXIT_GUEST_PAGE_FAULT, enough to emulate MMIO. */
export class GuestPageFault {
  /** Guest-physical address of the first byte that missed. */
  gpa = 0;
  /** The access to `gpa`: a page-table walk reads a PTE, and writes it to set A or D. */
  access: AccessType = ACCESS_READ;
  /** The miss was the page-table walk's own access to a PTE, which no MMIO can serve. */
  pageTableWalk = false;
  /**
   * The access fault the guest takes if `gpa` is neither memory nor MMIO that
   * can be emulated: its cause and stval (the instruction's guest-virtual address).
   */
  accessFaultCause = CAUSE_LOAD_ACCESS;
  tvalLo = 0;
  tvalHi = 0;
  /** Access size in bytes (1, 2, 4 or 8). */
  size = 0;
  /** LR/SC/AMO: cannot be emulated as MMIO. */
  atomic = false;
  /** Destination register and zero extension, for a load. */
  rd = 0;
  unsigned = false;
  /** The value a store writes, as (lo, hi). */
  storeLo = 0;
  storeHi = 0;
}

export interface HartOptions {
  hartId: number;
  memory: GuestPhysicalMemory;
  /** Shared control words; one is created when omitted. */
  control?: Int32Array;
  /** Host wall-clock milliseconds (timeOrigin + now) at which guest time 0 is. */
  timeEpochMs?: number;
}

const TWO32 = 4294967296;

/** Which TLB permissions a translation grants: bit `1 << access` for each AccessType. */
export const PERMIT_READ = 1 << ACCESS_READ;
export const PERMIT_WRITE = 1 << ACCESS_WRITE;
export const PERMIT_FETCH = 1 << ACCESS_FETCH;
const PERMIT_ALL = PERMIT_READ | PERMIT_WRITE | PERMIT_FETCH;

/** The access-fault cause of an access of this kind. */
export function accessFaultCause(access: AccessType): number {
  return access === ACCESS_FETCH
    ? CAUSE_FETCH_ACCESS
    : access === ACCESS_WRITE
      ? CAUSE_STORE_ACCESS
      : CAUSE_LOAD_ACCESS;
}

/** Sign-extend a safe double to 53 bits: the legal values of WARL address CSRs. */
function legalizeAddress(lo: number, hi: number): number {
  const hi21 = (hi << 11) >> 11;
  return pairToNumber(lo, hi21);
}

/**
 * A RISC-V RV64IMA hart running as a guest in virtual S and U modes. Integer
 * registers are (lo, hi) int32 pairs in one Int32Array; the pc is a double
 * (guest addresses are kept within +-2^53). Guest-physical memory comes from a
 * translation hook, behind satp's Bare or Sv39 translation, and is cached per
 * guest-virtual page in a software TLB.
 */
export class Hart {
  readonly hartId: number;
  readonly memory: GuestPhysicalMemory;
  readonly control: Int32Array;
  /** x0..x31 as lo at 2*i, hi at 2*i+1; x0 is forced to zero after every instruction. */
  readonly x = new Int32Array(64);
  pc = 0;
  priv = PRIV_S;
  instret = 0;
  readonly tlb = new SoftTlb();
  readonly translation = new Translation();
  readonly fault = new GuestPageFault();
  exitReason: ExitReason = EXIT_BUDGET;

  // Supervisor CSRs. Address-valued ones are doubles (legalized to 53 bits).
  sstatus = 0;
  sie = 0;
  /** stvec as BASE (4-byte aligned, legalized) and MODE (0 direct, 1 vectored). */
  stvecBase = 0;
  stvecMode = 0;
  scounteren = 0;
  senvcfg = 0;
  sepc = 0;
  /** sscratch, scause, stval and satp hold any 64-bit value: (lo, hi) pairs. */
  readonly csrPairs = new Int32Array(8);

  /** Supervisor timer compare value in ticks (SBI set_timer); Infinity when unset. */
  timecmp = Infinity;
  /** Host wall-clock ms of guest time 0; the layer above may move it (restoring guest time). */
  timeEpochMs: number;

  /** LR reservation: address (-1 when none), size and the value LR loaded. */
  reservation = -1;
  reservationSize = 0;
  reservedLo = 0;
  reservedDouble = 0n;

  private readonly regionU8: Uint8Array[] = [];
  private readonly regionI16: Int16Array[] = [];
  private readonly regionI32: Int32Array[] = [];
  private readonly regionF64: Float64Array[] = [];
  private readonly regionI64: BigInt64Array[] = [];

  constructor(options: HartOptions) {
    this.hartId = options.hartId;
    this.memory = options.memory;
    this.control = options.control ?? createHartControl();
    this.timeEpochMs = options.timeEpochMs ?? performance.timeOrigin + performance.now();
  }

  getRegister(index: number): bigint {
    return BigInt.asUintN(
      64,
      (BigInt(this.x[2 * index + 1]) << 32n) | BigInt(this.x[2 * index] >>> 0),
    );
  }

  setRegister(index: number, value: bigint): void {
    if (index === 0) return;
    this.x[2 * index] = Number(BigInt.asIntN(32, value));
    this.x[2 * index + 1] = Number(BigInt.asIntN(32, value >> 32n));
  }

  /** Current guest time in ticks of TIMEBASE_FREQUENCY. */
  readTime(): number {
    const ms = performance.timeOrigin + performance.now() - this.timeEpochMs;
    return Math.floor(ms * (TIMEBASE_FREQUENCY / 1000));
  }

  /** SBI set_timer: program the next timer interrupt and clear a pending one. */
  setTimer(ticks: number): void {
    this.timecmp = ticks;
    Atomics.and(this.control, CTRL_IRQ_PENDING, ~MIP_STIP);
  }

  /**
   * Run until an exit or until `maxInstructions` have been executed. Interrupts,
   * posted requests and the timer are checked between slices of instructions.
   */
  run(maxInstructions = Infinity): ExitReason {
    let remaining = maxInstructions;
    for (;;) {
      if (Atomics.load(this.control, CTRL_REQUESTS) !== 0) return (this.exitReason = EXIT_REQUEST);
      this.updateTimer();
      this.takePendingInterrupt();
      if (remaining <= 0) return (this.exitReason = EXIT_BUDGET);
      this.exitReason = EXIT_BUDGET;
      const done = execute(this, remaining < SLICE ? remaining : SLICE);
      remaining -= done;
      if (this.exitReason !== EXIT_BUDGET) return this.exitReason;
    }
  }

  private updateTimer(): void {
    if (this.timecmp !== Infinity && this.readTime() >= this.timecmp) {
      if ((Atomics.load(this.control, CTRL_IRQ_PENDING) & MIP_STIP) === 0) {
        Atomics.or(this.control, CTRL_IRQ_PENDING, MIP_STIP);
      }
    }
  }

  /** sip as the guest reads it. */
  readSip(): number {
    return Atomics.load(this.control, CTRL_IRQ_PENDING);
  }

  private takePendingInterrupt(): void {
    const pending = this.readSip() & this.sie;
    if (pending === 0) return;
    if (this.priv === PRIV_S && (this.sstatus & SSTATUS_SIE) === 0) return;
    // Supervisor priority order: external, software, timer.
    const irq = pending & MIP_SEIP ? IRQ_S_EXT : pending & MIP_SSIP ? IRQ_S_SOFT : IRQ_S_TIMER;
    this.enterTrap(irq, -2147483648, 0, 0);
    if (this.stvecMode === 1) this.pc += 4 * irq;
  }

  /** Take a synchronous exception into guest S-mode. */
  raiseException(cause: number, tvalLo: number, tvalHi: number): void {
    this.enterTrap(cause, 0, tvalLo, tvalHi);
  }

  private enterTrap(cause: number, causeHi: number, tvalLo: number, tvalHi: number): void {
    const p = this.csrPairs;
    p[CSR_PAIR_SCAUSE] = cause;
    p[CSR_PAIR_SCAUSE + 1] = causeHi;
    p[CSR_PAIR_STVAL] = tvalLo;
    p[CSR_PAIR_STVAL + 1] = tvalHi;
    this.sepc = this.pc;
    let s = this.sstatus & ~(SSTATUS_SPIE | SSTATUS_SPP | SSTATUS_SIE);
    if (this.sstatus & SSTATUS_SIE) s |= SSTATUS_SPIE;
    if (this.priv === PRIV_S) s |= SSTATUS_SPP;
    this.sstatus = s;
    this.setPrivilege(PRIV_S);
    this.reservation = -1;
    this.pc = this.stvecBase;
  }

  /** SRET: return to the privilege in SPP at sepc. */
  returnFromTrap(): void {
    const s = this.sstatus;
    this.setPrivilege(s & SSTATUS_SPP ? PRIV_S : PRIV_U);
    let next = s & ~(SSTATUS_SIE | SSTATUS_SPP);
    if (s & SSTATUS_SPIE) next |= SSTATUS_SIE;
    this.sstatus = next | SSTATUS_SPIE;
    this.reservation = -1;
    this.pc = this.sepc;
  }

  setSepc(lo: number, hi: number): void {
    this.sepc = legalizeAddress(lo & ~3, hi);
  }

  setStvec(lo: number, hi: number): void {
    // MODE 2 and 3 are reserved: such a write leaves stvec unchanged.
    if ((lo & 3) >= 2) return;
    this.stvecMode = lo & 3;
    this.stvecBase = legalizeAddress(lo & ~3, hi);
  }

  /**
   * WFI: sleep until an interrupt enabled in sie is pending (whatever
   * sstatus.SIE says), the timer fires, or another thread posts a request.
   */
  waitForInterrupt(): void {
    const ctrl = this.control;
    for (;;) {
      const seq = Atomics.load(ctrl, CTRL_WAKE);
      this.updateTimer();
      if ((this.readSip() & this.sie) !== 0) return;
      if (Atomics.load(ctrl, CTRL_REQUESTS) !== 0) return;
      let timeoutMs = Infinity;
      if (this.timecmp !== Infinity && this.sie & MIP_STIP) {
        timeoutMs = Math.max(0, (this.timecmp - this.readTime()) / (TIMEBASE_FREQUENCY / 1000));
      }
      sleepOnHart(ctrl, seq, timeoutMs);
    }
  }

  /** Whether satp selects Sv39: guest-virtual addresses go through the guest's page tables. */
  pagingEnabled(): boolean {
    return this.csrPairs[CSR_PAIR_SATP + 1] >>> 28 === SATP_MODE_SV39;
  }

  /** Run at `priv` from now on; under Sv39 the TLB holds the old privilege's permissions. */
  setPrivilege(priv: number): void {
    if (priv !== this.priv && this.pagingEnabled()) this.tlb.flushAll();
    this.priv = priv;
  }

  /**
   * Translate a guest-virtual page for an access and fill the TLB. Returns the
   * TLB entry, or -1 after raising an exception or recording a guest page
   * fault exit (`fault.gpa` and `fault.access` set; the caller fills the rest).
   */
  translate(addrLo: number, addrHi: number, access: AccessType): number {
    if (this.pagingEnabled()) return translateSv39(this, addrLo, addrHi, access);
    // Bare satp: the guest-virtual address is the guest-physical address,
    // which must be non-negative and within what a double holds exactly.
    if (addrHi < 0 || !pairIsSafe(addrHi)) {
      this.raiseException(accessFaultCause(access), addrLo, addrHi);
      return -1;
    }
    return this.mapPage(
      addrLo,
      addrHi,
      pairToNumber(addrLo & -PAGE_SIZE, addrHi),
      access,
      PERMIT_ALL,
    );
  }

  /**
   * Fill the TLB entry of the guest-virtual page holding (addrLo, addrHi)
   * with guest-physical page `gpaPage`, for the accesses in `permit`
   * (PERMIT_*) that stage 2 allows too. Returns the entry, or -1 after
   * recording a guest page fault exit for `access`.
   */
  mapPage(
    addrLo: number,
    addrHi: number,
    gpaPage: number,
    access: AccessType,
    permit: number,
  ): number {
    const t = this.translation;
    if (!this.memory.translate(gpaPage, access, t)) {
      this.recordGuestPageFault(
        gpaPage + (addrLo & (PAGE_SIZE - 1)),
        access,
        addrLo,
        addrHi,
        access,
      );
      return -1;
    }
    const pageLo = addrLo & -PAGE_SIZE;
    const tlb = this.tlb;
    const e = SoftTlb.index(addrLo);
    if (this.regionU8[t.region] === undefined) this.mapRegion(t.region);
    tlb.u8[e] = this.regionU8[t.region];
    tlb.i16[e] = this.regionI16[t.region];
    tlb.i32[e] = this.regionI32[t.region];
    tlb.f64[e] = this.regionF64[t.region];
    tlb.region[e] = t.region;
    tlb.offset[e] = t.offset;
    // An entry describes one page: permissions not granted now are dropped.
    tlb.readLo[e] = permit & PERMIT_READ ? pageLo : TLB_INVALID;
    tlb.readHi[e] = addrHi;
    tlb.fetchLo[e] = permit & PERMIT_FETCH ? pageLo : TLB_INVALID;
    tlb.fetchHi[e] = addrHi;
    tlb.writeLo[e] = permit & PERMIT_WRITE && t.writable ? pageLo : TLB_INVALID;
    tlb.writeHi[e] = addrHi;
    if (access === ACCESS_WRITE && !t.writable) {
      throw new Error(
        `translation hook granted a write to gpa 0x${gpaPage.toString(16)} read-only`,
      );
    }
    return e;
  }

  /**
   * Stop with a guest page fault exit: `gpa` missed for `access`, on behalf
   * of an instruction's `instructionAccess` to guest-virtual (vaLo, vaHi).
   */
  recordGuestPageFault(
    gpa: number,
    access: AccessType,
    vaLo: number,
    vaHi: number,
    instructionAccess: AccessType,
    pageTableWalk = false,
  ): void {
    const f = this.fault;
    f.gpa = gpa;
    f.access = access;
    f.atomic = false;
    f.pageTableWalk = pageTableWalk;
    f.accessFaultCause = accessFaultCause(instructionAccess);
    f.tvalLo = vaLo;
    f.tvalHi = vaHi;
    this.exitReason = EXIT_GUEST_PAGE_FAULT;
  }

  private mapRegion(region: number): void {
    const buffer = this.memory.regionBuffer(region);
    this.regionU8[region] = new Uint8Array(buffer);
    this.regionI16[region] = new Int16Array(buffer, 0, buffer.byteLength >> 1);
    this.regionI32[region] = new Int32Array(buffer, 0, buffer.byteLength >> 2);
    this.regionF64[region] = new Float64Array(buffer, 0, buffer.byteLength >> 3);
  }

  /** A float64 view of a region (8-byte accesses that allocate nothing). */
  regionFloat64(region: number): Float64Array {
    if (this.regionU8[region] === undefined) this.mapRegion(region);
    return this.regionF64[region];
  }

  /** A 64-bit view of a region, made on first use by a doubleword atomic. */
  regionBigInt64(region: number): BigInt64Array {
    let view = this.regionI64[region];
    if (view === undefined) {
      const buffer = this.memory.regionBuffer(region);
      view = new BigInt64Array(buffer, 0, buffer.byteLength >> 3);
      this.regionI64[region] = view;
    }
    return view;
  }

  /** Flush the whole TLB (satp writes, SFENCE.VMA, stage-2 changes). */
  flushTlb(): void {
    this.tlb.flushAll();
  }

  /** Flush the TLB entry of one guest page. */
  flushTlbPage(address: number): void {
    this.tlb.flushPage(address | 0, Math.floor(address / TWO32));
  }

  /** Finish an MMIO load that exited as a guest page fault: write rd and move on. */
  completeMmioLoad(value: bigint): void {
    const f = this.fault;
    const bits = f.size * 8;
    const v = f.unsigned ? BigInt.asUintN(bits, value) : BigInt.asIntN(bits, value);
    this.setRegister(f.rd, v);
    this.pc += 4;
    // The exit did not count the instruction; it retires now.
    this.instret++;
  }

  /** Finish an MMIO store that exited as a guest page fault. */
  completeMmioStore(): void {
    this.pc += 4;
    this.instret++;
  }

  /** The value of a store that exited as a guest page fault. */
  faultStoreValue(): bigint {
    const f = this.fault;
    const v = (BigInt(f.storeHi) << 32n) | BigInt(f.storeLo >>> 0);
    return BigInt.asUintN(f.size * 8, v);
  }
}

/** Slots in Hart.csrPairs. */
export const CSR_PAIR_SSCRATCH = 0;
export const CSR_PAIR_SCAUSE = 2;
export const CSR_PAIR_STVAL = 4;
export const CSR_PAIR_SATP = 6;
