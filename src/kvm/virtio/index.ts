/**
 * faultline's in-hypervisor virtio devices. A VMM creates a block device on
 * a VM and starts its worker:
 *
 *   const disk = host.memfdCreate("disk", bytes);   // filled with host.memfds.pwrite
 *   const blk = createVirtioBlk(vm, { gpa: 0x1000_1000, memfd: disk });
 *   const worker = startBlockDeviceWorker(kvm, vm, blk);
 *   await worker.online;
 *   ...
 *   await worker.stop();
 *   const saved = saveVirtioBlkState(blk);   // to migrate it: restoreVirtioBlkState
 *   blk.destroy();
 */
export {
  createVirtioBlk,
  IO_DEVICE_VIRTIO_BLK,
  QUEUE_NUM_MAX,
  SEG_MAX,
  VirtioBlkDevice,
  type VirtioBlkOptions,
} from "./blk.js";
export { BlockDeviceWorker, startBlockDeviceWorker } from "./blk-worker.js";
export { BlockQueue } from "./blk-queue.js";
export {
  restoreVirtioBlkState,
  saveVirtioBlkState,
  type VirtioBlkSavedState,
} from "./blk-saved-state.js";
export * from "./virtio.js";
