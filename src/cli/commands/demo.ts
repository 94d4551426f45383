import type { Command } from "commander";
import { bundledGuestSource } from "../../guests/index.js";
import { assemble } from "../../riscv/asm/index.js";
import { Hart } from "../../riscv/cpu/hart.js";
import { loadProgram, physicalEntry } from "../../riscv/elf/index.js";
import { FlatMemory } from "../../riscv/testing/flat-memory.js";
import { runProgram } from "../../riscv/testing/run-program.js";

/**
 * `faultline demo`: boots the bundled demo guest on one hart and prints what
 * it computed. It grows into the post-copy migration demo once migration
 * exists.
 */
export function registerDemoCommand(program: Command): void {
  program
    .command("demo")
    .description("boot the bundled demo guest and show what it computes")
    .action(() => {
      const guest = assemble(bundledGuestSource("demo"), { fileName: "demo.s" });
      const memory = new FlatMemory(0x8000_0000, 16 << 20);
      loadProgram(guest.image, memory);
      const hart = new Hart({ hartId: 0, memory });
      hart.pc = physicalEntry(guest.image);
      const started = performance.now();
      const result = runProgram(hart);
      const seconds = (performance.now() - started) / 1000;
      process.stdout.write(result.console);
      process.stderr.write(
        `faultline: guest ${result.stop === "shutdown" ? "shut down" : `stopped (${result.stop})`} ` +
          `after ${result.instructions.toLocaleString("en-US")} instructions in ${seconds.toFixed(2)} s ` +
          `(${(result.instructions / seconds / 1e6).toFixed(0)} MIPS)\n`,
      );
      process.exitCode = result.stop === "shutdown" && result.shutdownReason === 0 ? 0 : 1;
    });
}
