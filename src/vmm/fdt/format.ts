/**
 * The Flattened Devicetree (DTB) format of the Devicetree Specification
 * v0.4, chapter 5: the on-disk constants, and the in-memory shape of a tree
 * that the writer flattens and the reader produces. Every field of a blob is
 * big-endian.
 */

export const FDT_MAGIC = 0xd00d_feed;

/** The version written, and the oldest version a reader of it must understand. */
export const FDT_VERSION = 17;
export const FDT_LAST_COMP_VERSION = 16;

/** struct fdt_header: ten big-endian u32 fields, byte offsets below. */
export const FDT_HEADER_SIZE = 40;
export const HEADER_MAGIC = 0;
export const HEADER_TOTALSIZE = 4;
export const HEADER_OFF_DT_STRUCT = 8;
export const HEADER_OFF_DT_STRINGS = 12;
export const HEADER_OFF_MEM_RSVMAP = 16;
export const HEADER_VERSION = 20;
export const HEADER_LAST_COMP_VERSION = 24;
export const HEADER_BOOT_CPUID_PHYS = 28;
export const HEADER_SIZE_DT_STRINGS = 32;
export const HEADER_SIZE_DT_STRUCT = 36;

/** struct fdt_reserve_entry: u64 address, u64 size; the list ends with an all-zero entry. */
export const FDT_RESERVE_ENTRY_SIZE = 16;

/** Structure block tokens; each is a big-endian u32 on a 4-byte boundary. */
export const FDT_BEGIN_NODE = 0x1;
export const FDT_END_NODE = 0x2;
export const FDT_PROP = 0x3;
export const FDT_NOP = 0x4;
export const FDT_END = 0x9;

/** The memory reservation block is 8-byte aligned, the structure block 4-byte aligned. */
export const FDT_RSVMAP_ALIGN = 8;
export const FDT_TOKEN_ALIGN = 4;

export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

/**
 * Node and property names as bytes. The spec's character sets make them
 * ASCII; mapping each byte to one character (Latin-1) both ways keeps any
 * blob's names byte-for-byte through a read and a write, and makes a
 * character index a byte offset.
 */
export function encodeName(name: string): Uint8Array {
  const bytes = new Uint8Array(name.length);
  for (let i = 0; i < name.length; i++) {
    const code = name.charCodeAt(i);
    if (code > 0xff)
      throw new RangeError(`name ${JSON.stringify(name)} is not one byte a character`);
    bytes[i] = code;
  }
  return bytes;
}

export function decodeName(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("latin1");
}

/** A /memreserve/ entry: physical memory the client program must not use. */
export interface MemoryReservation {
  readonly address: bigint;
  readonly size: bigint;
}

/** A node: its name ("" for the root, else "name" or "name@unit-address"), raw property values in order, children in order. */
export interface FdtNode {
  readonly name: string;
  readonly properties: ReadonlyMap<string, Uint8Array>;
  readonly children: readonly FdtNode[];
}

/** Everything a DTB carries. */
export interface Fdt {
  readonly root: FdtNode;
  readonly reservations: readonly MemoryReservation[];
  /** The physical id of the boot CPU (header field boot_cpuid_phys). */
  readonly bootCpuId: number;
}
