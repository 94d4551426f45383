/**
 * Differential test against dtc, the reference devicetree compiler: dtc
 * reads our blobs without a warning and sees the nodes and values we meant,
 * our reader reads dtc's blobs, and the same tree written by us and by dtc
 * is the same bytes. Skipped without dtc, except under CI where it fails.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { buildPlatformDeviceTree } from "../../../src/vmm/fdt/platform.js";
import {
  decodeCells,
  decodeStrings,
  decodeU64,
  findNode,
  parseDeviceTree,
} from "../../../src/vmm/fdt/reader.js";
import { flattenDeviceTree } from "../../../src/vmm/fdt/writer.js";
import { FEATURE_DTS, FULL, MINIMAL, featureTree } from "./samples.js";
import { FDT_NOP } from "./handmade.js";
import { compile, decompile, dtc, dtcStatus } from "./tools.js";

const status = dtcStatus();
const skip = status.available || process.env.CI ? false : `skipped: ${status.reason}`;

function requireDtc(): void {
  if (!status.available) assert.fail(`dtc is required under CI: ${status.reason}`);
}

describe("dtc reads our blobs", { skip }, () => {
  for (const [name, config] of Object.entries({ MINIMAL, FULL })) {
    test(`the ${name} platform tree decompiles without a warning`, () => {
      requireDtc();
      decompile(buildPlatformDeviceTree(config));
    });
  }

  test("and sees the nodes and values of the platform tree", () => {
    requireDtc();
    const dts = decompile(buildPlatformDeviceTree(FULL));
    const expected = [
      "/dts-v1/;",
      'compatible = "faultline,virt\\0riscv-virtio";',
      'model = "riscv-virtio,faultline";',
      "chosen {",
      'bootargs = "console=ttyS0 earlycon root=\\"/dev/vda\\" \\\\";',
      'stdout-path = "/soc/serial@10000000";',
      "memory@80000000 {",
      'device_type = "memory";',
      "reg = <0x00 0x80000000 0x00 0x40000000>;",
      "memory@100000000 {",
      "reg = <0x01 0x00 0x02 0x00>;",
      "timebase-frequency = <0x989680>;",
      "cpu@3 {",
      'riscv,isa = "rv64ima_zicsr_zifencei";',
      'riscv,isa-extensions = "i\\0m\\0a\\0zicsr\\0zifencei";',
      'mmu-type = "riscv,sv39";',
      'compatible = "riscv,cpu-intc";',
      "interrupt-controller;",
      "ranges;",
      "plic@c000000 {",
      "interrupts-extended = <0x01 0x09 0x02 0x09 0x03 0x09 0x04 0x09>;",
      "riscv,ndev = <0x60>;",
      "serial@10000000 {",
      'compatible = "ns16550a";',
      "reg = <0x00 0x10000000 0x00 0x100>;",
      "interrupt-parent = <0x05>;",
      "interrupts = <0x0a>;",
      "virtio_mmio@10003000 {",
      'compatible = "virtio,mmio";',
      "reg = <0x00 0x10003000 0x00 0x1000>;",
    ];
    const lines = new Set(dts.split("\n").map((line) => line.trim()));
    assert.deepEqual(
      expected.filter((line) => !lines.has(line)),
      [],
      `lines missing from\n${dts}`,
    );
  });

  test("dtc -I dtb -O dtb gives back our bytes", () => {
    requireDtc();
    for (const blob of [
      buildPlatformDeviceTree(MINIMAL),
      buildPlatformDeviceTree(FULL),
      flattenDeviceTree(featureTree()),
    ]) {
      const { output, stderr } = dtc(["-I", "dtb", "-O", "dtb"], blob);
      assert.equal(stderr, "");
      assert.deepEqual(new Uint8Array(output), blob);
    }
  });

  test("compiling dtc's decompilation of our blob gives back our bytes", () => {
    requireDtc();
    const blob = buildPlatformDeviceTree(FULL);
    // The decompiled source has plain numbers where a hand-written one
    // would have &label references, which dtc warns about in source only.
    assert.deepEqual(compile(decompile(blob), ["-Wno-interrupts_extended_property"]), blob);
  });

  test("a property overwritten with NOPs is dropped by dtc as by our reader", () => {
    requireDtc();
    const blob = buildPlatformDeviceTree(MINIMAL);
    // NOP out /chosen/stdout-path the way libfdt's fdt_nop_property does.
    const view = new DataView(blob.buffer);
    const offStruct = view.getUint32(8);
    const nameOffset = Buffer.from(blob.subarray(view.getUint32(12))).indexOf("stdout-path\0");
    let at = offStruct;
    while (!(view.getUint32(at) === 3 && view.getUint32(at + 8) === nameOffset)) at += 4;
    const end = at + 12 + Math.ceil(view.getUint32(at + 4) / 4) * 4;
    for (; at < end; at += 4) view.setUint32(at, FDT_NOP);

    assert.ok(!decompile(blob).includes("stdout-path"));
    const { output } = dtc(["-I", "dtb", "-O", "dtb"], blob);
    assert.deepEqual(new Uint8Array(output), flattenDeviceTree(parseDeviceTree(blob)));
  });
});

describe("dtc and our writer agree", { skip }, () => {
  test("the same tree built here and compiled by dtc is the same bytes", () => {
    requireDtc();
    assert.deepEqual(flattenDeviceTree(featureTree()), compile(FEATURE_DTS, ["-b", "2"]));
  });

  test("our reader reads dtc's blob", () => {
    requireDtc();
    const fdt = parseDeviceTree(compile(FEATURE_DTS, ["-b", "2"]));
    assert.equal(fdt.bootCpuId, 2);
    assert.deepEqual(fdt.reservations, [
      { address: 0x8000_0000n, size: 0x8_0000n },
      { address: 0x1_0000_0000n, size: 0x1000n },
    ]);
    const value = (path: string, name: string) => {
      const found = findNode(fdt, path)?.properties.get(name);
      assert.ok(found, `${path} ${name}`);
      return found;
    };
    assert.deepEqual(decodeStrings(value("/dev@1000", "compatible")), ["vendor,dev", "generic"]);
    assert.deepEqual(decodeCells(value("/dev@1000", "reg")), [0, 0x1000, 0, 0x100]);
    assert.equal(decodeU64(value("/dev@1000", "big")), 0xfedc_ba98_7654_3210n);
    assert.deepEqual([...value("/dev@1000", "mac")], [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    assert.deepEqual(value("/intc", "interrupt-controller"), new Uint8Array(0));
    assert.deepEqual(
      decodeCells(value("/dev@1000", "interrupt-parent")),
      decodeCells(value("/intc", "phandle")),
      "dtc resolved &intc to the phandle it gave /intc",
    );
    assert.deepEqual(decodeStrings(value("/dev@1000/deeper/deepest", "status")), ["okay"]);
  });
});
