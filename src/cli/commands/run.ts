import { type Command, InvalidArgumentError, Option } from "commander";
import { readGuestImage } from "../../vmm/guest-image.js";
import { Machine } from "../../vmm/machine.js";
import type { RamBacking } from "../../vmm/guest-ram.js";
import { parsePageSize, parseSize } from "../sizes.js";

function vcpuCount(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new InvalidArgumentError("1 to 256");
  return n;
}

interface RunOptions {
  mem: number;
  vcpus: number;
  backing: RamBacking;
  hugepages: 4096 | 2097152 | 1073741824;
  allHarts?: boolean;
}

/**
 * `faultline run GUEST`: boot a guest and give it the terminal. Only the
 * guest's console goes to stdout; diagnostics go to stderr. The exit status
 * is the guest's: 0 for an SRST shutdown with reason "none", 1 otherwise.
 */
export function registerRunCommand(program: Command): void {
  program
    .command("run")
    .description("boot a guest (ELF, assembly source or raw image) and run it to shutdown")
    .argument("<guest>", "guest image: ELF, .s assembly source, or raw binary")
    .option("--mem <size>", "guest RAM", parseSize, 128 * 2 ** 20)
    .option("--vcpus <n>", "number of vCPUs", vcpuCount, 1)
    .addOption(
      new Option("--backing <kind>", "guest memory backing")
        .choices(["guest_memfd", "anonymous", "shmem"])
        .default("guest_memfd"),
    )
    .option("--hugepages <size>", "backing page size: 4K, 2M or 1G", parsePageSize, 4096)
    .option("--all-harts", "start every vCPU at the entry instead of vCPU 0 alone")
    .action(async (guest: string, options: RunOptions) => {
      const { image, entry } = readGuestImage(guest);
      const machine = new Machine({
        memBytes: options.mem,
        vcpus: options.vcpus,
        backing: options.backing,
        pageSize: options.hugepages,
        startAllHarts: options.allHarts,
      });
      machine.load(image);
      const result = await machine.run(entry, machine.loadDeviceTree(), {
        console: (text) => process.stdout.write(text),
        warning: (text) => process.stderr.write(`faultline: ${text}\n`),
      });
      if (result.end === "error") {
        process.stderr.write(`faultline: ${result.message}\n`);
        process.exitCode = 2;
        return;
      }
      process.exitCode = result.end === "shutdown" && result.reason === 0 ? 0 : 1;
      if (result.end !== "shutdown") process.stderr.write(`faultline: guest ${result.message}\n`);
    });
}
