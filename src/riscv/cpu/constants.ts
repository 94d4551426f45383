/** Architectural constants of the guest hart (RISC-V privileged spec, supervisor level). */

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;

/** Privilege levels a guest hart runs in (virtual S and U). */
export const PRIV_U = 0;
export const PRIV_S = 1;

/** Kinds of guest-physical access, as the translation hook sees them. */
export const ACCESS_READ = 0;
export const ACCESS_WRITE = 1;
export const ACCESS_FETCH = 2;
export type AccessType = typeof ACCESS_READ | typeof ACCESS_WRITE | typeof ACCESS_FETCH;

/** Synchronous exception causes (scause with the interrupt bit clear). */
export const CAUSE_MISALIGNED_FETCH = 0;
export const CAUSE_FETCH_ACCESS = 1;
export const CAUSE_ILLEGAL_INSTRUCTION = 2;
export const CAUSE_BREAKPOINT = 3;
export const CAUSE_MISALIGNED_LOAD = 4;
export const CAUSE_LOAD_ACCESS = 5;
export const CAUSE_MISALIGNED_STORE = 6;
export const CAUSE_STORE_ACCESS = 7;
export const CAUSE_USER_ECALL = 8;
export const CAUSE_SUPERVISOR_ECALL = 9;
export const CAUSE_FETCH_PAGE_FAULT = 12;
export const CAUSE_LOAD_PAGE_FAULT = 13;
export const CAUSE_STORE_PAGE_FAULT = 15;

/** Interrupt numbers (scause with the interrupt bit set) and their sip/sie bits. */
export const IRQ_S_SOFT = 1;
export const IRQ_S_TIMER = 5;
export const IRQ_S_EXT = 9;
export const MIP_SSIP = 1 << IRQ_S_SOFT;
export const MIP_STIP = 1 << IRQ_S_TIMER;
export const MIP_SEIP = 1 << IRQ_S_EXT;
export const SUPERVISOR_INTERRUPTS = MIP_SSIP | MIP_STIP | MIP_SEIP;

/** sstatus fields (low word unless noted). */
export const SSTATUS_SIE = 1 << 1;
export const SSTATUS_SPIE = 1 << 5;
export const SSTATUS_SPP = 1 << 8;
export const SSTATUS_SUM = 1 << 18;
export const SSTATUS_MXR = 1 << 19;
export const SSTATUS_WRITABLE =
  SSTATUS_SIE | SSTATUS_SPIE | SSTATUS_SPP | SSTATUS_SUM | SSTATUS_MXR;
/** UXL = 2 (64-bit U-mode), bits 33:32, i.e. bit 1 of the high word; read-only. */
export const SSTATUS_HI_UXL64 = 2;

/** CSR numbers a guest in S/U mode may name. */
export const CSR_SSTATUS = 0x100;
export const CSR_SIE = 0x104;
export const CSR_STVEC = 0x105;
export const CSR_SCOUNTEREN = 0x106;
export const CSR_SENVCFG = 0x10a;
export const CSR_SSCRATCH = 0x140;
export const CSR_SEPC = 0x141;
export const CSR_SCAUSE = 0x142;
export const CSR_STVAL = 0x143;
export const CSR_SIP = 0x144;
export const CSR_SATP = 0x180;
export const CSR_CYCLE = 0xc00;
export const CSR_TIME = 0xc01;
export const CSR_INSTRET = 0xc02;
export const CSR_HPMCOUNTER3 = 0xc03;
export const CSR_HPMCOUNTER31 = 0xc1f;

/** senvcfg: only FIOM is implemented (no Zicbom/Zicboz). */
export const SENVCFG_WRITABLE = 1;

/** satp MODE values (bits 63:60, i.e. bits 31:28 of the high word). */
export const SATP_MODE_BARE = 0;
export const SATP_MODE_SV39 = 8;

/** Timebase of the `time` CSR, as on QEMU's virt machine. */
export const TIMEBASE_FREQUENCY = 10_000_000;
