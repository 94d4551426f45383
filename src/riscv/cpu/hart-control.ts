/**
 * The part of a hart that other threads touch: pending interrupt bits,
 * request bits and a wake-up sequence, in a SharedArrayBuffer. A hart checks
 * it between slices of instructions and sleeps on it in WFI, so anything that
 * sets a bit must also wake the hart.
 */

export const CTRL_IRQ_PENDING = 0;
export const CTRL_REQUESTS = 1;
export const CTRL_WAKE = 2;
/** Threads asleep on CTRL_WAKE (see sleepOnHart): a wake-up notifies only when there are any. */
const CTRL_SLEEPERS = 3;
const CTRL_WORDS = 4;

export function createHartControl(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(CTRL_WORDS * 4));
}

/**
 * Wake the hart if it sleeps (WFI, or a stopped vCPU); cheap when it does
 * not. Atomics.notify takes a lock shared by the whole process, and every
 * KVM_RUN posts requests to its own vCPU, so it is skipped without sleepers.
 */
export function wakeHart(ctrl: Int32Array): void {
  Atomics.add(ctrl, CTRL_WAKE, 1);
  if (Atomics.load(ctrl, CTRL_SLEEPERS) !== 0) Atomics.notify(ctrl, CTRL_WAKE);
}

/**
 * Sleep on the hart's wake-up sequence unless it moved past `seq` (read
 * before the caller checked its conditions), for at most `timeoutMs`. The
 * sleeper counts itself first: a waker that missed the count bumped the
 * sequence before `seq` was read or before the wait compares it.
 */
export function sleepOnHart(ctrl: Int32Array, seq: number, timeoutMs = Infinity): void {
  Atomics.add(ctrl, CTRL_SLEEPERS, 1);
  Atomics.wait(ctrl, CTRL_WAKE, seq, timeoutMs);
  Atomics.sub(ctrl, CTRL_SLEEPERS, 1);
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
