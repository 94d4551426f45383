import { fail } from "../../host/errno.js";
import { QUEUE_NUM_MAX, type VirtioBlkDevice } from "./blk.js";
import {
  S_BUSY,
  S_CONFIG_GENERATION,
  S_DEVICE_FEATURES,
  S_DEVICE_FEATURES_SEL,
  S_DRIVER_FEATURES,
  S_DRIVER_FEATURES_SEL,
  S_INTERRUPT_STATUS,
  S_LAST_AVAIL,
  S_PAUSED,
  S_QUEUE_DESC,
  S_QUEUE_DEVICE,
  S_QUEUE_DRIVER,
  S_QUEUE_NUM,
  S_QUEUE_READY,
  S_QUEUE_SEL,
  S_RESET_PENDING,
  S_SHM_SEL,
  S_STATUS,
  S_USED_IDX,
  S_WORKER,
} from "./blk-state.js";
import { STATUS_DRIVER_OK, STATUS_FEATURES_OK } from "./virtio.js";

/**
 * Where each field of the saved state lives in the device state: one word,
 * or (addresses) a (lo, hi) word pair. Status comes last: restoring it is
 * what lets the worker serve.
 */
const WORDS = {
  deviceFeaturesSel: S_DEVICE_FEATURES_SEL,
  driverFeaturesSel: S_DRIVER_FEATURES_SEL,
  queueSel: S_QUEUE_SEL,
  queueNum: S_QUEUE_NUM,
  queueReady: S_QUEUE_READY,
  interruptStatus: S_INTERRUPT_STATUS,
  configGeneration: S_CONFIG_GENERATION,
  shmSel: S_SHM_SEL,
  lastAvail: S_LAST_AVAIL,
  usedIdx: S_USED_IDX,
  status: S_STATUS,
} as const;
const PAIRS = {
  queueDesc: S_QUEUE_DESC,
  queueDriver: S_QUEUE_DRIVER,
  queueDevice: S_QUEUE_DEVICE,
} as const;
const wordEntries = Object.entries(WORDS) as [keyof typeof WORDS, number][];
const pairEntries = Object.entries(PAIRS) as [keyof typeof PAIRS, number][];

/**
 * A virtio block device's state as a migration carries it: what the driver
 * set through the register file, and the device's own positions in the
 * request queue (vhost's vring base: lastAvail, the next available entry it
 * takes, and usedIdx, the next used index it writes). The disk itself is not
 * in it: both ends reach the same disk (shared storage), which the device
 * features and capacity identify. Plain numbers, so it travels as JSON.
 */
export type VirtioBlkSavedState = Record<keyof typeof WORDS | keyof typeof PAIRS, number> & {
  deviceFeatures: [number, number];
  driverFeatures: [number, number];
  capacitySectors: number;
};

/**
 * Read a device's state. The device must be quiescent, so that no request
 * moves after the state was taken: EBUSY while a worker serves it, unless
 * the worker is paused between requests (BlockDeviceWorker.pause; or
 * stopped, as a VMM stops vhost before reading its vring base).
 */
export function saveVirtioBlkState(device: VirtioBlkDevice): VirtioBlkSavedState {
  const s = device.state;
  s.lock();
  try {
    if ((s.word(S_WORKER) !== 0 && s.word(S_PAUSED) === 0) || s.word(S_BUSY) !== 0) {
      fail("EBUSY", "a worker serves this device: pause or stop it first");
    }
    const saved = {
      deviceFeatures: [s.word(S_DEVICE_FEATURES), s.word(S_DEVICE_FEATURES + 1)],
      driverFeatures: [s.word(S_DRIVER_FEATURES), s.word(S_DRIVER_FEATURES + 1)],
      capacitySectors: s.capacity,
    } as VirtioBlkSavedState;
    for (const [key, index] of wordEntries) saved[key] = s.word(index);
    for (const [key, index] of pairEntries) saved[key] = s.pair(index);
    return saved;
  } finally {
    s.unlock();
  }
}

/**
 * Load saved state into a device that was created with the same disk and
 * has not been set up by a driver (Status 0; EBUSY otherwise). A worker may
 * already serve it: the state changes under the device lock, then the
 * worker is kicked, so requests the driver made available before the state
 * was saved are served here. EINVAL for state that is malformed or belongs
 * to a device with other features or another capacity.
 */
export function restoreVirtioBlkState(device: VirtioBlkDevice, saved: VirtioBlkSavedState): void {
  checkSavedState(saved);
  const s = device.state;
  s.lock();
  try {
    if (s.word(S_STATUS) !== 0 || s.word(S_BUSY) !== 0 || s.word(S_RESET_PENDING) !== 0) {
      fail("EBUSY", "the device is in use: only a freshly reset device takes saved state");
    }
    const features = [s.word(S_DEVICE_FEATURES), s.word(S_DEVICE_FEATURES + 1)];
    if (saved.deviceFeatures[0] !== features[0] || saved.deviceFeatures[1] !== features[1]) {
      fail("EINVAL", "saved state of a device with other features");
    }
    if (saved.capacitySectors !== s.capacity) {
      fail(
        "EINVAL",
        `saved state of a ${saved.capacitySectors}-sector disk, this one has ${s.capacity}`,
      );
    }
    s.setWord(S_DRIVER_FEATURES, saved.driverFeatures[0]);
    s.setWord(S_DRIVER_FEATURES + 1, saved.driverFeatures[1]);
    for (const [key, index] of pairEntries) {
      s.setWord(index, (saved[key] % 2 ** 32) | 0);
      s.setWord(index + 1, Math.floor(saved[key] / 2 ** 32));
    }
    for (const [key, index] of wordEntries) s.setWord(index, saved[key]);
    device.vm.ioBus.setLine(s.line, saved.interruptStatus !== 0);
  } finally {
    s.unlock();
  }
  s.kick();
}

function checkSavedState(saved: VirtioBlkSavedState): void {
  const bad = (what: string) => fail("EINVAL", `malformed virtio-blk state: ${what}`);
  if (typeof saved !== "object" || saved === null) bad("not an object");
  const isWord = (v: unknown) =>
    Number.isInteger(v) && (v as number) >= -(2 ** 31) && (v as number) < 2 ** 32;
  for (const key of ["deviceFeatures", "driverFeatures"] as const) {
    const pair: unknown = saved[key];
    if (!Array.isArray(pair) || pair.length !== 2 || !pair.every(isWord)) bad(key);
  }
  for (const [key] of wordEntries) if (!isWord(saved[key])) bad(key);
  for (const [key] of pairEntries) {
    if (!Number.isSafeInteger(saved[key]) || saved[key] < 0) bad(key);
  }
  if (!Number.isSafeInteger(saved.capacitySectors)) bad("capacitySectors");
  if (saved.lastAvail >>> 16 !== 0 || saved.usedIdx >>> 16 !== 0) bad("queue index beyond 16 bits");
  if (saved.status >>> 8 !== 0) bad("status beyond 8 bits");
  if (saved.status & STATUS_DRIVER_OK && (saved.status & STATUS_FEATURES_OK) === 0) {
    bad("DRIVER_OK without FEATURES_OK");
  }
  // What QueueReady itself would refuse (virtio 1.2, 2.7): a ready queue is a usable one.
  const num = saved.queueNum;
  if (
    saved.queueReady !== 0 &&
    (num <= 0 ||
      num > QUEUE_NUM_MAX ||
      (num & (num - 1)) !== 0 ||
      saved.queueDesc % 16 !== 0 ||
      saved.queueDriver % 2 !== 0 ||
      saved.queueDevice % 4 !== 0)
  ) {
    bad("a ready queue of an invalid size or alignment");
  }
}
