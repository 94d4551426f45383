import cliProgress from "cli-progress";
import type { Command } from "commander";
import { DEMO_IO_EVERY, demoGuestArgs, migrateLocally } from "../../migration/local-pair.js";
import {
  type DestinationStats,
  MIGRATION_STATUS_LABELS,
  type MigrationStatus,
  type SourceStats,
} from "../../migration/stats.js";
import { FAULTLINE_CLI } from "./bench-migrate.js";
import { hexChecksums } from "../checksums.js";

/**
 * `faultline demo`: what faultline is for, in a few seconds. A busy guest
 * (four vCPUs writing their memory and a running checksum of it) is
 * live-migrated by post-copy from one faultline process to another over
 * loopback TCP: it runs on the destination at once and faults its memory in
 * through KVM Userfault while a background pusher sends the rest. At the
 * end the guest's own checksums are compared with what it computes without
 * migration.
 */
export function registerDemoCommand(program: Command): void {
  program
    .command("demo")
    .description(
      "live-migrate a busy 4-vCPU guest by post-copy between two processes, checksum verified",
    )
    .option("--mem <MiB>", "guest RAM in MiB", "64")
    .action(async (options: { mem: string }) => {
      const memMiB = Number(options.mem) | 0;
      const out = process.stderr;
      out.write(
        `faultline demo: a guest on 4 vCPUs dirties ${memMiB} MiB of RAM as fast as it can, and vCPU 0\n` +
          `reads its virtio-blk disk every ${DEMO_IO_EVERY} iterations; it is migrated by post-copy from\n` +
          `one faultline process to another over loopback TCP.\n`,
      );
      const bars = out.isTTY
        ? new cliProgress.MultiBar(
            {
              stream: out,
              format: "{side} [{bar}] {percentage}% | {phase}",
              hideCursor: true,
              clearOnComplete: false,
              fps: 12,
            },
            cliProgress.Presets.shades_classic,
          )
        : null;
      const bar = {
        source: null as cliProgress.SingleBar | null,
        destination: null as cliProgress.SingleBar | null,
      };
      const lastPhase = { source: "", destination: "" };
      const run = await migrateLocally({
        cli: FAULTLINE_CLI,
        vmArgs: demoGuestArgs(memMiB, 4),
        listenArgs: ["--verify"],
        sendArgs: ["--mode", "postcopy", "--warmup", "300"],
        timeoutMs: 120_000,
        onEvent: (side, e) => {
          if (e.event !== "progress") return;
          const total = Number(e.pagesTotal);
          const done = total - Number(e.remaining);
          const phase = MIGRATION_STATUS_LABELS[e.status as MigrationStatus] ?? String(e.status);
          const label = side === "source" ? "source      sent" : "destination have";
          if (bars) {
            bar[side] ??= bars.create(total, 0, { side: label, phase });
            bar[side]!.update(done, { side: label, phase });
          } else if (phase !== lastPhase[side]) {
            lastPhase[side] = phase;
            out.write(`  ${side}: ${phase}\n`);
          }
        },
      });
      bars?.stop();
      const result = run.destination.event("result");
      const sourceResult = run.source.event("result");
      if (!result || !sourceResult) {
        const error = run.source.event("error") ?? run.destination.event("error");
        out.write(
          `faultline demo: the migration failed: ${String(error?.message)}\n${run.source.stderr}${run.destination.stderr}`,
        );
        process.exitCode = 1;
        return;
      }
      const s = sourceResult.stats as SourceStats;
      const d = result.stats as DestinationStats;
      const verified = result.verified === true;
      process.stdout.write(
        `migrated while running: downtime ${s.downtimeMs.toFixed(1)} ms, total ${s.totalTimeMs.toFixed(0)} ms, ` +
          `${(s.transferredBytes / 2 ** 20).toFixed(0)} MiB sent\n` +
          `post-copy: ${s.postcopyRequests} pages requested by faults, the rest pushed; ` +
          `fault latency p50 ${d.faultLatencyUs.p50} µs, p99 ${d.faultLatencyUs.p99} µs; ` +
          `asynchronous userfaults (disk reads into missing pages): ${d.asyncFaults}\n` +
          `guest checksums on the destination: ${hexChecksums(result.checksums as number[])}\n` +
          (verified
            ? "verified: the same as the guest computes without migration\n"
            : `WRONG: expected ${hexChecksums(result.expected as number[])}\n`),
      );
      process.exitCode = verified ? 0 : 1;
    });
}
