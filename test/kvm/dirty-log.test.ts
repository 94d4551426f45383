import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PAGE_SIZE } from "../../src/host/host-memory.js";
import {
  CAP_MANUAL_DIRTY_LOG_PROTECT2,
  GUEST_MEMFD_FLAG_HUGE_2M,
  MEM_GUEST_MEMFD,
  MEM_LOG_DIRTY_PAGES,
} from "../../src/kvm/uapi.js";
import {
  ACCESS_LOOP,
  assertErrno,
  createTestVm,
  guestAccess,
  RAM_BASE,
  runToUcall,
  type TestVm,
} from "./support.js";

/**
 * Dirty logging for the pre-copy source: per-slot bitmaps of pages the guest
 * wrote, tracked by write-protecting stage-2 mappings, read with
 * getDirtyLog and (with CAP_MANUAL_DIRTY_LOG_PROTECT2) re-armed with
 * clearDirtyLog.
 */

const SLOT = 1;
const GPA = RAM_BASE + 0x1000_0000;
/** 2 MiB: 512 pages, one huge page when the backing is huge. */
const BYTES = 2 << 20;
const PAGES = BYTES / PAGE_SIZE;

interface LogVm extends TestVm {
  slotGmem: number;
}

function setup(flags = MEM_LOG_DIRTY_PAGES, gmemFlags = 0): LogVm {
  const t = createTestVm(ACCESS_LOOP);
  const slotGmem = t.vm.createGuestMemfd({ size: BYTES, flags: gmemFlags });
  const lt = { ...t, slotGmem };
  setSlotFlags(lt, flags);
  assert.equal(runToUcall(t.vcpu), 0n);
  return lt;
}

function setSlotFlags(t: LogVm, flags: number): void {
  t.vm.setUserMemoryRegion2({
    slot: SLOT,
    flags: MEM_GUEST_MEMFD | flags,
    guestPhysAddr: GPA,
    memorySize: BYTES,
    userspaceAddr: 0,
    guestMemfd: t.slotGmem,
    guestMemfdOffset: 0,
  });
}

/** The page numbers set in a dirty bitmap. */
function pages(bitmap: Uint8Array): number[] {
  const result: number[] = [];
  for (let i = 0; i < bitmap.length * 8; i++) if (bitmap[i >> 3] & (1 << (i & 7))) result.push(i);
  return result;
}

function bitmapOf(...set: number[]): Uint8Array {
  const bitmap = new Uint8Array(PAGES / 8);
  for (const i of set) bitmap[i >> 3] |= 1 << (i & 7);
  return bitmap;
}

const write = (t: TestVm, page: number, value = 1n) =>
  guestAccess(t, GPA + page * PAGE_SIZE + 8, value);
const read = (t: TestVm, page: number) => guestAccess(t, GPA + page * PAGE_SIZE + 8);

describe("dirty logging", () => {
  test("getDirtyLog reports the pages the guest wrote, clears them, and writes are logged again", () => {
    const t = setup();
    assert.deepEqual(pages(t.vm.getDirtyLog(SLOT)), []);
    write(t, 0);
    write(t, 3);
    write(t, 3, 2n);
    read(t, 5);
    read(t, 7);
    write(t, 7);
    write(t, PAGES - 1);
    const log = t.vm.getDirtyLog(SLOT);
    assert.equal(log.length, PAGES / 8);
    assert.deepEqual(pages(log), [0, 3, 7, PAGES - 1], "reads do not dirty a page");
    assert.deepEqual(pages(t.vm.getDirtyLog(SLOT)), [], "the log was cleared");
    // The pages are write-protected again: a second write after the clear is logged.
    write(t, 3, 3n);
    read(t, 0);
    assert.deepEqual(pages(t.vm.getDirtyLog(SLOT)), [3]);
    assert.equal(read(t, 3), 3n);
  });

  test("hypervisor writes to guest memory are logged too; reads are not", () => {
    const t = setup();
    t.vm.accessGuest(GPA + 9 * PAGE_SIZE, new Uint8Array(8), false, true);
    t.vm.accessGuest(GPA + 10 * PAGE_SIZE - 4, new Uint8Array(8), true, true);
    assert.deepEqual(pages(t.vm.getDirtyLog(SLOT)), [9, 10]);
  });

  test("with CAP_MANUAL_DIRTY_LOG_PROTECT2 the log is cleared and re-armed by clearDirtyLog only", () => {
    const t = setup();
    const enable = (args: number[], flags = 0) =>
      t.vm.enableCap({ cap: CAP_MANUAL_DIRTY_LOG_PROTECT2, flags, args });
    assertErrno(() => enable([1], 1), "EINVAL");
    assertErrno(() => enable([2]), "EINVAL");
    assertErrno(() => enable([1 | 4]), "EINVAL");
    assertErrno(() => enable([1 + 2 ** 32]), "EINVAL");
    assertErrno(() => enable([0.5]), "EINVAL");
    assertErrno(() => enable([-1]), "EINVAL");
    enable([1]);
    write(t, 1);
    write(t, 2);
    assert.deepEqual(pages(t.vm.getDirtyLog(SLOT)), [1, 2]);
    assert.deepEqual(pages(t.vm.getDirtyLog(SLOT)), [1, 2], "getDirtyLog alone clears nothing");
    t.vm.clearDirtyLog({ slot: SLOT, firstPage: 0, numPages: PAGES, bitmap: bitmapOf(2) });
    assert.deepEqual(pages(t.vm.getDirtyLog(SLOT)), [1]);
    write(t, 2, 5n);
    write(t, 1, 5n);
    assert.deepEqual(pages(t.vm.getDirtyLog(SLOT)), [1, 2], "page 2 was write-protected again");
    // A range that starts at page 64 and runs to the end of the slot.
    write(t, 70);
    const tail = new Uint8Array((PAGES - 64) / 8);
    tail[(70 - 64) >> 3] |= 1 << ((70 - 64) & 7);
    t.vm.clearDirtyLog({ slot: SLOT, firstPage: 64, numPages: PAGES - 64, bitmap: tail });
    assert.deepEqual(pages(t.vm.getDirtyLog(SLOT)), [1, 2]);
    // Back to automatic clearing.
    enable([0]);
    assert.deepEqual(pages(t.vm.getDirtyLog(SLOT)), [1, 2]);
    assert.deepEqual(pages(t.vm.getDirtyLog(SLOT)), []);
  });

  test("a slot without LOG_DIRTY_PAGES has no log (ENOENT); bad clear ranges are EINVAL", () => {
    const t = setup(0);
    assertErrno(() => t.vm.getDirtyLog(SLOT), "ENOENT");
    assertErrno(() => t.vm.getDirtyLog(5), "ENOENT");
    assertErrno(() => t.vm.getDirtyLog(99), "EINVAL");
    assertErrno(
      () => t.vm.clearDirtyLog({ slot: SLOT, firstPage: 0, numPages: 64, bitmap: bitmapOf() }),
      "ENOENT",
    );
    // As in KVM, a misaligned firstPage is EINVAL before the slot is looked at.
    assertErrno(
      () => t.vm.clearDirtyLog({ slot: 5, firstPage: 1, numPages: 64, bitmap: bitmapOf() }),
      "EINVAL",
    );
    setSlotFlags(t, MEM_LOG_DIRTY_PAGES);
    const clear = (firstPage: number, numPages: number, bitmap = bitmapOf()) =>
      t.vm.clearDirtyLog({ slot: SLOT, firstPage, numPages, bitmap });
    assertErrno(() => clear(1, 64), "EINVAL");
    assertErrno(() => clear(-64, 64), "EINVAL");
    assertErrno(() => clear(0, 10), "EINVAL");
    assertErrno(() => clear(0, PAGES + 64), "EINVAL");
    assertErrno(() => clear(PAGES, 64), "EINVAL");
    assertErrno(() => clear(0, -64), "EINVAL");
    assertErrno(() => clear(0, PAGES, new Uint8Array(8)), "EINVAL");
    clear(0, 64);
    clear(PAGES - 64, 64);
    clear(0, 0);
    setSlotFlags(t, 0);
    assertErrno(() => t.vm.getDirtyLog(SLOT), "ENOENT");
  });

  test("turning logging on for a live slot logs only later writes, page by page, even over a huge mapping", () => {
    const t = setup(0, GUEST_MEMFD_FLAG_HUGE_2M);
    write(t, 0);
    const huge = t.vm.stage2.mappingCounts()[1];
    assert.ok(huge >= 1, "the slot is mapped by a 2 MiB leaf");
    setSlotFlags(t, MEM_LOG_DIRTY_PAGES);
    assert.deepEqual(pages(t.vm.getDirtyLog(SLOT)), [], "earlier writes are not in the log");
    write(t, 1);
    write(t, 2);
    write(t, 300);
    read(t, 4);
    assert.deepEqual(pages(t.vm.getDirtyLog(SLOT)), [1, 2, 300]);
    write(t, 2, 9n);
    write(t, 5);
    assert.deepEqual(pages(t.vm.getDirtyLog(SLOT)), [2, 5]);
    // Logging off: the log is gone and the slot maps huge again.
    setSlotFlags(t, 0);
    assertErrno(() => t.vm.getDirtyLog(SLOT), "ENOENT");
    const before = t.vm.stage2.mappingCounts()[1];
    assert.equal(read(t, 2), 9n);
    assert.equal(t.vm.stage2.mappingCounts()[1], before + 1, "a 2 MiB mapping again");
  });

  test("while logging, a huge backing is mapped 4 KiB at a time", () => {
    const t = setup(MEM_LOG_DIRTY_PAGES, GUEST_MEMFD_FLAG_HUGE_2M);
    write(t, 0);
    const [small, huge] = t.vm.stage2.mappingCounts();
    write(t, 1);
    read(t, 2);
    assert.deepEqual(t.vm.stage2.mappingCounts().slice(0, 2), [small + 2, huge]);
    assert.deepEqual(pages(t.vm.getDirtyLog(SLOT)), [0, 1]);
  });
});
