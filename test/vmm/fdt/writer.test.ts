/**
 * The DTB layout, checked word by word against the spec's chapter 5 rather
 * than through our own reader: header fields, block order and alignment,
 * token encoding, padding and the strings block.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DeviceTree } from "../../../src/vmm/fdt/tree.js";
import { flattenDeviceTree } from "../../../src/vmm/fdt/writer.js";
import { FDT_BEGIN_NODE, FDT_END, FDT_END_NODE, FDT_PROP, be } from "./handmade.js";

describe("flattenDeviceTree", () => {
  test("a small tree, byte for byte", () => {
    const tree = new DeviceTree({ bootCpuId: 3 }).reserveMemory(0x1000, 0x2000);
    tree.root.u32("a", 1).addNode("n@1").empty("b").string("c", "xyz12");

    // prettier-ignore
    const struct = be(
      FDT_BEGIN_NODE, "\0\0\0\0", // the root's empty name, padded to 4
      FDT_PROP, 4, 0, 1, //        a = <1>, name at strings offset 0
      FDT_BEGIN_NODE, "n@1\0",
      FDT_PROP, 0, 2, //           b; (no value, no padding)
      FDT_PROP, 6, 4, "xyz12\0\0\0", // c = "xyz12", padded to 8
      FDT_END_NODE,
      FDT_END_NODE,
      FDT_END,
    );
    const strings = be("a\0b\0c\0");
    const offRsvmap = 40; // the header's size, already 8-byte aligned
    const offStruct = offRsvmap + 2 * 16; // one entry and the terminator
    const offStrings = offStruct + struct.length;
    const totalSize = offStrings + strings.length;
    // prettier-ignore
    const expected = be(
      0xd00dfeed, totalSize, offStruct, offStrings, offRsvmap,
      17, 16, 3, strings.length, struct.length,
      0, 0x1000, 0, 0x2000,
      0, 0, 0, 0,
    );
    assert.deepEqual(
      flattenDeviceTree(tree),
      Uint8Array.from([...expected, ...struct, ...strings]),
    );
  });

  test("a name already in the strings block, even as the tail of a longer one, is not stored again", () => {
    const tree = new DeviceTree();
    tree.root.u32("#size-cells", 2).u32("size-cells", 2).addNode("n").u32("#size-cells", 2);
    const blob = flattenDeviceTree(tree);
    const view = new DataView(blob.buffer);
    const offStrings = view.getUint32(12);
    assert.equal(view.getUint32(32), "#size-cells\0".length);
    assert.equal(Buffer.from(blob.subarray(offStrings)).toString("latin1"), "#size-cells\0");
    // The three FDT_PROP name offsets: 0, 1 (inside "#size-cells"), 0.
    const offStruct = view.getUint32(8);
    const nameOffsets = [offStruct + 16, offStruct + 32, offStruct + 56].map((at) =>
      view.getUint32(at),
    );
    assert.deepEqual(nameOffsets, [0, 1, 0]);
  });

  test("with no reservations the block is just the terminating entry", () => {
    const blob = flattenDeviceTree(new DeviceTree());
    const view = new DataView(blob.buffer);
    assert.equal(view.getUint32(16), 40);
    assert.equal(view.getUint32(8), 56);
    assert.deepEqual(blob.subarray(40, 56), new Uint8Array(16));
    assert.deepEqual(blob.subarray(56), be(FDT_BEGIN_NODE, 0, FDT_END_NODE, FDT_END));
    assert.equal(view.getUint32(4), blob.length);
  });

  test("a tree larger than the first buffer grows it", () => {
    const tree = new DeviceTree();
    for (let i = 0; i < 200; i++) tree.root.addNode(`node@${i.toString(16)}`).cells("reg", [i, 1]);
    tree.root.bytes("big", new Uint8Array(5000).fill(0xab));
    const blob = flattenDeviceTree(tree);
    const view = new DataView(blob.buffer);
    assert.equal(view.getUint32(4), blob.length);
    const structEnd = view.getUint32(8) + view.getUint32(36);
    assert.equal(view.getUint32(structEnd - 4), FDT_END);
    assert.ok(Buffer.from(blob).includes(Buffer.alloc(5000, 0xab)));
  });
});
