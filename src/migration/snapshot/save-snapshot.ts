import {
  closeSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { crc32 } from "node:zlib";
import { PAGE_SIZE } from "../../host/host-memory.js";
import {
  DIRTIER_GUEST,
  type DeviceStates,
  type MigratableVm,
  type MigratableVmSpec,
  savedVcpusToJson,
} from "../machine/migratable-vm.js";
import { PageBitmap } from "../page-bitmap.js";
import {
  HDR_HEADER_CRC,
  HDR_METADATA_CRC,
  HDR_METADATA_LENGTH,
  HDR_VERSION,
  SNAPSHOT_HEADER_BYTES,
  SNAPSHOT_MAGIC,
  SNAPSHOT_VERSION,
  SnapshotError,
  snapshotLayout,
} from "./snapshot-format.js";

/** What a snapshot file records besides the pages (JSON). */
export interface SnapshotMetadata {
  guest: string;
  spec: MigratableVmSpec;
  /** As the SWITCHOVER carries them: finished vCPUs with their checksum, others with their state. */
  vcpus: unknown[];
  devices: DeviceStates;
  /** The guest clock (KVM_GET_CLOCK) when the vCPUs stopped, in ticks, as a decimal string. */
  clock: string;
  savedAtWallMs: number;
}

export interface SaveStats {
  bytes: number;
  pages: number;
  zeroPages: number;
  /** The vCPUs stopped until the file was written. */
  saveTimeMs: number;
}

/** Pages copied out of guest RAM per write. */
const CHUNK_PAGES = 256;
const ZERO_PAGE_CRC = crc32(Buffer.alloc(PAGE_SIZE));

/** Write all of `data` at `position` (a write may take less than it was given). */
function writeAll(fd: number, data: Uint8Array, position: number): void {
  for (let done = 0; done < data.length;) {
    done += writeSync(fd, data, done, data.length - done, position + done);
  }
}

/**
 * Stop `vm`'s vCPUs at their next exit and its devices, and write it whole
 * to `path`: state, page checksums, then the pages. The file appears only
 * once complete (written beside it, then renamed). The VM stays paused.
 */
export async function saveSnapshot(vm: MigratableVm, path: string): Promise<SaveStats> {
  const saved = await vm.pause();
  const stoppedAt = performance.now();
  if (saved.every((v) => v.done)) {
    throw new SnapshotError("the guest finished its workload before the snapshot was taken");
  }
  const devices = await vm.saveDevices();
  const metadata: SnapshotMetadata = {
    guest: DIRTIER_GUEST,
    spec: vm.spec,
    vcpus: savedVcpusToJson(saved),
    devices,
    clock: vm.vm.getClock().toString(),
    savedAtWallMs: performance.timeOrigin + performance.now(),
  };
  const metadataBytes = Buffer.from(JSON.stringify(metadata));
  const pages = vm.pages.pages;
  const layout = snapshotLayout(metadataBytes.length, pages);
  const crcs = Buffer.alloc(pages * 4);
  const zero = new PageBitmap(pages);
  const partial = `${path}.partial`;
  const fd = openSync(partial, "w");
  try {
    const chunk = Buffer.alloc(CHUNK_PAGES * PAGE_SIZE);
    for (let first = 0; first < pages; first += CHUNK_PAGES) {
      const count = Math.min(CHUNK_PAGES, pages - first);
      // Runs of pages with contents, one write each; a page never touched stays a hole.
      let run = 0;
      const flush = (end: number) => {
        if (end > run) {
          const bytes = (end - run) * PAGE_SIZE;
          writeAll(
            fd,
            chunk.subarray(run * PAGE_SIZE, run * PAGE_SIZE + bytes),
            layout.dataOffset + (first + run) * PAGE_SIZE,
          );
        }
        run = end + 1;
      };
      for (let i = 0; i < count; i++) {
        const page = first + i;
        const at = i * PAGE_SIZE;
        if (vm.pages.copyOut(page, chunk, at)) {
          crcs.writeUInt32LE(crc32(chunk.subarray(at, at + PAGE_SIZE)), page * 4);
        } else {
          zero.set(page);
          crcs.writeUInt32LE(ZERO_PAGE_CRC, page * 4);
          flush(i);
        }
      }
      flush(count);
    }
    const header = Buffer.alloc(SNAPSHOT_HEADER_BYTES);
    SNAPSHOT_MAGIC.copy(header, 0);
    header.writeUInt32LE(SNAPSHOT_VERSION, HDR_VERSION);
    header.writeUInt32LE(metadataBytes.length, HDR_METADATA_LENGTH);
    header.writeUInt32LE(crc32(metadataBytes), HDR_METADATA_CRC);
    header.writeUInt32LE(crc32(header.subarray(0, HDR_HEADER_CRC)), HDR_HEADER_CRC);
    writeAll(fd, header, 0);
    writeAll(fd, metadataBytes, SNAPSHOT_HEADER_BYTES);
    writeAll(fd, crcs, layout.crcOffset);
    writeAll(fd, zero.toBytes(), layout.zeroMapOffset);
    ftruncateSync(fd, layout.fileBytes);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    rmSync(partial, { force: true });
    throw error;
  }
  closeSync(fd);
  renameSync(partial, path);
  return {
    bytes: layout.fileBytes,
    pages,
    zeroPages: zero.count(),
    saveTimeMs: performance.now() - stoppedAt,
  };
}
