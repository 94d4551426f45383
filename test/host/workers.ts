import { Worker } from "node:worker_threads";
import type { Host } from "../../src/host/host.js";
import type { Order, WorkerSetup } from "./host-worker.js";

/** A pool of host-worker.js threads attached to one Host, for tests. */
export class HostWorkers {
  readonly control = new SharedArrayBuffer(16);
  readonly controlWords = new Int32Array(this.control);
  readonly workers: Worker[];

  constructor(host: Host, count: number) {
    const setup: WorkerSetup = { share: host.share(), control: this.control, workers: count };
    this.workers = Array.from(
      { length: count },
      () => new Worker(new URL("./host-worker.js", import.meta.url), { workerData: setup }),
    );
  }

  /** Send `order` to worker `index` and wait for its reply. */
  ask<T>(index: number, order: Order): Promise<T> {
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
