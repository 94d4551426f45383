import { type Command, Option } from "commander";
import { DEFAULT_IO_EVERY } from "../migration/machine/dirtier.js";
import type { MigratableVmSpec } from "../migration/machine/migratable-vm.js";
import type { RamBacking } from "../vmm/guest-ram.js";
import { nonNegativeInteger, positiveInteger } from "./numbers.js";
import { parsePageSize, parseSize } from "./sizes.js";

/** The dirtier guest's shape and workload, as `migrate` and `snapshot save` take them. */
export interface GuestOptions {
  mem: number;
  vcpus: number;
  backing: RamBacking;
  hugepages: 4096 | 2097152 | 1073741824;
  iterations: number;
  stores: number;
  ioEvery: number;
}

export function addGuestOptions(command: Command): Command {
  return command
    .option("--mem <size>", "guest RAM", parseSize, 64 * 2 ** 20)
    .option("--vcpus <n>", "vCPUs, each dirtying its own part of RAM", positiveInteger, 4)
    .addOption(
      new Option("--backing <kind>", "guest memory backing")
        .choices(["guest_memfd", "anonymous", "shmem"])
        .default("guest_memfd"),
    )
    .option("--hugepages <size>", "backing page size: 4K, 2M or 1G", parsePageSize, 4096)
    .option("--iterations <n>", "workload iterations per vCPU", positiveInteger, 4000)
    .option("--stores <n>", "stores per iteration", positiveInteger, 256)
    .option(
      "--io-every <n>",
      "vCPU 0 reads a disk page through virtio-blk every n iterations (0: never)",
      nonNegativeInteger,
      DEFAULT_IO_EVERY,
    );
}

export function guestSpecOf(o: GuestOptions): MigratableVmSpec {
  return {
    memBytes: o.mem,
    vcpus: o.vcpus,
    backing: o.backing,
    pageSize: o.hugepages,
    iterations: o.iterations,
    storesPerIteration: o.stores,
    ioEvery: o.ioEvery,
  };
}

/** The command-line arguments that give another faultline process the same guest. */
export function guestArgs(o: GuestOptions): string[] {
  return [
    "--mem",
    String(o.mem),
    "--vcpus",
    String(o.vcpus),
    "--backing",
    o.backing,
    "--hugepages",
    String(o.hugepages),
    "--iterations",
    String(o.iterations),
    "--stores",
    String(o.stores),
    "--io-every",
    String(o.ioEvery),
  ];
}
