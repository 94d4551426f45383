import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { Host, type HostOptions } from "../../src/host/host.js";
import { PAGE_SIZE } from "../../src/host/host-memory.js";
import { Kvm } from "../../src/kvm/kvm.js";
import {
  CAP_USERFAULT,
  EXIT_MEMORY_FAULT,
  EXIT_RISCV_SBI,
  MEM_GUEST_MEMFD,
  MEMORY_ATTRIBUTE_USERFAULT,
  USERFAULT_ENABLE,
} from "../../src/kvm/uapi.js";
import type { Vcpu } from "../../src/kvm/vcpu.js";
import type { Vm } from "../../src/kvm/vm.js";
import { assemble } from "../../src/riscv/asm/index.js";
import { type WatchdogArm, type WatchdogSetup, WD_KICKS, WD_SEQUENCE } from "./watchdog-worker.js";

export const RAM_BASE = 0x8000_0000;
/** The ucall channel's SBI extension id (experimental range), as the VMM will use it. */
export const UCALL_EID = 0x0846_4c54;
/**
 * The extension id the test trap handler calls with (a0 = scause, a1 = sepc,
 * a2 = stval): a guest that traps unexpectedly exits to the test instead of
 * looping in the hypervisor.
 */
export const TRAP_EID = 0x0846_4c55;

/** Appended to every test program; vCPUs start with stvec at `__test_trap`. */
const TRAP_STUB = `
        .text
        .balign 4
__test_trap:
        csrr    a0, scause
        csrr    a1, sepc
        csrr    a2, stval
        li      a7, ${TRAP_EID}
        ecall
        j       __test_trap
`;

export interface TestVm {
  host: Host;
  kvm: Kvm;
  vm: Vm;
  gmemFd: number;
  vcpu: Vcpu;
  symbols: Map<string, bigint>;
  entry: number;
  /** The test trap handler, for stvec. */
  trap: number;
}

export interface TestVmOptions {
  memBytes?: number;
  gmemFlags?: number;
  /** Host sizes (default: 8 GiB of RAM, 64 MiB of arena). */
  host?: HostOptions;
}

export interface Program {
  entry: number;
  symbols: Map<string, bigint>;
  segments: { physAddr: number; memSize: number; data: Uint8Array }[];
}

export function assembleProgram(source: string): Program {
  const program = assemble(source, { fileName: "guest.s" });
  return {
    entry: program.image.entry,
    symbols: program.image.symbols,
    segments: program.image.segments,
  };
}

/** Put a program's segments into a guest_memfd whose page 0 is at guest-physical `base`. */
export function loadIntoGuestMemfd(host: Host, gmemFd: number, program: Program, base = RAM_BASE) {
  const cache = host.pageCacheOf(gmemFd);
  for (const segment of program.segments) {
    const bytes = new Uint8Array(Math.ceil(segment.memSize / PAGE_SIZE) * PAGE_SIZE + PAGE_SIZE);
    const start = segment.physAddr % PAGE_SIZE;
    bytes.set(segment.data, start);
    for (let off = 0; off < start + segment.memSize; off += PAGE_SIZE) {
      cache.install((segment.physAddr - start + off - base) / PAGE_SIZE, bytes, off);
    }
  }
}

/**
 * A VM with one guest_memfd memslot of `memBytes` at RAM_BASE, the program
 * loaded into it through the guest_memfd's page cache (as a VMM populates
 * memory), and vCPU 0 at the entry on this thread.
 */
export function createTestVm(source: string, options: TestVmOptions = {}): TestVm {
  const memBytes = options.memBytes ?? 16 << 20;
  const host = Host.create({ ramBytes: 8 * 2 ** 30, arenaBytes: 64 << 20, ...options.host });
  const kvm = Kvm.open(host);
  const vm = kvm.createVm();
  const gmemFd = vm.createGuestMemfd({ size: memBytes, flags: options.gmemFlags ?? 0 });
  vm.setUserMemoryRegion2({
    slot: 0,
    flags: MEM_GUEST_MEMFD,
    guestPhysAddr: RAM_BASE,
    memorySize: memBytes,
    userspaceAddr: 0,
    guestMemfd: gmemFd,
    guestMemfdOffset: 0,
  });
  const program = assembleProgram(source + TRAP_STUB);
  loadIntoGuestMemfd(host, gmemFd, program);
  const vcpu = kvm.createVcpu(vm, 0);
  const trap = Number(program.symbols.get("__test_trap"));
  vcpu.hart.pc = program.entry;
  vcpu.hart.setStvec(trap | 0, 0);
  return { host, kvm, vm, gmemFd, vcpu, symbols: program.symbols, entry: program.entry, trap };
}

/** The guest-physical address of a symbol of the test program. */
export function symbol(t: { symbols: Map<string, bigint> }, name: string): number {
  const value = t.symbols.get(name);
  assert.ok(value !== undefined, `no symbol ${name}`);
  return Number(value);
}

let watchdog: { worker: Worker; words: Int32Array } | null = null;

/**
 * Run `body` (which calls vcpu.runGuest) under the watchdog: if it has not
 * returned after `ms`, the vCPU is kicked out of run() and the test fails.
 */
export function guarded<T>(vcpu: Vcpu, body: () => T, ms = 20_000): T {
  if (watchdog === null) {
    const words = new Int32Array(new SharedArrayBuffer(8));
    const worker = new Worker(new URL("./watchdog-worker.js", import.meta.url), {
      workerData: { watchdog: words.buffer } satisfies WatchdogSetup,
    });
    worker.unref();
    watchdog = { worker, words };
  }
  const { worker, words } = watchdog;
  const sequence = Atomics.add(words, WD_SEQUENCE, 1) + 1;
  const kicks = Atomics.load(words, WD_KICKS);
  const arm: WatchdogArm = {
    sequence,
    arena: vcpu.vm.memory.arenaBuffer as SharedArrayBuffer,
    vcpuOffset: vcpu.shared.offset,
    ms,
  };
  worker.postMessage(arm);
  let result: T;
  try {
    result = body();
  } finally {
    Atomics.add(words, WD_SEQUENCE, 1);
    Atomics.notify(words, WD_SEQUENCE);
  }
  if (Atomics.load(words, WD_KICKS) !== kicks) {
    assert.fail(`the guest ran ${ms} ms without the exit the test waits for (watchdog)`);
  }
  return result;
}

/** KVM_RUN under the watchdog. */
export function runGuest(vcpu: Vcpu, ms?: number): void {
  guarded(vcpu, () => vcpu.runGuest(), ms);
}

/** Run until the guest makes a ucall; returns its a0. */
export function runToUcall(vcpu: Vcpu): bigint {
  runGuest(vcpu);
  assert.equal(vcpu.run.exitReason, EXIT_RISCV_SBI, "expected an SBI exit");
  const sbi = vcpu.run.riscvSbi;
  if (sbi.extensionId === TRAP_EID) {
    const [cause, epc, tval] = sbi.args.map((v) => `0x${v.toString(16)}`);
    assert.fail(`the guest trapped: scause ${cause}, sepc ${epc}, stval ${tval}`);
  }
  assert.equal(vcpu.run.riscvSbi.extensionId, UCALL_EID, "expected a ucall");
  vcpu.run.riscvSbi.ret[0] = 0n;
  return vcpu.run.riscvSbi.args[0];
}

/** Assembly for a ucall with the value in a0. */
export const UCALL = `li a7, ${UCALL_EID}\n        ecall`;

/** Expect `fn` to throw an errno error with this name. */
export function assertErrno(fn: () => unknown, errno: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.equal((error as { errno?: string }).errno, errno, String(error));
    return true;
  });
}

/** Enable userfault on the VM with a fresh eventfd; returns the eventfd. */
export function enableUserfault(t: { host: Host; vm: Vm }, options = USERFAULT_ENABLE): number {
  const eventfd = t.host.eventfd();
  t.vm.enableCap({ cap: CAP_USERFAULT, flags: 0, args: [options, eventfd] });
  return eventfd;
}

/** Set or clear USERFAULT on a range with the delta call (other attributes stay). */
export function setUserfault(vm: Vm, gpa: number, on: boolean, size = PAGE_SIZE): void {
  vm.setMemoryAttributesDelta({
    address: gpa,
    size,
    set: on ? MEMORY_ATTRIBUTE_USERFAULT : 0,
    clear: on ? 0 : MEMORY_ATTRIBUTE_USERFAULT,
  });
}

/** run() must fail with `errno` and a MEMORY_FAULT exit, and tryRunGuest() return it; returns the fault. */
export function expectMemoryFault(
  vcpu: Vcpu,
  errno = "EFAULT",
): { flags: number; gpa: number; size: number } {
  assert.throws(
    () => runGuest(vcpu),
    (e: unknown) => {
      assert.equal((e as { errno?: string }).errno, errno, String(e));
      assert.ok(vcpu.isMemoryFault(e), "the error is run()'s memory-fault exit");
      return true;
    },
  );
  assert.equal(vcpu.run.exitReason, EXIT_MEMORY_FAULT);
  const fault = { ...vcpu.run.memoryFault };
  // The page is still missing: tryRunGuest() exits the same way and returns what run() threw.
  const error = vcpu.tryRunGuest();
  assert.equal(error?.errno, errno);
  assert.ok(vcpu.isMemoryFault(error));
  assert.equal(vcpu.run.exitReason, EXIT_MEMORY_FAULT);
  assert.deepEqual({ ...vcpu.run.memoryFault }, fault);
  return fault;
}

/** Install one page of guest_memfd contents at guest-physical `gpa` (slot 0 at RAM_BASE). */
export function installPage(t: TestVm, gpa: number, page: Uint8Array, base = RAM_BASE): void {
  t.host.pageCacheOf(t.gmemFd).install((gpa - base) / PAGE_SIZE, page);
}

/** A page whose doublewords are all `value`. */
export function pageOf(value: bigint): Uint8Array {
  const page = new Uint8Array(PAGE_SIZE);
  new BigUint64Array(page.buffer).fill(BigInt.asUintN(64, value));
  return page;
}

/** Read guest memory through the hypervisor's access path (atomic: it never waits). */
export function readGuest(vm: Vm, gpa: number, length: number): Uint8Array {
  const data = new Uint8Array(length);
  vm.accessGuest(gpa, data, false, true);
  return data;
}

export function readGuestU64(vm: Vm, gpa: number): bigint {
  return new DataView(readGuest(vm, gpa, 8).buffer).getBigUint64(0, true);
}

export function writeGuestU64(vm: Vm, gpa: number, value: bigint): void {
  const data = new Uint8Array(8);
  new DataView(data.buffer).setBigUint64(0, BigInt.asUintN(64, value), true);
  vm.accessGuest(gpa, data, true, true);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `promise`, or a rejection naming `what` after `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Wait (without blocking the event loop, without spinning) until
 * `predicate(words[index])` holds; the writer notifies the word.
 */
export async function waitForWord(
  words: Int32Array,
  index: number,
  predicate: (value: number) => boolean,
  ms: number,
  what: string,
): Promise<number> {
  const deadline = performance.now() + ms;
  for (;;) {
    const value = Atomics.load(words, index);
    if (predicate(value)) return value;
    const left = deadline - performance.now();
    if (left <= 0) throw new Error(`timed out after ${ms} ms: ${what} (word is ${value})`);
    const waiting = Atomics.waitAsync(words, index, value, left);
    if (waiting.async) await waiting.value;
  }
}

/** Check `done` every few milliseconds (on timers) until it holds; `check` may throw meanwhile. */
export async function until(
  done: () => boolean,
  ms: number,
  what: string,
  check: () => void = () => undefined,
): Promise<void> {
  const deadline = performance.now() + ms;
  for (;;) {
    check();
    if (done()) return;
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`);
    await sleep(2);
  }
}

/** Wait for the eventfd to be signalled (readAsync), with a timeout; returns the count. */
export function eventfdSignalled(host: Host, eventfd: number, ms = 5000): Promise<bigint> {
  return withTimeout(host.eventfds.readAsync(eventfd), ms, "the userfault eventfd");
}

/**
 * A command loop: the guest reports (ucall) what it last read, then loads
 * from `addr` (and stores `value` there first when `value` is not 0).
 * The test sets `addr`/`value` through the hypervisor's access path.
 */
export const ACCESS_LOOP = `
_start:
        li      a0, 0
loop:
        ${UCALL}
        la      t0, cmd
        ld      t1, 0(t0)
        ld      t2, 8(t0)
        beqz    t2, 1f
        sd      t2, 0(t1)
1:      ld      a0, 0(t1)
        j       loop
        .data
        .balign 4096
cmd:    .dword  0, 0
`;

export function command(t: TestVm, addr: number, value = 0n): void {
  const bytes = new Uint8Array(16);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, BigInt(addr), true);
  view.setBigUint64(8, value, true);
  t.vm.accessGuest(Number(t.symbols.get("cmd")), bytes, true, true);
}

/** Run one command: the value the guest loaded at `addr`. */
export function guestAccess(t: TestVm, addr: number, value = 0n): bigint {
  command(t, addr, value);
  return runToUcall(t.vcpu);
}

/**
 * An SBI command loop: the guest reports (ucall, a0 and a1) the result of
 * the last call, then makes the SBI call the test left in `sbicmd`
 * (extension, function, a0-a5).
 */
export const SBI_LOOP = `
_start:
        li      a0, 0
        li      a1, 0
loop:
        li      a7, ${UCALL_EID}
        ecall
        la      t0, sbicmd
        ld      a7, 0(t0)
        ld      a6, 8(t0)
        ld      a0, 16(t0)
        ld      a1, 24(t0)
        ld      a2, 32(t0)
        ld      a3, 40(t0)
        ld      a4, 48(t0)
        ld      a5, 56(t0)
        ecall
        j       loop
        .data
        .balign 4096
sbicmd: .zero   64
`;

/** Leave an SBI call for SBI_LOOP to make next. */
export function setSbiCall(t: TestVm, eid: number, fid: number, args: bigint[] = []): void {
  const bytes = new Uint8Array(64);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, BigInt(eid), true);
  view.setBigUint64(8, BigInt(fid), true);
  args.forEach((arg, i) => view.setBigUint64(16 + 8 * i, BigInt.asUintN(64, arg), true));
  t.vm.accessGuest(symbol(t, "sbicmd"), bytes, true, true);
}

/** Make one SBI call from SBI_LOOP: its error (signed) and value. */
export function sbiCall(
  t: TestVm,
  eid: number,
  fid: number,
  args: bigint[] = [],
): [number, bigint] {
  setSbiCall(t, eid, fid, args);
  const error = runToUcall(t.vcpu);
  return [Number(BigInt.asIntN(64, error)), t.vcpu.run.riscvSbi.args[1]];
}
