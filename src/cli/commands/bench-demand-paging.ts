import type { Command } from "commander";

/** `faultline bench demand-paging`: registered on the `bench` command (see bench.ts). */
export function registerDemandPagingCommand(bench: Command): void {
  bench
    .command("demand-paging")
    .description(
      "demand-paging rate of KVM Userfault and userfaultfd (the kernel's demand_paging_test)",
    )
    .action(() => {
      throw new Error("bench demand-paging: not implemented yet");
    });
}
