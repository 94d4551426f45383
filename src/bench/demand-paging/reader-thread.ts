/**
 * A userfaultfd reader thread of the demand-paging benchmark (the kernel
 * test's uffd_handler_thread_fn): poll the userfaultfd, read a fault
 * message, resolve it with UFFDIO_COPY (MISSING) or by filling the page
 * cache through the alias mapping and UFFDIO_CONTINUE (MINOR), which wakes
 * the faulting vCPU thread. Several readers may serve one userfaultfd (-r).
 */
import type { MessagePort } from "node:worker_threads";
import { ErrnoError } from "../../host/errno.js";
import { Host, type HostShare } from "../../host/host.js";
import { PAGE_SIZE } from "../../host/host-memory.js";
import { POLLIN } from "../../host/userfaultfd.js";
import { PageInstaller } from "./installer.js";
import type { UffdMode } from "./options.js";
import {
  CTL_GO,
  CTL_STOP,
  markInstalled,
  PAGE_INSTALLING,
  PAGE_MISSING,
  PAGE_PRESENT,
  runBenchThread,
  type SharedBuffers,
  sleepUs,
  waitForInstall,
} from "./shared.js";

export interface ReaderThreadData {
  demandPagingReaderThread: true;
  host: HostShare;
  uffd: number;
  mode: UffdMode;
  /** hva of test page 0 in the registered mapping(s). */
  registeredHva: number;
  /** MINOR: the alias mapping the page cache is filled through. */
  aliasHva: number;
  /** Bytes one fault resolves: the backing's page size. */
  unit: number;
  shared: SharedBuffers;
  remotePages: number;
  delayUs: number;
  /** Tests only: see PageInstaller. */
  corruptPage: number;
}

export type ReaderThreadMessage =
  { type: "ready" } | { type: "finished"; resolved: number } | { type: "error"; message: string };

const POLL_MS = 100;

function main(data: ReaderThreadData, port: MessagePort): void {
  const host = Host.attach(data.host);
  const uffds = host.userfaultfds;
  const fd = data.uffd;
  const control = new Int32Array(data.shared.control);
  const state = new Int32Array(data.shared.state);
  const installs = new Int32Array(data.shared.installs);
  const remote = new Uint8Array(data.shared.remote);
  const remotePagesTiled = data.shared.remote.byteLength / PAGE_SIZE;
  const unitPages = data.unit / PAGE_SIZE;
  const minor = data.mode === "MINOR";
  const installer = minor
    ? new PageInstaller(host, data.shared.remote, data.remotePages, data.aliasHva, data.corruptPage)
    : null;
  const sleepCell = new Int32Array(new SharedArrayBuffer(4));
  const copyArgs = { dst: 0, src: remote, srcOffset: 0, len: data.unit, mode: 0, copy: 0 };
  const continueArgs = { start: 0, len: data.unit, mode: 0, mapped: 0 };
  const wakeArgs = { start: 0, len: data.unit };
  const message = { event: 0, flags: 0, address: 0, ptid: 0 };
  let resolved = 0;
  port.postMessage({ type: "ready" } satisfies ReaderThreadMessage);
  while (Atomics.load(control, CTL_GO) === 0) Atomics.wait(control, CTL_GO, 0);

  while (Atomics.load(control, CTL_STOP) === 0) {
    if (uffds.poll(fd, POLL_MS) !== POLLIN) continue;
    let address: number;
    try {
      address = uffds.readInto(fd, message).address;
    } catch (error) {
      if (error instanceof ErrnoError && error.errno === "EAGAIN") continue; // another reader took it
      throw error;
    }
    address -= address % data.unit;
    const page = (address - data.registeredHva) / PAGE_SIZE;
    // One handler per page, even when two vCPUs (-o) fault on it at once.
    const prev = Atomics.compareExchange(state, page, PAGE_MISSING, PAGE_INSTALLING);
    if (prev !== PAGE_MISSING) {
      if (prev !== PAGE_PRESENT) waitForInstall(state, page);
      wakeArgs.start = address;
      uffds.wake(fd, wakeArgs);
      continue;
    }
    sleepUs(sleepCell, data.delayUs);
    // Counted before the fault is resolved: the woken vCPU may finish its
    // pass, and the main thread read the counts, before this thread runs on.
    for (let i = 0; i < unitPages; i++) Atomics.add(installs, page + i, 1);
    if (installer !== null) {
      installer.install(page);
      continueArgs.start = address;
      uffds.continue(fd, continueArgs);
    } else {
      copyArgs.dst = address;
      copyArgs.srcOffset = (page % remotePagesTiled) * PAGE_SIZE;
      uffds.copy(fd, copyArgs);
    }
    markInstalled(state, page);
    resolved++;
  }
  port.postMessage({ type: "finished", resolved } satisfies ReaderThreadMessage);
}

runBenchThread<ReaderThreadData>("demandPagingReaderThread", main);
