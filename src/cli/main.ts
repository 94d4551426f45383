import { Command, CommanderError } from "commander";
import { registerBenchCommands } from "./commands/bench.js";
import { registerDashboardCommand } from "./commands/dashboard.js";
import { registerDemoCommand } from "./commands/demo.js";
import { registerMigrateCommands } from "./commands/migrate.js";
import { registerRunCommand } from "./commands/run.js";
import { registerSnapshotCommands } from "./commands/snapshot.js";

const program = new Command()
  .name("faultline")
  .description(
    "A RISC-V hypervisor with KVM Userfault, post-copy live migration and lazy snapshot restore",
  )
  .showHelpAfterError()
  .exitOverride();

registerRunCommand(program);
registerDemoCommand(program);
registerMigrateCommands(program);
registerSnapshotCommands(program);
registerBenchCommands(program);
registerDashboardCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  // 2 for faultline's own failures (bad arguments, unreadable guests), so
  // that 1 keeps meaning what the guest said: a system-failure shutdown.
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode === 0 ? 0 : 2;
  } else {
    process.stderr.write(`faultline: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 2;
  }
}
