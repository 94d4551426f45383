/**
 * Reads a DTB back into a tree (Devicetree Specification v0.4, chapter 5),
 * and decodes property values. The blob is untrusted: every offset and
 * length is checked against the blob before use, the structure block is
 * walked without recursion, and every failure is a DeviceTreeFormatError
 * that says what is wrong and where.
 */
import {
  FDT_BEGIN_NODE,
  FDT_END,
  FDT_END_NODE,
  FDT_HEADER_SIZE,
  FDT_MAGIC,
  FDT_NOP,
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
  type MemoryReservation,
  alignUp,
  decodeName,
} from "./format.js";

export class DeviceTreeFormatError extends Error {
  constructor(message: string) {
    super(`DTB: ${message}`);
    this.name = "DeviceTreeFormatError";
  }
}

/** A node as read: mutable while the walk fills it in. */
interface ParsedNode extends FdtNode {
  readonly properties: Map<string, Uint8Array>;
  readonly children: ParsedNode[];
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const hex = (n: number | bigint) => `0x${n.toString(16)}`;

export function parseDeviceTree(blob: Uint8Array): Fdt {
  if (blob.length < FDT_HEADER_SIZE) {
    throw new DeviceTreeFormatError(`${blob.length} bytes is too short for the header`);
  }
  const view = new DataView(blob.buffer, blob.byteOffset, blob.length);
  const header = (offset: number) => view.getUint32(offset);
  if (header(HEADER_MAGIC) !== FDT_MAGIC) {
    throw new DeviceTreeFormatError(`bad magic ${hex(header(HEADER_MAGIC))}: not a DTB`);
  }
  const version = header(HEADER_VERSION);
  const lastCompVersion = header(HEADER_LAST_COMP_VERSION);
  // Version 17 added size_dt_struct, which bounds the walk below.
  if (version < FDT_VERSION || lastCompVersion > FDT_VERSION) {
    throw new DeviceTreeFormatError(
      `version ${version} (last compatible ${lastCompVersion}) is not readable as version ${FDT_VERSION}`,
    );
  }
  const totalSize = header(HEADER_TOTALSIZE);
  if (totalSize < FDT_HEADER_SIZE || totalSize > blob.length) {
    throw new DeviceTreeFormatError(`totalsize ${totalSize} but the blob is ${blob.length} bytes`);
  }
  const block = (name: string, offset: number, size: number, align: number) => {
    if (offset % align !== 0 || offset < FDT_HEADER_SIZE || offset + size > totalSize) {
      throw new DeviceTreeFormatError(
        `${name} (${size} bytes at ${hex(offset)}) is not ${align}-byte aligned ` +
          `between the header and totalsize ${hex(totalSize)}`,
      );
    }
  };
  const offStruct = header(HEADER_OFF_DT_STRUCT);
  const structSize = header(HEADER_SIZE_DT_STRUCT);
  const offStrings = header(HEADER_OFF_DT_STRINGS);
  const stringsSize = header(HEADER_SIZE_DT_STRINGS);
  block("structure block", offStruct, structSize, FDT_TOKEN_ALIGN);
  block("strings block", offStrings, stringsSize, 1);

  return {
    root: readStructure(
      blob.subarray(offStruct, offStruct + structSize),
      blob.subarray(offStrings, offStrings + stringsSize),
    ),
    reservations: readReservations(blob.subarray(0, totalSize), header(HEADER_OFF_MEM_RSVMAP)),
    bootCpuId: header(HEADER_BOOT_CPUID_PHYS),
  };
}

function readReservations(blob: Uint8Array, offset: number): MemoryReservation[] {
  if (offset % FDT_RSVMAP_ALIGN !== 0 || offset < FDT_HEADER_SIZE) {
    throw new DeviceTreeFormatError(`memory reservation block at ${hex(offset)} is misplaced`);
  }
  const view = new DataView(blob.buffer, blob.byteOffset, blob.length);
  const reservations: MemoryReservation[] = [];
  for (let at = offset; ; at += FDT_RESERVE_ENTRY_SIZE) {
    if (at + FDT_RESERVE_ENTRY_SIZE > blob.length) {
      throw new DeviceTreeFormatError("memory reservation block has no terminating entry");
    }
    const address = view.getBigUint64(at);
    const size = view.getBigUint64(at + 8);
    if (address === 0n && size === 0n) return reservations;
    reservations.push({ address, size });
  }
}

/** Walks the structure block: NOPs anywhere, each node's properties before its children. */
function readStructure(struct: Uint8Array, strings: Uint8Array): FdtNode {
  const view = new DataView(struct.buffer, struct.byteOffset, struct.length);
  let at = 0;
  const word = (what: string): number => {
    if (at + 4 > struct.length) {
      throw new DeviceTreeFormatError(`structure block ends where ${what} should be`);
    }
    const value = view.getUint32(at);
    at += 4;
    return value;
  };
  const nextToken = (): number => {
    let token = word("a token");
    while (token === FDT_NOP) token = word("a token");
    return token;
  };
  const nodeName = (): string => {
    const end = struct.indexOf(0, at);
    if (end < 0) throw new DeviceTreeFormatError(`node name at ${hex(at)} is not terminated`);
    const name = decodeName(struct.subarray(at, end));
    at = alignUp(end + 1, FDT_TOKEN_ALIGN);
    return name;
  };
  const propertyName = (offset: number): string => {
    const end = offset < strings.length ? strings.indexOf(0, offset) : -1;
    if (end < 0) {
      throw new DeviceTreeFormatError(`property name at strings offset ${hex(offset)} is invalid`);
    }
    return decodeName(strings.subarray(offset, end));
  };

  if (nextToken() !== FDT_BEGIN_NODE) {
    throw new DeviceTreeFormatError("structure block does not begin with the root node");
  }
  const root: ParsedNode = { name: nodeName(), properties: new Map(), children: [] };
  if (root.name !== "") {
    throw new DeviceTreeFormatError(`root node is named ${JSON.stringify(root.name)}`);
  }
  const path = [root];
  const where = () =>
    "/" +
    path
      .slice(1)
      .map((node) => node.name)
      .join("/");
  while (path.length > 0) {
    const node = path[path.length - 1];
    const tokenAt = at;
    const token = nextToken();
    if (token === FDT_PROP) {
      const length = word("a property length");
      const name = propertyName(word("a property name offset"));
      if (node.children.length > 0) {
        throw new DeviceTreeFormatError(`${where()}: property "${name}" follows a child node`);
      }
      if (node.properties.has(name)) {
        throw new DeviceTreeFormatError(`${where()}: duplicate property "${name}"`);
      }
      if (at + length > struct.length) {
        throw new DeviceTreeFormatError(`${where()}: property "${name}" runs past the block`);
      }
      node.properties.set(name, struct.slice(at, at + length));
      at = alignUp(at + length, FDT_TOKEN_ALIGN);
    } else if (token === FDT_BEGIN_NODE) {
      const child: ParsedNode = { name: nodeName(), properties: new Map(), children: [] };
      if (node.children.some((sibling) => sibling.name === child.name)) {
        throw new DeviceTreeFormatError(`${where()}: duplicate node "${child.name}"`);
      }
      node.children.push(child);
      path.push(child);
    } else if (token === FDT_END_NODE) {
      path.pop();
    } else {
      throw new DeviceTreeFormatError(
        `${where()}: unexpected token ${hex(token)} at ${hex(tokenAt)}`,
      );
    }
  }
  if (nextToken() !== FDT_END) {
    throw new DeviceTreeFormatError("the root node is not followed by FDT_END");
  }
  return root;
}

/** The node at an absolute path such as "/soc/serial@10000000", if there is one. */
export function findNode(fdt: Fdt, path: string): FdtNode | undefined {
  if (!path.startsWith("/")) throw new RangeError(`"${path}" is not an absolute node path`);
  let node: FdtNode | undefined = fdt.root;
  for (const name of path.split("/").filter((part) => part !== "")) {
    node = node.children.find((child) => child.name === name);
    if (node === undefined) return undefined;
  }
  return node;
}

/** A value as big-endian 32-bit cells (u32, reg, interrupts, phandles). */
export function decodeCells(value: Uint8Array): number[] {
  if (value.length % 4 !== 0) {
    throw new DeviceTreeFormatError(`a ${value.length}-byte value is not a list of cells`);
  }
  const view = new DataView(value.buffer, value.byteOffset, value.length);
  return Array.from({ length: value.length / 4 }, (_, i) => view.getUint32(i * 4));
}

/** A value as one big-endian 64-bit integer. */
export function decodeU64(value: Uint8Array): bigint {
  if (value.length !== 8)
    throw new DeviceTreeFormatError(`a ${value.length}-byte value is not a u64`);
  return new DataView(value.buffer, value.byteOffset, 8).getBigUint64(0);
}

/** A value as a <stringlist> (a <string> is a list of one). */
export function decodeStrings(value: Uint8Array): string[] {
  if (value.length === 0 || value[value.length - 1] !== 0) {
    throw new DeviceTreeFormatError("a string value is not NUL-terminated");
  }
  try {
    return utf8.decode(value.subarray(0, -1)).split("\0");
  } catch {
    throw new DeviceTreeFormatError("a string value is not UTF-8");
  }
}
