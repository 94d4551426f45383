/**
 * A worker thread for the userfaultfd tests: attaches to the test's Host and
 * plays either side of userfaultfd through the system-call surface: a
 * faulting thread (a vCPU or the VMM touching its memory, sleeping in the
 * host fault path) or a reader thread (read() and resolve, as a VMM's fault
 * handling thread does). Does nothing when loaded as a main module.
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { FAULT_ATOMIC, FAULT_WRITE } from "../../src/host/address-space.js";
import { ErrnoError } from "../../src/host/errno.js";
import { Host } from "../../src/host/host.js";
import { HostMemory } from "../../src/host/host-memory.js";
import {
  gettid,
  POLLIN,
  UFFD_PAGEFAULT_FLAG_MINOR,
  UFFDIO_COPY_MODE_DONTWAKE,
  type UffdMsg,
} from "../../src/host/userfaultfd.js";
import { random } from "./helpers.js";
import type { WorkerSetup } from "./host-worker.js";

/** Touch each address in turn through the host fault path (as a hypervisor access does). */
export interface TouchOrder {
  kind: "touch";
  hvas: number[];
  write: boolean;
  atomic?: boolean;
  /** Shared words: [index] is incremented after each touch, then notified. */
  progress?: SharedArrayBuffer;
  progressIndex?: number;
}

export interface TouchReply {
  tid: number;
  /** Per address: the pfn (or negative FAULT_* code) and the 32-bit word found there. */
  pfns: number[];
  words: number[];
}

/**
 * Read and resolve messages until `stop[0]` is non-zero and the fd has none
 * left: COPY (a page whose first word is `stamp(address)`), or CONTINUE for
 * MINOR faults. The fd should be O_NONBLOCK when several readers share it.
 */
export interface ReaderOrder {
  kind: "reader";
  fd: number;
  stop: SharedArrayBuffer;
  seed: number;
  /** Resolve with DONTWAKE and wake separately, for about this share of messages. */
  dontwakeShare: number;
  /** Busy time per message in microseconds (a slow handler, to let faults pile up). */
  delayUs: number;
  /** false: only read and record the messages (another thread resolves, as a background push). */
  resolve?: boolean;
}

/** Copy a stamped page to each address in turn, proactively (post-copy's background push). */
export interface PushOrder {
  kind: "push";
  fd: number;
  hvas: number[];
}

export interface PushReply {
  copied: number;
  eexist: number;
}

export interface ReaderReply {
  /** Every message read: [address, flags, ptid] flattened. */
  messages: number[];
  /** Addresses this reader resolved (COPY or CONTINUE succeeded). */
  resolved: number[];
  /** Resolutions that found the page there already (EEXIST). */
  eexist: number;
  /** read() calls that found no message (EAGAIN). */
  eagain: number;
}

export type UffdOrder =
  | TouchOrder
  | ReaderOrder
  | PushOrder
  | { kind: "read"; fd: number }
  | { kind: "poll"; fd: number; timeoutMs: number }
  | { kind: "copy-to-user"; hva: number; value: number };

/** The word a reader stamps at the start of the page it copies for `address`. */
export function stamp(address: number): number {
  return (address / 4096) ^ 0x5a5a5a5a;
}

function wordAt(host: Host, pfn: number): number {
  return host.memory.chunkI32[HostMemory.chunkOf(pfn)][HostMemory.offsetOf(pfn) >> 2];
}

function touch(host: Host, order: TouchOrder): TouchReply {
  const progress = order.progress ? new Int32Array(order.progress) : null;
  const at = order.progressIndex ?? 0;
  const flags = (order.write ? FAULT_WRITE : 0) | (order.atomic ? FAULT_ATOMIC : 0);
  const pfns: number[] = [];
  const words: number[] = [];
  for (const hva of order.hvas) {
    const pfn = host.mm.tryFaultIn(hva, flags);
    pfns.push(pfn);
    words.push(pfn > 0 ? wordAt(host, pfn) : 0);
    if (progress) {
      Atomics.add(progress, at, 1);
      Atomics.notify(progress, at);
    }
  }
  return { tid: gettid(), pfns, words };
}

function spin(us: number): void {
  const end = performance.now() + us / 1000;
  while (performance.now() < end) {
    // a handler doing work
  }
}

function reader(host: Host, order: ReaderOrder): ReaderReply {
  const uffds = host.userfaultfds;
  const stop = new Int32Array(order.stop);
  const next = random(order.seed);
  const page = new Uint8Array(4096);
  const pageWords = new Int32Array(page.buffer);
  const msg: UffdMsg = { event: 0, flags: 0, address: 0, ptid: 0 };
  const reply: ReaderReply = { messages: [], resolved: [], eexist: 0, eagain: 0 };
  for (;;) {
    if ((uffds.poll(order.fd, 10) & POLLIN) === 0) {
      if (Atomics.load(stop, 0) !== 0) return reply;
      continue;
    }
    try {
      uffds.readInto(order.fd, msg);
    } catch (error) {
      if (error instanceof ErrnoError && error.errno === "EAGAIN") {
        reply.eagain++;
        continue;
      }
      throw error;
    }
    reply.messages.push(msg.address, msg.flags, msg.ptid);
    if (order.resolve === false) continue;
    if (order.delayUs > 0) spin(order.delayUs * next());
    const dontwake = next() < order.dontwakeShare;
    const address = msg.address - (msg.address % 4096);
    try {
      if ((msg.flags & UFFD_PAGEFAULT_FLAG_MINOR) !== 0) {
        uffds.continue(order.fd, { start: address, len: 4096, mode: dontwake ? 1 : 0 });
      } else {
        pageWords[0] = stamp(address);
        const mode = dontwake ? UFFDIO_COPY_MODE_DONTWAKE : 0;
        uffds.copy(order.fd, { dst: address, src: page, len: 4096, mode });
      }
      reply.resolved.push(address);
    } catch (error) {
      if (!(error instanceof ErrnoError) || error.errno !== "EEXIST") throw error;
      reply.eexist++;
    }
    if (dontwake) uffds.wake(order.fd, { start: address, len: 4096 });
  }
}

function push(host: Host, order: PushOrder): PushReply {
  const page = new Uint8Array(4096);
  const pageWords = new Int32Array(page.buffer);
  const args = { dst: 0, src: page, len: 4096, mode: 0, copy: 0 };
  const reply: PushReply = { copied: 0, eexist: 0 };
  for (const hva of order.hvas) {
    pageWords[0] = stamp(hva);
    args.dst = hva;
    try {
      host.userfaultfds.copy(order.fd, args);
      reply.copied++;
    } catch (error) {
      if (!(error instanceof ErrnoError) || error.errno !== "EEXIST") throw error;
      reply.eexist++;
    }
  }
  return reply;
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  const setup = workerData as WorkerSetup;
  const host = Host.attach(setup.share);
  port.on("message", (order: UffdOrder) => {
    try {
      switch (order.kind) {
        case "touch":
          port.postMessage(touch(host, order));
          break;
        case "reader":
          port.postMessage(reader(host, order));
          break;
        case "push":
          port.postMessage(push(host, order));
          break;
        case "read":
          port.postMessage(host.userfaultfds.read(order.fd));
          break;
        case "poll":
          port.postMessage({ revents: host.userfaultfds.poll(order.fd, order.timeoutMs) });
          break;
        case "copy-to-user": {
          const data = new Uint8Array(new Int32Array([order.value]).buffer);
          host.copyToUser(order.hva, data);
          port.postMessage({ tid: gettid() });
          break;
        }
      }
    } catch (error) {
      const errno = error instanceof ErrnoError ? error.errno : undefined;
      port.postMessage({ error: String(error), errno });
    }
  });
}
