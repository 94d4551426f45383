import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { crc32 } from "node:zlib";
import { PAGE_SIZE } from "../../host/host-memory.js";
import {
  DIRTIER_GUEST,
  type DeviceStates,
  type MigratableVmSpec,
  type SavedVcpu,
  savedVcpusFromJson,
} from "../machine/migratable-vm.js";
import { PageBitmap } from "../page-bitmap.js";
import type { SnapshotMetadata } from "./save-snapshot.js";
import {
  HDR_HEADER_CRC,
  HDR_METADATA_CRC,
  HDR_METADATA_LENGTH,
  HDR_VERSION,
  MAX_METADATA_BYTES,
  SNAPSHOT_HEADER_BYTES,
  SNAPSHOT_MAGIC,
  SNAPSHOT_VERSION,
  SnapshotError,
  type SnapshotLayout,
  snapshotLayout,
} from "./snapshot-format.js";

const SPEC_NUMBERS = [
  "memBytes",
  "vcpus",
  "pageSize",
  "iterations",
  "storesPerIteration",
  "ioEvery",
] as const;
const BACKINGS = ["guest_memfd", "anonymous", "shmem"];
const PAGE_SIZES: number[] = [PAGE_SIZE, 2 << 20, 1 << 30];

/**
 * An open snapshot file, checked as far as it can be without reading the
 * pages: header, metadata and its checksum, the size the layout needs.
 * Pages are read on demand, each checked against its checksum.
 */
export class SnapshotFile {
  readonly spec: MigratableVmSpec;
  readonly vcpus: SavedVcpu[];
  readonly devices: DeviceStates;
  readonly clock: bigint;
  readonly layout: SnapshotLayout;
  readonly zero: PageBitmap;
  private readonly crcs: Buffer;
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly fd: number,
  ) {
    const size = fstatSync(fd).size;
    const header = this.read(Buffer.alloc(SNAPSHOT_HEADER_BYTES), 0, "header");
    if (!header.subarray(0, SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) {
      throw new SnapshotError("not a faultline snapshot (bad magic)");
    }
    if (header.readUInt32LE(HDR_HEADER_CRC) !== crc32(header.subarray(0, HDR_HEADER_CRC))) {
      throw new SnapshotError("header corrupt: checksum mismatch");
    }
    const version = header.readUInt32LE(HDR_VERSION);
    if (version !== SNAPSHOT_VERSION) {
      throw new SnapshotError(
        `snapshot version ${version}; this faultline reads version ${SNAPSHOT_VERSION}`,
      );
    }
    const metadataLength = header.readUInt32LE(HDR_METADATA_LENGTH);
    if (metadataLength === 0 || metadataLength > MAX_METADATA_BYTES) {
      throw new SnapshotError(`header corrupt: metadata of ${metadataLength} bytes`);
    }
    const metadataBytes = this.read(
      Buffer.alloc(metadataLength),
      SNAPSHOT_HEADER_BYTES,
      "metadata",
    );
    if (crc32(metadataBytes) !== header.readUInt32LE(HDR_METADATA_CRC)) {
      throw new SnapshotError("metadata corrupt: checksum mismatch");
    }
    const metadata = parseMetadata(metadataBytes);
    this.spec = metadata.spec;
    try {
      this.vcpus = savedVcpusFromJson(metadata.vcpus, this.spec.vcpus);
    } catch (error) {
      throw new SnapshotError(`malformed vCPU state: ${(error as Error).message}`);
    }
    this.devices = metadata.devices;
    this.layout = snapshotLayout(metadataLength, this.spec.memBytes / PAGE_SIZE);
    if (size < this.layout.fileBytes) {
      throw new SnapshotError(
        `truncated: ${size} bytes, a snapshot of ${this.spec.memBytes} bytes of RAM has ${this.layout.fileBytes}`,
      );
    }
    const pages = this.layout.pages;
    this.crcs = this.read(Buffer.alloc(pages * 4), this.layout.crcOffset, "page checksums");
    const zeroMap = this.read(
      Buffer.alloc(Math.ceil(pages / 8)),
      this.layout.zeroMapOffset,
      "zero-page map",
    );
    this.zero = PageBitmap.fromBytes(pages, zeroMap);
    this.clock = BigInt(metadata.clock);
  }

  /** Open and check `path`; SnapshotError (or the system's error) if it cannot be restored. */
  static open(path: string): SnapshotFile {
    const fd = openSync(path, "r");
    try {
      return new SnapshotFile(path, fd);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  get pages(): number {
    return this.layout.pages;
  }

  /**
   * Read `count` pages from `first` into `out` (4 KiB each from 0), each
   * checked against its checksum; zero pages read as zeros.
   */
  readPages(first: number, count: number, out: Buffer): void {
    const bytes = count * PAGE_SIZE;
    this.read(out.subarray(0, bytes), this.layout.dataOffset + first * PAGE_SIZE, "pages");
    for (let i = 0; i < count; i++) {
      const page = first + i;
      const data = out.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
      if (crc32(data) !== this.crcs.readUInt32LE(page * 4)) {
        throw new SnapshotError(`page ${page} corrupt: checksum mismatch`);
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }

  private read(out: Buffer, position: number, what: string): Buffer {
    let done = 0;
    while (done < out.length) {
      const n = readSync(this.fd, out, done, out.length - done, position + done);
      if (n === 0) throw new SnapshotError(`truncated: the file ends inside its ${what}`);
      done += n;
    }
    return out;
  }
}

function parseMetadata(bytes: Buffer): SnapshotMetadata {
  let metadata: SnapshotMetadata;
  try {
    metadata = JSON.parse(bytes.toString()) as SnapshotMetadata;
  } catch (error) {
    throw new SnapshotError(`metadata is not JSON: ${(error as Error).message}`);
  }
  if (typeof metadata !== "object" || metadata === null) {
    throw new SnapshotError("metadata is not a JSON object");
  }
  if (metadata.guest !== DIRTIER_GUEST) {
    throw new SnapshotError(
      `a snapshot of guest ${JSON.stringify(metadata.guest)}; this faultline restores ${DIRTIER_GUEST}`,
    );
  }
  const spec = metadata.spec as unknown as Record<string, unknown> | null;
  if (typeof spec !== "object" || spec === null) throw new SnapshotError("metadata without a VM");
  for (const key of SPEC_NUMBERS) {
    const value = spec[key];
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
      throw new SnapshotError(`metadata: VM ${key} ${JSON.stringify(value)} is not a count`);
    }
  }
  if (metadata.spec.vcpus === 0 || metadata.spec.iterations === 0) {
    throw new SnapshotError("metadata: a VM without vCPUs or work");
  }
  if (!PAGE_SIZES.includes(metadata.spec.pageSize)) {
    throw new SnapshotError(`metadata: backing page size ${metadata.spec.pageSize}`);
  }
  if (!BACKINGS.includes(spec.backing as string)) {
    throw new SnapshotError(`metadata: VM backing ${JSON.stringify(spec.backing)}`);
  }
  if (metadata.spec.memBytes % PAGE_SIZE !== 0 || metadata.spec.memBytes === 0) {
    throw new SnapshotError(`metadata: RAM of ${metadata.spec.memBytes} bytes`);
  }
  if (typeof metadata.clock !== "string" || !/^\d+$/.test(metadata.clock)) {
    throw new SnapshotError(`metadata: guest clock ${JSON.stringify(metadata.clock)}`);
  }
  if (typeof metadata.devices !== "object" || metadata.devices === null) {
    throw new SnapshotError("metadata without device state");
  }
  return metadata;
}
