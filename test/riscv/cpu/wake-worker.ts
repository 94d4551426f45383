/**
 * Worker for interrupts.test.ts: after a delay, wakes a hart that sleeps in
 * WFI on the main thread, by posting a request or raising an interrupt on its
 * shared control words. Does nothing when loaded as a main module (the test
 * runner may load every .js file under dist/test).
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { postRequest, raiseInterrupt } from "../../../src/riscv/cpu/hart-control.js";

export interface WakeOrder {
  control: Int32Array;
  action: "request" | "interrupt";
  bits: number;
  delayMs: number;
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  const order = workerData as WakeOrder;
  // Start the clock only when the main thread says so (it then blocks in WFI).
  port.once("message", () => {
    setTimeout(() => {
      if (order.action === "request") postRequest(order.control, order.bits);
      else raiseInterrupt(order.control, order.bits);
      port.postMessage("done");
      port.close();
    }, order.delayMs);
  });
}
