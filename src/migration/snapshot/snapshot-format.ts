import { PAGE_SIZE } from "../../host/host-memory.js";

/**
 * A snapshot file: a running VM stopped at an exit boundary, its state and
 * all of its RAM, laid out so that a restore can start the guest before
 * reading any page and fetch each page on its own later.
 *
 *   0     header (64 bytes, little-endian):
 *           0  8   magic "FLTSNAP\0"
 *           8  u32 version
 *          12  u32 metadata length
 *          16  u32 CRC-32 of the metadata
 *          20  u32 CRC-32 of bytes 0-19
 *   64    metadata: JSON (SnapshotMetadata)
 *   crcOffset        u32 per page: CRC-32 of its 4 KiB
 *   zeroMapOffset    a bit per page: set for a page that reads as zeros
 *                    (never written in the file, which keeps a hole there)
 *   dataOffset       page i at dataOffset + i * 4 KiB (4 KiB aligned)
 *
 * The checksums are there because a restore installs each page into a
 * guest that is already running: a page it cannot trust must be caught
 * when it is read, not after the guest has used it.
 */

export const SNAPSHOT_MAGIC = Buffer.from("FLTSNAP\0", "latin1");
export const SNAPSHOT_VERSION = 1;
export const SNAPSHOT_HEADER_BYTES = 64;
/** Larger than any metadata this version writes, small enough to refuse a corrupt length. */
export const MAX_METADATA_BYTES = 16 << 20;

export const HDR_VERSION = 8;
export const HDR_METADATA_LENGTH = 12;
export const HDR_METADATA_CRC = 16;
export const HDR_HEADER_CRC = 20;

/** Where each part of the file starts, given the metadata's length and the page count. */
export interface SnapshotLayout {
  pages: number;
  crcOffset: number;
  zeroMapOffset: number;
  dataOffset: number;
  fileBytes: number;
}

export function snapshotLayout(metadataBytes: number, pages: number): SnapshotLayout {
  const crcOffset = alignUp(SNAPSHOT_HEADER_BYTES + metadataBytes, 8);
  const zeroMapOffset = crcOffset + pages * 4;
  const dataOffset = alignUp(zeroMapOffset + Math.ceil(pages / 8), PAGE_SIZE);
  return { pages, crcOffset, zeroMapOffset, dataOffset, fileBytes: dataOffset + pages * PAGE_SIZE };
}

function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** A snapshot file that cannot be restored, with the reason. */
export class SnapshotError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SnapshotError";
  }
}
