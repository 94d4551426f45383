/**
 * Flattens a devicetree into a DTB (Devicetree Specification v0.4, chapter
 * 5): header, memory reservation block, structure block, strings block, in
 * that order and with no free space, as dtc lays them out. The strings
 * block shares a name with the tail of a longer one ("cells" inside
 * "#address-cells") the way dtc's stringtable_insert does, so a tree
 * flattened here and the same tree compiled by dtc are the same bytes.
 */
import {
  FDT_BEGIN_NODE,
  FDT_END,
  FDT_END_NODE,
  FDT_HEADER_SIZE,
  FDT_LAST_COMP_VERSION,
  FDT_MAGIC,
  FDT_PROP,
  FDT_RESERVE_ENTRY_SIZE,
  FDT_RSVMAP_ALIGN,
  FDT_TOKEN_ALIGN,
  FDT_VERSION,
  type Fdt,
  type FdtNode,
  HEADER_BOOT_CPUID_PHYS,
  HEADER_LAST_COMP_VERSION,
  HEADER_MAGIC,
  HEADER_OFF_DT_STRINGS,
  HEADER_OFF_DT_STRUCT,
  HEADER_OFF_MEM_RSVMAP,
  HEADER_SIZE_DT_STRINGS,
  HEADER_SIZE_DT_STRUCT,
  HEADER_TOTALSIZE,
  HEADER_VERSION,
  alignUp,
  encodeName,
} from "./format.js";

export function flattenDeviceTree(fdt: Fdt): Uint8Array {
  const strings = new StringsBlock();
  const struct = new StructureBlock();
  struct.node(fdt.root, strings);
  struct.token(FDT_END);

  const offRsvmap = alignUp(FDT_HEADER_SIZE, FDT_RSVMAP_ALIGN);
  // One entry per reservation, then the all-zero entry that ends the list.
  const offStruct = offRsvmap + (fdt.reservations.length + 1) * FDT_RESERVE_ENTRY_SIZE;
  const structBytes = struct.bytes();
  const offStrings = offStruct + structBytes.length;
  const stringsBytes = strings.bytes();
  const totalSize = offStrings + stringsBytes.length;

  const blob = new Uint8Array(totalSize);
  const view = new DataView(blob.buffer);
  view.setUint32(HEADER_MAGIC, FDT_MAGIC);
  view.setUint32(HEADER_TOTALSIZE, totalSize);
  view.setUint32(HEADER_OFF_DT_STRUCT, offStruct);
  view.setUint32(HEADER_OFF_DT_STRINGS, offStrings);
  view.setUint32(HEADER_OFF_MEM_RSVMAP, offRsvmap);
  view.setUint32(HEADER_VERSION, FDT_VERSION);
  view.setUint32(HEADER_LAST_COMP_VERSION, FDT_LAST_COMP_VERSION);
  view.setUint32(HEADER_BOOT_CPUID_PHYS, fdt.bootCpuId);
  view.setUint32(HEADER_SIZE_DT_STRINGS, stringsBytes.length);
  view.setUint32(HEADER_SIZE_DT_STRUCT, structBytes.length);
  fdt.reservations.forEach(({ address, size }, i) => {
    view.setBigUint64(offRsvmap + i * FDT_RESERVE_ENTRY_SIZE, address);
    view.setBigUint64(offRsvmap + i * FDT_RESERVE_ENTRY_SIZE + 8, size);
  });
  blob.set(structBytes, offStruct);
  blob.set(stringsBytes, offStrings);
  return blob;
}

/** Property names, each NUL-terminated, each stored once. */
class StringsBlock {
  private table = "";

  /** The offset of `name` in the block, adding it if no string ends with it. */
  offsetOf(name: string): number {
    // The NUL makes a match the tail of one string, never a span of two.
    const found = this.table.indexOf(`${name}\0`);
    if (found >= 0) return found;
    const offset = this.table.length;
    this.table += `${name}\0`;
    return offset;
  }

  bytes(): Uint8Array {
    return encodeName(this.table);
  }
}

/** Tokens and their payloads, each token on a 4-byte boundary. */
class StructureBlock {
  private buffer = new Uint8Array(1024);
  private length = 0;

  node(node: FdtNode, strings: StringsBlock): void {
    this.token(FDT_BEGIN_NODE);
    this.padded(encodeName(`${node.name}\0`));
    for (const [name, value] of node.properties) {
      this.token(FDT_PROP);
      this.word(value.length);
      this.word(strings.offsetOf(name));
      this.padded(value);
    }
    for (const child of node.children) this.node(child, strings);
    this.token(FDT_END_NODE);
  }

  token(token: number): void {
    this.word(token);
  }

  bytes(): Uint8Array {
    return this.buffer.subarray(0, this.length);
  }

  private word(value: number): void {
    this.reserve(4);
    new DataView(this.buffer.buffer).setUint32(this.length, value);
    this.length += 4;
  }

  /** Bytes followed by zeros up to the next token boundary. */
  private padded(bytes: Uint8Array): void {
    const size = alignUp(bytes.length, FDT_TOKEN_ALIGN);
    this.reserve(size);
    this.buffer.set(bytes, this.length);
    this.buffer.fill(0, this.length + bytes.length, this.length + size);
    this.length += size;
  }

  private reserve(size: number): void {
    if (this.length + size <= this.buffer.length) return;
    const grown = new Uint8Array(Math.max(this.buffer.length * 2, this.length + size));
    grown.set(this.bytes());
    this.buffer = grown;
  }
}
