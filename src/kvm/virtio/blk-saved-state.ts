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
 * A virtio block device's state as a migration carries it: what the driver
 * set through the register file, and the device's own positions in the
 * request queue (vhost's vring base). The disk itself is not in it: both
 * ends reach the same disk (shared storage), which the device features and
 * capacity identify. Plain numbers, so it travels as JSON.
 */
export interface VirtioBlkSavedState {
  status: number;
  deviceFeatures: [number, number];
  capacitySectors: number;
  deviceFeaturesSel: number;
  driverFeaturesSel: number;
  driverFeatures: [number, number];
  queueSel: number;
  queueNum: number;
  queueReady: number;
  queueDesc: number;
  queueDriver: number;
  queueDevice: number;
  interruptStatus: number;
  configGeneration: number;
  shmSel: number;
  /** The next available entry the device takes, and the next used index it writes. */
  lastAvail: number;
  usedIdx: number;
}

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
    return {
      status: s.word(S_STATUS),
      deviceFeatures: [s.word(S_DEVICE_FEATURES), s.word(S_DEVICE_FEATURES + 1)],
      capacitySectors: s.capacity,
      deviceFeaturesSel: s.word(S_DEVICE_FEATURES_SEL),
      driverFeaturesSel: s.word(S_DRIVER_FEATURES_SEL),
      driverFeatures: [s.word(S_DRIVER_FEATURES), s.word(S_DRIVER_FEATURES + 1)],
      queueSel: s.word(S_QUEUE_SEL),
      queueNum: s.word(S_QUEUE_NUM),
      queueReady: s.word(S_QUEUE_READY),
      queueDesc: s.pair(S_QUEUE_DESC),
      queueDriver: s.pair(S_QUEUE_DRIVER),
      queueDevice: s.pair(S_QUEUE_DEVICE),
      interruptStatus: s.word(S_INTERRUPT_STATUS),
      configGeneration: s.word(S_CONFIG_GENERATION),
      shmSel: s.word(S_SHM_SEL),
      lastAvail: s.word(S_LAST_AVAIL),
      usedIdx: s.word(S_USED_IDX),
    };
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
    const setPair = (index: number, value: number) => {
      s.setWord(index, (value % 2 ** 32) | 0);
      s.setWord(index + 1, Math.floor(value / 2 ** 32));
    };
    s.setWord(S_DEVICE_FEATURES_SEL, saved.deviceFeaturesSel);
    s.setWord(S_DRIVER_FEATURES_SEL, saved.driverFeaturesSel);
    s.setWord(S_DRIVER_FEATURES, saved.driverFeatures[0]);
    s.setWord(S_DRIVER_FEATURES + 1, saved.driverFeatures[1]);
    s.setWord(S_QUEUE_SEL, saved.queueSel);
    s.setWord(S_QUEUE_NUM, saved.queueNum);
    s.setWord(S_QUEUE_READY, saved.queueReady);
    setPair(S_QUEUE_DESC, saved.queueDesc);
    setPair(S_QUEUE_DRIVER, saved.queueDriver);
    setPair(S_QUEUE_DEVICE, saved.queueDevice);
    s.setWord(S_INTERRUPT_STATUS, saved.interruptStatus);
    s.setWord(S_CONFIG_GENERATION, saved.configGeneration);
    s.setWord(S_SHM_SEL, saved.shmSel);
    s.setWord(S_LAST_AVAIL, saved.lastAvail);
    s.setWord(S_USED_IDX, saved.usedIdx);
    // Status last: it is what lets the worker serve.
    s.setWord(S_STATUS, saved.status);
    device.vm.ioBus.setLine(s.line, saved.interruptStatus !== 0);
  } finally {
    s.unlock();
  }
  s.kick();
}

const WORD_FIELDS = [
  "status",
  "deviceFeaturesSel",
  "driverFeaturesSel",
  "queueSel",
  "queueNum",
  "queueReady",
  "interruptStatus",
  "configGeneration",
  "shmSel",
  "lastAvail",
  "usedIdx",
] as const;

function checkSavedState(saved: VirtioBlkSavedState): void {
  const bad = (what: string) => fail("EINVAL", `malformed virtio-blk state: ${what}`);
  if (typeof saved !== "object" || saved === null) bad("not an object");
  const isWord = (v: unknown) =>
    Number.isInteger(v) && (v as number) >= -(2 ** 31) && (v as number) < 2 ** 32;
  for (const key of ["deviceFeatures", "driverFeatures"] as const) {
    const pair: unknown = saved[key];
    if (!Array.isArray(pair) || pair.length !== 2 || !pair.every(isWord)) bad(key);
  }
  for (const key of WORD_FIELDS) if (!isWord(saved[key])) bad(key);
  for (const key of ["queueDesc", "queueDriver", "queueDevice"] as const) {
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
