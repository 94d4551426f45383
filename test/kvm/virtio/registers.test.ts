import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { EXIT_MMIO } from "../../../src/kvm/uapi.js";
import {
  BLK_F_BLK_SIZE,
  BLK_F_FLUSH,
  BLK_F_SEG_MAX,
  BLK_S_OK,
  BLK_T_IN,
  createVirtioBlk,
  DESC_F_NEXT,
  DESC_F_WRITE,
  F_INDIRECT_DESC,
  MMIO_WINDOW_BYTES,
  QUEUE_NUM_MAX,
  SEG_MAX,
  startBlockDeviceWorker,
  STATUS_DEVICE_NEEDS_RESET,
} from "../../../src/kvm/virtio/index.js";
import { assertErrno } from "../support.js";
import {
  type BlkTestVm,
  BLK_BASE,
  createBlkTestVm,
  diskImage,
  DISK_SECTORS,
  guestStep,
  OP_READ,
  readGuest,
  TsDriver,
  until,
} from "./support.js";

describe("virtio-mmio registers and the in-kernel MMIO bus", () => {
  const vms: BlkTestVm[] = [];
  after(async () => {
    for (const t of vms) await t.worker.stop();
  });
  const start = async () => {
    const t = await createBlkTestVm();
    vms.push(t);
    return { t, d: new TsDriver(t) };
  };

  test("identification, features, queue limits and the configuration space", async () => {
    const { d } = await start();
    assert.equal(d.reg(0x000), 0x74726976, "MagicValue");
    assert.equal(d.reg(0x004), 2, "Version");
    assert.equal(d.reg(0x008), 2, "DeviceID: block");
    assert.equal(d.reg(0x00c), 0x4c544c46, "VendorID");
    d.setReg(0x014, 0);
    const lo = d.reg(0x010);
    assert.equal(
      lo,
      (1 << BLK_F_SEG_MAX) | (1 << BLK_F_BLK_SIZE) | (1 << BLK_F_FLUSH) | (1 << F_INDIRECT_DESC),
    );
    d.setReg(0x014, 1);
    assert.equal(d.reg(0x010), 1, "VIRTIO_F_VERSION_1");
    d.setReg(0x014, 2);
    assert.equal(d.reg(0x010), 0);
    d.setReg(0x030, 0);
    assert.equal(d.reg(0x034), QUEUE_NUM_MAX);
    d.setReg(0x030, 1);
    assert.equal(d.reg(0x034), 0, "there is one queue");
    assert.equal(d.reg(0x0b0), 0xffff_ffff, "no shared memory region: length -1");
    assert.equal(d.reg(0x000, 2), 0, "control registers are 32-bit only");
    // struct virtio_blk_config, with 1-, 2- and 4-byte reads.
    assert.equal(d.reg(0x100), DISK_SECTORS);
    assert.equal(d.reg(0x104), 0);
    assert.equal(d.reg(0x10c), SEG_MAX);
    assert.equal(d.reg(0x114), 512);
    assert.equal(d.reg(0x114, 2), 512);
    assert.equal(d.reg(0x115, 1), 2);
    assert.equal(d.reg(0x100, 1), DISK_SECTORS);
    assert.equal(d.reg(0x0fc), 0, "ConfigGeneration");
  });

  test("the status state machine: FEATURES_OK only for acceptable features, DRIVER_OK only after it", async () => {
    const { d } = await start();
    const negotiate = (lo: number, hi: number) => {
      d.setReg(0x70, 0);
      d.setReg(0x70, 1);
      d.setReg(0x70, 3);
      d.setReg(0x24, 0);
      d.setReg(0x20, lo);
      d.setReg(0x24, 1);
      d.setReg(0x20, hi);
      d.setReg(0x70, 11);
      return d.reg(0x70);
    };
    assert.equal(negotiate(1 << BLK_F_FLUSH, 0), 3, "no VERSION_1: FEATURES_OK refused");
    assert.equal(negotiate(1 << 1, 1), 3, "SIZE_MAX was not offered");
    assert.equal(negotiate(1 << BLK_F_FLUSH, 1 | 2), 3, "nor bit 33");
    d.setReg(0x70, 7);
    assert.equal(d.reg(0x70), 3, "DRIVER_OK without FEATURES_OK is refused");
    assert.equal(negotiate(1 << BLK_F_FLUSH, 1), 11);
    d.setReg(0x70, 1);
    assert.equal(d.reg(0x70), 11, "bits are not cleared but by a reset");
    d.setReg(0x70, 11 | STATUS_DEVICE_NEEDS_RESET);
    assert.equal(d.reg(0x70), 11, "DEVICE_NEEDS_RESET is the device's to set");
    d.setReg(0x70, 0);
    assert.equal(d.reg(0x70), 0, "reset");
  });

  test("QueueReady holds only for a power-of-two size within QueueNumMax and aligned areas", async () => {
    const { d } = await start();
    d.init();
    d.setReg(0x70, 0);
    d.setReg(0x70, 3);
    d.setReg(0x24, 1);
    d.setReg(0x20, 1);
    d.setReg(0x70, 11);
    d.setReg(0x30, 0);
    d.setReg(0x80, d.desc);
    d.setReg(0x90, d.avail);
    d.setReg(0xa0, d.used);
    for (const num of [0, 6, 512]) {
      d.setReg(0x38, num);
      d.setReg(0x44, 1);
      assert.equal(d.reg(0x44), 0, `QueueNum ${num}`);
    }
    d.setReg(0x38, 8);
    d.setReg(0x80, d.desc + 8);
    d.setReg(0x44, 1);
    assert.equal(d.reg(0x44), 0, "descriptor table not 16-byte aligned");
    d.setReg(0x80, d.desc);
    d.setReg(0x44, 1);
    assert.equal(d.reg(0x44), 1);
    d.setReg(0x30, 1);
    assert.equal(d.reg(0x44), 0, "queue 1 does not exist");
  });

  test("a reset clears the queue and the interrupt; the driver starts again from index 0", async () => {
    const { t, d } = await start();
    d.init();
    const buf = t.at("buf0");
    const status = t.at("status");
    for (let round = 0; round < 2; round++) {
      d.writeHeader(t.at("req"), BLK_T_IN, 0);
      d.writeDesc(0, t.at("req"), 16, DESC_F_NEXT, 1);
      d.writeDesc(1, buf, 512, DESC_F_NEXT | DESC_F_WRITE, 2);
      d.writeDesc(2, status, 1, DESC_F_WRITE);
      d.publish(0);
      assert.deepEqual(await d.nextUsedElement(), { id: 0, len: 513 });
      assert.equal(readGuest(t.vm, status, 1)[0], BLK_S_OK);
      // The device publishes the used element first, then notifies.
      assert.ok(await until(() => d.reg(0x60) === 1), "used buffer notification pending");
      // InterruptStatus is set first and the line raised just after, both under the
      // device's lock, which this thread does not take: wait for the line too.
      assert.ok(await until(() => t.vm.ioBus.lines !== 0), "and the line raised");
      d.setReg(0x70, 0);
      // The worker may still be finishing its batch: then the old status reads
      // back until it completes the reset, and a driver waits for 0 (2.4.2).
      assert.ok(await until(() => d.reg(0x70) === 0), "the reset completes");
      assert.equal(d.reg(0x60), 0, "the reset cleared InterruptStatus");
      assert.equal(t.vm.ioBus.lines, 0, "and lowered the line");
      d.setReg(0x30, 0);
      assert.equal(d.reg(0x44), 0, "and QueueReady");
      assert.equal(d.init() & 15, 15);
    }
    assert.deepEqual(readGuest(t.vm, buf, 512), diskImage().subarray(0, 512));
  });

  test("the bus: overlapping registrations, addresses without a device, a disk reference that outlives its fd", async () => {
    const { t } = await start();
    const disk = t.host.memfdCreate("disk2", 4096);
    t.host.memfds.pwrite(disk, new Uint8Array(4096).fill(0xab), 0);
    assertErrno(
      () => createVirtioBlk(t.vm, { gpa: BLK_BASE + MMIO_WINDOW_BYTES - 4, memfd: disk }),
      "EEXIST",
    );
    assertErrno(() => createVirtioBlk(t.vm, { gpa: BLK_BASE + 0x1000, memfd: 999 }), "EBADF");
    assertErrno(() => t.vm.ioBus.read(BLK_BASE + 0x1000, 4), "ENODEV");
    const second = createVirtioBlk(t.vm, { gpa: BLK_BASE + 0x1000, memfd: disk });
    t.host.close(disk); // the device keeps the memfd
    assert.equal(t.vm.ioBus.read(BLK_BASE + 0x1000, 4), 0x74726976);
    assert.equal(t.vm.ioBus.read(BLK_BASE + 0x1100, 4), 8, "capacity of the second disk");
    const worker = startBlockDeviceWorker(t.kvm, t.vm, second);
    assertErrno(() => startBlockDeviceWorker(t.kvm, t.vm, second), "EBUSY");
    await worker.online;
    assertErrno(() => second.destroy(), "EBUSY");
    // Serve one request from the second disk through a driver at its address.
    const d = new TsDriver(t, 8, BLK_BASE + 0x1000);
    d.init();
    const buf = t.at("buf1");
    d.writeHeader(t.at("req"), BLK_T_IN, 7);
    d.writeDesc(0, t.at("req"), 16, DESC_F_NEXT, 1);
    d.writeDesc(1, buf, 512, DESC_F_NEXT | DESC_F_WRITE, 2);
    d.writeDesc(2, t.at("status"), 1, DESC_F_WRITE);
    d.publish(0);
    assert.deepEqual(await d.nextUsedElement(), { id: 0, len: 513 });
    assert.deepEqual(readGuest(t.vm, buf, 512), new Uint8Array(512).fill(0xab));
    await worker.stop();
    second.destroy();
    assertErrno(() => t.vm.ioBus.read(BLK_BASE + 0x1000, 4), "ENODEV");
  });

  test("a vCPU access to a device is emulated in the hypervisor; any other MMIO still exits", async () => {
    const { t } = await start();
    assert.equal(guestStep(t, OP_READ, BLK_BASE)[0], 0x74726976n, "no exit for the device");
    // The UART is the VMM's: the load exits with EXIT_MMIO.
    const cmd = new Uint8Array(16);
    new DataView(cmd.buffer).setBigUint64(0, BigInt(OP_READ), true);
    new DataView(cmd.buffer).setBigUint64(8, 0x1000_0000n, true);
    t.vm.accessGuest(t.at("cmd"), cmd, true, true);
    t.vcpu.runGuest();
    assert.equal(t.vcpu.run.exitReason, EXIT_MMIO);
    assert.equal(t.vcpu.run.mmio.physAddr, 0x1000_0000);
    assert.equal(t.vcpu.run.mmio.isWrite, false);
    t.vcpu.run.mmio.value = 0x60n;
    t.vcpu.runGuest();
    assert.equal(t.vcpu.run.riscvSbi.args[0], 0x60n, "the VMM's answer reached the guest");
  });
});
