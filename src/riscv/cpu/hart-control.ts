/**
 * The part of a hart that other threads touch: pending interrupt bits,
 * request bits and a wake-up sequence, in a SharedArrayBuffer. A hart checks
 * it between slices of instructions and sleeps on it in WFI, so anything that
 * sets a bit must also wake the hart.
 */

export const CTRL_IRQ_PENDING = 0;
export const CTRL_REQUESTS = 1;
export const CTRL_WAKE = 2;
const CTRL_WORDS = 4;

export function createHartControl(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(CTRL_WORDS * 4));
}

/** Wake the hart if it sleeps in WFI; cheap when it does not. */
export function wakeHart(ctrl: Int32Array): void {
  Atomics.add(ctrl, CTRL_WAKE, 1);
  Atomics.notify(ctrl, CTRL_WAKE);
}

/** Make interrupts pending (sip bits), e.g. an IPI or an external interrupt. */
export function raiseInterrupt(ctrl: Int32Array, bits: number): void {
  Atomics.or(ctrl, CTRL_IRQ_PENDING, bits);
  wakeHart(ctrl);
}

export function lowerInterrupt(ctrl: Int32Array, bits: number): void {
  Atomics.and(ctrl, CTRL_IRQ_PENDING, ~bits);
}

/** Post request bits: the hart stops running at its next check and reports them. */
export function postRequest(ctrl: Int32Array, bits: number): void {
  Atomics.or(ctrl, CTRL_REQUESTS, bits);
  wakeHart(ctrl);
}

/** Take the posted request bits, clearing them. */
export function takeRequests(ctrl: Int32Array): number {
  return Atomics.exchange(ctrl, CTRL_REQUESTS, 0);
}
