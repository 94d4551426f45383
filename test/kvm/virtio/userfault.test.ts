import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { PAGE_SIZE } from "../../../src/host/host-memory.js";
import {
  CAP_USERFAULT,
  MEMORY_ATTRIBUTE_USERFAULT,
  USERFAULT_DISABLE,
  USERFAULT_ENABLE,
} from "../../../src/kvm/uapi.js";
import { BLK_S_IOERR, BLK_S_OK, BLK_T_IN, DESC_F_WRITE } from "../../../src/kvm/virtio/index.js";
import { assertErrno, RAM_BASE } from "../support.js";
import {
  type BlkTestVm,
  checksum,
  createBlkTestVm,
  diskImage,
  guestRequest,
  guestStep,
  OP_CHECKSUM,
  OP_INIT,
  OP_PREPARE,
  OP_PUBLISH,
  OP_WAIT,
  readGuest,
  usedIdx,
} from "./support.js";

/**
 * The asynchronous userfault path with a real accessor that is not a vCPU:
 * the block device's worker thread reaches a userfault page, queues the
 * fault, signals the eventfd and sleeps; the request completes only once the
 * VMM has installed the page and cleared its bit.
 */

interface Setup extends BlkTestVm {
  efd: number;
}

async function setup(): Promise<Setup> {
  const t = await createBlkTestVm();
  guestStep(t, OP_INIT, 0xffff_ffff);
  const efd = t.host.eventfd();
  t.vm.enableCap({ cap: CAP_USERFAULT, flags: 0, args: [USERFAULT_ENABLE, efd] });
  return { ...t, efd };
}

function setUserfault(t: Setup, gpa: number, on: boolean): void {
  t.vm.setMemoryAttributesDelta({
    address: gpa,
    size: PAGE_SIZE,
    set: on ? MEMORY_ATTRIBUTE_USERFAULT : 0,
    clear: on ? 0 : MEMORY_ATTRIBUTE_USERFAULT,
  });
}

/** The VMM's side: wait for the eventfd (never blocking the event loop), then read the fault. */
async function nextAsyncFault(t: Setup): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("no asynchronous userfault within 5 s")), 5000);
  });
  try {
    await Promise.race([t.host.eventfds.readAsync(t.efd), timeout]);
  } finally {
    clearTimeout(timer);
  }
  return t.vm.readUserfault().gpa;
}

/** Install a page into guest memory, as post-copy does with the page from the source. */
function installPage(t: Setup, gpa: number, page: Uint8Array): void {
  t.host.pageCacheOf(t.gmemFd).install((gpa - RAM_BASE) / PAGE_SIZE, page);
}

/** The request has not completed: used ring, status byte, counters and interrupt as before. */
function assertPending(t: Setup, used: number, requests: number): void {
  assert.equal(usedIdx(t), used, "the used ring has not moved");
  assert.equal(readGuest(t.vm, t.at("status"), 1)[0], 0xff, "the status byte is untouched");
  assert.equal(t.device.stats.requests, requests);
  assert.equal(t.vm.ioBus.lines, 0, "no interrupt yet");
}

describe("virtio-blk requests and asynchronous userfaults", () => {
  const vms: Setup[] = [];
  after(async () => {
    for (const t of vms) await t.worker.stop();
  });
  const start = async () => {
    const t = await setup();
    vms.push(t);
    return t;
  };
  const image = diskImage();

  test("a read into a userfault buffer completes only after the VMM resolves the fault", async () => {
    const t = await start();
    const buf = t.at("buf1");
    // Post-copy: the buffer page has not arrived from the source yet.
    setUserfault(t, buf, true);
    guestStep(t, OP_PREPARE, BLK_T_IN, 0, buf, 4096, DESC_F_WRITE);
    const used = usedIdx(t);
    const requests = t.device.stats.requests;
    guestStep(t, OP_PUBLISH, 0);

    assert.equal(await nextAsyncFault(t), buf, "the worker faulted on the buffer page");
    assertPending(t, used, requests);
    assertErrno(() => t.vm.readUserfault(), "ENOENT");

    const page = new Uint8Array(PAGE_SIZE).fill(0x5a);
    installPage(t, buf, page);
    setUserfault(t, buf, false);
    assert.deepEqual(guestStep(t, OP_WAIT), [BigInt(BLK_S_OK), 4097n]);
    assert.equal(usedIdx(t), (used + 1) & 0xffff);
    assert.equal(guestStep(t, OP_CHECKSUM, buf, 4096)[0], checksum(image.subarray(0, 4096)));
  });

  test("a buffer across two userfault pages faults on each in turn", async () => {
    const t = await start();
    const buf = t.at("buf0");
    setUserfault(t, buf, true);
    setUserfault(t, buf + PAGE_SIZE, true);
    guestStep(t, OP_PREPARE, BLK_T_IN, 4, buf, 2 * PAGE_SIZE, DESC_F_WRITE);
    const used = usedIdx(t);
    guestStep(t, OP_PUBLISH, 0);
    for (const expected of [buf, buf + PAGE_SIZE]) {
      assert.equal(await nextAsyncFault(t), expected);
      assertPending(t, used, 0);
      installPage(t, expected, new Uint8Array(PAGE_SIZE));
      setUserfault(t, expected, false);
    }
    assert.deepEqual(guestStep(t, OP_WAIT), [BigInt(BLK_S_OK), BigInt(2 * PAGE_SIZE + 1)]);
    assert.equal(
      guestStep(t, OP_CHECKSUM, buf, 2 * PAGE_SIZE)[0],
      checksum(image.subarray(4 * 512, 4 * 512 + 2 * PAGE_SIZE)),
    );
  });

  test("a descriptor table on a userfault page: the worker waits for it too", async () => {
    const t = await start();
    const desc = t.at("desc");
    const buf = t.at("buf1");
    guestStep(t, OP_PREPARE, BLK_T_IN, 8, buf, 4096, DESC_F_WRITE);
    // The VMM keeps what it will install (here, what the guest just wrote).
    const table = readGuest(t.vm, desc, PAGE_SIZE);
    setUserfault(t, desc, true);
    const used = usedIdx(t);
    guestStep(t, OP_PUBLISH, 0);

    assert.equal(await nextAsyncFault(t), desc, "the worker faulted on the descriptor table");
    assertPending(t, used, 0);
    installPage(t, desc, table);
    setUserfault(t, desc, false);
    assert.deepEqual(guestStep(t, OP_WAIT), [BigInt(BLK_S_OK), 4097n]);
    assert.equal(
      guestStep(t, OP_CHECKSUM, buf, 4096)[0],
      checksum(image.subarray(8 * 512, 8 * 512 + 4096)),
    );
  });

  test("disabling userfault while the worker sleeps fails the request with IOERR; the worker goes on", async () => {
    const t = await start();
    const buf = t.at("buf1");
    setUserfault(t, buf, true);
    guestStep(t, OP_PREPARE, BLK_T_IN, 0, buf, 4096, DESC_F_WRITE);
    guestStep(t, OP_PUBLISH, 0);
    assert.equal(await nextAsyncFault(t), buf);
    // Returns once the worker has left the userfault context.
    t.vm.enableCap({ cap: CAP_USERFAULT, flags: 0, args: [USERFAULT_DISABLE, 0] });
    assert.deepEqual(guestStep(t, OP_WAIT), [BigInt(BLK_S_IOERR), 1n]);
    assert.deepEqual(t.device.stats, { requests: 1, ioErrors: 1 });
    // The same request again: userfault is off, so the page is simply there.
    assert.deepEqual(guestRequest(t, BLK_T_IN, 0, buf, 4096, DESC_F_WRITE), [BLK_S_OK, 4097]);
    assert.equal(guestStep(t, OP_CHECKSUM, buf, 4096)[0], checksum(image.subarray(0, 4096)));
  });

  test("destroying the VM while the worker sleeps fails the request with IOERR and ends the worker", async () => {
    const t = await setup();
    const buf = t.at("buf1");
    setUserfault(t, buf, true);
    guestStep(t, OP_PREPARE, BLK_T_IN, 0, buf, 4096, DESC_F_WRITE);
    const used = usedIdx(t);
    guestStep(t, OP_PUBLISH, 0);
    assert.equal(await nextAsyncFault(t), buf);
    t.vm.destroy();
    await t.worker.exited;
    assert.equal(usedIdx(t), (used + 1) & 0xffff, "the request was completed");
    assert.equal(readGuest(t.vm, t.at("status"), 1)[0], BLK_S_IOERR);
    await t.worker.stop(); // stopping a worker that has ended is harmless
  });
});
