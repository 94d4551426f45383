import { Command, CommanderError } from "commander";
import { registerBenchCommands } from "./commands/bench.js";
import { registerDemoCommand } from "./commands/demo.js";

const program = new Command()
  .name("faultline")
  .description("A RISC-V hypervisor with KVM Userfault, post-copy live migration and lazy restore")
  .showHelpAfterError()
  .exitOverride();

registerDemoCommand(program);
registerBenchCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode;
  } else {
    process.stderr.write(`faultline: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
}
