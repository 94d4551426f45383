/** Device trees and platform configs the tests share. */
import type { PlatformConfig } from "../../../src/vmm/fdt/platform.js";
import { DeviceTree } from "../../../src/vmm/fdt/tree.js";

/** The least a platform has: one hart, RAM and the console. */
export const MINIMAL: PlatformConfig = {
  memory: [{ base: 0x8000_0000, size: 0x800_0000 }],
  harts: 1,
  uart: { base: 0x1000_0000 },
};

/** Every option: two RAM regions, four harts, Sv39, a PLIC, virtio devices with and without irqs. */
export const FULL: PlatformConfig = {
  memory: [
    { base: 0x8000_0000, size: 0x4000_0000 },
    { base: 0x1_0000_0000, size: 0x2_0000_0000 },
  ],
  harts: 4,
  bootargs: 'console=ttyS0 earlycon root="/dev/vda" \\',
  uart: { base: 0x1000_0000, irq: 10 },
  virtio: [{ base: 0x1000_1000, irq: 1 }, { base: 0x1000_2000, irq: 2 }, { base: 0x1000_3000 }],
  plic: { base: 0xc00_0000, size: 0x60_0000, sources: 96 },
};

/**
 * A tree with every kind of value, nesting, reservations and a boot CPU;
 * FEATURE_DTS is the same tree as dts source (compile it with -b 2).
 */
export function featureTree(): DeviceTree {
  const tree = new DeviceTree({ bootCpuId: 2 })
    .reserveMemory(0x8000_0000, 0x8_0000)
    .reserveMemory(0x1_0000_0000n, 0x1000);
  const root = tree.root.u32("#address-cells", 2).u32("#size-cells", 2).string("model", "m");
  const intc = root
    .addNode("intc")
    .empty("interrupt-controller")
    .u32("#interrupt-cells", 1)
    .u32("#address-cells", 0);
  root
    .addNode("dev@1000")
    .strings("compatible", ["vendor,dev", "generic"])
    .cells("reg", [0, 0x1000, 0, 0x100])
    .u64("big", 0xfedc_ba98_7654_3210n)
    .bytes("mac", Uint8Array.from([0x52, 0x54, 0, 0x12, 0x34, 0x56]))
    .u32("interrupt-parent", intc.phandle())
    .u32("interrupts", 5)
    // "cells" is the tail of "#size-cells": one string serves both.
    .cells("cells", [1, 2, 3])
    .addNode("deeper")
    .addNode("deepest")
    .string("status", "okay");
  return tree;
}

export const FEATURE_DTS = `/dts-v1/;
/memreserve/ 0x80000000 0x80000;
/memreserve/ 0x100000000 0x1000;
/ {
  #address-cells = <2>;
  #size-cells = <2>;
  model = "m";
  intc: intc {
    interrupt-controller;
    #interrupt-cells = <1>;
    #address-cells = <0>;
  };
  dev@1000 {
    compatible = "vendor,dev", "generic";
    reg = <0 0x1000 0 0x100>;
    big = /bits/ 64 <0xfedcba9876543210>;
    mac = [52 54 00 12 34 56];
    interrupt-parent = <&intc>;
    interrupts = <5>;
    cells = <1 2 3>;
    deeper {
      deepest {
        status = "okay";
      };
    };
  };
};
`;
