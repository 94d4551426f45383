/**
 * Our platform tree against the one QEMU's virt machine gives its guests
 * (written against Debian's QEMU 7.2). The platform is built with the
 * addresses, interrupts and hart count read from QEMU's tree; then every
 * node we emit must exist in QEMU's, and every node and property on either
 * side that the other lacks, and every value that differs, must be one of
 * the differences documented below (and in src/vmm/fdt/platform.ts).
 * Skipped without QEMU, except under CI where it fails.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Fdt, FdtNode } from "../../../src/vmm/fdt/format.js";
import { type MmioDevice, buildPlatformDeviceTree } from "../../../src/vmm/fdt/platform.js";
import { decodeCells, findNode, parseDeviceTree } from "../../../src/vmm/fdt/reader.js";
import { flattenDeviceTree } from "../../../src/vmm/fdt/writer.js";
import { dtc, dtcStatus, qemuStatus, qemuVirtDtb } from "./tools.js";

const status = qemuStatus();
const skip = status.available || process.env.CI ? false : `skipped: ${status.reason}`;
const dtcState = dtcStatus();
const dtcSkip = dtcState.available || process.env.CI ? false : `skipped: ${dtcState.reason}`;

/** QEMU nodes faultline's platform does not have, and why. */
const QEMU_ONLY_NODES: Record<string, string> = {
  "/pmu": "no SBI PMU counters to describe",
  "/fw-cfg@10100000": "no fw_cfg: everything the guest is told is in this tree",
  "/flash@20000000": "no flash: images are loaded straight into RAM",
  "/poweroff": "shutdown is SBI SRST, not a syscon register",
  "/reboot": "reset is SBI SRST, not a syscon register",
  "/platform-bus@4000000": "no dynamically added sysbus devices",
  "/cpus/cpu-map": "no topology to describe: every hart is its own core",
  "/soc/rtc@101000": "no goldfish RTC",
  "/soc/test@100000": "no sifive,test finisher: SBI SRST instead",
  "/soc/pci@30000000": "no PCIe: virtio devices are virtio-mmio",
  "/soc/clint@2000000": "timer and IPIs are SBI TIME and IPI calls, as on QEMU's virt under KVM",
};

/** Properties only QEMU has, by node (cpu@N as cpu@*), and why. */
const QEMU_ONLY_PROPERTIES: Record<string, Record<string, string>> = {
  "/chosen": { "rng-seed": "left out so the same config always gives the same bytes" },
  "/cpus/cpu@*": { phandle: "only cpu-map refers to cpu nodes" },
};

/** Properties only we have, and why. */
const OUR_ONLY_PROPERTIES: Record<string, Record<string, string>> = {
  "/cpus/cpu@*": {
    "riscv,isa-base": "the binding newer QEMU emits and Linux 6.5+ prefers to riscv,isa",
    "riscv,isa-extensions": "the binding newer QEMU emits and Linux 6.5+ prefers to riscv,isa",
  },
  "/cpus/cpu@*/interrupt-controller": {
    "#address-cells": "dtc 1.6 warns about an interrupt provider without it",
  },
};

/** Properties both have with different values, and why. */
const DIFFERENT_VALUES: Record<string, Record<string, string>> = {
  "/": {
    compatible: '"faultline,virt" first, then QEMU\'s "riscv-virtio"',
    model: "names faultline rather than QEMU",
  },
  "/cpus/cpu@*": {
    "riscv,isa": "faultline's harts are rv64ima_zicsr_zifencei",
    "mmu-type": '"riscv,sv39": faultline\'s harts have no Sv48 or Sv57',
  },
  "/soc/plic@c000000": {
    "interrupts-extended": "S-mode contexts only: the guest has no M-mode (checked below)",
  },
};

/** Properties whose value is a phandle: compared by the path of the node they name. */
const PHANDLE_REFERENCES = new Set(["interrupt-parent"]);

/** The machine-mode and supervisor-mode external interrupts of riscv,cpu-intc. */
const IRQ_M_EXT = 11;
const IRQ_S_EXT = 9;

function pattern(path: string): string {
  return path.replace(/\/cpu@[0-9a-f]+/g, "/cpu@*");
}

function paths(node: FdtNode, path = "/"): [string, FdtNode][] {
  const join = (name: string) => (path === "/" ? `/${name}` : `${path}/${name}`);
  return [[path, node], ...node.children.flatMap((child) => paths(child, join(child.name)))];
}

function phandleTargets(fdt: Fdt): Map<number, string> {
  const targets = new Map<number, string>();
  for (const [path, node] of paths(fdt.root)) {
    const phandle = node.properties.get("phandle");
    if (phandle) targets.set(decodeCells(phandle)[0], path);
  }
  return targets;
}

function cellsAt(fdt: Fdt, path: string, name: string): number[] {
  const value = findNode(fdt, path)?.properties.get(name);
  assert.ok(value, `QEMU's ${path} has ${name}`);
  return decodeCells(value);
}

/** The device at `path` in QEMU's tree, as our config describes one. */
function device(fdt: Fdt, path: string): MmioDevice {
  const [baseHigh, baseLow] = cellsAt(fdt, path, "reg");
  return { base: baseHigh * 2 ** 32 + baseLow, irq: cellsAt(fdt, path, "interrupts")[0] };
}

function region(fdt: Fdt, path: string): { base: number; size: number } {
  const [baseHigh, baseLow, sizeHigh, sizeLow] = cellsAt(fdt, path, "reg");
  return { base: baseHigh * 2 ** 32 + baseLow, size: sizeHigh * 2 ** 32 + sizeLow };
}

/** Our platform, configured like the QEMU machine that produced `qemu`. */
function platformLike(qemu: Fdt): Fdt {
  const soc = findNode(qemu, "/soc");
  assert.ok(soc);
  const virtio = soc.children
    .filter((node) => node.name.startsWith("virtio_mmio@"))
    .map((node) => device(qemu, `/soc/${node.name}`))
    .sort((a, b) => a.base - b.base);
  const harts = findNode(qemu, "/cpus")?.children.filter((node) => node.name.startsWith("cpu@"));
  return parseDeviceTree(
    buildPlatformDeviceTree({
      memory: [region(qemu, "/memory@80000000")],
      harts: harts?.length ?? 0,
      uart: device(qemu, "/soc/serial@10000000"),
      virtio,
      plic: {
        ...region(qemu, "/soc/plic@c000000"),
        sources: cellsAt(qemu, "/soc/plic@c000000", "riscv,ndev")[0],
      },
    }),
  );
}

/** Each (interrupt controller path, irq) pair of an interrupts-extended value. */
function contexts(fdt: Fdt, value: Uint8Array): [string, number][] {
  const targets = phandleTargets(fdt);
  const cells = decodeCells(value);
  const pairs: [string, number][] = [];
  for (let i = 0; i < cells.length; i += 2)
    pairs.push([targets.get(cells[i]) ?? "?", cells[i + 1]]);
  return pairs;
}

describe("the platform tree against QEMU's virt machine", { skip }, () => {
  const qemuBlob = () => {
    if (!status.available) assert.fail(`QEMU is required under CI: ${status.reason}`);
    return qemuVirtDtb(2, "128M");
  };
  const load = () => parseDeviceTree(qemuBlob());

  test("follows QEMU's node names, properties and values, apart from the documented differences", () => {
    const qemu = load();
    const ours = platformLike(qemu);
    const problems: string[] = [];
    const qemuPaths = new Map(paths(qemu.root));
    const ourPaths = new Map(paths(ours.root));

    const qemuOnly = [...qemuPaths.keys()].filter(
      (path) =>
        !ourPaths.has(path) &&
        !Object.keys(QEMU_ONLY_NODES).some((only) => path === only || path.startsWith(`${only}/`)),
    );
    problems.push(...qemuOnly.map((path) => `${path}: only QEMU has this node`));
    for (const only of Object.keys(QEMU_ONLY_NODES)) {
      if (!qemuPaths.has(only))
        problems.push(`${only}: documented as QEMU-only, but QEMU lacks it`);
    }

    const qemuTargets = phandleTargets(qemu);
    const ourTargets = phandleTargets(ours);
    for (const [path, node] of ourPaths) {
      const theirs = qemuPaths.get(path);
      if (!theirs) {
        problems.push(`${path}: QEMU has no such node`);
        continue;
      }
      const documented = (table: Record<string, Record<string, string>>, name: string) =>
        table[pattern(path)]?.[name] !== undefined;
      for (const name of theirs.properties.keys()) {
        if (!node.properties.has(name) && !documented(QEMU_ONLY_PROPERTIES, name)) {
          problems.push(`${path}: only QEMU has ${name}`);
        }
      }
      for (const [name, value] of node.properties) {
        const theirValue = theirs.properties.get(name);
        if (theirValue === undefined) {
          if (!documented(OUR_ONLY_PROPERTIES, name))
            problems.push(`${path}: only we have ${name}`);
        } else if (name === "phandle" || documented(DIFFERENT_VALUES, name)) {
          continue;
        } else if (PHANDLE_REFERENCES.has(name)) {
          const target = ourTargets.get(decodeCells(value)[0]);
          if (target !== qemuTargets.get(decodeCells(theirValue)[0])) {
            problems.push(`${path}: ${name} refers to ${target}, QEMU's elsewhere`);
          }
        } else if (!Buffer.from(value).equals(theirValue)) {
          problems.push(`${path}: ${name} differs from QEMU's`);
        }
      }
    }
    assert.deepEqual(problems, []);
  });

  test("the documented value differences are the expected ones", () => {
    const qemu = load();
    const ours = platformLike(qemu);
    const compatible = (fdt: Fdt) => findNode(fdt, "/")?.properties.get("compatible");
    assert.ok(
      Buffer.from(compatible(ours) ?? [])
        .toString()
        .includes("riscv-virtio\0"),
    );
    assert.ok(Buffer.from(compatible(qemu) ?? []).equals(Buffer.from("riscv-virtio\0")));

    // QEMU under TCG routes each hart's M- and S-mode external interrupt
    // contexts; we route the S-mode ones, as QEMU does under KVM.
    const plic = (fdt: Fdt) =>
      findNode(fdt, "/soc/plic@c000000")?.properties.get("interrupts-extended");
    const qemuContexts = contexts(qemu, plic(qemu) ?? new Uint8Array(0));
    assert.deepEqual(new Set(qemuContexts.map(([, irq]) => irq)), new Set([IRQ_M_EXT, IRQ_S_EXT]));
    assert.deepEqual(
      contexts(ours, plic(ours) ?? new Uint8Array(0)),
      qemuContexts.filter(([, irq]) => irq === IRQ_S_EXT),
    );
  });

  test("our reader and writer carry QEMU's tree through unchanged", () => {
    const blob = qemuBlob();
    assert.deepEqual(
      parseDeviceTree(flattenDeviceTree(parseDeviceTree(blob))),
      parseDeviceTree(blob),
    );
  });

  // libfdt lays QEMU's blob out differently (free space, string order), so
  // compare what dtc makes of the two.
  test(
    "dtc sees no difference between QEMU's blob and our rewrite of it",
    { skip: dtcSkip },
    () => {
      if (!dtcState.available) assert.fail(`dtc is required under CI: ${dtcState.reason}`);
      const blob = qemuBlob();
      const decompiled = (dtb: Uint8Array) =>
        dtc(["-I", "dtb", "-O", "dts"], dtb).output.toString();
      assert.equal(decompiled(flattenDeviceTree(parseDeviceTree(blob))), decompiled(blob));
    },
  );
});
