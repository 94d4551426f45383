/**
 * A devicetree under construction, in the spirit of libfdt's fdt_add_subnode
 * and fdt_setprop_*: nodes are added under their parent, and each property
 * is encoded to its big-endian bytes when it is added. Every name and value
 * is checked as it is added, against the Devicetree Specification v0.4
 * (section 2.2), so a mistake is reported with the path of the node it was
 * made on rather than found later by a guest that cannot parse its tree.
 */
import type { Fdt, FdtNode, MemoryReservation } from "./format.js";

export class DeviceTreeError extends Error {
  constructor(message: string) {
    super(`device tree: ${message}`);
    this.name = "DeviceTreeError";
  }
}

/** node-name: 1 to 31 characters from the set of table 2.1, starting with a letter. */
const NODE_NAME = /^[A-Za-z][0-9A-Za-z,._+-]{0,30}$/;
/** unit-address: the same character set; its format is the parent bus's business. */
const UNIT_ADDRESS = /^[0-9A-Za-z,._+-]+$/;
/** Property names: 1 to 31 characters from the set of table 2.2. */
const PROPERTY_NAME = /^[0-9A-Za-z,._+?#-]{1,31}$/;

/** Written only through phandle(), so that every phandle in a tree is unique. */
const PHANDLE_PROPERTIES = new Set(["phandle", "linux,phandle"]);

const U32_LIMIT = 2 ** 32;
const U64_LIMIT = 1n << 64n;
/** 0 and 0xffffffff are not valid phandles (section 2.3.3). */
const PHANDLE_MAX = 0xffff_fffe;

const utf8 = new TextEncoder();

/** Hands out phandles 1, 2, 3, ... across one tree. */
class PhandleAllocator {
  private last = 0;

  next(): number {
    if (this.last === PHANDLE_MAX) throw new DeviceTreeError("out of phandles");
    return ++this.last;
  }
}

export class DeviceTree implements Fdt {
  readonly root: DeviceTreeNode;
  readonly bootCpuId: number;
  private readonly reserved: MemoryReservation[] = [];

  constructor(options: { bootCpuId?: number } = {}) {
    this.bootCpuId = options.bootCpuId ?? 0;
    checkU32("boot CPU id", this.bootCpuId);
    this.root = new DeviceTreeNode("", "/", new PhandleAllocator());
  }

  get reservations(): readonly MemoryReservation[] {
    return this.reserved;
  }

  /** Adds a memory reservation block entry (a dts /memreserve/). */
  reserveMemory(address: number | bigint, size: number | bigint): this {
    const start = toU64("reservation address", address);
    const length = toU64("reservation size", size);
    // A zero size would make an entry at address 0 read as the end of the list.
    if (length === 0n) throw new DeviceTreeError("a memory reservation cannot be empty");
    if (start + length > U64_LIMIT) {
      throw new DeviceTreeError(`memory reservation at ${hex(start)} runs past 2^64`);
    }
    this.reserved.push({ address: start, size: length });
    return this;
  }
}

/** A node of a DeviceTree; created by DeviceTree (the root) and addNode. */
class DeviceTreeNode implements FdtNode {
  private readonly props = new Map<string, Uint8Array>();
  private readonly subnodes: DeviceTreeNode[] = [];
  private phandleValue: number | undefined;

  constructor(
    readonly name: string,
    /** The full path, as stdout-path and aliases name a node. */
    readonly path: string,
    private readonly phandles: PhandleAllocator,
  ) {}

  get properties(): ReadonlyMap<string, Uint8Array> {
    return this.props;
  }

  get children(): readonly DeviceTreeNode[] {
    return this.subnodes;
  }

  /** Adds a child named "node-name" or "node-name@unit-address". */
  addNode(name: string): DeviceTreeNode {
    checkNodeName(this.path, name);
    if (this.subnodes.some((child) => child.name === name)) {
      throw new DeviceTreeError(`${this.path}: duplicate node "${name}"`);
    }
    if (this.props.has(name)) {
      throw new DeviceTreeError(`${this.path}: node "${name}" has the name of a property`);
    }
    const path = this.path === "/" ? `/${name}` : `${this.path}/${name}`;
    const child = new DeviceTreeNode(name, path, this.phandles);
    this.subnodes.push(child);
    return child;
  }

  /** A property with no value: true by being there (e.g. interrupt-controller, ranges). */
  empty(name: string): this {
    return this.set(name, new Uint8Array(0));
  }

  u32(name: string, value: number): this {
    return this.cells(name, [value]);
  }

  /** One 64-bit value, as two cells (a dts /bits/ 64 <value>). */
  u64(name: string, value: number | bigint): this {
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setBigUint64(0, toU64(`${this.path}: ${name}`, value));
    return this.set(name, bytes);
  }

  /** A <prop-encoded-array> of 32-bit cells, e.g. reg or interrupts-extended. */
  cells(name: string, values: readonly number[]): this {
    if (values.length === 0) {
      throw new DeviceTreeError(`${this.path}: ${name} has no cells (use empty() for a flag)`);
    }
    const bytes = new Uint8Array(values.length * 4);
    const view = new DataView(bytes.buffer);
    values.forEach((value, i) => {
      checkU32(`${this.path}: ${name}[${i}]`, value);
      view.setUint32(i * 4, value);
    });
    return this.set(name, bytes);
  }

  string(name: string, value: string): this {
    return this.strings(name, [value]);
  }

  /** A <stringlist>: each string NUL-terminated, e.g. compatible. */
  strings(name: string, values: readonly string[]): this {
    if (values.length === 0) {
      throw new DeviceTreeError(`${this.path}: ${name} has no strings (use empty() for a flag)`);
    }
    for (const value of values) {
      if (value.includes("\0")) {
        throw new DeviceTreeError(
          `${this.path}: ${name} string ${JSON.stringify(value)} has a NUL`,
        );
      }
    }
    return this.set(name, utf8.encode(values.map((value) => `${value}\0`).join("")));
  }

  /** A property whose value is given as raw bytes. */
  bytes(name: string, value: Uint8Array): this {
    return this.set(name, value.slice());
  }

  /** This node's phandle, allocated (and its phandle property added) on first use. */
  phandle(): number {
    if (this.phandleValue === undefined) {
      const value = this.phandles.next();
      this.props.set("phandle", cell(value));
      this.phandleValue = value;
    }
    return this.phandleValue;
  }

  private set(name: string, value: Uint8Array): this {
    if (!PROPERTY_NAME.test(name)) {
      throw new DeviceTreeError(
        `${this.path}: invalid property name ${JSON.stringify(name)} ` +
          "(1 to 31 of 0-9 a-z A-Z , . _ + ? # -)",
      );
    }
    if (PHANDLE_PROPERTIES.has(name)) {
      throw new DeviceTreeError(`${this.path}: ${name} is set by phandle(), not directly`);
    }
    if (this.props.has(name)) {
      throw new DeviceTreeError(`${this.path}: duplicate property "${name}"`);
    }
    // dtc warns about a property and a child sharing a name (node_name_vs_property_name).
    if (this.subnodes.some((child) => child.name === name)) {
      throw new DeviceTreeError(`${this.path}: property "${name}" has the name of a child node`);
    }
    this.props.set(name, value);
    return this;
  }
}

export type { DeviceTreeNode };

function checkNodeName(parent: string, name: string): void {
  const at = name.indexOf("@");
  const nodeName = at < 0 ? name : name.slice(0, at);
  const unitAddress = at < 0 ? null : name.slice(at + 1);
  if (!NODE_NAME.test(nodeName) || (unitAddress !== null && !UNIT_ADDRESS.test(unitAddress))) {
    throw new DeviceTreeError(
      `${parent}: invalid node name ${JSON.stringify(name)} (node-name: a letter, then up to 30 ` +
        "of 0-9 a-z A-Z , . _ + -; then optionally @unit-address of the same characters)",
    );
  }
}

function checkU32(what: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value >= U32_LIMIT) {
    throw new DeviceTreeError(`${what} is ${value}, not a 32-bit unsigned integer`);
  }
}

function toU64(what: string, value: number | bigint): bigint {
  if (typeof value === "number" && !Number.isSafeInteger(value)) {
    throw new DeviceTreeError(`${what} is ${value}, not an exact integer (pass a bigint)`);
  }
  const big = BigInt(value);
  if (big < 0n || big >= U64_LIMIT) {
    throw new DeviceTreeError(`${what} is ${value}, not a 64-bit unsigned integer`);
  }
  return big;
}

function cell(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value);
  return bytes;
}

function hex(value: bigint): string {
  return `0x${value.toString(16)}`;
}
