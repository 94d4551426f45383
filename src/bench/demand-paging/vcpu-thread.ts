/**
 * A vCPU thread of the demand-paging benchmark: KVM_RUN for one or more
 * vCPUs of the memstress guest. With -k it resolves its own vCPUs'
 * userfaults (the MEMORY_FAULT exit) right here: install the page through
 * the VMM's mapping, clear USERFAULT (an attribute call, or a release store
 * into the memslot's bitmap), run again. Several vCPUs on one thread take
 * turns, one exit each. Under userfaultfd a vCPU sleeps inside run() until
 * a reader thread resolves its fault, so it has a thread of its own.
 */
import type { MessagePort } from "node:worker_threads";
import { Host, type HostShare } from "../../host/host.js";
import { HostMemory, PAGE_SIZE } from "../../host/host-memory.js";
import { Kvm } from "../../kvm/kvm.js";
import { CORE_PC, coreReg, KVM_MP_STATE_RUNNABLE } from "../../kvm/one-reg.js";
import {
  EXIT_RISCV_SBI,
  MEMORY_ATTRIBUTE_USERFAULT,
  MEMORY_EXIT_FLAG_USERFAULT,
} from "../../kvm/uapi.js";
import type { Vcpu } from "../../kvm/vcpu.js";
import type { Vm } from "../../kvm/vm.js";
import { UCALL_ABORT, UCALL_DONE, UCALL_EID, UCALL_SYNC } from "../../vmm/ucall.js";
import { PageInstaller } from "./installer.js";
import type { UserfaultApi } from "./options.js";
import {
  CTL_GO,
  CTL_PARKED,
  CTL_PASS,
  nowMs,
  FAULT_WORDS,
  markInstalled,
  PAGE_INSTALLING,
  PAGE_MISSING,
  PAGE_PRESENT,
  runBenchThread,
  type SharedBuffers,
  sleepUs,
  TEST_GPA,
  waitForInstall,
  TIME_PASS_END,
  TIME_WORDS,
} from "./shared.js";

/** -k: how this thread resolves its vCPUs' userfaults. */
export interface KvmUserfaultConfig {
  api: UserfaultApi;
  /** Where the VMM writes page contents (the slot's mapping, or an alias of the file). */
  fillHva: number;
  /** -k -u MINOR: the userfaultfds whose registered mappings get UFFDIO_CONTINUE (empty otherwise). */
  uffds: number[];
  /** Test pages each of `uffds` covers, in order. */
  pagesPerUffd: number;
  /** The registered mapping of the test memory (with `uffd`). */
  continueHva: number;
  /** memslot-bitmap: hva of the VMM's bitmap (bit i = test page i). */
  bitmapHva: number;
  pages: number;
  /** Tests only: see PageInstaller. */
  corruptPage: number;
}

export interface VcpuThreadData {
  demandPagingVcpuThread: true;
  host: HostShare;
  kvm: number;
  vm: number;
  /** The vCPUs this thread runs. */
  ids: number[];
  totalVcpus: number;
  entry: number;
  passes: number;
  shared: SharedBuffers;
  remotePages: number;
  userfault: KvmUserfaultConfig | null;
  delayUs: number;
}

export type VcpuThreadMessage =
  { type: "ready" } | { type: "warm" } | { type: "finished" } | { type: "error"; message: string };

/** The -k fault handler of one thread: allocation-free, one shape of everything. */
export class KvmFaultHandler {
  private readonly installer: PageInstaller;
  private readonly state: Int32Array;
  private readonly installs: Int32Array;
  private readonly sleepCell = new Int32Array(new SharedArrayBuffer(4));
  private readonly attributes = {
    address: 0,
    size: PAGE_SIZE,
    set: 0,
    clear: MEMORY_ATTRIBUTE_USERFAULT,
  };
  private readonly continueArgs = { start: 0, len: PAGE_SIZE, mode: 0, mapped: 0 };
  private readonly useBitmap: boolean;
  private readonly uffds: Int32Array;
  /** Per bitmap page: the chunk holding its frame, and the frame's first int32 index. */
  private readonly bitmapChunk: Int32Array;
  private readonly bitmapWord: Int32Array;
  private readonly chunksI32: Int32Array[];

  constructor(
    private readonly host: Host,
    private readonly vm: Vm,
    private readonly config: KvmUserfaultConfig,
    shared: SharedBuffers,
    remotePages: number,
    private readonly delayUs: number,
  ) {
    this.installer = new PageInstaller(
      host,
      shared.remote,
      remotePages,
      config.fillHva,
      config.corruptPage,
    );
    this.state = new Int32Array(shared.state);
    this.installs = new Int32Array(shared.installs);
    this.useBitmap = config.api === "memslot-bitmap";
    this.uffds = Int32Array.from(config.uffds);
    this.chunksI32 = host.memory.chunkI32;
    const bitmapPages = this.useBitmap ? Math.ceil(config.pages / (8 * PAGE_SIZE)) : 0;
    this.bitmapChunk = new Int32Array(bitmapPages);
    this.bitmapWord = new Int32Array(bitmapPages);
    for (let p = 0; p < bitmapPages; p++) {
      const pfn = host.lookupPfn(config.bitmapHva + p * PAGE_SIZE);
      if (pfn === 0) throw new Error("the userfault bitmap is not populated");
      this.bitmapChunk[p] = HostMemory.chunkOf(pfn);
      this.bitmapWord[p] = HostMemory.offsetOf(pfn) >> 2;
    }
  }

  /** A MEMORY_FAULT (USERFAULT) exit at `gpa`: make the page present and released. */
  handle(gpa: number): void {
    const page = (gpa - TEST_GPA) / PAGE_SIZE;
    const prev = Atomics.compareExchange(this.state, page, PAGE_MISSING, PAGE_INSTALLING);
    if (prev !== PAGE_MISSING) {
      // Another vCPU (-o) is installing it: wait for it, then run again.
      if (prev !== PAGE_PRESENT) waitForInstall(this.state, page);
      return;
    }
    sleepUs(this.sleepCell, this.delayUs);
    this.installer.install(page);
    if (this.uffds.length > 0) {
      this.continueArgs.start = this.config.continueHva + page * PAGE_SIZE;
      const uffd = this.uffds[(page / this.config.pagesPerUffd) | 0];
      this.host.userfaultfds.continue(uffd, this.continueArgs);
    }
    this.release(page);
    Atomics.add(this.installs, page, 1);
    markInstalled(this.state, page);
  }

  private release(page: number): void {
    if (this.useBitmap) {
      // The upstream shape: a release store into the VMM's own bitmap, no call.
      const p = page >>> 15;
      const word = this.bitmapWord[p] + ((page & 32767) >>> 5);
      Atomics.and(this.chunksI32[this.bitmapChunk[p]], word, ~(1 << (page & 31)));
      return;
    }
    this.attributes.address = TEST_GPA + page * PAGE_SIZE;
    this.vm.setMemoryAttributesDelta(this.attributes);
  }
}

const RUNNING = 0;
const PARKED = 1;
const DONE = 2;

class GuestAbort extends Error {}

function main(data: VcpuThreadData, port: MessagePort): void {
  const post = (message: VcpuThreadMessage) => port.postMessage(message);
  const host = Host.attach(data.host);
  const kvm = Kvm.attach(host, data.kvm);
  const vm = kvm.attachVm(data.vm);
  const control = new Int32Array(data.shared.control);
  const times = new Float64Array(data.shared.times);
  const faults = new Int32Array(data.shared.faults);
  const vcpus: Vcpu[] = data.ids.map((id) => {
    const vcpu = kvm.attachVcpu(vm, id);
    vcpu.setOneReg(coreReg(CORE_PC), BigInt(data.entry));
    vcpu.setOneReg(coreReg(10), BigInt(id));
    vcpu.setMpState(KVM_MP_STATE_RUNNABLE);
    return vcpu;
  });
  const handler =
    data.userfault === null
      ? null
      : new KvmFaultHandler(host, vm, data.userfault, data.shared, data.remotePages, data.delayUs);
  const n = vcpus.length;
  const status = new Int32Array(n);
  post({ type: "ready" });

  /** Run vCPU i until its next exit and handle it. */
  const step = (i: number, passes: number): void => {
    const vcpu = vcpus[i];
    const run = vcpu.run;
    if (vcpu.tryRunGuest() !== null) {
      if (
        handler !== null &&
        (run.memoryFault.flags & MEMORY_EXIT_FLAG_USERFAULT) !== 0 &&
        run.memoryFault.gpa >= TEST_GPA
      ) {
        faults[vcpu.id * FAULT_WORDS]++;
        handler.handle(run.memoryFault.gpa);
        return;
      }
      throw new Error(
        `vCPU ${vcpu.id}: unexpected memory fault exit at 0x${run.memoryFault.gpa.toString(16)} ` +
          `(flags 0x${run.memoryFault.flags.toString(16)})`,
      );
    }
    const sbi = run.riscvSbi;
    if (run.exitReason !== EXIT_RISCV_SBI || sbi.extensionId !== UCALL_EID) {
      throw new Error(`vCPU ${vcpu.id}: unexpected exit reason ${run.exitReason}`);
    }
    sbi.ret[0] = 0n;
    if (sbi.functionId === UCALL_SYNC) {
      const pass = Number(sbi.args[0]);
      times[vcpu.id * TIME_WORDS + TIME_PASS_END + pass] = nowMs();
      if (pass < passes - 1) status[i] = PARKED;
    } else if (sbi.functionId === UCALL_DONE) {
      status[i] = DONE;
    } else if (sbi.functionId === UCALL_ABORT) {
      const [address, read, expected] = sbi.args;
      throw new GuestAbort(
        `vCPU ${vcpu.id}: the guest read 0x${read.toString(16)} at 0x${address.toString(16)}, ` +
          `expected 0x${expected.toString(16)}: a wrong page was installed`,
      );
    } else {
      throw new Error(`vCPU ${vcpu.id}: unknown ucall ${sbi.functionId}`);
    }
  };

  // Two phases: a warm-up run (so that this thread's code is compiled before
  // anything is timed), then the measured run; the guest starts over in between.
  const phasePasses = [1, data.passes];
  for (let phase = 0; phase < phasePasses.length; phase++) {
    while (Atomics.load(control, CTL_GO) <= phase) Atomics.wait(control, CTL_GO, phase);
    const passes = phasePasses[phase];
    status.fill(RUNNING);
    let pass = 0;
    for (;;) {
      let running = 0;
      let done = 0;
      for (let i = 0; i < n; i++) {
        if (status[i] === RUNNING) {
          step(i, passes);
          running++;
        }
        if (status[i] === DONE) done++;
      }
      if (done === n) break;
      if (running > 0) continue;
      // Every vCPU of this thread has finished `pass`: wait for all the others.
      const target = data.totalVcpus * (pass + 1);
      if (Atomics.add(control, CTL_PARKED, n) + n === target) {
        times[data.totalVcpus * TIME_WORDS + pass + 1] = nowMs();
        Atomics.store(control, CTL_PASS, pass + 1);
        Atomics.notify(control, CTL_PASS);
      }
      while (Atomics.load(control, CTL_PASS) <= pass) Atomics.wait(control, CTL_PASS, pass);
      pass++;
      status.fill(RUNNING);
    }
    post({ type: phase === 0 ? "warm" : "finished" });
  }
}

runBenchThread<VcpuThreadData>("demandPagingVcpuThread", main);
