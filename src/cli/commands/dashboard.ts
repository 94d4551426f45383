import type { Command } from "commander";
import { createDashboard } from "../../web/server.js";
import { tcpPort } from "../numbers.js";
import { FAULTLINE_CLI } from "./bench-migrate.js";

/** `faultline dashboard`: the page that starts live migrations and shows them as they run. */
export function registerDashboardCommand(program: Command): void {
  program
    .command("dashboard")
    .description("serve a page that live-migrates the busy guest and shows it as it happens")
    .option("--host <address>", "address to listen on", "127.0.0.1")
    .option("--port <n>", "TCP port (0: any free port)", tcpPort, 8080)
    .action(async (options: { host: string; port: number }) => {
      const { app, runs } = createDashboard(FAULTLINE_CLI);
      const address = await app.listen({ host: options.host, port: options.port });
      process.stderr.write(`faultline dashboard: ${address}\n`);
      const stop = () => {
        process.stderr.write("faultline dashboard: stopping once the migration under way ends\n");
        void runs
          .idle()
          .then(() => app.close())
          .then(() => process.exit(0));
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
}
