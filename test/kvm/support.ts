import assert from "node:assert/strict";
import { Host } from "../../src/host/host.js";
import { PAGE_SIZE } from "../../src/host/host-memory.js";
import { Kvm } from "../../src/kvm/kvm.js";
import { EXIT_RISCV_SBI, MEM_GUEST_MEMFD } from "../../src/kvm/uapi.js";
import type { Vcpu } from "../../src/kvm/vcpu.js";
import type { Vm } from "../../src/kvm/vm.js";
import { assemble } from "../../src/riscv/asm/index.js";

export const RAM_BASE = 0x8000_0000;
/** The ucall channel's SBI extension id (experimental range), as the VMM will use it. */
export const UCALL_EID = 0x0846_4c54;

export interface TestVm {
  host: Host;
  kvm: Kvm;
  vm: Vm;
  gmemFd: number;
  vcpu: Vcpu;
  symbols: Map<string, bigint>;
}

/**
 * A VM with one guest_memfd memslot of `memBytes` at RAM_BASE, the program
 * loaded into it through the guest_memfd's page cache (as a VMM populates
 * memory), and vCPU 0 at the entry on this thread.
 */
export function createTestVm(
  source: string,
  options: { memBytes?: number; gmemFlags?: number } = {},
): TestVm {
  const memBytes = options.memBytes ?? 16 << 20;
  const host = Host.create({ ramBytes: 8 * 2 ** 30, arenaBytes: 64 << 20 });
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
  const program = assemble(source, { fileName: "guest.s" });
  const cache = host.pageCacheOf(gmemFd);
  for (const segment of program.image.segments) {
    const bytes = new Uint8Array(Math.ceil(segment.memSize / PAGE_SIZE) * PAGE_SIZE + PAGE_SIZE);
    const start = segment.physAddr % PAGE_SIZE;
    bytes.set(segment.data, start);
    for (let off = 0; off < start + segment.memSize; off += PAGE_SIZE) {
      cache.install((segment.physAddr - start + off - RAM_BASE) / PAGE_SIZE, bytes, off);
    }
  }
  const vcpu = kvm.createVcpu(vm, 0);
  vcpu.hart.pc = program.image.entry;
  return { host, kvm, vm, gmemFd, vcpu, symbols: program.image.symbols };
}

/** Run until the guest makes a ucall; returns its a0. */
export function runToUcall(vcpu: Vcpu): bigint {
  vcpu.runGuest();
  assert.equal(vcpu.run.exitReason, EXIT_RISCV_SBI, "expected an SBI exit");
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
