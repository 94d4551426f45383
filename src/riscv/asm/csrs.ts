/**
 * CSR names accepted as operands of the Zicsr instructions (privileged spec
 * 1.12 numbering). A CSR operand may also be any expression giving 0..4095.
 */

const FIXED_CSRS: Record<string, number> = {
  // Unprivileged counters.
  cycle: 0xc00,
  time: 0xc01,
  instret: 0xc02,
  // Supervisor.
  sstatus: 0x100,
  sie: 0x104,
  stvec: 0x105,
  scounteren: 0x106,
  senvcfg: 0x10a,
  sscratch: 0x140,
  sepc: 0x141,
  scause: 0x142,
  stval: 0x143,
  sip: 0x144,
  stimecmp: 0x14d,
  satp: 0x180,
  scontext: 0x5a8,
  // Machine.
  mvendorid: 0xf11,
  marchid: 0xf12,
  mimpid: 0xf13,
  mhartid: 0xf14,
  mconfigptr: 0xf15,
  mstatus: 0x300,
  misa: 0x301,
  medeleg: 0x302,
  mideleg: 0x303,
  mie: 0x304,
  mtvec: 0x305,
  mcounteren: 0x306,
  menvcfg: 0x30a,
  mcountinhibit: 0x320,
  mscratch: 0x340,
  mepc: 0x341,
  mcause: 0x342,
  mtval: 0x343,
  mip: 0x344,
  mtinst: 0x34a,
  mtval2: 0x34b,
  mseccfg: 0x747,
  mcycle: 0xb00,
  minstret: 0xb02,
  // Debug/trace.
  tselect: 0x7a0,
  tdata1: 0x7a1,
  tdata2: 0x7a2,
  tdata3: 0x7a3,
  dcsr: 0x7b0,
  dpc: 0x7b1,
  dscratch0: 0x7b2,
  dscratch1: 0x7b3,
};

function numberedCsrs(): [string, number][] {
  const entries: [string, number][] = [];
  for (let n = 3; n <= 31; n++) {
    entries.push([`hpmcounter${n}`, 0xc00 + n]);
    entries.push([`mhpmcounter${n}`, 0xb00 + n]);
    entries.push([`mhpmevent${n}`, 0x320 + n]);
  }
  for (let n = 0; n < 16; n++) entries.push([`pmpcfg${n}`, 0x3a0 + n]);
  for (let n = 0; n < 64; n++) entries.push([`pmpaddr${n}`, 0x3b0 + n]);
  return entries;
}

const CSRS: ReadonlyMap<string, number> = new Map([
  ...Object.entries(FIXED_CSRS),
  ...numberedCsrs(),
]);

/** The CSR number for `name`, or undefined if it is not a known CSR name. */
export function csrNumber(name: string): number | undefined {
  return CSRS.get(name);
}

/** Like csrNumber, for names the assembler itself relies on. */
export function requireCsrNumber(name: string): number {
  const csr = CSRS.get(name);
  if (csr === undefined) throw new Error(`internal: no CSR named '${name}'`);
  return csr;
}
