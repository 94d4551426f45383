/**
 * The test watchdog: a thread that kicks a vCPU out of run() when the guest
 * runs too long without the exit a test waits for, so that a broken
 * hypervisor makes a test fail instead of hanging the suite (run() on the
 * test's own thread cannot be interrupted by node:test timeouts). Does
 * nothing when loaded as a main module.
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { REQ_KICK, V_CONTROL } from "../../src/kvm/vcpu-shared.js";
import { postRequest } from "../../src/riscv/cpu/hart-control.js";

/** Shared words: [0] arming sequence (odd while armed), [1] kicks so far. */
export const WD_SEQUENCE = 0;
export const WD_KICKS = 1;

export interface WatchdogArm {
  sequence: number;
  arena: SharedArrayBuffer;
  vcpuOffset: number;
  ms: number;
}

/** workerData of the watchdog thread (other workers may load this module too). */
export interface WatchdogSetup {
  watchdog: SharedArrayBuffer;
}

const setup = workerData as Partial<WatchdogSetup> | null;
if (!isMainThread && parentPort && setup?.watchdog instanceof SharedArrayBuffer) {
  const words = new Int32Array(setup.watchdog);
  parentPort.on("message", (arm: WatchdogArm) => {
    // Sleep until disarmed (the sequence moves) or the time is up.
    if (Atomics.wait(words, WD_SEQUENCE, arm.sequence, arm.ms) !== "timed-out") return;
    const control = new Int32Array(arm.arena, arm.vcpuOffset + V_CONTROL * 4, 4);
    Atomics.add(words, WD_KICKS, 1);
    postRequest(control, REQ_KICK);
  });
}
