import type { Command } from "commander";
import { runCpuBenchmark } from "../../bench/cpu.js";
import { runInt64RepresentationBenchmark } from "../../bench/int64-representation.js";
import { registerBenchMigrateCommand } from "./bench-migrate.js";
import { registerBenchRestoreCommand } from "./bench-restore.js";
import { registerDemandPagingCommand } from "./bench-demand-paging.js";
import { positiveInteger } from "../numbers.js";

export function registerBenchCommands(program: Command): void {
  const bench = program.command("bench").description("measure faultline");
  registerBenchMigrateCommand(bench);
  registerBenchRestoreCommand(bench);

  bench
    .command("cpu")
    .description("guest MIPS of the interpreter on the bundled integer workload")
    .option(
      "--rounds <n>",
      "workload rounds (about 0.3 M instructions each)",
      positiveInteger,
      2000,
    )
    .option("--json", "print the result as JSON")
    .action((options: { rounds: number; json?: boolean }) => {
      const result = runCpuBenchmark(options.rounds);
      if (options.json) {
        process.stdout.write(`${JSON.stringify(result)}\n`);
        return;
      }
      process.stdout.write(
        `${result.mips.toFixed(1)} MIPS: ${result.instructions.toLocaleString("en-US")} guest ` +
          `instructions in ${result.seconds.toFixed(2)} s (checksum ${result.checksum})\n`,
      );
    });

  bench
    .command("int64")
    .description("the 64-bit register representations the interpreter could use, side by side")
    .option("--iterations <n>", "kernel iterations", positiveInteger, 20_000_000)
    .option("--json", "print the result as JSON")
    .action((options: { iterations: number; json?: boolean }) => {
      const rows = runInt64RepresentationBenchmark(options.iterations);
      if (options.json) {
        process.stdout.write(`${JSON.stringify({ representations: rows })}\n`);
        return;
      }
      for (const row of rows) {
        process.stdout.write(
          `${row.name.padEnd(36)} ${row.mops.toFixed(0).padStart(6)} Mops/s  ` +
            `${row.relativeToPairs.toFixed(2)}x\n`,
        );
      }
    });

  registerDemandPagingCommand(bench);
}
