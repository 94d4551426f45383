/**
 * Worker body of runOnFaultlineInWorker (guest-programs.ts): runs one ELF on
 * faultline and posts the result. Inert when loaded on the main thread (the
 * test runner loads every module under test/).
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { runOnFaultline } from "./guest-programs.js";

if (!isMainThread && parentPort) {
  parentPort.postMessage(runOnFaultline(workerData as Uint8Array));
}
