/**
 * The thread of a virtio block device's worker (vhost's worker thread):
 * attaches to the process's host, hypervisor and VM, then serves the
 * device's queue until asked to stop. Started by startBlockDeviceWorker.
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { Host } from "../../host/host.js";
import { Kvm } from "../kvm.js";
import { S_WORKER } from "./blk-state.js";
import { BlockQueue } from "./blk-queue.js";
import type { BlockWorkerData, BlockWorkerMessage } from "./blk-worker.js";

function main(data: BlockWorkerData, port: NonNullable<typeof parentPort>): void {
  const post = (message: BlockWorkerMessage) => port.postMessage(message);
  const host = Host.attach(data.host);
  const kvm = Kvm.attach(host, data.kvm);
  const vm = kvm.attachVm(data.vm);
  const queue = new BlockQueue(vm, data.device, (reason) => post({ type: "needs-reset", reason }));
  try {
    post({ type: "online" });
    queue.run();
  } finally {
    queue.state.setWord(S_WORKER, 0);
  }
}

if (!isMainThread && parentPort) {
  const data = workerData as BlockWorkerData | undefined;
  if (data?.kind === "virtio-blk-worker") main(data, parentPort);
}
