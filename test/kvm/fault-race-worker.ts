/**
 * A worker thread for the stage-2 fault race test: it attaches to the test's
 * VM and calls the vCPU fault handler (handleStage2Fault) on pages of the
 * slot as fast as it can until told to stop, as many vCPU threads taking
 * stage-2 misses at once would. Does nothing when loaded as a main module.
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { Host, type HostShare } from "../../src/host/host.js";
import { PAGE_SIZE } from "../../src/host/host-memory.js";
import { ACCESS_READ, ACCESS_WRITE } from "../../src/riscv/cpu/constants.js";
import { FAULT_MAPPED, FAULT_USERFAULT, handleStage2Fault } from "../../src/kvm/fault.js";
import { Kvm } from "../../src/kvm/kvm.js";
import { Memslot } from "../../src/kvm/memslots.js";

export interface FaultRaceSetup {
  faultRace: true;
  host: HostShare;
  kvm: number;
  vm: number;
  /** Word 0: stop flag. */
  control: SharedArrayBuffer;
  base: number;
  /** Pages this worker faults on: [first, first + count). */
  first: number;
  count: number;
  seed: number;
}

export interface FaultRaceReply {
  mapped: number;
  userfault: number;
  other: number;
}

const setup = workerData as Partial<FaultRaceSetup> | undefined;
if (!isMainThread && parentPort && setup?.faultRace === true) {
  const host = Host.attach(setup.host!);
  const kvm = Kvm.attach(host, setup.kvm!);
  const vm = kvm.attachVm(setup.vm!);
  const words = new Int32Array(setup.control!);
  const slot = new Memslot();
  const reply: FaultRaceReply = { mapped: 0, userfault: 0, other: 0 };
  let x = setup.seed! >>> 0;
  let n = 0;
  while ((n++ & 63) !== 0 || Atomics.load(words, 0) === 0) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    const page = setup.first! + ((x >>> 8) % setup.count!);
    const access = (x & 3) === 0 ? ACCESS_WRITE : ACCESS_READ;
    const outcome = handleStage2Fault(vm, slot, setup.base! + page * PAGE_SIZE, access);
    if (outcome === FAULT_MAPPED) reply.mapped++;
    else if (outcome === FAULT_USERFAULT) reply.userfault++;
    else reply.other++;
  }
  parentPort.postMessage(reply);
}
