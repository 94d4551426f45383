/**
 * The device tree builder: how each kind of property value is encoded, and
 * that names, values and duplicates the spec forbids are refused with an
 * error that names the node.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DeviceTree, DeviceTreeError } from "../../../src/vmm/fdt/tree.js";

const bytes = (...values: number[]) => Uint8Array.from(values);

describe("property values", () => {
  test("each kind encodes big-endian, strings NUL-terminated", () => {
    const node = new DeviceTree().root
      .empty("ranges")
      .u32("u32", 0x1234_5678)
      .u64("u64", 0x1_0000_0002n)
      .u64("u64-number", 0x8000_0000)
      .cells("cells", [0, 0xffff_ffff, 7])
      .string("string", "ns16550a")
      .strings("strings", ["a", "", "bc"])
      .bytes("bytes", bytes(1, 2, 3));
    const value = (name: string) => node.properties.get(name);
    assert.deepEqual(value("ranges"), bytes());
    assert.deepEqual(value("u32"), bytes(0x12, 0x34, 0x56, 0x78));
    assert.deepEqual(value("u64"), bytes(0, 0, 0, 1, 0, 0, 0, 2));
    assert.deepEqual(value("u64-number"), bytes(0, 0, 0, 0, 0x80, 0, 0, 0));
    assert.deepEqual(value("cells"), bytes(0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 7));
    assert.deepEqual(value("string"), new TextEncoder().encode("ns16550a\0"));
    assert.deepEqual(value("strings"), new TextEncoder().encode("a\0\0bc\0"));
    assert.deepEqual(value("bytes"), bytes(1, 2, 3));
    assert.deepEqual(
      [...node.properties.keys()],
      ["ranges", "u32", "u64", "u64-number", "cells", "string", "strings", "bytes"],
      "properties keep the order they were added in",
    );
  });

  test("a raw bytes value is copied, so later changes to the caller's array do not leak in", () => {
    const source = bytes(1, 2);
    const node = new DeviceTree().root.bytes("raw", source);
    source[0] = 9;
    assert.deepEqual(node.properties.get("raw"), bytes(1, 2));
  });

  test("out-of-range numbers are refused", () => {
    const node = new DeviceTree().root.addNode("n");
    for (const value of [-1, 2 ** 32, 1.5, Number.NaN]) {
      assert.throws(() => node.u32("x", value), /\/n: x\[0\] is .*not a 32-bit unsigned integer/);
    }
    assert.throws(() => node.cells("x", [1, -2]), /\/n: x\[1\] is -2/);
    assert.throws(() => node.u64("x", -1n), /not a 64-bit unsigned integer/);
    assert.throws(() => node.u64("x", 1n << 64n), /not a 64-bit unsigned integer/);
    assert.throws(() => node.u64("x", 2 ** 53), /not an exact integer \(pass a bigint\)/);
    node.u64("max", (1n << 64n) - 1n);
    assert.deepEqual(node.properties.get("max"), new Uint8Array(8).fill(0xff));
  });

  test("empty lists and NULs inside strings are refused", () => {
    const node = new DeviceTree().root;
    assert.throws(() => node.cells("x", []), /x has no cells \(use empty\(\) for a flag\)/);
    assert.throws(() => node.strings("x", []), /x has no strings/);
    assert.throws(() => node.string("x", "a\0b"), /x string "a\\u0000b" has a NUL/);
  });
});

describe("names", () => {
  test("node names follow node-name[@unit-address]", () => {
    const root = new DeviceTree().root;
    for (const name of [
      "cpus",
      "cpu@0",
      "virtio_mmio@10001000",
      "a,b.c_d+e-f@1,2",
      "x".repeat(31),
    ]) {
      root.addNode(name);
    }
    for (const name of ["", "0cpu", "x".repeat(32), "a b", "a/b", "cpu@", "a@1@2", "@1", "é"]) {
      assert.throws(
        () => root.addNode(name),
        (error: unknown) =>
          error instanceof DeviceTreeError &&
          error.message.startsWith(`device tree: /: invalid node name ${JSON.stringify(name)}`),
        name,
      );
    }
  });

  test("property names are 1 to 31 characters of the property character set", () => {
    const node = new DeviceTree().root.addNode("n");
    for (const name of ["#address-cells", "riscv,isa", "a?", "A.b_c+d", "x".repeat(31)]) {
      node.empty(name);
    }
    for (const name of ["", "x".repeat(32), "a b", "a@b", "a/b", "é"]) {
      assert.throws(
        () => node.empty(name),
        /^DeviceTreeError: device tree: \/n: invalid property name/,
        name,
      );
    }
  });

  test("paths name the node from the root", () => {
    const root = new DeviceTree().root;
    const serial = root.addNode("soc").addNode("serial@10000000");
    assert.equal(root.path, "/");
    assert.equal(serial.path, "/soc/serial@10000000");
    assert.equal(serial.name, "serial@10000000");
  });

  test("no two properties, no two children, and no property and child share a name", () => {
    const node = new DeviceTree().root.addNode("soc");
    node.u32("reg", 1).addNode("child");
    assert.throws(() => node.u32("reg", 2), /\/soc: duplicate property "reg"/);
    assert.throws(() => node.addNode("child"), /\/soc: duplicate node "child"/);
    assert.throws(() => node.addNode("reg"), /\/soc: node "reg" has the name of a property/);
    assert.throws(
      () => node.empty("child"),
      /\/soc: property "child" has the name of a child node/,
    );
  });
});

describe("phandles", () => {
  test("allocated once per node, unique across the tree, starting at 1", () => {
    const tree = new DeviceTree();
    const a = tree.root.addNode("a");
    const b = tree.root.addNode("b").addNode("c");
    assert.equal(a.phandle(), 1);
    assert.equal(b.phandle(), 2);
    assert.equal(a.phandle(), 1);
    assert.deepEqual(a.properties.get("phandle"), bytes(0, 0, 0, 1));
    assert.deepEqual(b.properties.get("phandle"), bytes(0, 0, 0, 2));
  });

  test("phandle properties are only written by phandle()", () => {
    const node = new DeviceTree().root;
    assert.throws(() => node.u32("phandle", 1), /phandle is set by phandle\(\), not directly/);
    assert.throws(() => node.u32("linux,phandle", 1), /linux,phandle is set by phandle\(\)/);
  });
});

describe("memory reservations and the boot CPU", () => {
  test("reservations are kept in order", () => {
    const tree = new DeviceTree({ bootCpuId: 3 })
      .reserveMemory(0x8000_0000, 0x20_0000)
      .reserveMemory(0xffff_ffff_ffff_f000n, 0x1000n);
    assert.equal(tree.bootCpuId, 3);
    assert.deepEqual(tree.reservations, [
      { address: 0x8000_0000n, size: 0x20_0000n },
      { address: 0xffff_ffff_ffff_f000n, size: 0x1000n },
    ]);
  });

  test("empty, negative and wrapping reservations are refused", () => {
    const tree = new DeviceTree();
    assert.throws(() => tree.reserveMemory(0, 0), /a memory reservation cannot be empty/);
    assert.throws(() => tree.reserveMemory(-1, 1), /reservation address is -1/);
    assert.throws(
      () => tree.reserveMemory(0xffff_ffff_ffff_f000n, 0x1001n),
      /memory reservation at 0xfffffffffffff000 runs past 2\^64/,
    );
  });

  test("the boot CPU id is a u32", () => {
    assert.throws(() => new DeviceTree({ bootCpuId: -1 }), /boot CPU id is -1/);
  });
});
