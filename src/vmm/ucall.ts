/**
 * The ucall channel: how guest programs written for faultline's tests and
 * benchmarks talk to the VMM, as KVM selftests' ucalls do. A guest makes an
 * SBI call with an extension id from the experimental range, which the
 * hypervisor does not implement and so forwards to the VMM: a7 = UCALL_EID,
 * a6 = the ucall type, a0..a5 = its arguments.
 */

export const UCALL_EID = 0x0846_4c54;

export const UCALL_SYNC = 1;
export const UCALL_DONE = 2;
export const UCALL_ABORT = 3;

export type UcallType = "sync" | "done" | "abort";

export function ucallTypeName(fid: number): UcallType | null {
  if (fid === UCALL_SYNC) return "sync";
  if (fid === UCALL_DONE) return "done";
  if (fid === UCALL_ABORT) return "abort";
  return null;
}

/** Guest assembly for a ucall of `type` with the arguments already in a0..a5. */
export function ucallAsm(type: number): string {
  return `li a7, ${UCALL_EID}\n        li a6, ${type}\n        ecall`;
}
