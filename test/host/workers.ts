import { Worker } from "node:worker_threads";
import type { Host } from "../../src/host/host.js";
import type { Order, WorkerSetup } from "./host-worker.js";

/** A pool of host-worker.js threads attached to one Host, for tests. */
export class HostWorkers {
  readonly control = new SharedArrayBuffer(16);
  readonly controlWords = new Int32Array(this.control);
  readonly workers: Worker[];

  /** `script`: the worker module (host-worker.js unless another one, such as uffd-worker.js). */
  constructor(host: Host, count: number, script = "./host-worker.js") {
    const setup: WorkerSetup = { share: host.share(), control: this.control, workers: count };
    this.workers = Array.from(
      { length: count },
      () => new Worker(new URL(script, import.meta.url), { workerData: setup }),
    );
  }

  /** Send `order` to worker `index` and wait for its reply. */
  ask<T, O extends object = Order>(index: number, order: O): Promise<T> {
    const worker = this.workers[index];
    return new Promise<T>((resolve, reject) => {
      const onError = (error: Error) => reject(error);
      worker.once("message", (reply: T) => {
        worker.off("error", onError);
        resolve(reply);
      });
      worker.once("error", onError);
      worker.postMessage(order);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }
}
