import assert from "node:assert/strict";
import { test } from "node:test";
import { registerIoDeviceType } from "../../src/kvm/io-bus.js";
import { EXIT_INTERNAL_ERROR, EXIT_MMIO, INTERNAL_ERROR_EMULATION } from "../../src/kvm/uapi.js";
import { createTestVm, runGuest } from "./support.js";

/** An in-kernel device type of this test only, whose emulation fails. */
const IO_DEVICE_BROKEN = 0x7e57;
const BROKEN_BASE = 0x2000_0000;

registerIoDeviceType(IO_DEVICE_BROKEN, "broken", () => ({
  read(): number {
    throw new TypeError("the broken device cannot be read");
  },
  write(): void {},
}));

const GUEST = `
_start: li      t0, ${BROKEN_BASE}
        sw      zero, 0(t0)
load:   lw      a0, 0(t0)
1:      j       1b
`;

test("a device emulation that fails inside the hypervisor exits with INTERNAL_ERROR, and run() does not throw", () => {
  const t = createTestVm(GUEST);
  t.vm.ioBus.register({ gpa: BROKEN_BASE, length: 0x1000, type: IO_DEVICE_BROKEN, state: 0 });
  runGuest(t.vcpu);
  assert.equal(t.vcpu.run.exitReason, EXIT_INTERNAL_ERROR);
  assert.equal(t.vcpu.run.internal.suberror, INTERNAL_ERROR_EMULATION);
  assert.match(t.vcpu.run.internal.message, /the broken device cannot be read/);
  // The store before it completed; the failed load did not retire.
  assert.equal(t.vcpu.hart.pc, Number(t.symbols.get("load")));
});

test("after the device goes away the same access is an ordinary MMIO exit", () => {
  const t = createTestVm(GUEST);
  t.vm.ioBus.register({ gpa: BROKEN_BASE, length: 0x1000, type: IO_DEVICE_BROKEN, state: 0 });
  runGuest(t.vcpu);
  assert.equal(t.vcpu.run.exitReason, EXIT_INTERNAL_ERROR);
  t.vm.ioBus.unregister(BROKEN_BASE);
  runGuest(t.vcpu);
  assert.equal(t.vcpu.run.exitReason, EXIT_MMIO);
  assert.equal(t.vcpu.run.mmio.physAddr, BROKEN_BASE);
  assert.equal(t.vcpu.run.mmio.isWrite, false);
});
