import { fileURLToPath } from "node:url";
import cliProgress from "cli-progress";
import { type Command, Option } from "commander";
import { FAULT_MECHANISMS, MIGRATION_MODES } from "../../migration/config.js";
import { type MigrationEvent, migrateLocally } from "../../migration/local-pair.js";
import { DEFAULT_IO_EVERY } from "../../migration/machine/dirtier.js";
import { MigratableVm } from "../../migration/machine/migratable-vm.js";
import { measureRawTcp } from "../../migration/raw-tcp.js";
import { DEFAULT_POSTCOPY_SLOW_START_MS } from "../../migration/source.js";
import type { DestinationStats, SourceStats } from "../../migration/stats.js";
import type { RamBacking } from "../../vmm/guest-ram.js";
import { type GuestOptions, guestArgs } from "../guest-options.js";
import { parseBandwidth, parsePageSize, parseSize } from "../sizes.js";
import { nonNegativeInteger, positiveInteger } from "../numbers.js";

export const FAULTLINE_CLI = fileURLToPath(
  new URL("../../../../bin/faultline.js", import.meta.url),
);

interface BenchMigrateOptions {
  mem: number;
  vcpus: number;
  workload: string;
  mode: string;
  faultMechanism: string;
  backing: RamBacking;
  hugepages: GuestOptions["hugepages"];
  iterations?: number;
  stores: number;
  ioEvery: number;
  warmup: number;
  seconds: number;
  maxRounds: number;
  postcopySlowStart: number;
  maxPostcopyBandwidth: number;
  prealloc?: boolean;
  json?: boolean;
}

/** `faultline bench migrate --json`: the keys README documents (DESIGN.md section 8). */
export interface BenchMigrateResult {
  mode: string;
  faultMechanism: string;
  /** The destination allocated and committed its RAM before listening. */
  prealloc: boolean;
  /** How long the post-copy pusher started at 100 MB/s (ms). */
  postcopySlowStartMs: number;
  /** The pusher's rate after that, in bytes/s (0: unlimited). */
  maxPostcopyBandwidth: number;
  memBytes: number;
  vcpus: number;
  totalTimeMs: number;
  downtimeMs: number;
  setupTimeMs: number;
  transferredBytes: number;
  precopyRounds: number;
  dirtyPageRate: number;
  postcopyRequests: number;
  blocktimeMs: number;
  overlappedBlocktimeMs: number;
  faultLatencyUs: { p50: number; p99: number; max: number };
  throughputBytesPerSecond: number;
  rawTcpBytesPerSecond: number;
  guestRate: { before: number; duringPostcopy: number | null; after: number | null };
  /** The longest time a vCPU went without progress during the migration, the switchover's included. */
  maxStallMs: number;
  /** Of which across the switchover: a vCPU's last iteration on the source to its first on the destination. */
  switchoverStallMs: number;
  /** The same guest's longest stall before the migration and after it completed: this host's floor. */
  maxStallBeforeMs: number;
  maxStallAfterMs: number;
  checksumVerified: boolean;
  /** vCPUs still running their workload at the switchover (fewer: the figures after it mean less). */
  vcpusRunningAtSwitchover: number;
}

export async function runMigrationBenchmark(
  o: BenchMigrateOptions,
  onEvent?: (side: "source" | "destination", event: MigrationEvent) => void,
): Promise<BenchMigrateResult> {
  if (o.workload !== "dirtier") throw new Error(`unknown workload ${o.workload}`);
  const rawTcpBytesPerSecond = await measureRawTcp();
  const iterations =
    o.iterations ??
    Math.ceil(
      (await calibrateDirtier(o.vcpus, o.stores, o.ioEvery)) *
        ((o.warmup + 1000 * o.seconds) / 1000),
    );
  const vmArgs = [...guestArgs({ ...o, iterations }), "--fault-mechanism", o.faultMechanism];
  const run = await migrateLocally({
    cli: FAULTLINE_CLI,
    vmArgs,
    listenArgs: ["--verify", ...(o.prealloc ? ["--prealloc"] : [])],
    sendArgs: [
      "--mode",
      o.mode,
      "--warmup",
      String(o.warmup),
      "--max-rounds",
      String(o.maxRounds),
      "--postcopy-slow-start",
      String(o.postcopySlowStart),
      "--max-postcopy-bandwidth",
      String(o.maxPostcopyBandwidth),
    ],
    onEvent,
    timeoutMs: 600_000,
  });
  const sourceResult = run.source.event("result");
  const destResult = run.destination.event("result");
  if (!sourceResult || !destResult) {
    const error = run.source.event("error") ?? run.destination.event("error");
    throw new Error(
      `the migration failed: ${String(error?.message ?? "")}\n${run.source.stderr}${run.destination.stderr}`,
    );
  }
  const s = sourceResult.stats as SourceStats;
  const d = destResult.stats as DestinationStats;
  return {
    mode: o.mode,
    faultMechanism: o.faultMechanism,
    prealloc: o.prealloc === true,
    postcopySlowStartMs: o.postcopySlowStart,
    maxPostcopyBandwidth: o.maxPostcopyBandwidth,
    memBytes: o.mem,
    vcpus: o.vcpus,
    totalTimeMs: s.totalTimeMs,
    downtimeMs: s.downtimeMs,
    setupTimeMs: s.setupTimeMs,
    transferredBytes: s.transferredBytes,
    precopyRounds: s.precopyRounds,
    dirtyPageRate: s.dirtyPageRate,
    postcopyRequests: s.postcopyRequests,
    blocktimeMs: d.blocktimeMs,
    overlappedBlocktimeMs: d.overlappedBlocktimeMs,
    faultLatencyUs: d.faultLatencyUs,
    throughputBytesPerSecond: d.throughputBytesPerSecond,
    rawTcpBytesPerSecond,
    guestRate: {
      before: s.guestRateBefore,
      duringPostcopy: d.guestRateDuringPostcopy,
      after: d.guestRateAfter,
    },
    maxStallMs: Math.max(s.maxStallMs, d.maxStallMs),
    switchoverStallMs: d.switchoverStallMs,
    maxStallBeforeMs: s.maxStallBeforeMs,
    maxStallAfterMs: d.maxStallAfterMs,
    checksumVerified: destResult.verified === true,
    vcpusRunningAtSwitchover: s.vcpusRunningAtSwitchover,
  };
}

/** The dirtier's iterations per second per vCPU on this machine now (a short run in this process). */
async function calibrateDirtier(vcpus: number, stores: number, ioEvery: number): Promise<number> {
  const { vm, start } = MigratableVm.boot({
    memBytes: 16 * 2 ** 20,
    vcpus,
    iterations: 2 ** 30,
    storesPerIteration: stores,
    ioEvery,
    backing: "guest_memfd",
    pageSize: 4096,
  });
  try {
    await vm.start(start);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const from = { progress: vm.progress(), at: performance.now() };
    await new Promise((resolve) => setTimeout(resolve, 300));
    return ((vm.progress() - from.progress) * 1000) / (performance.now() - from.at) / vcpus;
  } finally {
    await vm.close();
  }
}

function mib(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(0);
}

export function registerBenchMigrateCommand(bench: Command): void {
  bench
    .command("migrate")
    .description(
      "live-migrate a guest dirtying memory between two processes on loopback; query-migrate figures",
    )
    .option("--mem <size>", "guest RAM", parseSize, 2 ** 30)
    .option("--vcpus <n>", "vCPUs, each dirtying its own part of RAM", positiveInteger, 4)
    .addOption(
      new Option("--workload <name>", "guest workload").choices(["dirtier"]).default("dirtier"),
    )
    .addOption(
      new Option("--mode <mode>", "migration mode")
        .choices([...MIGRATION_MODES])
        .default("postcopy"),
    )
    .addOption(
      new Option("--fault-mechanism <kind>", "post-copy fault mechanism")
        .choices([...FAULT_MECHANISMS])
        .default("userfault"),
    )
    .addOption(
      new Option("--backing <kind>", "guest memory backing")
        .choices(["guest_memfd", "anonymous", "shmem"])
        .default("guest_memfd"),
    )
    .option("--hugepages <size>", "backing page size: 4K, 2M or 1G", parsePageSize, 4096)
    .option(
      "--iterations <n>",
      "workload iterations per vCPU (default: enough for --seconds)",
      positiveInteger,
    )
    .option(
      "--seconds <n>",
      "without --iterations: size the workload to run this long at the speed measured here first",
      positiveInteger,
      30,
    )
    .option(
      "--stores <n>",
      "stores per iteration (the guest reports progress after each)",
      positiveInteger,
      32,
    )
    .option(
      "--io-every <n>",
      "vCPU 0 reads a disk page through virtio-blk every n iterations (0: never)",
      nonNegativeInteger,
      DEFAULT_IO_EVERY,
    )
    .option("--warmup <ms>", "guest run time before the migration starts", positiveInteger, 2000)
    .option(
      "--max-rounds <n>",
      "precopy: stop and copy after this many rounds (a guest dirtying this fast never converges)",
      positiveInteger,
      3,
    )
    .option(
      "--postcopy-slow-start <ms>",
      "post-copy: the pusher sends at most 100 MB/s this long first (0: full rate at once)",
      nonNegativeInteger,
      DEFAULT_POSTCOPY_SLOW_START_MS,
    )
    .option(
      "--max-postcopy-bandwidth <rate>",
      "post-copy: the pusher's rate after that, bytes/s like 300M (0: unlimited)",
      parseBandwidth,
      0,
    )
    .option(
      "--prealloc",
      "the destination allocates and commits its RAM before listening (KVM Userfault only)",
    )
    .option("--json", "print the result as JSON")
    .action(async (options: BenchMigrateOptions) => {
      const bar =
        !options.json && process.stderr.isTTY
          ? new cliProgress.SingleBar(
              {
                stream: process.stderr,
                format: "migrate [{bar}] {percentage}% | {phase}",
                fps: 10,
              },
              cliProgress.Presets.shades_classic,
            )
          : null;
      let started = false;
      const result = await runMigrationBenchmark(options, (side, event) => {
        if (!bar || side !== "source" || event.event !== "progress") return;
        const total = Number(event.pagesTotal);
        const done = total - Number(event.remaining);
        if (!started) {
          started = true;
          bar.start(total, done, { phase: event.status });
        } else bar.update(done, { phase: event.status });
      });
      bar?.stop();
      if (result.vcpusRunningAtSwitchover < result.vcpus) {
        process.stderr.write(
          `faultline: only ${result.vcpusRunningAtSwitchover} of ${result.vcpus} vCPUs were still busy at the ` +
            `switchover (the machine was faster than measured first): give --seconds or --iterations more\n`,
        );
      }
      if (options.json) {
        process.stdout.write(`${JSON.stringify(result)}\n`);
        return;
      }
      const r = result;
      const rate = (v: number | null) => (v === null ? "-" : v.toFixed(0));
      process.stdout.write(
        `${r.mode} migration of ${mib(r.memBytes)} MiB (${r.vcpus} vCPUs, ${r.faultMechanism}` +
          `${r.prealloc ? ", destination RAM preallocated" : ""}):\n` +
          `  total ${r.totalTimeMs.toFixed(0)} ms, downtime ${r.downtimeMs.toFixed(1)} ms, setup ${r.setupTimeMs.toFixed(1)} ms\n` +
          `  ${mib(r.transferredBytes)} MiB sent, ${r.precopyRounds} pre-copy rounds, ${r.postcopyRequests} post-copy requests\n` +
          `  blocktime ${r.blocktimeMs.toFixed(0)} ms (overlapped ${r.overlappedBlocktimeMs.toFixed(0)} ms), ` +
          `fault latency p50 ${r.faultLatencyUs.p50} µs, p99 ${r.faultLatencyUs.p99} µs, max ${r.faultLatencyUs.max} µs\n` +
          `  post-copy ${mib(r.throughputBytesPerSecond)} MiB/s, raw loopback TCP ${mib(r.rawTcpBytesPerSecond)} MiB/s ` +
          `(${((100 * r.throughputBytesPerSecond) / r.rawTcpBytesPerSecond).toFixed(0)}%)\n` +
          `  guest iterations/s: before ${rate(r.guestRate.before)}, during post-copy ${rate(r.guestRate.duringPostcopy)}, ` +
          `after ${rate(r.guestRate.after)}\n` +
          `  longest stall ${r.maxStallMs.toFixed(1)} ms (across the switchover ${r.switchoverStallMs.toFixed(1)} ms); ` +
          `without migration: ${r.maxStallBeforeMs.toFixed(1)} ms before, ${r.maxStallAfterMs.toFixed(1)} ms after\n` +
          `  checksum ${r.checksumVerified ? "verified" : "WRONG"}\n`,
      );
      if (!r.checksumVerified) process.exitCode = 1;
    });
}
