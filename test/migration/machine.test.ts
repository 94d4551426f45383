import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Host } from "../../src/host/host.js";
import { PAGE_SIZE } from "../../src/host/host-memory.js";
import { Kvm } from "../../src/kvm/kvm.js";
import {
  HSM_STOPPED,
  V_HSM_STATE,
  V_STEAL_ADDR,
  V_STEAL_ENABLED,
} from "../../src/kvm/vcpu-shared.js";
import {
  restoreVcpuState,
  saveVcpuState,
  vcpuStateFromJson,
  vcpuStateToJson,
} from "../../src/migration/machine/vcpu-state.js";
import { expectedChecksums } from "../../src/migration/machine/dirtier.js";
import {
  decodeVcpuStates,
  type DeviceStates,
  encodeVcpuStates,
  MigratableVm,
  type MigratableVmSpec,
} from "../../src/migration/machine/migratable-vm.js";
import { VmControl } from "../../src/migration/machine/vm-control.js";

const SPEC: MigratableVmSpec = {
  memBytes: 8 << 20,
  vcpus: 2,
  iterations: 300,
  storesPerIteration: 16,
  ioEvery: 8,
  backing: "guest_memfd",
  pageSize: 4096,
};

describe("the migration workload VM", () => {
  for (const ioEvery of [8, 0]) {
    test(
      `the dirtier's checksums match the native model (disk reads every ${ioEvery} iterations)`,
      { timeout: 30_000 },
      async () => {
        const spec = { ...SPEC, ioEvery };
        const { vm, start } = MigratableVm.boot(spec);
        try {
          await vm.start(start);
          assert.deepEqual(await vm.finished(), expectedChecksums(spec));
        } finally {
          await vm.close();
        }
      },
    );
  }

  test("a guest too large for the guest-physical address space is refused before its host is made", () => {
    assert.throws(
      () => MigratableVm.boot({ ...SPEC, memBytes: 512 * 2 ** 30 }),
      /EINVAL: guest memory of 549755813888 bytes does not fit the guest-physical address space/,
    );
  });

  test("the native model counts every disk read: another period, another checksum", () => {
    assert.notEqual(expectedChecksums(SPEC)[0], expectedChecksums({ ...SPEC, ioEvery: 9 })[0]);
    assert.equal(expectedChecksums(SPEC)[1], expectedChecksums({ ...SPEC, ioEvery: 9 })[1]);
  });

  test(
    "paused at a ucall, copied page by page and restarted in another VM: same checksums",
    { timeout: 30_000 },
    async () => {
      const spec: MigratableVmSpec = { ...SPEC, backing: "shmem", iterations: 2000 };
      const { vm: a, start } = MigratableVm.boot(spec);
      const b = MigratableVm.incoming(spec);
      try {
        await a.start(start);
        // Until vCPU 0 has read its disk a few times.
        while (a.control.iterations(0) < 3 * spec.ioEvery) {
          await new Promise((r) => setTimeout(r, 1));
        }
        const saved = decodeVcpuStates(encodeVcpuStates(await a.pause()), spec.vcpus);
        assert.ok(saved.every((v) => !v.done));
        const devices = JSON.parse(JSON.stringify(await a.saveDevices())) as DeviceStates;
        assert.equal(devices.blk.status, 15, "the driver had set the disk up");
        assert.ok(devices.blk.lastAvail > 0, "and read from it");
        assert.equal(devices.uart.scr, 0xa5);
        const page = Buffer.alloc(PAGE_SIZE);
        for (let i = 0; i < a.pages.pages; i++) {
          if (a.pages.copyOut(i, page)) b.pages.install(i, page);
        }
        b.restoreDevices(devices);
        await b.start(saved);
        assert.deepEqual(await b.finished(), expectedChecksums(spec));
      } finally {
        await a.close();
        await b.close();
      }
    },
  );
});

describe("destination RAM preallocated (--prealloc)", () => {
  for (const backing of ["guest_memfd", "shmem", "anonymous"] as const) {
    test(`${backing}: every page is allocated, and what was there stays`, async () => {
      const vm = MigratableVm.incoming({ ...SPEC, backing, pageSize: 2 << 20 });
      try {
        const page = Buffer.alloc(PAGE_SIZE, 0x5a);
        vm.pages.install(7, page);
        const before = vm.host.memory.framesInUse;
        vm.pages.preallocate();
        const pages = vm.pages.pages;
        assert.ok(vm.host.memory.framesInUse - before >= pages - 512, "the rest was allocated");
        for (let i = 0; i < pages; i++) assert.notEqual(vm.pages.pfn(i), 0, `page ${i}`);
        const out = Buffer.alloc(PAGE_SIZE);
        assert.ok(vm.pages.copyOut(7, out));
        assert.deepEqual(out, page);
        assert.ok(vm.pages.copyOut(8, out));
        assert.ok(out.every((b) => b === 0));
      } finally {
        await vm.close();
      }
    });
  }
});

describe("vCPU state as migration carries it", () => {
  test("registers, CSRs, the timer, HSM and steal-time registration survive save, JSON and restore", () => {
    const make = () => {
      const host = Host.create({ ramBytes: 2 ** 30 });
      const kvm = Kvm.open(host);
      const vm = kvm.createVm();
      return kvm.createVcpu(vm, 0);
    };
    const a = make();
    const hart = a.hart;
    hart.pc = 0x8020_1234;
    for (let r = 1; r < 32; r++) hart.setRegister(r, (BigInt(r) << 40n) | 0xdead_beefn);
    hart.sstatus = 0x122;
    hart.sie = 0x222;
    hart.setStvec(0x8020_0101, 0);
    hart.scounteren = 7;
    hart.sepc = 0x8020_0040;
    hart.csrPairs.set([1, 2, 3, 4, 5, 6, 7, 8]);
    hart.timecmp = hart.readTime() + 10_000_000;
    a.shared.setWord(V_HSM_STATE, HSM_STOPPED);
    a.shared.setPair(V_STEAL_ADDR, 0x8040_0000n);
    a.shared.setWord(V_STEAL_ENABLED, 1);
    const saved = saveVcpuState(a);
    const b = make();
    // As the switchover does: the VM's clock once, then each vCPU.
    b.vm.setClock(a.vm.getClock());
    restoreVcpuState(b, vcpuStateFromJson(JSON.parse(JSON.stringify(vcpuStateToJson(saved)))));
    assert.deepEqual(saveVcpuState(b), saved);
    for (const key of [
      "pc",
      "priv",
      "sstatus",
      "sie",
      "stvecBase",
      "stvecMode",
      "scounteren",
      "sepc",
    ] as const) {
      assert.equal(b.hart[key], a.hart[key], key);
    }
    assert.deepEqual(Array.from(b.hart.csrPairs), [1, 2, 3, 4, 5, 6, 7, 8]);
    // The timer fires as far ahead on the destination as it would have on the
    // source. Read against the VM's clock: a hart takes the VM's time at its
    // next KVM_RUN, so its own copy is stale until b runs.
    const ahead = b.hart.timecmp - Number(b.vm.getClock());
    assert.ok(ahead > 9_000_000 && ahead <= 10_000_000, `timer ${ahead} ticks ahead`);
    assert.equal(b.shared.word(V_HSM_STATE), HSM_STOPPED);
    assert.equal(b.shared.pair(V_STEAL_ADDR), 0x8040_0000n);
    assert.equal(b.shared.word(V_STEAL_ENABLED), 1);
  });
});

describe("the guest's stalls as the VM control words measure them", () => {
  const sleep = (ms: number) => {
    const until = performance.timeOrigin + performance.now() + ms;
    while (performance.timeOrigin + performance.now() < until);
  };

  test("the first gap counts from the given last iteration (on a migration's source)", () => {
    const control = VmControl.create();
    const wall = performance.timeOrigin + performance.now();
    control.progressStarted(0, wall - 50);
    control.progress(0, 1);
    assert.ok(control.firstStallMs(0) >= 50);
    assert.equal(control.maxStallMs(0), control.firstStallMs(0));
    assert.ok(control.lastProgressWallMs(0) >= wall);
    sleep(5);
    control.progress(0, 2);
    assert.ok(control.firstStallMs(0) >= 50, "later gaps leave the first one alone");
    assert.equal(control.iterations(0), 2);
  });

  test("an iteration counts in the window it started in", () => {
    const control = VmControl.create();
    control.progressStarted(1);
    sleep(20);
    control.progress(1, 1);
    assert.ok(control.maxStallMs(1) >= 20);
    sleep(10);
    // Closed in the middle of an iteration: its 10+ ms go to the closed window.
    control.closeStallWindow();
    assert.equal(control.maxStallMs(1), 0);
    sleep(10);
    control.progress(1, 2);
    assert.equal(control.maxStallMs(1), 0);
    const closed = control.closedWindowStallMs(1);
    assert.ok(closed >= 20);
    sleep(30);
    control.progress(1, 3);
    assert.ok(control.maxStallMs(1) >= 30);
    assert.equal(control.closedWindowStallMs(1), closed, "a later iteration is the new window's");
  });
});
