/**
 * The device tree faultline hands its guests in a1, shaped like QEMU's virt
 * machine under KVM so that one guest binary (OpenSBI-style payloads, Linux)
 * finds the same nodes in the same places on both:
 *
 *   /                      #address-cells = #size-cells = 2
 *     chosen               bootargs, stdout-path
 *     memory@80000000      one node per RAM region
 *     cpus                 timebase-frequency
 *       cpu@N              one per hart, with its interrupt-controller
 *     soc                  simple-bus, identity ranges
 *       plic@...           only when configured
 *       serial@10000000    the 16550A
 *       virtio_mmio@...    one per virtio-mmio device
 *
 * Where it departs from QEMU 7.2's virt tree (checked in
 * test/vmm/fdt/qemu-virt.test.ts):
 * - no CLINT: timer and IPIs are SBI TIME and IPI calls into the
 *   hypervisor, as on QEMU's virt under KVM;
 * - no sifive,test / syscon-poweroff / syscon-reboot: shutdown and reset are
 *   SBI SRST; no fw-cfg, flash, RTC, PCIe, platform bus or PMU node: none
 *   exists;
 * - no /chosen/rng-seed, so the same config always gives the same bytes;
 * - no cpu-map and so no phandles on cpu nodes: every hart is its own core;
 * - mmu-type is "riscv,sv39": the harts have no Sv48 or Sv57;
 * - the cpu nodes also carry riscv,isa-base and riscv,isa-extensions (the
 *   binding newer QEMU emits and Linux 6.5+ prefers over riscv,isa);
 * - the cpu interrupt controllers have #address-cells = <0> (dtc 1.6 warns
 *   about an interrupt provider without it; QEMU 7.2 leaves it out);
 * - the PLIC lists only each hart's S-mode external interrupt context: the
 *   guest has no M-mode, as under KVM;
 * - nodes come in config order; QEMU's libfdt calls leave them reversed.
 */
import { TIMEBASE_FREQUENCY } from "../../riscv/cpu/constants.js";
import { DeviceTree, DeviceTreeError, type DeviceTreeNode } from "./tree.js";
import { flattenDeviceTree } from "./writer.js";

/** A range of guest physical addresses. */
export interface MemoryRegion {
  base: number;
  size: number;
}

/** An MMIO device; `irq` is its PLIC source number, when there is a PLIC. */
export interface MmioDevice {
  base: number;
  irq?: number;
}

export interface PlatformConfig {
  /** RAM regions; the first holds the boot image and the device tree. */
  memory: readonly MemoryRegion[];
  harts: number;
  /** The kernel command line (/chosen/bootargs). */
  bootargs?: string;
  /** The console 16550A, also /chosen/stdout-path. */
  uart: MmioDevice;
  virtio?: readonly MmioDevice[];
  /** A PLIC routing device interrupts to the harts; without one, no device has an irq. */
  plic?: PlicConfig;
}

/** A SiFive-compatible PLIC, as on QEMU's virt machine. */
export interface PlicConfig {
  base: number;
  size: number;
  /** Number of interrupt sources (riscv,ndev); device irqs are 1 to this. */
  sources: number;
}

/**
 * The largest device tree handed to a guest: 1 MiB, QEMU's FDT_MAX_SIZE and
 * the window early Linux/riscv kernels map the DTB through (FIX_FDT_SIZE).
 */
export const DEVICE_TREE_MAX_SIZE = 0x10_0000;

/** What the harts implement (src/riscv/cpu): RV64IMA with Zicsr and Zifencei. */
const ISA_BASE = "rv64i";
const ISA_EXTENSIONS = ["i", "m", "a", "zicsr", "zifencei"];

/** The UART's register window and input clock, as QEMU's virt declares its 16550A. */
const UART_SIZE = 0x100;
const UART_CLOCK_FREQUENCY = 3_686_400;

const VIRTIO_MMIO_SIZE = 0x1000;

/** The supervisor external interrupt, as numbered by riscv,cpu-intc (mip.SEIP). */
const IRQ_S_EXT = 9;

/** The device tree for `config`, as a DTB. */
export function buildPlatformDeviceTree(config: PlatformConfig): Uint8Array {
  if (!Number.isInteger(config.harts) || config.harts < 1) {
    throw new DeviceTreeError(`a platform needs at least one hart (got ${config.harts})`);
  }
  if (config.memory.length === 0) throw new DeviceTreeError("a platform needs RAM");

  const tree = new DeviceTree();
  const root = tree.root
    .u32("#address-cells", 2)
    .u32("#size-cells", 2)
    .strings("compatible", ["faultline,virt", "riscv-virtio"])
    .string("model", "riscv-virtio,faultline");

  const chosen = root.addNode("chosen");
  if (config.bootargs !== undefined) chosen.string("bootargs", config.bootargs);

  for (const region of config.memory) {
    checkRegion("memory", region);
    root
      .addNode(`memory@${hex(region.base)}`)
      .string("device_type", "memory")
      .cells("reg", reg(region.base, region.size));
  }

  const intcs = addCpus(root, config);

  const soc = root
    .addNode("soc")
    .u32("#address-cells", 2)
    .u32("#size-cells", 2)
    .string("compatible", "simple-bus")
    .empty("ranges");
  const plic = config.plic && addPlic(soc, config.plic, intcs);

  const uart = addMmioDevice(soc, "serial", "ns16550a", config.uart, UART_SIZE, plic).u32(
    "clock-frequency",
    UART_CLOCK_FREQUENCY,
  );
  chosen.string("stdout-path", uart.path);

  for (const device of config.virtio ?? []) {
    addMmioDevice(soc, "virtio_mmio", "virtio,mmio", device, VIRTIO_MMIO_SIZE, plic);
  }
  return flattenDeviceTree(tree);
}

/** /cpus and a cpu@N per hart, hart id N; returns each hart's interrupt controller. */
function addCpus(root: DeviceTreeNode, config: PlatformConfig): DeviceTreeNode[] {
  const cpus = root
    .addNode("cpus")
    .u32("#address-cells", 1)
    .u32("#size-cells", 0)
    .u32("timebase-frequency", TIMEBASE_FREQUENCY);
  const singleLetter = ISA_EXTENSIONS.filter((extension) => extension.length === 1);
  const multiLetter = ISA_EXTENSIONS.filter((extension) => extension.length > 1);
  // The riscv,isa string Linux before 6.5 and OpenSBI parse: "rv64ima_zicsr_zifencei".
  const isa = [`rv64${singleLetter.join("")}`, ...multiLetter].join("_");
  const intcs: DeviceTreeNode[] = [];
  for (let hart = 0; hart < config.harts; hart++) {
    const cpu = cpus
      .addNode(`cpu@${hex(hart)}`)
      .string("device_type", "cpu")
      .u32("reg", hart)
      .string("status", "okay")
      .string("compatible", "riscv")
      .string("riscv,isa", isa)
      .string("riscv,isa-base", ISA_BASE)
      .strings("riscv,isa-extensions", ISA_EXTENSIONS)
      .string("mmu-type", "riscv,sv39");
    const intc = cpu
      .addNode("interrupt-controller")
      .u32("#address-cells", 0)
      .u32("#interrupt-cells", 1)
      .empty("interrupt-controller")
      .string("compatible", "riscv,cpu-intc");
    // Given a phandle even with nothing to route, as on QEMU: per-hart
    // interrupt sources name the hart's controller by it (interrupts-extended).
    intc.phandle();
    intcs.push(intc);
  }
  return intcs;
}

function addPlic(soc: DeviceTreeNode, config: PlicConfig, intcs: DeviceTreeNode[]): PlicNode {
  checkRegion("plic", config);
  // Source 0 means "no interrupt"; the PLIC has at most 1023 sources.
  if (!Number.isInteger(config.sources) || config.sources < 1 || config.sources > 1023) {
    throw new DeviceTreeError(`plic: ${config.sources} sources is not 1 to 1023`);
  }
  const node = soc
    .addNode(`plic@${hex(config.base)}`)
    .strings("compatible", ["sifive,plic-1.0.0", "riscv,plic0"])
    .cells("reg", reg(config.base, config.size))
    .u32("#address-cells", 0)
    .u32("#interrupt-cells", 1)
    .empty("interrupt-controller")
    .u32("riscv,ndev", config.sources)
    .cells(
      "interrupts-extended",
      intcs.flatMap((intc) => [intc.phandle(), IRQ_S_EXT]),
    );
  return { phandle: node.phandle(), sources: config.sources };
}

interface PlicNode {
  phandle: number;
  sources: number;
}

function addMmioDevice(
  soc: DeviceTreeNode,
  name: string,
  compatible: string,
  device: MmioDevice,
  size: number,
  plic: PlicNode | undefined,
): DeviceTreeNode {
  checkRegion(name, { base: device.base, size });
  const node = soc
    .addNode(`${name}@${hex(device.base)}`)
    .string("compatible", compatible)
    .cells("reg", reg(device.base, size));
  if (device.irq !== undefined) {
    if (plic === undefined) {
      throw new DeviceTreeError(`${node.path} has irq ${device.irq} but there is no PLIC`);
    }
    if (!Number.isInteger(device.irq) || device.irq < 1 || device.irq > plic.sources) {
      throw new DeviceTreeError(`${node.path}: irq ${device.irq} is not 1 to ${plic.sources}`);
    }
    node.u32("interrupt-parent", plic.phandle).u32("interrupts", device.irq);
  }
  return node;
}

/**
 * Where the VMM copies a device tree of `size` bytes into `ram`: at
 * `address` if given (the spec requires 8-byte alignment), else as high as
 * it fits on a 4 KiB boundary, out of the way of an image loaded low in RAM
 * and of the kernel's early allocations (guests reserve it themselves, as
 * Linux's early_init_fdt_reserve_self does). QEMU also caps the address at
 * 3 GiB for 32-bit guests; faultline's are 64-bit.
 */
export function placeDeviceTree(size: number, ram: MemoryRegion, address?: number): number {
  if (!Number.isInteger(size) || size <= 0 || size > DEVICE_TREE_MAX_SIZE) {
    throw new RangeError(`device tree of ${size} bytes is not 1 to ${DEVICE_TREE_MAX_SIZE}`);
  }
  const end = ram.base + ram.size;
  const at = address ?? Math.floor((end - size) / 0x1000) * 0x1000;
  if (!Number.isSafeInteger(at) || at % 8 !== 0) {
    throw new RangeError(`device tree address 0x${at.toString(16)} is not 8-byte aligned`);
  }
  if (at < ram.base || at + size > end) {
    throw new RangeError(
      `device tree at 0x${at.toString(16)}, ${size} bytes, is outside RAM ` +
        `0x${ram.base.toString(16)}-0x${end.toString(16)}`,
    );
  }
  return at;
}

function checkRegion(what: string, region: MemoryRegion): void {
  const { base, size } = region;
  if (!Number.isSafeInteger(base) || base < 0 || !Number.isSafeInteger(size) || size <= 0) {
    throw new DeviceTreeError(`${what}: base ${base}, size ${size} is not a region of memory`);
  }
}

/** One (address, size) pair as 2 + 2 cells, for a bus with #address-cells = #size-cells = 2. */
function reg(address: number, size: number): number[] {
  return [...split64(address), ...split64(size)];
}

function split64(value: number): [number, number] {
  return [Math.floor(value / 2 ** 32), value % 2 ** 32];
}

/** A unit address: lowercase hex, no 0x, no leading zeros (dtc's unit_address_format). */
function hex(value: number): string {
  return value.toString(16);
}
