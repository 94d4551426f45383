import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { PAGE_SIZE } from "../../../src/host/host-memory.js";
import {
  CAP_USERFAULT,
  MEMORY_ATTRIBUTE_USERFAULT,
  USERFAULT_ENABLE,
} from "../../../src/kvm/uapi.js";
import {
  AVAIL_F_NO_INTERRUPT,
  BLK_S_OK,
  BLK_T_IN,
  BLK_T_OUT,
  DESC_F_INDIRECT,
  DESC_F_NEXT,
  DESC_F_WRITE,
  F_INDIRECT_DESC,
  INTERRUPT_CONFIG_CHANGE,
  INTERRUPT_USED_BUFFER,
  startBlockDeviceWorker,
  STATUS_DEVICE_NEEDS_RESET,
} from "../../../src/kvm/virtio/index.js";
import { MIP_SEIP } from "../../../src/riscv/cpu/constants.js";
import { CTRL_IRQ_PENDING } from "../../../src/riscv/cpu/hart-control.js";
import { assertErrno } from "../support.js";
import {
  type BlkTestVm,
  createBlkTestVm,
  diskImage,
  readGuest,
  TsDriver,
  until,
  writeGuest,
} from "./support.js";

describe("the virtio-blk request queue", () => {
  const vms: BlkTestVm[] = [];
  after(async () => {
    for (const t of vms) await t.worker.stop();
  });
  const start = async () => {
    const t = await createBlkTestVm();
    vms.push(t);
    const d = new TsDriver(t);
    d.init();
    return { t, d, req: t.at("req"), status: t.at("status"), buf0: t.at("buf0") };
  };
  const image = diskImage();

  test("any framing: a split header and data in pieces, one crossing a page", async () => {
    const { t, d, req, status, buf0 } = await start();
    d.writeHeader(req, BLK_T_IN, 2);
    d.writeDesc(0, req, 10, DESC_F_NEXT, 3); // the header in two pieces
    d.writeDesc(3, req + 10, 6, DESC_F_NEXT, 5);
    d.writeDesc(5, buf0 + 4000, 200, DESC_F_NEXT | DESC_F_WRITE, 1);
    d.writeDesc(1, buf0 + 6000, 0, DESC_F_NEXT | DESC_F_WRITE, 2); // empty: skipped
    d.writeDesc(2, buf0 + 8000, 824, DESC_F_NEXT | DESC_F_WRITE, 4);
    d.writeDesc(4, status, 1, DESC_F_WRITE);
    d.publish(0);
    assert.deepEqual(await d.nextUsedElement(), { id: 0, len: 1025 });
    assert.equal(readGuest(t.vm, status, 1)[0], BLK_S_OK);
    const expected = image.subarray(1024, 2048);
    assert.deepEqual(readGuest(t.vm, buf0 + 4000, 200), expected.subarray(0, 200));
    assert.deepEqual(readGuest(t.vm, buf0 + 8000, 824), expected.subarray(200));
    // The status byte may share a descriptor with data: the last writable byte.
    d.writeHeader(req, BLK_T_IN, 3);
    d.writeDesc(0, req, 16, DESC_F_NEXT, 1);
    d.writeDesc(1, buf0, 513, DESC_F_WRITE);
    d.publish(0);
    assert.deepEqual(await d.nextUsedElement(), { id: 0, len: 513 });
    assert.deepEqual(readGuest(t.vm, buf0, 512), image.subarray(3 * 512, 4 * 512));
    assert.equal(readGuest(t.vm, buf0 + 512, 1)[0], BLK_S_OK);
  });

  test("indirect descriptors, and several requests in flight completed in order", async () => {
    const { t, d, req, status, buf0 } = await start();
    const table = buf0 + 4096;
    d.writeHeader(req, BLK_T_IN, 5);
    d.writeDesc(0, req, 16, DESC_F_NEXT, 1, table);
    d.writeDesc(1, buf0, 1024, DESC_F_NEXT | DESC_F_WRITE, 2, table);
    d.writeDesc(2, status, 1, DESC_F_WRITE, 0, table);
    d.writeDesc(6, table, 48, DESC_F_INDIRECT);
    // A second request, direct, at head 0; both published before one notify.
    d.writeHeader(req + 32, BLK_T_IN, 9);
    d.writeDesc(0, req + 32, 16, DESC_F_NEXT, 1);
    d.writeDesc(1, buf0 + 2048, 512, DESC_F_NEXT | DESC_F_WRITE, 2);
    d.writeDesc(2, status + 1, 1, DESC_F_WRITE);
    d.publish(6);
    d.publish(0);
    assert.deepEqual(await d.nextUsedElement(), { id: 6, len: 1025 });
    assert.deepEqual(await d.nextUsedElement(), { id: 0, len: 513 });
    assert.deepEqual(readGuest(t.vm, status, 2), new Uint8Array([BLK_S_OK, BLK_S_OK]));
    assert.deepEqual(readGuest(t.vm, buf0, 1024), image.subarray(5 * 512, 7 * 512));
    assert.deepEqual(readGuest(t.vm, buf0 + 2048, 512), image.subarray(9 * 512, 10 * 512));
  });

  test("the interrupt: SEIP on hart 0 while InterruptStatus has bits, none with NO_INTERRUPT", async () => {
    const { t, d, req, status, buf0 } = await start();
    const control = t.vm.vcpuList()[0].control;
    const seip = () => (Atomics.load(control, CTRL_IRQ_PENDING) & MIP_SEIP) !== 0;
    const request = () => {
      d.writeHeader(req, BLK_T_OUT, 1);
      d.writeDesc(0, req, 16, DESC_F_NEXT, 1);
      d.writeDesc(1, buf0, 512, DESC_F_NEXT, 2);
      d.writeDesc(2, status, 1, DESC_F_WRITE);
      d.publish(0);
    };
    assert.equal(seip(), false);
    request();
    await d.nextUsedElement();
    assert.ok(await until(seip), "SEIP raised");
    assert.equal(d.acknowledge(), INTERRUPT_USED_BUFFER);
    assert.equal(seip(), false, "lowered once every bit is acknowledged");
    d.setAvailFlags(AVAIL_F_NO_INTERRUPT);
    request();
    await d.nextUsedElement();
    assert.equal(d.reg(0x60), 0, "the driver asked for no interrupt");
    assert.equal(seip(), false);
  });

  const malformed: [string, RegExp, (s: Awaited<ReturnType<typeof start>>) => number][] = [
    [
      "a loop",
      /loops/,
      ({ d, req }) => {
        d.writeHeader(req, BLK_T_IN, 0);
        d.writeDesc(0, req, 16, DESC_F_NEXT, 1);
        d.writeDesc(1, req, 16, DESC_F_NEXT, 0);
        return 0;
      },
    ],
    [
      "a next index beyond the queue",
      /beyond its table/,
      ({ d, req }) => {
        d.writeDesc(0, req, 16, DESC_F_NEXT, 8);
        return 0;
      },
    ],
    [
      "a readable buffer after a writable one",
      /readable buffer after a writable/,
      ({ d, req, status }) => {
        d.writeDesc(0, status, 1, DESC_F_NEXT | DESC_F_WRITE, 1);
        d.writeDesc(1, req, 16, 0);
        return 0;
      },
    ],
    [
      "no status byte",
      /without a status byte/,
      ({ d, req }) => {
        d.writeDesc(0, req, 16, 0);
        return 0;
      },
    ],
    [
      "a short header",
      /header of 8 bytes/,
      ({ d, req, status }) => {
        d.writeDesc(0, req, 8, DESC_F_NEXT, 1);
        d.writeDesc(1, status, 1, DESC_F_WRITE);
        return 0;
      },
    ],
    [
      "a buffer outside guest RAM",
      /outside guest RAM/,
      ({ d, req, status }) => {
        d.writeHeader(req, BLK_T_IN, 0);
        d.writeDesc(0, req, 16, DESC_F_NEXT, 1);
        d.writeDesc(1, 0x4000_0000, 512, DESC_F_NEXT | DESC_F_WRITE, 2);
        d.writeDesc(2, status, 1, DESC_F_WRITE);
        return 0;
      },
    ],
    [
      "INDIRECT with NEXT",
      /INDIRECT descriptor with NEXT/,
      ({ d, buf0 }) => {
        d.writeDesc(0, buf0, 48, DESC_F_INDIRECT | DESC_F_NEXT, 1);
        return 0;
      },
    ],
    ["a head beyond the queue", /descriptor 9 beyond its table of 8/, () => 9],
  ];
  for (const [what, reason, build] of malformed) {
    test(`a malformed chain (${what}) puts the device in DEVICE_NEEDS_RESET; a reset recovers it`, async () => {
      const s = await start();
      const { t, d, req, status, buf0 } = s;
      d.publish(build(s));
      assert.ok(await until(() => (d.reg(0x70) & STATUS_DEVICE_NEEDS_RESET) !== 0));
      assert.ok(await until(() => t.worker.lastQueueError !== null), "the worker reports why");
      assert.match(t.worker.lastQueueError ?? "", reason);
      assert.equal(d.reg(0x60), INTERRUPT_CONFIG_CHANGE, "configuration change notification");
      assert.equal(t.device.stats.requests, 0, "nothing completed");
      // The worker survived: after a reset, the queue works again.
      assert.equal(d.init(), 15);
      d.writeHeader(req, BLK_T_IN, 0);
      d.writeDesc(0, req, 16, DESC_F_NEXT, 1);
      d.writeDesc(1, buf0, 512, DESC_F_NEXT | DESC_F_WRITE, 2);
      d.writeDesc(2, status, 1, DESC_F_WRITE);
      d.publish(0);
      assert.deepEqual(await d.nextUsedElement(), { id: 0, len: 513 });
      assert.deepEqual(readGuest(t.vm, buf0, 512), image.subarray(0, 512));
    });
  }

  test("INDIRECT is malformed when not negotiated; the available index may not jump past the queue", async () => {
    const { t, d, req, status, buf0 } = await start();
    d.init(~(1 << F_INDIRECT_DESC));
    d.writeDesc(0, req, 16, DESC_F_NEXT, 1, buf0);
    d.writeDesc(1, status, 1, DESC_F_WRITE, 0, buf0);
    d.writeDesc(0, buf0, 32, DESC_F_INDIRECT);
    d.publish(0);
    assert.ok(await until(() => (d.reg(0x70) & STATUS_DEVICE_NEEDS_RESET) !== 0));
    assert.ok(await until(() => t.worker.lastQueueError !== null));
    assert.match(t.worker.lastQueueError ?? "", /without the feature/);
    t.worker.lastQueueError = null;
    d.init();
    writeGuest(t.vm, d.avail + 2, new Uint8Array([9, 0]));
    d.setReg(0x50, 0);
    assert.ok(await until(() => t.worker.lastQueueError !== null));
    assert.ok(d.reg(0x70) & STATUS_DEVICE_NEEDS_RESET);
    assert.match(t.worker.lastQueueError ?? "", /moved 9 entries in a queue of 8/);
  });

  test("a reset while the worker waits on a userfault completes once the worker is done", async () => {
    const { t, d, req, status, buf0 } = await start();
    const efd = t.host.eventfd();
    t.vm.enableCap({ cap: CAP_USERFAULT, flags: 0, args: [USERFAULT_ENABLE, efd] });
    t.vm.setMemoryAttributesDelta({
      address: buf0,
      size: PAGE_SIZE,
      set: MEMORY_ATTRIBUTE_USERFAULT,
      clear: 0,
    });
    d.writeHeader(req, BLK_T_IN, 0);
    d.writeDesc(0, req, 16, DESC_F_NEXT, 1);
    d.writeDesc(1, buf0, 512, DESC_F_NEXT | DESC_F_WRITE, 2);
    d.writeDesc(2, status, 1, DESC_F_WRITE);
    d.publish(0);
    await t.host.eventfds.readAsync(efd);
    assert.equal(t.vm.readUserfault().gpa, buf0);
    d.setReg(0x70, 0);
    assert.equal(d.reg(0x70), 15, "the old status reads back until the worker is done");
    d.setReg(0x70, 1);
    assert.equal(d.reg(0x70), 15, "writes wait for the reset");
    t.vm.setMemoryAttributesDelta({
      address: buf0,
      size: PAGE_SIZE,
      set: 0,
      clear: MEMORY_ATTRIBUTE_USERFAULT,
    });
    assert.ok(await until(() => d.reg(0x70) === 0), "the reset completed");
    assert.equal(d.reg(0x60), 0, "no interrupt for a device being reset");
    assert.equal(d.init(), 15);
  });

  test("a worker can be stopped and another started; the queue goes on where it was", async () => {
    const { t, d, req, status, buf0 } = await start();
    const one = (sector: number) => {
      d.writeHeader(req, BLK_T_IN, sector);
      d.writeDesc(0, req, 16, DESC_F_NEXT, 1);
      d.writeDesc(1, buf0, 512, DESC_F_NEXT | DESC_F_WRITE, 2);
      d.writeDesc(2, status, 1, DESC_F_WRITE);
      d.publish(0);
    };
    for (let i = 0; i < 10; i++) {
      one(i);
      assert.deepEqual(await d.nextUsedElement(), { id: 0, len: 513 });
    }
    await t.worker.stop();
    one(11); // queued while no worker serves the device
    const worker = startBlockDeviceWorker(t.kvm, t.vm, t.device);
    assertErrno(() => startBlockDeviceWorker(t.kvm, t.vm, t.device), "EBUSY");
    t.worker = worker;
    assert.deepEqual(await d.nextUsedElement(), { id: 0, len: 513 });
    assert.deepEqual(readGuest(t.vm, buf0, 512), image.subarray(11 * 512, 12 * 512));
    assert.equal(t.device.stats.requests, 11);
  });
});
