/**
 * A worker thread for the host tests: attaches to the test's Host and runs
 * the orders it is sent (fault rounds, eventfd reads and writes, a simulated
 * userfaultfd). Does nothing when loaded as a main module (the test runner
 * may load every .js file under dist/test).
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import {
  FAULT_WRITE,
  setUserfaultHandler,
  type AddressSpace,
} from "../../src/host/address-space.js";
import { Host, type HostShare } from "../../src/host/host.js";
import { HostMemory } from "../../src/host/host-memory.js";
import { random, shuffled } from "./helpers.js";

export interface WorkerSetup {
  share: HostShare;
  /** Shared words: [0] barrier arrivals, [1] barrier generation, [2] userfault resolutions. */
  control: SharedArrayBuffer;
  workers: number;
}

/** Fault every page of every target mapping in a random order; count one increment per page. */
export interface FaultOrder {
  kind: "fault";
  targets: number[];
  pages: number;
  seed: number;
  /** Also touch each page this many more times at random. */
  extraTouches: number;
}

export interface FaultReply {
  /** pfn (or negative FAULT_* code) per target and page. */
  pfns: number[][];
}

export type Order =
  | FaultOrder
  | { kind: "eventfd-read"; fd: number }
  | { kind: "eventfd-write"; fd: number; value: number; delayMs: number }
  | { kind: "userfault"; hva: number; eventfd: number }
  | { kind: "syscalls"; closeFd: number }
  | { kind: "exit" };

/** What the "syscalls" order made: a memfd, a mapping of it holding "hello", and a closed fd. */
export interface SyscallsReply {
  fd: number;
  hva: number;
}

/** Wait until every worker has arrived, so that their next steps overlap. */
function barrier(control: Int32Array, parties: number): void {
  const generation = Atomics.load(control, 1);
  if (Atomics.add(control, 0, 1) === parties - 1) {
    Atomics.store(control, 0, 0);
    Atomics.add(control, 1, 1);
    Atomics.notify(control, 1);
    return;
  }
  while (Atomics.load(control, 1) === generation) Atomics.wait(control, 1, generation);
}

function faultRound(host: Host, order: FaultOrder, control: Int32Array, parties: number) {
  const next = random(order.seed);
  const pfns = order.targets.map(() => new Array<number>(order.pages).fill(0));
  barrier(control, parties);
  const touch = (t: number, page: number): number => {
    const pfn = host.mm.tryFaultIn(order.targets[t] + page * 4096, FAULT_WRITE);
    if (pfn > 0) {
      // One increment per worker and page in the page's first word: a page
      // populated twice would split the count between two frames.
      const words = host.memory.chunkI32[HostMemory.chunkOf(pfn)];
      Atomics.add(words, HostMemory.offsetOf(pfn) >> 2, 1);
    }
    return pfn;
  };
  for (const t of shuffled(order.targets.length, next)) {
    for (const page of shuffled(order.pages, next)) pfns[t][page] = touch(t, page);
  }
  for (let i = 0; i < order.extraTouches; i++) {
    const t = Math.floor(next() * order.targets.length);
    const page = Math.floor(next() * order.pages);
    const pfn = host.mm.tryFaultIn(order.targets[t] + page * 4096, 0);
    if (pfn > 0 && pfns[t][page] > 0 && pfn !== pfns[t][page]) pfns[t][page] = -1000;
  }
  return { pfns };
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  const setup = workerData as WorkerSetup;
  const host = Host.attach(setup.share);
  const control = new Int32Array(setup.control);
  port.on("message", (order: Order) => {
    switch (order.kind) {
      case "fault":
        port.postMessage(faultRound(host, order, control, setup.workers));
        break;
      case "eventfd-read":
        // Blocks this thread in Atomics.wait until another thread writes.
        port.postMessage({ value: host.eventfds.read(order.fd) });
        break;
      case "eventfd-write":
        setTimeout(() => {
          host.eventfds.write(order.fd, order.value);
          port.postMessage({ written: true });
        }, order.delayMs);
        break;
      case "userfault": {
        // A stand-in for userfaultfd: tell the main thread through an eventfd
        // and sleep until it has installed the page.
        const seen: number[] = [];
        const previous = setUserfaultHandler((space: AddressSpace, slot, gen, hva, reason) => {
          if (!space.isLive(slot, gen)) return 0;
          seen.push(reason, hva);
          const resolved = Atomics.load(control, 2);
          host.eventfds.signal(order.eventfd);
          while (Atomics.load(control, 2) === resolved) Atomics.wait(control, 2, resolved);
          return 0;
        });
        let pfn: number;
        try {
          pfn = host.mm.faultIn(order.hva, 0);
        } finally {
          setUserfaultHandler(previous);
        }
        const first = host.memory.chunkU8[HostMemory.chunkOf(pfn)][HostMemory.offsetOf(pfn)];
        port.postMessage({ pfn, first, seen });
        break;
      }
      case "syscalls": {
        // Any thread makes system calls on the one kernel: descriptors and
        // mappings made here are the main thread's too, and the other way round.
        const fd = host.memfdCreate("from-worker", 8192);
        const hva = host.mmap({ length: 8192, prot: 3, flags: 1, fd });
        host.copyToUser(hva + 4096, new TextEncoder().encode("hello"));
        host.close(order.closeFd);
        port.postMessage({ fd, hva } satisfies SyscallsReply);
        break;
      }
      case "exit":
        port.close();
        break;
    }
  });
}
