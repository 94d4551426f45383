import { fail } from "../host/errno.js";
import type { HostMemory } from "../host/host-memory.js";
import { lock, unlock } from "../host/sync.js";
import { ACCESS_WRITE, MIP_SEIP } from "../riscv/cpu/constants.js";
import { lowerInterrupt, raiseInterrupt } from "../riscv/cpu/hart-control.js";
import type { Hart } from "../riscv/cpu/hart.js";
import type { Vm } from "./vm.js";

/**
 * The in-kernel MMIO bus of a VM (KVM's kvm_io_bus): devices registered at a
 * guest-physical range are emulated in the hypervisor, on the thread of the
 * vCPU that touched them, without an MMIO exit to the VMM. Accesses to any
 * other address that has no memslot still exit with EXIT_MMIO.
 *
 * The registry lives in the arena, so every thread attached to the VM sees
 * the same devices; each thread makes its own device object from the
 * registered type's factory on first use (as host/files.ts does for release
 * functions). A device's own state is in the arena too, at the offset given
 * at registration.
 *
 * faultline's platform has no interrupt controller yet: the bus keeps one
 * level-triggered interrupt line per device, and the supervisor external
 * interrupt (SEIP) of hart 0 is the OR of all lines. A PLIC would take the
 * lines as its sources instead.
 */

/** What a device does with an access at `offset` inside its range. */
export interface IoDevice {
  /** A load of `size` bytes (1, 2 or 4): the value, zero-extended. */
  read(offset: number, size: number): number;
  /** A store of `size` bytes (1, 2 or 4) of `value` (the low bits count). */
  write(offset: number, size: number, value: number): void;
}

/** Make this thread's object for a device whose state is at arena offset `state`. */
export type IoDeviceFactory = (vm: Vm, state: number) => IoDevice;

const deviceTypes = new Map<number, { name: string; create: IoDeviceFactory }>();

/**
 * Declare an in-kernel device type. The module defining it calls this when
 * loaded; vm.ts imports the in-kernel devices, so every thread that attaches
 * a VM can instantiate them.
 */
export function registerIoDeviceType(type: number, name: string, create: IoDeviceFactory): void {
  deviceTypes.set(type, { name, create });
}

export const MAX_IO_DEVICES = 32;

// Bus record words: a lock, a generation bumped by every change, the asserted
// interrupt lines, then one entry per device slot.
const B_LOCK = 0;
const B_GENERATION = 1;
const B_LINES = 2;
const B_ENTRIES = 4;
// Entry words: gpa and length as float64 (two words each), type, state offset.
const E_GPA = 0;
const E_LENGTH = 2;
const E_TYPE = 4;
const E_STATE = 5;
const ENTRY_WORDS = 8;
const BUS_BYTES = (B_ENTRIES + MAX_IO_DEVICES * ENTRY_WORDS) * 4;

export interface IoDeviceRegistration {
  gpa: number;
  length: number;
  type: number;
  /** Arena offset of the device's state. */
  state: number;
}

export class IoBus {
  private readonly words: Int32Array;
  private readonly f64: Float64Array;
  private readonly base: number;
  /** This thread's copy of the registry, rebuilt when the generation moves. */
  private generation = -1;
  private starts: number[] = [];
  private ends: number[] = [];
  private devices: IoDevice[] = [];
  /** This thread's device objects, by state offset: kept across registry changes. */
  private readonly instances = new Map<number, IoDevice>();

  constructor(
    private readonly vm: Vm,
    readonly offset: number,
  ) {
    this.words = vm.memory.arenaI32;
    this.f64 = vm.memory.arenaF64;
    this.base = offset >> 2;
  }

  static allocate(memory: HostMemory): number {
    return memory.arenaAllocate(BUS_BYTES, 64);
  }

  private entry(slot: number): number {
    return this.base + B_ENTRIES + slot * ENTRY_WORDS;
  }

  /**
   * kvm_io_bus_register_dev: put a device at [gpa, gpa + length). Returns its
   * interrupt line, which the device keeps in its state. EEXIST on overlap with
   * another device, ENOSPC when the bus is full, EINVAL for a bad range or an
   * unknown type.
   */
  register({ gpa, length, type, state }: IoDeviceRegistration): number {
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(length) || gpa < 0 || length <= 0) {
      fail("EINVAL", "an I/O device needs a positive length at a non-negative address");
    }
    if (!deviceTypes.has(type)) fail("EINVAL", `unknown I/O device type ${type}`);
    lock(this.words, this.base + B_LOCK);
    try {
      let free = -1;
      for (let slot = 0; slot < MAX_IO_DEVICES; slot++) {
        const e = this.entry(slot);
        if (this.words[e + E_TYPE] === 0) {
          if (free < 0) free = slot;
          continue;
        }
        const start = this.f64[(e + E_GPA) >> 1];
        if (gpa < start + this.f64[(e + E_LENGTH) >> 1] && start < gpa + length) {
          fail("EEXIST", `I/O range at 0x${gpa.toString(16)} overlaps a registered device`);
        }
      }
      if (free < 0) fail("ENOSPC", `at most ${MAX_IO_DEVICES} in-kernel I/O devices`);
      const e = this.entry(free);
      this.f64[(e + E_GPA) >> 1] = gpa;
      this.f64[(e + E_LENGTH) >> 1] = length;
      this.words[e + E_STATE] = state;
      this.words[e + E_TYPE] = type;
      Atomics.add(this.words, this.base + B_GENERATION, 1);
      return free;
    } finally {
      unlock(this.words, this.base + B_LOCK);
    }
  }

  /** Remove the device registered at `gpa` (ENOENT if none); its line is lowered. */
  unregister(gpa: number): void {
    lock(this.words, this.base + B_LOCK);
    try {
      for (let slot = 0; slot < MAX_IO_DEVICES; slot++) {
        const e = this.entry(slot);
        if (this.words[e + E_TYPE] !== 0 && this.f64[(e + E_GPA) >> 1] === gpa) {
          this.words[e + E_TYPE] = 0;
          Atomics.add(this.words, this.base + B_GENERATION, 1);
          this.setLineLocked(slot, false);
          return;
        }
      }
    } finally {
      unlock(this.words, this.base + B_LOCK);
    }
    fail("ENOENT", `no I/O device at 0x${gpa.toString(16)}`);
  }

  /** This thread's view of the registry, up to date. */
  private refresh(): void {
    const generation = Atomics.load(this.words, this.base + B_GENERATION);
    if (generation === this.generation) return;
    lock(this.words, this.base + B_LOCK);
    try {
      this.starts = [];
      this.ends = [];
      this.devices = [];
      for (let slot = 0; slot < MAX_IO_DEVICES; slot++) {
        const e = this.entry(slot);
        const type = this.words[e + E_TYPE];
        if (type === 0) continue;
        const start = this.f64[(e + E_GPA) >> 1];
        const state = this.words[e + E_STATE];
        let device = this.instances.get(state);
        if (device === undefined) {
          const info = deviceTypes.get(type);
          if (info === undefined) throw new Error(`I/O device type ${type} not loaded here`);
          device = info.create(this.vm, state);
          this.instances.set(state, device);
        }
        this.starts.push(start);
        this.ends.push(start + this.f64[(e + E_LENGTH) >> 1]);
        this.devices.push(device);
      }
      this.generation = Atomics.load(this.words, this.base + B_GENERATION);
    } finally {
      unlock(this.words, this.base + B_LOCK);
    }
  }

  /** Index in this thread's view of the device covering [gpa, gpa + size), or -1. */
  private find(gpa: number, size: number): number {
    this.refresh();
    const starts = this.starts;
    for (let i = 0; i < starts.length; i++) {
      if (gpa >= starts[i] && gpa + size <= this.ends[i]) return i;
    }
    return -1;
  }

  /** True when an in-kernel device covers [gpa, gpa + size). */
  covers(gpa: number, size: number): boolean {
    return this.find(gpa, size) >= 0;
  }

  /**
   * A load through the bus (as a vCPU would make it): ENODEV when no device
   * covers the access. Doublewords are two word accesses, low word first.
   */
  read(gpa: number, size: number): number {
    const i = this.find(gpa, size);
    if (i < 0) fail("ENODEV", `no in-kernel device at 0x${gpa.toString(16)}`);
    const device = this.devices[i];
    const offset = gpa - this.starts[i];
    if (size !== 8) return device.read(offset, size);
    return device.read(offset, 4) + device.read(offset + 4, 4) * 2 ** 32;
  }

  /** A store through the bus; ENODEV when no device covers the access. */
  write(gpa: number, size: number, value: number): void {
    const i = this.find(gpa, size);
    if (i < 0) fail("ENODEV", `no in-kernel device at 0x${gpa.toString(16)}`);
    this.writeDevice(i, gpa - this.starts[i], size, value, Math.floor(value / 2 ** 32));
  }

  private writeDevice(i: number, offset: number, size: number, lo: number, hi: number): void {
    const device = this.devices[i];
    if (size !== 8) {
      device.write(offset, size, lo >>> 0);
      return;
    }
    device.write(offset, 4, lo >>> 0);
    device.write(offset + 4, 4, hi >>> 0);
  }

  /**
   * The vCPU's MMIO fault path: if an in-kernel device covers the access that
   * just missed (hart.fault), emulate it and complete the instruction; false
   * when the access must exit to the VMM.
   */
  handleMmio(hart: Hart): boolean {
    const fault = hart.fault;
    const i = this.find(fault.gpa, fault.size);
    if (i < 0) return false;
    const offset = fault.gpa - this.starts[i];
    if (fault.access === ACCESS_WRITE) {
      this.writeDevice(i, offset, fault.size, fault.storeLo, fault.storeHi);
      hart.completeMmioStore();
      return true;
    }
    const device = this.devices[i];
    const value =
      fault.size === 8
        ? BigInt(device.read(offset, 4)) | (BigInt(device.read(offset + 4, 4)) << 32n)
        : BigInt(device.read(offset, fault.size));
    hart.completeMmioLoad(value);
    return true;
  }

  /**
   * Set the level of interrupt line `line` (a device's, from registration).
   * SEIP on hart 0 follows the OR of all lines; raising also wakes a hart in
   * WFI. A VM without vCPU 0 yet only records the level.
   */
  setLine(line: number, level: boolean): void {
    lock(this.words, this.base + B_LOCK);
    try {
      this.setLineLocked(line, level);
    } finally {
      unlock(this.words, this.base + B_LOCK);
    }
  }

  private setLineLocked(line: number, level: boolean): void {
    const at = this.base + B_LINES;
    const lines = level ? this.words[at] | (1 << line) : this.words[at] & ~(1 << line);
    this.words[at] = lines;
    const hart0 = this.vm.vcpuList()[0];
    if (hart0 === undefined) return;
    if (lines !== 0) raiseInterrupt(hart0.control, MIP_SEIP);
    else lowerInterrupt(hart0.control, MIP_SEIP);
  }

  /** The asserted lines as a bitmask (for tests and the VMM's inspection). */
  get lines(): number {
    return Atomics.load(this.words, this.base + B_LINES);
  }
}
