import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import {
  BLK_F_BLK_SIZE,
  BLK_F_FLUSH,
  BLK_F_RO,
  BLK_F_SEG_MAX,
  BLK_S_IOERR,
  BLK_S_OK,
  BLK_S_UNSUPP,
  BLK_T_FLUSH,
  BLK_T_GET_ID,
  BLK_T_IN,
  BLK_T_OUT,
  DESC_F_WRITE,
  STATUS_ACKNOWLEDGE,
  STATUS_DRIVER,
  STATUS_DRIVER_OK,
  STATUS_FEATURES_OK,
  INTERRUPT_CONFIG_CHANGE,
  STATUS_DEVICE_NEEDS_RESET,
} from "../../../src/kvm/virtio/index.js";
import { MIP_SEIP } from "../../../src/riscv/cpu/constants.js";
import {
  type BlkTestVm,
  checksum,
  createBlkTestVm,
  diskImage,
  DISK_SECTORS,
  fillPattern,
  guestRequest,
  guestStep,
  OP_CHECKSUM,
  OP_FILL,
  OP_INIT,
  OP_PREPARE,
  OP_PUBLISH,
  OP_READ,
  OP_WAIT_IRQ,
  BLK_BASE,
  QSIZE,
  OP_WRITE_REG,
  readGuest,
} from "./support.js";

const RUNNING = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK;
const ALL_FEATURES = 0xffff_ffff;

describe("virtio-blk with a guest driver in RISC-V assembly", () => {
  const vms: BlkTestVm[] = [];
  after(async () => {
    for (const t of vms) await t.worker.stop();
  });
  const start = async (options: { readOnly?: boolean } = {}) => {
    const t = await createBlkTestVm(options);
    vms.push(t);
    return t;
  };

  test("negotiates, writes a page, reads it back, and reads the prepared image", async () => {
    const t = await start();
    const [status] = guestStep(t, OP_INIT, ALL_FEATURES);
    assert.equal(Number(status), RUNNING, "FEATURES_OK and DRIVER_OK hold");
    const buf0 = t.at("buf0");
    const buf1 = t.at("buf1");

    // Write one page at sector 8 from a pattern the guest makes.
    const pattern = fillPattern(4096, 0x1234n);
    guestStep(t, OP_FILL, buf0, 4096, 0x1234);
    assert.deepEqual(guestRequest(t, BLK_T_OUT, 8, buf0, 4096, 0), [BLK_S_OK, 1]);
    assert.deepEqual(t.host.memfds.pread(t.disk, 4096, 8 * 512), pattern, "the disk holds it");

    // Read it back into another buffer; the guest's checksum matches.
    assert.deepEqual(guestRequest(t, BLK_T_IN, 8, buf1, 4096, DESC_F_WRITE), [BLK_S_OK, 4097]);
    assert.equal(guestStep(t, OP_CHECKSUM, buf1, 4096)[0], checksum(pattern));

    // The prepared image: the first page, then three sectors (away from the
    // page written above) that cross a disk page and land across a guest page.
    const image = diskImage();
    assert.deepEqual(guestRequest(t, BLK_T_IN, 0, buf1, 4096, DESC_F_WRITE), [BLK_S_OK, 4097]);
    assert.equal(guestStep(t, OP_CHECKSUM, buf1, 4096)[0], checksum(image.subarray(0, 4096)));
    const crossing = buf0 + 4096 - 512;
    assert.deepEqual(guestRequest(t, BLK_T_IN, 23, crossing, 1536, DESC_F_WRITE), [BLK_S_OK, 1537]);
    assert.equal(
      guestStep(t, OP_CHECKSUM, crossing, 1536)[0],
      checksum(image.subarray(23 * 512, 26 * 512)),
    );
    // The last sectors of the disk.
    const last = (DISK_SECTORS - 2) * 512;
    assert.deepEqual(guestRequest(t, BLK_T_IN, DISK_SECTORS - 2, buf1, 1024, DESC_F_WRITE), [
      BLK_S_OK,
      1025,
    ]);
    assert.equal(guestStep(t, OP_CHECKSUM, buf1, 1024)[0], checksum(image.subarray(last)));
    assert.deepEqual(t.device.stats, { requests: 5, ioErrors: 0 });
  });

  test("the configuration space and features as the guest reads them", async () => {
    const t = await start();
    guestStep(t, OP_INIT, 0);
    const config = 0x1000_1000 + 0x100;
    const read = (addr: number) => Number(guestStep(t, OP_READ, addr)[0]) >>> 0;
    assert.equal(read(config), DISK_SECTORS, "capacity, low word");
    assert.equal(read(config + 4), 0, "capacity, high word");
    assert.equal(read(config + 0x14), 512, "blk_size");
    guestStep(t, OP_WRITE_REG, 0x14, 0); // DeviceFeaturesSel: the low word
    const features = read(0x1000_1000 + 0x10);
    for (const bit of [BLK_F_SEG_MAX, BLK_F_BLK_SIZE, BLK_F_FLUSH]) {
      assert.ok(features & (1 << bit), `feature ${bit} offered`);
    }
    assert.equal(features & (1 << BLK_F_RO), 0, "a writable disk does not offer RO");
  });

  test("GET_ID and FLUSH", async () => {
    const t = await start();
    guestStep(t, OP_INIT, ALL_FEATURES);
    const buf = t.at("buf0");
    assert.deepEqual(guestRequest(t, BLK_T_GET_ID, 0, buf, 20, DESC_F_WRITE), [BLK_S_OK, 21]);
    assert.equal(
      new TextDecoder().decode(readGuest(t.vm, buf, 20)),
      "faultline-test-disk\0",
      "the serial, NUL-padded to 20 bytes",
    );
    assert.deepEqual(guestRequest(t, BLK_T_FLUSH, 0, 0, 0, 0), [BLK_S_OK, 1]);
  });

  test("requests beyond the capacity fail with IOERR, unknown types with UNSUPP", async () => {
    const t = await start();
    guestStep(t, OP_INIT, ALL_FEATURES);
    const buf = t.at("buf0");
    const before = checksum(t.host.memfds.pread(t.disk, DISK_SECTORS * 512, 0));
    assert.equal(
      guestRequest(t, BLK_T_IN, DISK_SECTORS - 1, buf, 1024, DESC_F_WRITE)[0],
      BLK_S_IOERR,
    );
    assert.equal(guestRequest(t, BLK_T_OUT, DISK_SECTORS, buf, 512, 0)[0], BLK_S_IOERR);
    assert.equal(guestRequest(t, BLK_T_IN, 2n ** 60n, buf, 512, DESC_F_WRITE)[0], BLK_S_IOERR);
    assert.equal(
      guestRequest(t, BLK_T_IN, 0, buf, 100, DESC_F_WRITE)[0],
      BLK_S_IOERR,
      "not whole sectors",
    );
    // DISCARD and WRITE_ZEROES are not offered; 0x1234 is nothing at all.
    for (const type of [11, 13, 0x1234]) {
      assert.deepEqual(guestRequest(t, type, 0, buf, 512, 0), [BLK_S_UNSUPP, 1]);
    }
    const after = checksum(t.host.memfds.pread(t.disk, DISK_SECTORS * 512, 0));
    assert.equal(after, before, "no failed request changed the disk");
    assert.deepEqual(t.device.stats, { requests: 7, ioErrors: 4 });
    // Still serving.
    assert.equal(guestRequest(t, BLK_T_IN, 0, buf, 512, DESC_F_WRITE)[0], BLK_S_OK);
  });

  test("a read-only disk offers RO and fails writes with IOERR", async () => {
    const t = await start({ readOnly: true });
    guestStep(t, OP_INIT, ALL_FEATURES);
    guestStep(t, OP_WRITE_REG, 0x14, 0);
    assert.ok(Number(guestStep(t, OP_READ, 0x1000_1010)[0]) & (1 << BLK_F_RO));
    const buf = t.at("buf0");
    guestStep(t, OP_FILL, buf, 512, 7);
    assert.equal(guestRequest(t, BLK_T_OUT, 0, buf, 512, 0)[0], BLK_S_IOERR);
    assert.deepEqual(t.host.memfds.pread(t.disk, 512, 0), diskImage().subarray(0, 512));
    assert.equal(guestRequest(t, BLK_T_IN, 0, buf, 512, DESC_F_WRITE)[0], BLK_S_OK);
    assert.equal(guestStep(t, OP_CHECKSUM, buf, 512)[0], checksum(diskImage().subarray(0, 512)));
  });

  test("a malformed request makes the device ask for a reset, with a configuration interrupt", async () => {
    const t = await start();
    guestStep(t, OP_INIT, ALL_FEATURES);
    const buf = t.at("buf0");
    guestStep(t, OP_PREPARE, BLK_T_IN, 0, buf, 512, DESC_F_WRITE);
    guestStep(t, OP_PUBLISH, QSIZE + 1); // a head beyond the queue
    const [interrupt, sip] = guestStep(t, OP_WAIT_IRQ);
    assert.equal(interrupt, BigInt(INTERRUPT_CONFIG_CHANGE), "configuration change notification");
    assert.ok(sip & BigInt(MIP_SEIP), "it came as a supervisor external interrupt");
    const status = Number(guestStep(t, OP_READ, BLK_BASE + 0x70)[0]);
    assert.equal(status, RUNNING | STATUS_DEVICE_NEEDS_RESET);
    // The driver resets and starts again; the device serves it.
    assert.equal(Number(guestStep(t, OP_INIT, ALL_FEATURES)[0]), RUNNING);
    assert.deepEqual(guestRequest(t, BLK_T_IN, 0, buf, 512, DESC_F_WRITE), [BLK_S_OK, 513]);
    assert.equal(guestStep(t, OP_CHECKSUM, buf, 512)[0], checksum(diskImage().subarray(0, 512)));
  });
});
