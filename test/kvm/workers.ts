import { Worker } from "node:worker_threads";
import type { Host } from "../../src/host/host.js";
import type { Kvm } from "../../src/kvm/kvm.js";
import type { Vm } from "../../src/kvm/vm.js";
import {
  type AccessOrder,
  type AccessReply,
  CONTROL_WORDS,
  type KvmWorkerSetup,
  V_FAULTS,
  V_REPORTS,
  V_STARTED,
  vcpuWord,
  type VcpuOrder,
  type VcpuReply,
  W_RELEASE,
} from "./kvm-worker.js";
import { waitForWord, withTimeout } from "./support.js";

/**
 * Worker threads attached to one test VM (each a thread of the VMM or of
 * the hypervisor), sharing a block of control words with the test.
 */
export class KvmWorkers {
  readonly control = new SharedArrayBuffer(CONTROL_WORDS * 4);
  readonly words = new Int32Array(this.control);
  private readonly workers: Worker[] = [];
  private readonly setup: KvmWorkerSetup;

  constructor(t: { host: Host; kvm: Kvm; vm: Vm }) {
    this.setup = {
      kvmWorker: true,
      host: t.host.share(),
      kvm: t.kvm.offset,
      vm: t.vm.offset,
      control: this.control,
    };
  }

  /** A new worker thread attached to the VM. */
  spawn(): Worker {
    const worker = new Worker(new URL("./kvm-worker.js", import.meta.url), {
      workerData: this.setup,
    });
    this.workers.push(worker);
    return worker;
  }

  /** Send one order to `worker`; the promise settles with its reply (or its crash). */
  ask<T>(worker: Worker, order: AccessOrder | VcpuOrder): Promise<T> {
    const reply = new Promise<T>((resolve, reject) => {
      const onError = (error: Error) => reject(error);
      const onExit = (code: number) => reject(new Error(`worker exited (${code})`));
      worker.once("message", (reply: T) => {
        worker.off("error", onError);
        worker.off("exit", onExit);
        resolve(reply);
      });
      worker.once("error", onError);
      worker.once("exit", onExit);
      worker.postMessage(order);
    });
    // A test that fails before awaiting the reply terminates the worker in
    // close(): that rejection must not hide the test's own failure.
    reply.catch(() => undefined);
    return reply;
  }

  /** A hypervisor access made on a new worker thread. */
  access(order: Omit<AccessOrder, "kind">): { worker: Worker; reply: Promise<AccessReply> } {
    const worker = this.spawn();
    return { worker, reply: this.ask<AccessReply>(worker, { kind: "access", ...order }) };
  }

  /** vCPU `id` run by a new worker thread (KVM_RUN in a loop, see kvm-worker.ts). */
  vcpu(order: Omit<VcpuOrder, "kind">): { worker: Worker; reply: Promise<VcpuReply> } {
    const worker = this.spawn();
    return { worker, reply: this.ask<VcpuReply>(worker, { kind: "vcpu", ...order }) };
  }

  word(id: number, field: number): number {
    return Atomics.load(this.words, vcpuWord(id, field));
  }

  /** Wait until vCPU `id` has made at least `count` report ucalls. */
  reports(id: number, count: number, ms = 10_000): Promise<number> {
    return waitForWord(this.words, vcpuWord(id, V_REPORTS), (v) => v >= count, ms, "reports");
  }

  /** Wait until vCPU `id` has taken at least `count` MEMORY_FAULT exits. */
  faults(id: number, count: number, ms = 10_000): Promise<number> {
    return waitForWord(this.words, vcpuWord(id, V_FAULTS), (v) => v >= count, ms, "faults");
  }

  started(id: number, ms = 10_000): Promise<number> {
    return waitForWord(this.words, vcpuWord(id, V_STARTED), (v) => v === 1, ms, "vCPU start");
  }

  /** Tell vCPU threads waiting for a page that the test released pages (after clearing bits). */
  released(): void {
    Atomics.add(this.words, W_RELEASE, 1);
    Atomics.notify(this.words, W_RELEASE);
  }

  async close(): Promise<void> {
    await withTimeout(
      Promise.all(this.workers.map((worker) => worker.terminate())),
      5000,
      "terminating workers",
    );
  }
}
