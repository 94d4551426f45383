import { type Command, Option } from "commander";
import { FAULT_MECHANISMS, type FaultMechanism } from "../../migration/config.js";
import { expectedChecksums } from "../../migration/machine/dirtier.js";
import { MigratableVm } from "../../migration/machine/migratable-vm.js";
import { type RestoreMode, SnapshotRestore } from "../../migration/snapshot/restore-snapshot.js";
import { saveSnapshot } from "../../migration/snapshot/save-snapshot.js";
import { SnapshotFile } from "../../migration/snapshot/snapshot-file.js";
import { hexChecksums } from "../checksums.js";
import { addGuestOptions, type GuestOptions, guestSpecOf } from "../guest-options.js";
import { nonNegativeInteger } from "../numbers.js";

interface SaveOptions extends GuestOptions {
  after: number;
  json?: boolean;
}

/** Boot the dirtier, let it run, snapshot it to `path`. */
async function save(path: string, o: SaveOptions): Promise<void> {
  const spec = guestSpecOf(o);
  const { vm, start } = MigratableVm.boot(spec);
  try {
    await vm.start(start);
    await new Promise((resolve) => setTimeout(resolve, o.after));
    const progress = vm.progress();
    const stats = await saveSnapshot(vm, path);
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ path, iterationsDone: progress, ...stats })}\n`);
    } else {
      process.stdout.write(
        `snapshot ${path}: ${(stats.bytes / 2 ** 20).toFixed(1)} MiB (${stats.zeroPages} of ` +
          `${stats.pages} pages zero, left as holes), the guest ${progress} iterations in, ` +
          `written in ${stats.saveTimeMs.toFixed(0)} ms\n`,
      );
    }
  } finally {
    await vm.close();
  }
}

interface RestoreCliOptions {
  eager?: boolean;
  faultMechanism: FaultMechanism;
  json?: boolean;
}

/** Restore `path`, run the guest to its end, check its checksums. */
async function restore(path: string, o: RestoreCliOptions): Promise<void> {
  const file = SnapshotFile.open(path);
  try {
    const mode: RestoreMode = o.eager ? "eager" : "lazy";
    const { checksums, stats } = await new SnapshotRestore(file, {
      mode,
      faultMechanism: o.faultMechanism,
    }).run();
    const expected = expectedChecksums(file.spec);
    const verified = expected.every((c, i) => c === checksums[i]);
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ ...stats, checksums, expected, verified })}\n`);
    } else {
      const lazy = mode === "lazy";
      process.stdout.write(
        `restored ${path} (${mode}${lazy ? `, ${stats.faultMechanism}` : ""}): the guest ran ` +
          `${stats.restoreTimeMs.toFixed(1)} ms after its state was loaded ` +
          `(setup ${stats.setupTimeMs.toFixed(0)} ms); every page in after ${stats.loadTimeMs.toFixed(0)} ms; ` +
          `the workload done after ${stats.runTimeMs.toFixed(0)} ms\n` +
          (lazy
            ? `  faults: ${stats.faults} vCPU exits, ${stats.asyncFaults} asynchronous` +
              // Only a vCPU exit says how long its vCPU waited.
              (stats.faults > 0
                ? `; vCPU wait p50 ${stats.faultLatencyUs.p50} µs p99 ${stats.faultLatencyUs.p99} µs, ` +
                  `blocktime ${stats.blocktimeMs.toFixed(1)} ms`
                : "") +
              "\n"
            : "") +
          `  checksums ${hexChecksums(checksums)}` +
          (verified ? " (verified)\n" : ` (EXPECTED ${hexChecksums(expected)})\n`),
      );
    }
    if (!verified) process.exitCode = 1;
  } finally {
    file.close();
  }
}

export function registerSnapshotCommands(program: Command): void {
  const snapshot = program
    .command("snapshot")
    .description(
      "save the dirtier guest to a file while it runs, and restore it lazily or eagerly",
    );

  addGuestOptions(
    snapshot
      .command("save")
      .description("boot the dirtier guest, let it run, and save it (state and RAM) to FILE")
      .argument("<file>", "the snapshot file to write")
      .option("--after <ms>", "let the guest run this long first", nonNegativeInteger, 300)
      .option("--json", "print the result as JSON"),
  ).action((path: string, options: SaveOptions) => save(path, options));

  snapshot
    .command("restore")
    .description(
      "restore FILE and run its guest to the end of its workload, checking its checksums; " +
        "lazily by default: the guest runs at once and its pages are read as it faults on them",
    )
    .argument("<file>", "the snapshot file to restore")
    .option("--eager", "read all of RAM before the guest runs")
    .addOption(
      new Option("--fault-mechanism <kind>", "lazy: how missing pages are caught")
        .choices([...FAULT_MECHANISMS])
        .default("userfault"),
    )
    .option("--json", "print the result as JSON")
    .action((path: string, options: RestoreCliOptions) => restore(path, options));
}
