import { Worker } from "node:worker_threads";
import { fail } from "../../host/errno.js";
import type { HostShare } from "../../host/host.js";
import type { Kvm } from "../kvm.js";
import type { Vm } from "../vm.js";
import type { VirtioBlkDevice } from "./blk.js";
import { S_BUSY, S_PAUSED, S_STOP, S_WORKER } from "./blk-state.js";

/** What the worker thread is started with. */
export interface BlockWorkerData {
  kind: "virtio-blk-worker";
  host: HostShare;
  kvm: number;
  vm: number;
  /** Arena offset of the device's state. */
  device: number;
}

export type BlockWorkerMessage = { type: "online" } | { type: "needs-reset"; reason: string };

/**
 * A running block device worker: a worker_threads thread of the hypervisor
 * that serves one virtio block device's queue. QueueNotify from any vCPU
 * wakes it; it sleeps in Atomics.wait when the queue is empty.
 */
export class BlockDeviceWorker {
  readonly worker: Worker;
  /** Resolves once the thread is attached and serving. */
  readonly online: Promise<void>;
  /** Resolves when the thread has exited; rejects if it failed. */
  readonly exited: Promise<void>;
  /** Why the device last asked for a reset (DEVICE_NEEDS_RESET), if it did. */
  lastQueueError: string | null = null;

  constructor(
    kvm: Kvm,
    vm: Vm,
    private readonly device: VirtioBlkDevice,
  ) {
    const data: BlockWorkerData = {
      kind: "virtio-blk-worker",
      host: kvm.host.share(),
      kvm: kvm.offset,
      vm: vm.offset,
      device: device.offset,
    };
    this.worker = new Worker(new URL("./blk-worker-thread.js", import.meta.url), {
      workerData: data,
    });
    let online: () => void = () => {};
    this.online = new Promise<void>((resolve) => (online = resolve));
    this.worker.on("message", (message: BlockWorkerMessage) => {
      if (message.type === "online") online();
      else this.lastQueueError = message.reason;
    });
    this.exited = new Promise<void>((resolve, reject) => {
      let failure: Error | null = null;
      this.worker.on("error", (error) => (failure = error));
      this.worker.on("exit", (code) => {
        // A thread that died before its own cleanup leaves the device free too.
        device.state.setWord(S_WORKER, 0);
        if (failure) reject(failure);
        else if (code !== 0) reject(new Error(`block device worker exited with code ${code}`));
        else resolve();
      });
    });
    // Until someone awaits `exited`, a failure must not become an unhandled rejection.
    this.exited.catch(() => {});
  }

  /**
   * Let the worker take no new request, and resolve once it is between
   * requests (a request it is serving finishes first, including a wait for
   * an asynchronous userfault). The thread stays: this is how a VMM holds
   * the device still to save its state, in far less time than a stop.
   */
  async pause(): Promise<void> {
    const s = this.device.state;
    s.lock();
    s.setWord(S_PAUSED, 1);
    s.unlock();
    for (;;) {
      const wait = Atomics.waitAsync(s.words, s.base + S_BUSY, 1);
      if (!wait.async) return;
      await wait.value;
    }
  }

  /** Take requests again after pause (those made available meanwhile too). */
  resume(): void {
    const s = this.device.state;
    s.lock();
    s.setWord(S_PAUSED, 0);
    s.unlock();
    s.kick();
  }

  /**
   * Ask the worker to stop and wait until it has exited. An idle worker
   * wakes at once; one in the middle of a request finishes that request
   * first, including a wait for an asynchronous userfault, which ends when
   * the VMM releases the page, disables userfault or destroys the VM.
   */
  async stop(): Promise<void> {
    const s = this.device.state;
    s.setWord(S_STOP, 1);
    s.kick();
    await this.exited;
  }
}

/**
 * Start the worker thread that serves `device` on `vm` (one worker per
 * device: EBUSY if one already does). The thread attaches to the same host,
 * hypervisor and VM as the caller's objects.
 */
export function startBlockDeviceWorker(
  kvm: Kvm,
  vm: Vm,
  device: VirtioBlkDevice,
): BlockDeviceWorker {
  const s = device.state;
  if (Atomics.compareExchange(s.words, s.base + S_WORKER, 0, 1) !== 0) {
    fail("EBUSY", "a worker already serves this device");
  }
  s.setWord(S_STOP, 0);
  s.setWord(S_PAUSED, 0);
  try {
    return new BlockDeviceWorker(kvm, vm, device);
  } catch (error) {
    s.setWord(S_WORKER, 0);
    throw error;
  }
}
