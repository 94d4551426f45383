/**
 * faultline's platform device tree, read back node by node: what a guest
 * finds at each path, how the config shapes it, the config mistakes it
 * refuses, and where the VMM puts the blob in guest RAM.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { TIMEBASE_FREQUENCY } from "../../../src/riscv/cpu/constants.js";
import type { Fdt, FdtNode } from "../../../src/vmm/fdt/format.js";
import {
  DEVICE_TREE_MAX_SIZE,
  type PlatformConfig,
  buildPlatformDeviceTree,
  placeDeviceTree,
} from "../../../src/vmm/fdt/platform.js";
import {
  decodeCells,
  decodeStrings,
  findNode,
  parseDeviceTree,
} from "../../../src/vmm/fdt/reader.js";
import { FULL, MINIMAL } from "./samples.js";

function node(fdt: Fdt, path: string): FdtNode {
  const found = findNode(fdt, path);
  assert.ok(found, `${path} exists`);
  return found;
}

function property(fdt: Fdt, path: string, name: string): Uint8Array {
  const value = node(fdt, path).properties.get(name);
  assert.ok(value, `${path} has ${name}`);
  return value;
}

const cells = (fdt: Fdt, path: string, name: string) => decodeCells(property(fdt, path, name));
const strings = (fdt: Fdt, path: string, name: string) => decodeStrings(property(fdt, path, name));
const names = (fdt: Fdt, path: string) => node(fdt, path).children.map((child) => child.name);

describe("platform device tree", () => {
  test("the root, /chosen and /memory", () => {
    const fdt = parseDeviceTree(buildPlatformDeviceTree(MINIMAL));
    assert.deepEqual(names(fdt, "/"), ["chosen", "memory@80000000", "cpus", "soc"]);
    assert.deepEqual(cells(fdt, "/", "#address-cells"), [2]);
    assert.deepEqual(cells(fdt, "/", "#size-cells"), [2]);
    assert.deepEqual(strings(fdt, "/", "compatible"), ["faultline,virt", "riscv-virtio"]);
    assert.deepEqual(strings(fdt, "/", "model"), ["riscv-virtio,faultline"]);
    assert.deepEqual(fdt.reservations, []);
    assert.equal(fdt.bootCpuId, 0);

    assert.deepEqual([...node(fdt, "/chosen").properties.keys()], ["stdout-path"]);
    const [stdout] = strings(fdt, "/chosen", "stdout-path");
    assert.equal(stdout, "/soc/serial@10000000");
    assert.ok(findNode(fdt, stdout), "stdout-path names the UART node");

    assert.deepEqual(strings(fdt, "/memory@80000000", "device_type"), ["memory"]);
    assert.deepEqual(cells(fdt, "/memory@80000000", "reg"), [0, 0x8000_0000, 0, 0x800_0000]);
  });

  test("/cpus: one cpu@N per hart with its interrupt controller", () => {
    const fdt = parseDeviceTree(buildPlatformDeviceTree(MINIMAL));
    assert.deepEqual(cells(fdt, "/cpus", "#address-cells"), [1]);
    assert.deepEqual(cells(fdt, "/cpus", "#size-cells"), [0]);
    assert.deepEqual(cells(fdt, "/cpus", "timebase-frequency"), [TIMEBASE_FREQUENCY]);
    assert.equal(TIMEBASE_FREQUENCY, 10_000_000);
    assert.deepEqual(names(fdt, "/cpus"), ["cpu@0"]);
    const cpu = "/cpus/cpu@0";
    assert.deepEqual(strings(fdt, cpu, "device_type"), ["cpu"]);
    assert.deepEqual(cells(fdt, cpu, "reg"), [0]);
    assert.deepEqual(strings(fdt, cpu, "status"), ["okay"]);
    assert.deepEqual(strings(fdt, cpu, "compatible"), ["riscv"]);
    assert.deepEqual(strings(fdt, cpu, "riscv,isa"), ["rv64ima_zicsr_zifencei"]);
    assert.deepEqual(strings(fdt, cpu, "riscv,isa-base"), ["rv64i"]);
    assert.deepEqual(strings(fdt, cpu, "riscv,isa-extensions"), [
      "i",
      "m",
      "a",
      "zicsr",
      "zifencei",
    ]);
    assert.deepEqual(strings(fdt, cpu, "mmu-type"), ["riscv,sv39"]);

    const intc = `${cpu}/interrupt-controller`;
    assert.deepEqual(strings(fdt, intc, "compatible"), ["riscv,cpu-intc"]);
    assert.deepEqual(cells(fdt, intc, "#interrupt-cells"), [1]);
    assert.deepEqual(cells(fdt, intc, "#address-cells"), [0]);
    assert.deepEqual(property(fdt, intc, "interrupt-controller"), new Uint8Array(0));
    assert.equal(cells(fdt, intc, "phandle").length, 1);
  });

  test("/soc: a simple-bus holding the UART, with no interrupts without a PLIC", () => {
    const fdt = parseDeviceTree(buildPlatformDeviceTree(MINIMAL));
    assert.deepEqual(strings(fdt, "/soc", "compatible"), ["simple-bus"]);
    assert.deepEqual(property(fdt, "/soc", "ranges"), new Uint8Array(0));
    assert.deepEqual(cells(fdt, "/soc", "#address-cells"), [2]);
    assert.deepEqual(cells(fdt, "/soc", "#size-cells"), [2]);
    assert.deepEqual(names(fdt, "/soc"), ["serial@10000000"]);
    const uart = "/soc/serial@10000000";
    assert.deepEqual(strings(fdt, uart, "compatible"), ["ns16550a"]);
    assert.deepEqual(cells(fdt, uart, "reg"), [0, 0x1000_0000, 0, 0x100]);
    assert.deepEqual(cells(fdt, uart, "clock-frequency"), [3_686_400]);
    assert.equal(node(fdt, uart).properties.has("interrupts"), false);
    assert.equal(node(fdt, uart).properties.has("interrupt-parent"), false);
  });

  test("a full config: bootargs, RAM regions, harts, virtio devices and their PLIC", () => {
    const fdt = parseDeviceTree(buildPlatformDeviceTree(FULL));
    assert.deepEqual(strings(fdt, "/chosen", "bootargs"), [FULL.bootargs]);
    assert.deepEqual(cells(fdt, "/memory@100000000", "reg"), [1, 0, 2, 0]);
    assert.deepEqual(names(fdt, "/cpus"), ["cpu@0", "cpu@1", "cpu@2", "cpu@3"]);
    assert.deepEqual(cells(fdt, "/cpus/cpu@3", "reg"), [3]);

    const intcPhandles = [0, 1, 2, 3].map(
      (hart) => cells(fdt, `/cpus/cpu@${hart}/interrupt-controller`, "phandle")[0],
    );
    const plic = "/soc/plic@c000000";
    const plicPhandle = cells(fdt, plic, "phandle")[0];
    assert.equal(new Set([...intcPhandles, plicPhandle]).size, 5, "phandles are unique");
    assert.deepEqual(strings(fdt, plic, "compatible"), ["sifive,plic-1.0.0", "riscv,plic0"]);
    assert.deepEqual(cells(fdt, plic, "reg"), [0, 0xc00_0000, 0, 0x60_0000]);
    assert.deepEqual(cells(fdt, plic, "riscv,ndev"), [96]);
    assert.deepEqual(cells(fdt, plic, "#interrupt-cells"), [1]);
    assert.deepEqual(cells(fdt, plic, "#address-cells"), [0]);
    assert.deepEqual(property(fdt, plic, "interrupt-controller"), new Uint8Array(0));
    assert.deepEqual(
      cells(fdt, plic, "interrupts-extended"),
      intcPhandles.flatMap((phandle) => [phandle, 9]),
      "each hart's S-mode external interrupt",
    );

    assert.deepEqual(names(fdt, "/soc"), [
      "plic@c000000",
      "serial@10000000",
      "virtio_mmio@10001000",
      "virtio_mmio@10002000",
      "virtio_mmio@10003000",
    ]);
    assert.deepEqual(cells(fdt, "/soc/serial@10000000", "interrupt-parent"), [plicPhandle]);
    assert.deepEqual(cells(fdt, "/soc/serial@10000000", "interrupts"), [10]);
    for (const [i, base] of [0x1000_1000, 0x1000_2000, 0x1000_3000].entries()) {
      const path = `/soc/virtio_mmio@${base.toString(16)}`;
      assert.deepEqual(strings(fdt, path, "compatible"), ["virtio,mmio"]);
      assert.deepEqual(cells(fdt, path, "reg"), [0, base, 0, 0x1000]);
      if (i < 2) {
        assert.deepEqual(cells(fdt, path, "interrupts"), [i + 1]);
        assert.deepEqual(cells(fdt, path, "interrupt-parent"), [plicPhandle]);
      } else {
        assert.equal(node(fdt, path).properties.has("interrupts"), false);
      }
    }
  });

  test("the same config always gives the same bytes", () => {
    assert.deepEqual(buildPlatformDeviceTree(FULL), buildPlatformDeviceTree(FULL));
  });

  test("config mistakes are refused", () => {
    const build = (change: Partial<PlatformConfig>) => () =>
      buildPlatformDeviceTree({ ...MINIMAL, ...change });
    assert.throws(build({ harts: 0 }), /a platform needs at least one hart \(got 0\)/);
    assert.throws(build({ harts: 1.5 }), /at least one hart/);
    assert.throws(build({ memory: [] }), /a platform needs RAM/);
    assert.throws(build({ memory: [{ base: 0x8000_0000, size: 0 }] }), /memory: base \d+, size 0/);
    assert.throws(
      build({ uart: { base: 0x1000_0000, irq: 10 } }),
      /\/soc\/serial@10000000 has irq 10 but there is no PLIC/,
    );
    const plic = { base: 0xc00_0000, size: 0x60_0000, sources: 31 };
    assert.throws(
      build({ plic, virtio: [{ base: 0x1000_1000, irq: 32 }] }),
      /\/soc\/virtio_mmio@10001000: irq 32 is not 1 to 31/,
    );
    assert.throws(build({ plic, uart: { base: 0x1000_0000, irq: 0 } }), /irq 0 is not 1 to 31/);
    assert.throws(build({ plic: { ...plic, sources: 0 } }), /plic: 0 sources is not 1 to 1023/);
    assert.throws(
      build({ virtio: [{ base: 0x1000_1000 }, { base: 0x1000_1000 }] }),
      /\/soc: duplicate node "virtio_mmio@10001000"/,
    );
  });
});

describe("placeDeviceTree", () => {
  const ram = { base: 0x8000_0000, size: 0x800_0000 };

  test("by default, as high in RAM as it fits, on a 4 KiB boundary", () => {
    assert.equal(placeDeviceTree(0x800, ram), 0x87ff_f000);
    assert.equal(placeDeviceTree(0x1000, ram), 0x87ff_f000);
    assert.equal(placeDeviceTree(0x1001, ram), 0x87ff_e000);
    assert.equal(placeDeviceTree(DEVICE_TREE_MAX_SIZE, ram), 0x87f0_0000);
    assert.equal(placeDeviceTree(0x10, { base: 0x8000_0000, size: 0x1_0000_1234 }), 0x1_8000_1000);
  });

  test("at a given 8-byte aligned address inside RAM", () => {
    assert.equal(placeDeviceTree(0x800, ram, 0x8220_0008), 0x8220_0008);
    assert.equal(placeDeviceTree(0x800, ram, 0x87ff_f800), 0x87ff_f800);
    assert.throws(
      () => placeDeviceTree(0x800, ram, 0x8220_0004),
      /0x82200004 is not 8-byte aligned/,
    );
    assert.throws(
      () => placeDeviceTree(0x800, ram, 0x87ff_f808),
      /device tree at 0x87fff808, 2048 bytes, is outside RAM 0x80000000-0x88000000/,
    );
    assert.throws(() => placeDeviceTree(0x800, ram, 0x7fff_f000), /is outside RAM/);
  });

  test("too large, empty, or larger than RAM", () => {
    assert.equal(DEVICE_TREE_MAX_SIZE, 1 << 20);
    assert.throws(() => placeDeviceTree(DEVICE_TREE_MAX_SIZE + 1, ram), /is not 1 to 1048576/);
    assert.throws(() => placeDeviceTree(0, ram), /device tree of 0 bytes/);
    assert.throws(
      () => placeDeviceTree(0x2000, { base: 0x8000_0000, size: 0x1000 }),
      /outside RAM/,
    );
  });

  test("the platform tree fits with room to spare", () => {
    assert.ok(buildPlatformDeviceTree(FULL).length < DEVICE_TREE_MAX_SIZE / 64);
  });
});
