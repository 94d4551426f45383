import { EXIT_BUDGET, EXIT_GUEST_PAGE_FAULT, EXIT_SBI, type Hart } from "../cpu/hart.js";

const SBI_LEGACY_PUTCHAR = 0x01;
const SBI_LEGACY_SHUTDOWN = 0x08;
const SBI_EXT_DBCN = 0x4442434e;
const SBI_EXT_SRST = 0x53525354;
const SBI_ERR_NOT_SUPPORTED = -2n;

export interface ProgramResult {
  /** How the program stopped. */
  stop: "shutdown" | "budget" | "fault";
  /** SRST reset reason (0 none, 1 system failure) when it shut down. */
  shutdownReason: number;
  console: string;
  instructions: number;
}

/**
 * Run a hart over flat memory with just enough SBI for guest programs to
 * print and shut down: console putchar and DBCN write-byte, SRST and the
 * legacy shutdown. Anything else answers SBI_ERR_NOT_SUPPORTED.
 */
export function runProgram(hart: Hart, maxInstructions = 1e9): ProgramResult {
  let console = "";
  const startInstret = hart.instret;
  const done = (stop: ProgramResult["stop"], shutdownReason = 0): ProgramResult => ({
    stop,
    shutdownReason,
    console,
    instructions: hart.instret - startInstret,
  });
  for (;;) {
    const left = maxInstructions - (hart.instret - startInstret);
    const exit = hart.run(left);
    if (exit === EXIT_BUDGET) return done("budget");
    if (exit === EXIT_GUEST_PAGE_FAULT) return done("fault");
    if (exit !== EXIT_SBI) continue;
    const eid = Number(hart.getRegister(17));
    const fid = Number(hart.getRegister(16));
    const a0 = hart.getRegister(10);
    if (eid === SBI_LEGACY_PUTCHAR || (eid === SBI_EXT_DBCN && fid === 2)) {
      console += String.fromCharCode(Number(a0 & 0xffn));
      hart.setRegister(10, 0n);
    } else if (eid === SBI_EXT_SRST && fid === 0) {
      return done("shutdown", Number(hart.getRegister(11)));
    } else if (eid === SBI_LEGACY_SHUTDOWN) {
      return done("shutdown", 0);
    } else {
      hart.setRegister(10, SBI_ERR_NOT_SUPPORTED);
    }
  }
}
