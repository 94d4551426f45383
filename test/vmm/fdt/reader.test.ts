/**
 * The DTB reader: it inverts the writer, skips NOPs wherever a token may be,
 * refuses every kind of malformed blob with a DeviceTreeFormatError that
 * says what is wrong, and never fails any other way on corrupted input.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Fdt, FdtNode } from "../../../src/vmm/fdt/format.js";
import { buildPlatformDeviceTree } from "../../../src/vmm/fdt/platform.js";
import {
  DeviceTreeFormatError,
  decodeCells,
  decodeStrings,
  decodeU64,
  findNode,
  parseDeviceTree,
} from "../../../src/vmm/fdt/reader.js";
import { DeviceTree } from "../../../src/vmm/fdt/tree.js";
import { flattenDeviceTree } from "../../../src/vmm/fdt/writer.js";
import {
  FDT_BEGIN_NODE,
  FDT_END,
  FDT_END_NODE,
  FDT_NOP,
  FDT_PROP,
  be,
  dtbAround,
} from "./handmade.js";
import { FULL, featureTree } from "./samples.js";

/** A tree as plain data, for deepEqual. */
function plain(node: FdtNode): unknown {
  return {
    name: node.name,
    properties: [...node.properties].map(([name, value]) => [name, [...value]]),
    children: node.children.map(plain),
  };
}

function plainFdt(fdt: Fdt): unknown {
  return { root: plain(fdt.root), reservations: fdt.reservations, bootCpuId: fdt.bootCpuId };
}

/** A copy of `blob` with the u32 at `offset` replaced. */
function withWord(blob: Uint8Array, offset: number, value: number): Uint8Array {
  const copy = blob.slice();
  new DataView(copy.buffer).setUint32(offset, value);
  return copy;
}

const platformDtb = () => buildPlatformDeviceTree(FULL);

describe("reading what the writer wrote", () => {
  test("the tree, reservations and boot CPU come back as built", () => {
    const tree = featureTree();
    assert.deepEqual(plainFdt(parseDeviceTree(flattenDeviceTree(tree))), plainFdt(tree));
  });

  test("writing what was read gives the same bytes", () => {
    for (const blob of [flattenDeviceTree(featureTree()), platformDtb()]) {
      assert.deepEqual(flattenDeviceTree(parseDeviceTree(blob)), blob);
    }
  });

  test("a blob inside a larger buffer, with free space after totalsize", () => {
    const blob = flattenDeviceTree(featureTree());
    const buffer = new Uint8Array(blob.length + 64);
    buffer.set(blob, 32);
    const inside = buffer.subarray(32);
    assert.deepEqual(plainFdt(parseDeviceTree(inside)), plainFdt(featureTree()));
  });
});

describe("NOPs", () => {
  test("are skipped wherever a token may be", () => {
    // prettier-ignore
    const struct = be(
      FDT_NOP,
      FDT_BEGIN_NODE, "\0\0\0\0",
      FDT_NOP,
      FDT_PROP, 4, 0, 7,
      FDT_NOP, FDT_NOP,
      FDT_BEGIN_NODE, "n\0\0\0",
      FDT_NOP,
      FDT_END_NODE,
      FDT_NOP,
      FDT_END_NODE,
      FDT_NOP,
      FDT_END,
    );
    const fdt = parseDeviceTree(dtbAround(struct, be("a\0")));
    assert.deepEqual(plain(fdt.root), {
      name: "",
      properties: [["a", [0, 0, 0, 7]]],
      children: [{ name: "n", properties: [], children: [] }],
    });
  });

  test("a property overwritten with NOPs in place (as libfdt's fdt_nop_property does) is gone", () => {
    const tree = new DeviceTree();
    tree.root.u32("keep", 1).string("drop", "abc").u32("also", 2);
    const blob = flattenDeviceTree(tree);
    const offStruct = new DataView(blob.buffer).getUint32(8);
    // FDT_BEGIN_NODE + empty name, then keep (16 bytes), then drop: 12 + 4 bytes of value.
    let nopped = blob;
    for (let at = offStruct + 8 + 16; at < offStruct + 8 + 16 + 16; at += 4) {
      nopped = withWord(nopped, at, FDT_NOP);
    }
    assert.deepEqual([...parseDeviceTree(nopped).root.properties.keys()], ["keep", "also"]);
  });
});

describe("decoding values", () => {
  test("cells, u64 and string lists", () => {
    assert.deepEqual(decodeCells(be(1, 0xffff_ffff)), [1, 0xffff_ffff]);
    assert.deepEqual(decodeCells(new Uint8Array(0)), []);
    assert.equal(decodeU64(be(0x1234_5678, 0x9abc_def0)), 0x1234_5678_9abc_def0n);
    assert.deepEqual(decodeStrings(be("riscv\0")), ["riscv"]);
    assert.deepEqual(decodeStrings(be("a\0\0b\0")), ["a", "", "b"]);
  });

  test("values of the wrong shape are format errors", () => {
    assert.throws(() => decodeCells(be("abc")), /DTB: a 3-byte value is not a list of cells/);
    assert.throws(() => decodeU64(be(1)), /DTB: a 4-byte value is not a u64/);
    assert.throws(() => decodeStrings(be("abc")), /a string value is not NUL-terminated/);
    assert.throws(() => decodeStrings(new Uint8Array(0)), /not NUL-terminated/);
    assert.throws(() => decodeStrings(Uint8Array.from([0xff, 0])), /a string value is not UTF-8/);
  });

  test("findNode follows absolute paths", () => {
    const fdt = parseDeviceTree(flattenDeviceTree(featureTree()));
    assert.equal(findNode(fdt, "/"), fdt.root);
    assert.equal(findNode(fdt, "/dev@1000/deeper/deepest")?.name, "deepest");
    assert.equal(findNode(fdt, "/dev@1000/"), fdt.root.children[1]);
    assert.equal(findNode(fdt, "/dev"), undefined);
    assert.equal(findNode(fdt, "/nowhere/deeper"), undefined);
    assert.throws(() => findNode(fdt, "dev@1000"), /"dev@1000" is not an absolute node path/);
  });
});

describe("malformed blobs", () => {
  // prettier-ignore
  const struct = (...middle: (number | string)[]) => be(FDT_BEGIN_NODE, "\0\0\0\0", ...middle, FDT_END_NODE, FDT_END);
  const strings = be("a\0");
  const good = dtbAround(
    struct(FDT_PROP, 4, 0, 1, FDT_BEGIN_NODE, "n\0\0\0", FDT_END_NODE),
    strings,
  );
  const offStruct = 56;

  test("the well-formed original parses", () => {
    assert.equal(parseDeviceTree(good).root.children[0].name, "n");
  });

  // prettier-ignore
  const cases: [string, Uint8Array, RegExp][] = [
    ["a short header", good.subarray(0, 39), /39 bytes is too short for the header/],
    ["bad magic", withWord(good, 0, 0xd00dfeee), /bad magic 0xd00dfeee: not a DTB/],
    ["version 16", withWord(good, 20, 16), /version 16 \(last compatible 16\) is not readable as version 17/],
    ["an incompatible version", withWord(good, 24, 18), /last compatible 18\) is not readable/],
    ["totalsize past the blob", withWord(good, 4, good.length + 1), /totalsize \d+ but the blob is \d+ bytes/],
    ["totalsize inside the header", withWord(good, 4, 39), /totalsize 39/],
    ["a misaligned structure block", withWord(good, 8, offStruct + 2), /structure block \(\d+ bytes at 0x3a\) is not 4-byte aligned between the header and totalsize 0x66/],
    ["a structure block past totalsize", withWord(good, 36, good.length), /structure block \(102 bytes at 0x38\)/],
    ["a structure block inside the header", withWord(good, 8, 36), /structure block \(\d+ bytes at 0x24\)/],
    ["a strings block past totalsize", withWord(good, 32, 100), /strings block \(100 bytes at 0x64\)/],
    ["a misaligned reservation block", withWord(good, 16, 44), /memory reservation block at 0x2c is misplaced/],
    ["a reservation block with no end", withWord(good, 16, offStruct), /memory reservation block has no terminating entry/],
    ["a structure block not starting with a node", dtbAround(be(FDT_PROP, 0, 0, FDT_END), strings), /does not begin with the root node/],
    ["a named root", dtbAround(be(FDT_BEGIN_NODE, "x\0\0\0", FDT_END_NODE, FDT_END), strings), /root node is named "x"/],
    ["an unterminated node name", dtbAround(be(FDT_BEGIN_NODE, "abcd"), strings), /node name at 0x4 is not terminated/],
    ["a property name offset past the strings", dtbAround(struct(FDT_PROP, 0, 99), strings), /property name at strings offset 0x63 is invalid/],
    ["a property name not terminated in the strings", dtbAround(struct(FDT_PROP, 0, 0), be("ab")), /property name at strings offset 0x0 is invalid/],
    ["a property running past the block", dtbAround(struct(FDT_PROP, 100, 0), strings), /\/: property "a" runs past the block/],
    ["a property after a child", dtbAround(struct(FDT_BEGIN_NODE, "n\0\0\0", FDT_END_NODE, FDT_PROP, 0, 0), strings), /\/: property "a" follows a child node/],
    ["a duplicate property", dtbAround(struct(FDT_PROP, 0, 0, FDT_PROP, 0, 0), strings), /\/: duplicate property "a"/],
    ["a duplicate node", dtbAround(struct(FDT_BEGIN_NODE, "n\0\0\0", FDT_END_NODE, FDT_BEGIN_NODE, "n\0\0\0", FDT_END_NODE), strings), /\/: duplicate node "n"/],
    ["a nested duplicate", dtbAround(struct(FDT_BEGIN_NODE, "n\0\0\0", FDT_PROP, 0, 0, FDT_PROP, 0, 0, FDT_END_NODE), strings), /\/n: duplicate property "a"/],
    ["an unknown token", dtbAround(struct(7), strings), /\/: unexpected token 0x7 at 0x8/],
    ["FDT_END inside a node", dtbAround(be(FDT_BEGIN_NODE, 0, FDT_END), strings), /\/: unexpected token 0x9 at 0x8/],
    ["no FDT_END", dtbAround(be(FDT_BEGIN_NODE, 0, FDT_END_NODE), strings), /structure block ends where a token should be/],
    ["a second root", dtbAround(be(FDT_BEGIN_NODE, 0, FDT_END_NODE, FDT_BEGIN_NODE, 0, FDT_END_NODE, FDT_END), strings), /the root node is not followed by FDT_END/],
    ["a truncated property header", dtbAround(be(FDT_BEGIN_NODE, 0, FDT_PROP, 4), strings), /structure block ends where a property name offset should be/],
  ];
  for (const [what, blob, message] of cases) {
    test(what, () => {
      assert.throws(
        () => parseDeviceTree(blob),
        (error: unknown) => error instanceof DeviceTreeFormatError && message.test(error.message),
      );
    });
  }

  test("every truncation is refused, whether or not totalsize was updated to match", () => {
    const blob = platformDtb();
    for (let length = 0; length < blob.length; length++) {
      const cut = blob.slice(0, length);
      assert.throws(() => parseDeviceTree(cut), DeviceTreeFormatError);
      if (length >= 8) {
        assert.throws(() => parseDeviceTree(withWord(cut, 4, length)), DeviceTreeFormatError);
      }
    }
  });

  test("random corruption parses or is a DeviceTreeFormatError, never anything else", () => {
    const blob = platformDtb();
    let seed = 0x2545_f491;
    const random = (limit: number) => {
      // xorshift32: reproducible without a dependency.
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % limit;
    };
    for (let i = 0; i < 3000; i++) {
      const corrupt = blob.slice();
      for (let n = 1 + random(4); n > 0; n--) corrupt[random(corrupt.length)] = random(256);
      try {
        parseDeviceTree(corrupt);
      } catch (error) {
        assert.ok(error instanceof DeviceTreeFormatError, `iteration ${i}: ${String(error)}`);
      }
    }
  });
});
