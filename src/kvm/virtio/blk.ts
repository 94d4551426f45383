import { fail } from "../../host/errno.js";
import { FILE_MEMFD, OBJ_PAGE_CACHE, putFile } from "../../host/files.js";
import { type IoDevice, registerIoDeviceType } from "../io-bus.js";
import type { Vm } from "../vm.js";
import {
  S_CAPACITY,
  S_CONFIG,
  S_GPA,
  S_CONFIG_GENERATION,
  S_DEVICE_FEATURES,
  S_DEVICE_FEATURES_SEL,
  S_DRIVER_FEATURES,
  S_DRIVER_FEATURES_SEL,
  S_INTERRUPT_STATUS,
  S_IO_ERRORS,
  S_LINE,
  S_MEMFD,
  S_PAGE_CACHE,
  S_QUEUE_DESC,
  S_QUEUE_DEVICE,
  S_QUEUE_DRIVER,
  S_QUEUE_NUM,
  S_QUEUE_READY,
  S_QUEUE_SEL,
  S_REQUESTS,
  S_RESET_PENDING,
  S_SERIAL,
  S_SHM_SEL,
  S_STATUS,
  S_BUSY,
  S_WORKER,
  STATE_BYTES,
  VirtioBlkState,
} from "./blk-state.js";
import {
  BLK_CONFIG_BLK_SIZE,
  BLK_CONFIG_BYTES,
  BLK_CONFIG_CAPACITY,
  BLK_CONFIG_SEG_MAX,
  BLK_F_BLK_SIZE,
  BLK_F_FLUSH,
  BLK_F_RO,
  BLK_F_SEG_MAX,
  BLK_ID_BYTES,
  F_INDIRECT_DESC,
  F_VERSION_1,
  MMIO_CONFIG,
  MMIO_CONFIG_GENERATION,
  MMIO_DEVICE_FEATURES,
  MMIO_DEVICE_FEATURES_SEL,
  MMIO_DEVICE_ID,
  MMIO_DRIVER_FEATURES,
  MMIO_DRIVER_FEATURES_SEL,
  MMIO_INTERRUPT_ACK,
  MMIO_INTERRUPT_STATUS,
  MMIO_MAGIC,
  MMIO_MAGIC_VALUE,
  MMIO_QUEUE_DESC_HIGH,
  MMIO_QUEUE_DESC_LOW,
  MMIO_QUEUE_DEVICE_HIGH,
  MMIO_QUEUE_DEVICE_LOW,
  MMIO_QUEUE_DRIVER_HIGH,
  MMIO_QUEUE_DRIVER_LOW,
  MMIO_QUEUE_NOTIFY,
  MMIO_QUEUE_NUM,
  MMIO_QUEUE_NUM_MAX,
  MMIO_QUEUE_READY,
  MMIO_QUEUE_SEL,
  MMIO_SHM_BASE_HIGH,
  MMIO_SHM_BASE_LOW,
  MMIO_SHM_LEN_HIGH,
  MMIO_SHM_LEN_LOW,
  MMIO_SHM_SEL,
  MMIO_STATUS,
  MMIO_VENDOR_ID,
  MMIO_VERSION,
  MMIO_VERSION_2,
  MMIO_WINDOW_BYTES,
  SECTOR_SIZE,
  STATUS_ACKNOWLEDGE,
  STATUS_DRIVER,
  STATUS_DRIVER_OK,
  STATUS_FAILED,
  STATUS_FEATURES_OK,
  VENDOR_ID_FAULTLINE,
  VIRTIO_ID_BLOCK,
} from "./virtio.js";

/**
 * A virtio block device on the virtio-mmio transport (virtio 1.2, transport
 * version 2), emulated in the hypervisor: vCPUs reach its registers through
 * the VM's in-kernel MMIO bus (this file), and a hypervisor worker thread
 * serves its one request queue (blk-queue.ts, blk-worker.ts), as vhost does.
 * The disk is a host memfd: its page cache holds the data, so the worker
 * reaches it from any thread, and the VMM fills it with host.memfds.pwrite.
 *
 * Interrupts: faultline's platform has no PLIC yet, so the device's line on
 * the VM's I/O bus drives the supervisor external interrupt (SEIP) of hart 0
 * directly (see io-bus.ts). It is raised with InterruptStatus bits and
 * lowered once the driver has acknowledged all of them; a driver may also
 * just poll the used ring.
 */

/** The bus type of a virtio-mmio block device. */
export const IO_DEVICE_VIRTIO_BLK = 1;
/** The largest queue the device takes (QueueNumMax). */
export const QUEUE_NUM_MAX = 256;
/** seg_max: data segments per request, leaving room for the header and status. */
export const SEG_MAX = QUEUE_NUM_MAX - 2;

export interface VirtioBlkOptions {
  /** Guest-physical address of the register window (0x200 bytes). */
  gpa: number;
  /** The backing memfd; its size at creation is the capacity (whole sectors). */
  memfd: number;
  readOnly?: boolean;
  /** blk_size in the configuration space (default 512). */
  blockSize?: number;
  /** What GET_ID returns (at most 20 bytes, default "faultline-virtio-blk"). */
  serial?: string;
}

const CONTROL_WRITABLE_STATUS =
  STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK | STATUS_FAILED;

/** This thread's handle on a device created by createVirtioBlk (or attached by state offset). */
export class VirtioBlkDevice {
  readonly state: VirtioBlkState;

  constructor(
    readonly vm: Vm,
    /** Arena offset of the device's state: what other threads attach with. */
    readonly offset: number,
  ) {
    this.state = new VirtioBlkState(vm, offset);
  }

  /** Guest-physical address of the register window. */
  get gpa(): number {
    return this.vm.memory.arenaF64[(this.state.base + S_GPA) >> 1];
  }

  get capacitySectors(): number {
    return this.state.capacity;
  }

  /** The device status register as the driver last left it. */
  get status(): number {
    return this.state.word(S_STATUS);
  }

  /** Requests completed, and how many of them with IOERR. */
  get stats(): { requests: number; ioErrors: number } {
    return { requests: this.state.word(S_REQUESTS), ioErrors: this.state.word(S_IO_ERRORS) };
  }

  /**
   * Take the device off the bus and drop its reference to the disk. EBUSY
   * while a worker serves it (stop the worker first).
   */
  destroy(): void {
    const s = this.state;
    if (s.word(S_WORKER) !== 0) fail("EBUSY", "a worker still serves this device");
    this.vm.ioBus.unregister(this.gpa);
    const memfd = s.word(S_MEMFD);
    if (memfd !== 0 && Atomics.compareExchange(s.words, s.base + S_MEMFD, memfd, 0) === memfd) {
      putFile(this.vm.host, memfd);
    }
  }
}

/**
 * Create a virtio-mmio block device on `vm` at `options.gpa`, backed by the
 * memfd `options.memfd` (the device keeps a reference to it, so the VMM may
 * close its descriptor). Serve it with startBlockDeviceWorker.
 */
export function createVirtioBlk(vm: Vm, options: VirtioBlkOptions): VirtioBlkDevice {
  const blockSize = options.blockSize ?? SECTOR_SIZE;
  if (!Number.isInteger(blockSize) || blockSize < SECTOR_SIZE || blockSize & (blockSize - 1)) {
    fail("EINVAL", `blk_size ${blockSize} must be a power of two of at least 512`);
  }
  const serial = new TextEncoder().encode(options.serial ?? "faultline-virtio-blk");
  if (serial.length > BLK_ID_BYTES) fail("EINVAL", `serial longer than ${BLK_ID_BYTES} bytes`);
  if (!Number.isSafeInteger(options.gpa) || options.gpa % 4 !== 0 || options.gpa < 0) {
    fail("EINVAL", "the register window must be at a 4-byte aligned address");
  }
  const host = vm.host;
  const memory = vm.memory;
  const memfd = host.files.get(options.memfd, FILE_MEMFD);
  try {
    const offset = memory.arenaAllocate(STATE_BYTES, 64);
    const w = offset >> 2;
    const i32 = memory.arenaI32;
    const cache = i32[(memfd >> 2) + OBJ_PAGE_CACHE];
    const capacity = Math.floor(host.pageCache(cache).size / SECTOR_SIZE);
    i32[w + S_MEMFD] = memfd;
    i32[w + S_PAGE_CACHE] = cache;
    memory.arenaF64[(w + S_CAPACITY) >> 1] = capacity;
    memory.arenaF64[(w + S_GPA) >> 1] = options.gpa;
    const lo =
      (1 << BLK_F_SEG_MAX) |
      (1 << BLK_F_BLK_SIZE) |
      (1 << BLK_F_FLUSH) |
      (options.readOnly ? 1 << BLK_F_RO : 0) |
      (1 << F_INDIRECT_DESC);
    i32[w + S_DEVICE_FEATURES] = lo;
    i32[w + S_DEVICE_FEATURES + 1] = 1 << (F_VERSION_1 - 32);
    const config = new DataView(memory.arenaBuffer, offset + S_CONFIG * 4, BLK_CONFIG_BYTES);
    config.setBigUint64(BLK_CONFIG_CAPACITY, BigInt(capacity), true);
    config.setUint32(BLK_CONFIG_SEG_MAX, SEG_MAX, true);
    config.setUint32(BLK_CONFIG_BLK_SIZE, blockSize, true);
    memory.arenaU8.set(serial, offset + S_SERIAL * 4);
    i32[w + S_LINE] = vm.ioBus.register({
      gpa: options.gpa,
      length: MMIO_WINDOW_BYTES,
      type: IO_DEVICE_VIRTIO_BLK,
      state: offset,
    });
    return new VirtioBlkDevice(vm, offset);
  } catch (error) {
    putFile(host, memfd);
    throw error;
  }
}

/** The register file as a vCPU thread emulates it (virtio-mmio, 4.2.2). */
class VirtioMmioBlk implements IoDevice {
  private readonly s: VirtioBlkState;
  private readonly configBytes: Uint8Array;

  constructor(vm: Vm, offset: number) {
    this.s = new VirtioBlkState(vm, offset);
    this.configBytes = vm.memory.arenaU8.subarray(
      offset + S_CONFIG * 4,
      offset + S_CONFIG * 4 + BLK_CONFIG_BYTES,
    );
  }

  read(offset: number, size: number): number {
    const s = this.s;
    if (offset >= MMIO_CONFIG) return this.readConfig(offset - MMIO_CONFIG, size);
    // The control registers are 32-bit only (4.2.2.2): anything else reads 0.
    if (size !== 4 || offset % 4 !== 0) return 0;
    const queue0 = s.word(S_QUEUE_SEL) === 0;
    switch (offset) {
      case MMIO_MAGIC_VALUE:
        return MMIO_MAGIC;
      case MMIO_VERSION:
        return MMIO_VERSION_2;
      case MMIO_DEVICE_ID:
        return VIRTIO_ID_BLOCK;
      case MMIO_VENDOR_ID:
        return VENDOR_ID_FAULTLINE;
      case MMIO_DEVICE_FEATURES: {
        const sel = s.word(S_DEVICE_FEATURES_SEL);
        return sel === 0 || sel === 1 ? s.word(S_DEVICE_FEATURES + sel) >>> 0 : 0;
      }
      case MMIO_QUEUE_NUM_MAX:
        return queue0 ? QUEUE_NUM_MAX : 0;
      case MMIO_QUEUE_READY:
        return queue0 ? s.word(S_QUEUE_READY) : 0;
      case MMIO_INTERRUPT_STATUS:
        return s.word(S_INTERRUPT_STATUS);
      case MMIO_STATUS:
        // While the worker finishes a reset the old value reads back: the
        // driver waits for 0 before initializing again (virtio 1.2, 2.4.2).
        return s.word(S_STATUS);
      case MMIO_SHM_LEN_LOW:
      case MMIO_SHM_LEN_HIGH:
      case MMIO_SHM_BASE_LOW:
      case MMIO_SHM_BASE_HIGH:
        return 0xffff_ffff; // no shared memory regions: length -1
      case MMIO_CONFIG_GENERATION:
        return s.word(S_CONFIG_GENERATION);
      default:
        return 0;
    }
  }

  private readConfig(offset: number, size: number): number {
    if ((size !== 1 && size !== 2 && size !== 4) || offset % size !== 0) return 0;
    if (offset + size > BLK_CONFIG_BYTES) return 0;
    let value = 0;
    for (let i = size - 1; i >= 0; i--) value = value * 256 + this.configBytes[offset + i];
    return value;
  }

  write(offset: number, size: number, value: number): void {
    // Configuration space writes (writeback, with CONFIG_WCE) are not offered: ignored.
    if (offset >= MMIO_CONFIG || size !== 4 || offset % 4 !== 0) return;
    const s = this.s;
    if (offset === MMIO_QUEUE_NOTIFY) {
      // Without VIRTIO_F_NOTIFICATION_DATA the value is the queue index.
      if (value === 0) s.kick();
      return;
    }
    s.lock();
    try {
      if (offset === MMIO_STATUS) {
        this.writeStatus(value);
        return;
      }
      // While a reset completes, the driver must wait: other writes are dropped.
      if (s.word(S_RESET_PENDING) !== 0) return;
      this.writeRegister(offset, value);
    } finally {
      s.unlock();
    }
  }

  private writeRegister(offset: number, value: number): void {
    const s = this.s;
    const status = s.word(S_STATUS);
    const queue0 = s.word(S_QUEUE_SEL) === 0;
    // Queue addresses and size may change only while the queue is not ready.
    const queueWritable = queue0 && s.word(S_QUEUE_READY) === 0;
    switch (offset) {
      case MMIO_DEVICE_FEATURES_SEL:
        s.setWord(S_DEVICE_FEATURES_SEL, value);
        return;
      case MMIO_DRIVER_FEATURES_SEL:
        s.setWord(S_DRIVER_FEATURES_SEL, value);
        return;
      case MMIO_DRIVER_FEATURES: {
        // Accepted only between DRIVER and FEATURES_OK (3.1.1).
        const sel = s.word(S_DRIVER_FEATURES_SEL);
        if ((status & (STATUS_DRIVER | STATUS_FEATURES_OK)) !== STATUS_DRIVER) return;
        if (sel === 0 || sel === 1) s.setWord(S_DRIVER_FEATURES + sel, value | 0);
        return;
      }
      case MMIO_QUEUE_SEL:
        s.setWord(S_QUEUE_SEL, value);
        return;
      case MMIO_QUEUE_NUM:
        if (queueWritable) s.setWord(S_QUEUE_NUM, value);
        return;
      case MMIO_QUEUE_READY:
        if (!queue0) return;
        if (value === 0) s.setWord(S_QUEUE_READY, 0);
        else if (this.queueConfigValid()) {
          s.setWord(S_QUEUE_READY, 1);
          s.kick();
        }
        return;
      case MMIO_INTERRUPT_ACK:
        s.acknowledgeLocked(value);
        return;
      case MMIO_QUEUE_DESC_LOW:
      case MMIO_QUEUE_DESC_HIGH:
      case MMIO_QUEUE_DRIVER_LOW:
      case MMIO_QUEUE_DRIVER_HIGH:
      case MMIO_QUEUE_DEVICE_LOW:
      case MMIO_QUEUE_DEVICE_HIGH:
        if (queueWritable)
          s.setWord(QUEUE_ADDRESS_WORDS[(offset - MMIO_QUEUE_DESC_LOW) >> 2], value);
        return;
      case MMIO_SHM_SEL:
        s.setWord(S_SHM_SEL, value);
        return;
      default:
        return; // read-only or reserved
    }
  }

  /**
   * A queue may be made ready with a power-of-two size up to QueueNumMax and
   * areas aligned as 2.7 requires (descriptors 16, available ring 2, used
   * ring 4); otherwise QueueReady stays 0.
   */
  private queueConfigValid(): boolean {
    const s = this.s;
    const num = s.word(S_QUEUE_NUM);
    if (num <= 0 || num > QUEUE_NUM_MAX || (num & (num - 1)) !== 0) return false;
    return (
      s.pair(S_QUEUE_DESC) % 16 === 0 &&
      s.pair(S_QUEUE_DRIVER) % 2 === 0 &&
      s.pair(S_QUEUE_DEVICE) % 4 === 0
    );
  }

  /** The driver status state machine (2.1, 3.1.1), under the lock. */
  private writeStatus(value: number): void {
    const s = this.s;
    if (value === 0) {
      // Reset. A batch in flight finishes (or abandons) first; until it
      // has, the old status reads back and the worker completes the reset.
      if (s.word(S_BUSY) !== 0) {
        s.setWord(S_RESET_PENDING, 1);
        s.kick();
      } else {
        s.resetLocked();
      }
      return;
    }
    if (s.word(S_RESET_PENDING) !== 0) return;
    const old = s.word(S_STATUS);
    // Bits only accumulate until a reset; DEVICE_NEEDS_RESET is the device's to set.
    let next = old | (value & CONTROL_WRITABLE_STATUS);
    const added = next & ~old;
    if (added & STATUS_FEATURES_OK && !this.featuresAcceptable()) next &= ~STATUS_FEATURES_OK;
    if (added & STATUS_DRIVER_OK && (next & STATUS_FEATURES_OK) === 0) next &= ~STATUS_DRIVER_OK;
    s.setWord(S_STATUS, next);
    // Requests the driver queued before DRIVER_OK are taken now.
    if (next & ~old & STATUS_DRIVER_OK) s.kick();
  }

  /** FEATURES_OK holds only for a subset of the offered features that includes VERSION_1. */
  private featuresAcceptable(): boolean {
    const s = this.s;
    const lo = s.word(S_DRIVER_FEATURES);
    const hi = s.word(S_DRIVER_FEATURES + 1);
    if ((lo & ~s.word(S_DEVICE_FEATURES)) !== 0) return false;
    if ((hi & ~s.word(S_DEVICE_FEATURES + 1)) !== 0) return false;
    return (hi & (1 << (F_VERSION_1 - 32))) !== 0;
  }
}

const QUEUE_ADDRESS_WORDS = [
  S_QUEUE_DESC,
  S_QUEUE_DESC + 1,
  -1,
  -1,
  S_QUEUE_DRIVER,
  S_QUEUE_DRIVER + 1,
  -1,
  -1,
  S_QUEUE_DEVICE,
  S_QUEUE_DEVICE + 1,
];

registerIoDeviceType(IO_DEVICE_VIRTIO_BLK, "virtio-mmio-blk", (vm, state) => {
  return new VirtioMmioBlk(vm, state);
});
