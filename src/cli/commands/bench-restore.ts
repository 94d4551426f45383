import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { median } from "../../bench/median.js";
import type { RestoreStats } from "../../migration/snapshot/restore-snapshot.js";
import { addGuestOptions, type GuestOptions, guestArgs } from "../guest-options.js";
import { nonNegativeInteger, positiveInteger } from "../numbers.js";
import { FAULTLINE_CLI } from "./bench-migrate.js";

interface BenchRestoreOptions extends GuestOptions {
  rounds: number;
  after: number;
  json?: boolean;
}

type RestoreRun = RestoreStats & { verified: boolean };

/** `faultline ARGS --json` in a child process; its JSON result. */
function faultlineJson<T>(args: string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [FAULTLINE_CLI, ...args, "--json"],
      { maxBuffer: 16 << 20 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`faultline ${args[0]} ${args[1]} failed: ${stderr.trim()}`));
        else resolve(JSON.parse(stdout) as T);
      },
    );
  });
}

function summary(runs: RestoreRun[]) {
  return {
    restoreTimeMs: median(runs.map((r) => r.restoreTimeMs)),
    loadTimeMs: median(runs.map((r) => r.loadTimeMs)),
    runTimeMs: median(runs.map((r) => r.runTimeMs)),
    faults: median(runs.map((r) => r.faults + r.asyncFaults)),
    faultLatencyP99Us: median(runs.map((r) => r.faultLatencyUs.p99)),
  };
}

/**
 * One snapshot, restored lazily and eagerly in turns (each restore a
 * process of its own, so neither inherits the other's page cache state
 * beyond the file's): how much sooner the guest runs, and what the lazy
 * restore costs it afterwards.
 */
async function benchRestore(o: BenchRestoreOptions): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "faultline-bench-restore-"));
  const path = join(dir, "guest.snap");
  try {
    const saved = await faultlineJson<{ bytes: number; saveTimeMs: number }>([
      "snapshot",
      "save",
      path,
      ...guestArgs(o),
      "--after",
      String(o.after),
    ]);
    const runs: { lazy: RestoreRun[]; eager: RestoreRun[] } = { lazy: [], eager: [] };
    for (let round = 0; round < o.rounds; round++) {
      // Alternating, so that a noisy moment of the machine hits both alike.
      for (const mode of round % 2 ? (["eager", "lazy"] as const) : (["lazy", "eager"] as const)) {
        const run = await faultlineJson<RestoreRun>([
          "snapshot",
          "restore",
          path,
          ...(mode === "eager" ? ["--eager"] : []),
        ]);
        if (!run.verified) throw new Error(`a ${mode} restore gave the wrong checksums`);
        runs[mode].push(run);
      }
    }
    const lazy = summary(runs.lazy);
    const eager = summary(runs.eager);
    const result = {
      memBytes: o.mem,
      vcpus: o.vcpus,
      backing: o.backing,
      rounds: o.rounds,
      snapshotBytes: saved.bytes,
      saveTimeMs: saved.saveTimeMs,
      lazy,
      eager,
      /** How many times sooner the guest runs when restored lazily. */
      restoreSpeedup: eager.restoreTimeMs / lazy.restoreTimeMs,
      /** The workload's time after a lazy restore over after an eager one. */
      runTimeRatio: lazy.runTimeMs / eager.runTimeMs,
      checksumVerified: true,
    };
    if (o.json) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return;
    }
    const row = (name: string, s: typeof lazy) =>
      `  ${name.padEnd(6)} guest runs after ${s.restoreTimeMs.toFixed(1).padStart(7)} ms, ` +
      `all memory in after ${s.loadTimeMs.toFixed(0).padStart(5)} ms, ` +
      `workload done after ${s.runTimeMs.toFixed(0).padStart(5)} ms, ${s.faults} faults\n`;
    process.stdout.write(
      `restore of a ${(o.mem / 2 ** 20).toFixed(0)} MiB guest (${o.vcpus} vCPUs, ${o.backing}), median of ${o.rounds}:\n` +
        row("lazy", lazy) +
        row("eager", eager) +
        `  the guest runs ${result.restoreSpeedup.toFixed(0)}x sooner lazily; its workload takes ` +
        `${result.runTimeRatio.toFixed(2)}x as long; checksums verified\n`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function registerBenchRestoreCommand(bench: Command): void {
  addGuestOptions(
    bench
      .command("restore")
      .description(
        "snapshot a busy guest, then restore it lazily and eagerly in turns: time until it runs, until its memory is in, until its work is done",
      )
      .option("--rounds <n>", "restores of each kind", positiveInteger, 3)
      .option(
        "--after <ms>",
        "let the guest run this long before the snapshot",
        nonNegativeInteger,
        300,
      )
      .option("--json", "print the result as JSON"),
  ).action((options: BenchRestoreOptions) => benchRestore(options));
}
