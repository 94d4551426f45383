import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import {
  BLK_S_OK,
  BLK_T_IN,
  DESC_F_NEXT,
  DESC_F_WRITE,
  restoreVirtioBlkState,
  saveVirtioBlkState,
  type VirtioBlkSavedState,
} from "../../../src/kvm/virtio/index.js";
import { RAM_BASE } from "../../../src/vmm/guest-ram.js";
import { assertErrno } from "../support.js";
import {
  type BlkTestVm,
  createBlkTestVm,
  diskImage,
  PAGE_SIZE,
  readGuest,
  TsDriver,
  until,
  waitForSeip,
  writeGuest,
} from "./support.js";

/** Where the requests' header, data and status go in guest RAM (the test VMs have 16 MiB). */
const HEADER = RAM_BASE + (8 << 20);
const DATA = HEADER + PAGE_SIZE;
const STATUS = DATA + PAGE_SIZE;

/** A read of one page at `sector` as descriptors 0-2 (header, data, status). */
function prepareRead(d: TsDriver, sector: number): void {
  d.writeHeader(HEADER, BLK_T_IN, sector);
  d.writeDesc(0, HEADER, 16, DESC_F_NEXT, 1);
  d.writeDesc(1, DATA, PAGE_SIZE, DESC_F_WRITE | DESC_F_NEXT, 2);
  d.writeDesc(2, STATUS, 1, DESC_F_WRITE);
  writeGuest(d.t.vm, STATUS, new Uint8Array([0xff]));
}

/** Copy the driver's rings and the request's buffers: what migration does for guest RAM. */
function copyDriverMemory(from: BlkTestVm, to: BlkTestVm, d: TsDriver): void {
  for (const at of [d.desc, d.avail, d.used, HEADER, DATA, STATUS]) {
    const page = at - (at % PAGE_SIZE);
    writeGuest(to.vm, page, readGuest(from.vm, page, PAGE_SIZE));
  }
}

describe("virtio-blk device state (saveVirtioBlkState, restoreVirtioBlkState)", () => {
  const vms: BlkTestVm[] = [];
  after(async () => {
    for (const t of vms) await t.worker.stop();
  });
  const start = async (sectors?: number) => {
    const t = await createBlkTestVm({ sectors });
    vms.push(t);
    return t;
  };

  test(
    "saving needs a quiescent device: EBUSY while its worker serves it, not once the worker " +
      "is paused; resumed, it serves what was made available meanwhile",
    async () => {
      const t = await start();
      const d = new TsDriver(t);
      d.init();
      d.setAvailFlags(1);
      assertErrno(() => saveVirtioBlkState(t.device), "EBUSY");
      await t.worker.pause();
      prepareRead(d, 8);
      d.publish(0);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const saved = saveVirtioBlkState(t.device);
      assert.equal(saved.status, 15);
      assert.equal(saved.lastAvail, 0, "a paused worker took nothing");
      assert.equal(t.device.stats.requests, 0);
      t.worker.resume();
      assert.deepEqual(await d.nextUsedElement(), { id: 0, len: PAGE_SIZE + 1 });
      assertErrno(() => saveVirtioBlkState(t.device), "EBUSY");
      await t.worker.stop();
      assert.equal(saveVirtioBlkState(t.device).lastAvail, 1, "stopped, it can be read too");
    },
  );

  test(
    "the state moves to another VM's device: the driver's setup, the ring positions, and a " +
      "request made available before the save is served after the restore",
    { timeout: 20_000 },
    async () => {
      const a = await start();
      const d = new TsDriver(a);
      assert.equal(d.init(), 15);
      d.setAvailFlags(1); // no used-buffer interrupts
      prepareRead(d, 8);
      d.publish(0);
      assert.deepEqual(await d.nextUsedElement(), { id: 0, len: PAGE_SIZE + 1 });
      // Stopped (as a migration stops it), then one more request comes.
      await a.worker.stop();
      prepareRead(d, 16);
      d.publish(0);
      const saved = JSON.parse(JSON.stringify(saveVirtioBlkState(a.device))) as VirtioBlkSavedState;
      assert.equal(saved.lastAvail, 1, "the device took one request");
      assert.equal(saved.usedIdx, 1);

      const b = await start();
      copyDriverMemory(a, b, d);
      restoreVirtioBlkState(b.device, saved);
      assert.equal(new TsDriver(b).reg(0x070), 15, "Status reads back");
      // The request the source's device never took is served here, into the next used slot.
      const used = () => new DataView(readGuest(b.vm, d.used, 4).buffer).getUint16(2, true);
      assert.ok(await until(() => used() === 2), "the pending request was not served");
      assert.equal(readGuest(b.vm, STATUS, 1)[0], BLK_S_OK);
      const disk = diskImage();
      assert.deepEqual(
        readGuest(b.vm, DATA, PAGE_SIZE),
        disk.subarray(16 * 512, 16 * 512 + PAGE_SIZE),
      );
      assert.equal(b.device.stats.requests, 1, "one request here, none served twice");
      await b.worker.stop();
      assert.deepEqual(saveVirtioBlkState(b.device), { ...saved, lastAvail: 2, usedIdx: 2 });
    },
  );

  test("a pending interrupt moves with the state and raises the line there", async () => {
    const a = await start();
    const d = new TsDriver(a);
    d.init();
    prepareRead(d, 0);
    d.publish(0);
    await d.nextUsedElement();
    // The device publishes the used element, then notifies: a driver waits for the interrupt.
    assert.ok(await until(() => d.reg(0x060) === 1), "InterruptStatus: used buffer");
    await a.worker.stop();
    const saved = saveVirtioBlkState(a.device);
    const b = await start();
    copyDriverMemory(a, b, d);
    restoreVirtioBlkState(b.device, saved);
    assert.equal(new TsDriver(b).reg(0x060), 1);
    assert.ok(await waitForSeip(b.vm), "SEIP pending on hart 0");
  });

  test("a restore is refused, and changes nothing, for a device in use, another disk, or malformed state", async () => {
    const a = await start();
    const d = new TsDriver(a);
    d.init();
    await a.worker.stop();
    const saved = saveVirtioBlkState(a.device);

    // A device a driver has set up already.
    const busy = await start();
    new TsDriver(busy).init();
    assertErrno(() => restoreVirtioBlkState(busy.device, saved), "EBUSY");

    const fresh = await start();
    const registers = () => {
      const e = new TsDriver(fresh);
      return [0x070, 0x038, 0x044, 0x080].map((offset) => e.reg(offset));
    };
    const before = registers();
    const bad: [string, unknown][] = [
      ["another capacity", { ...saved, capacitySectors: saved.capacitySectors * 2 }],
      ["other device features", { ...saved, deviceFeatures: [0, 1] }],
      ["a ring index beyond 16 bits", { ...saved, lastAvail: 0x1_0000 }],
      ["a ready queue of 3 entries", { ...saved, queueNum: 3 }],
      ["a misaligned descriptor table", { ...saved, queueDesc: saved.queueDesc + 8 }],
      ["DRIVER_OK without FEATURES_OK", { ...saved, status: 7 }],
      ["a missing field", { ...saved, queueNum: undefined }],
      ["an address that is not a number", { ...saved, queueDesc: "0x80000000" }],
      ["not an object", null],
    ];
    for (const [what, state] of bad) {
      assert.throws(
        () => restoreVirtioBlkState(fresh.device, state as VirtioBlkSavedState),
        (error: { errno?: string }) => error.errno === "EINVAL",
        what,
      );
      assert.deepEqual(registers(), before, what);
    }

    // A disk of another size is another disk.
    const small = await start(32);
    assertErrno(() => restoreVirtioBlkState(small.device, saved), "EINVAL");
  });
});
