import { tmpdir } from "node:os";
import { join } from "node:path";
import cliProgress from "cli-progress";
import { type Command, InvalidArgumentError, Option } from "commander";
import {
  FAULT_MECHANISMS,
  type FaultMechanism,
  MIGRATION_MODES,
  type MigrationMode,
} from "../../migration/config.js";
import { DEFAULT_RESUME_TIMEOUT_MS, MigrationDestination } from "../../migration/destination.js";
import { expectedChecksums } from "../../migration/machine/dirtier.js";
import { MigratableVm } from "../../migration/machine/migratable-vm.js";
import { requestControl, serveResumeControl } from "../../migration/resume-control.js";
import { readPskFile, type Transport } from "../../migration/transport.js";
import {
  DEFAULT_ANSWER_TIMEOUT_MS,
  DEFAULT_POSTCOPY_SLOW_START_MS,
  MigrationError,
  MigrationSource,
} from "../../migration/source.js";
import { MIGRATION_STATUS_LABELS, type MigrationProgress } from "../../migration/stats.js";
import { parseBandwidth } from "../sizes.js";
import { hexChecksums } from "../checksums.js";
import { addGuestOptions, type GuestOptions, guestSpecOf } from "../guest-options.js";
import { nonNegativeInteger, positiveInteger, tcpPort } from "../numbers.js";

function hostPort(text: string): { host: string; port: number } {
  const match = /^(.*):(\d+)$/.exec(text);
  const port = match ? Number(match[2]) : NaN;
  if (!match || match[1] === "" || port <= 0 || port > 65535) {
    throw new InvalidArgumentError(`"${text}" is not HOST:PORT`);
  }
  return { host: match[1].replace(/^\[(.*)\]$/, "$1"), port };
}

/** The migrated VM's shape and workload (both ends must be given the same), and how it moves. */
interface VmOptions extends GuestOptions {
  faultMechanism: FaultMechanism;
  events?: boolean;
  pskFile?: string;
}

function addVmOptions(command: Command): Command {
  return addGuestOptions(command)
    .addOption(
      new Option("--fault-mechanism <kind>", "how post-copy catches missing pages")
        .choices([...FAULT_MECHANISMS])
        .default("userfault"),
    )
    .option("--events", "machine-readable events, one JSON object a line on stdout")
    .option(
      "--psk-file <path>",
      "TLS with the pre-shared key in this file (hex or raw bytes); required off loopback",
    );
}

function transportOf(o: { pskFile?: string }): Transport {
  return { psk: o.pskFile ? readPskFile(o.pskFile) : null };
}

function emitter(events: boolean | undefined): (event: Record<string, unknown>) => void {
  return (event) => {
    if (events) process.stdout.write(`${JSON.stringify(event)}\n`);
  };
}

function note(events: boolean | undefined, text: string): void {
  if (events) emitter(true)({ event: "note", text });
  else process.stderr.write(`faultline: ${text}\n`);
}

/**
 * A progress bar on a terminal (cli-progress), nothing elsewhere: pages
 * moved out of all pages, the phase, the pre-copy round and bytes sent.
 */
export class MigrationProgressBar {
  private readonly bar: cliProgress.SingleBar | null;
  private started = false;

  constructor(label: string, stream: NodeJS.WriteStream = process.stderr) {
    this.bar = stream.isTTY
      ? new cliProgress.SingleBar(
          {
            stream,
            format: `${label} [{bar}] {percentage}% | {phase} | round {round} | {mib} MiB`,
            hideCursor: true,
            clearOnComplete: false,
            fps: 10,
          },
          cliProgress.Presets.shades_classic,
        )
      : null;
  }

  update(p: MigrationProgress): void {
    if (!this.bar) return;
    const payload = {
      phase: MIGRATION_STATUS_LABELS[p.status],
      round: p.round,
      mib: (p.transferredBytes / 2 ** 20).toFixed(0),
    };
    const done = p.pagesTotal - p.remaining;
    if (!this.started) {
      this.started = true;
      this.bar.start(p.pagesTotal, done, payload);
    } else this.bar.update(done, payload);
  }

  stop(): void {
    if (this.bar && this.started) this.bar.stop();
  }
}

interface ListenOptions extends VmOptions {
  host: string;
  port: number;
  verify?: boolean;
  asyncAll?: boolean;
  prealloc?: boolean;
  resumeTimeout: number;
}

async function listen(o: ListenOptions): Promise<void> {
  const emit = emitter(o.events);
  const spec = guestSpecOf(o);
  const bar = o.events ? null : new MigrationProgressBar("incoming");
  const destination = await MigrationDestination.listen({
    host: o.host,
    port: o.port,
    spec,
    faultMechanism: o.faultMechanism,
    asyncAll: o.asyncAll,
    prealloc: o.prealloc,
    resumeTimeoutMs: o.resumeTimeout,
    transport: transportOf(o),
    onProgress: (p) => (o.events ? emit({ event: "progress", ...p }) : bar?.update(p)),
    onNote: (text) => note(o.events, text),
  });
  emit({ event: "listening", port: destination.port });
  if (!o.events)
    process.stderr.write(`faultline: waiting for a migration on ${o.host}:${destination.port}\n`);
  try {
    const result = await destination.run();
    bar?.stop();
    const expected = o.verify ? expectedChecksums(spec) : null;
    const verified = expected ? expected.every((c, i) => c === result.checksums[i]) : null;
    emit({ event: "result", stats: result.stats, checksums: result.checksums, expected, verified });
    if (!o.events) {
      const s = result.stats;
      process.stdout.write(
        `migration completed; guest finished here with checksums ${hexChecksums(result.checksums)}` +
          (verified === null
            ? ""
            : verified
              ? " (verified)"
              : ` (EXPECTED ${hexChecksums(expected!)})`) +
          "\n" +
          // A pre-copy that converged had no post-copy to tell of.
          (s.postcopyTimeMs > 0
            ? `  post-copy ${s.postcopyTimeMs.toFixed(0)} ms, blocktime ${s.blocktimeMs.toFixed(1)} ms, ` +
              `fault latency p50 ${s.faultLatencyUs.p50} µs p99 ${s.faultLatencyUs.p99} µs max ${s.faultLatencyUs.max} µs\n`
            : ""),
      );
    }
    if (verified === false) process.exitCode = 1;
  } catch (error) {
    bar?.stop();
    emit({ event: "error", message: (error as Error).message });
    process.stderr.write(`faultline: ${(error as Error).message}\n`);
    process.exitCode = 1;
  }
}

interface SendOptions extends VmOptions {
  to?: { host: string; port: number };
  mode: MigrationMode;
  postcopy?: boolean;
  warmup: number;
  hybridRounds: number;
  maxRounds: number;
  postcopySlowStart: number;
  maxPostcopyBandwidth: number;
  answerTimeout: number;
  control?: string;
  resume?: boolean;
  cancel?: boolean;
  verify?: boolean;
}

async function send(o: SendOptions, command: Command): Promise<void> {
  const emit = emitter(o.events);
  const control = o.control ?? join(tmpdir(), `faultline-migrate-${process.pid}.sock`);
  if (o.cancel) {
    if (!o.control) command.error("error: --cancel needs --control PATH of the paused source");
    const reply = await requestControl(o.control, { cancel: true });
    if (!reply.ok) throw new Error(`cancel refused: ${reply.error}`);
    note(o.events, "the source gave the migration up; its guest runs on there");
    return;
  }
  if (!o.to) return command.error("error: --to HOST:PORT is required");
  if (o.resume) {
    if (!o.control) command.error("error: --resume needs --control PATH of the paused source");
    const reply = await requestControl(o.control, { resume: o.to });
    if (!reply.ok) throw new Error(`resume refused: ${reply.error}`);
    note(o.events, `the source is reconnecting to ${o.to.host}:${o.to.port}`);
    return;
  }
  const spec = guestSpecOf(o);
  const mode: MigrationMode = o.postcopy ? "postcopy" : o.mode;
  const { vm, start } = MigratableVm.boot(spec);
  await vm.start(start);
  // The guest's rate and longest stall before migrating, over the second
  // half of the warm-up (the first half includes its first touches of
  // every page).
  await new Promise((resolve) => setTimeout(resolve, o.warmup / 2));
  const from = { progress: vm.progress(), at: performance.now() };
  vm.closeStallWindow();
  await new Promise((resolve) => setTimeout(resolve, o.warmup / 2));
  const guestRateBefore =
    ((vm.progress() - from.progress) * 1000) / Math.max(1, performance.now() - from.at);
  const bar = o.events ? null : new MigrationProgressBar("migrate ");
  const source = new MigrationSource(vm, vm.config(o.faultMechanism), {
    host: o.to.host,
    port: o.to.port,
    mode,
    hybridRounds: o.hybridRounds,
    maxRounds: o.maxRounds,
    postcopySlowStartMs: o.postcopySlowStart,
    maxPostcopyBandwidth: o.maxPostcopyBandwidth,
    answerTimeoutMs: o.answerTimeout,
    transport: transportOf(o),
    guestRateBefore,
    onProgress: (p) => (o.events ? emit({ event: "progress", ...p }) : bar?.update(p)),
    onPaused: (reason, guestRunsThere) => {
      emit({ event: "paused", reason: reason.message, control, guestRunsThere });
      if (!o.events) {
        process.stderr.write(
          `\nfaultline: migration paused (${reason.message}); resume with\n` +
            `  faultline migrate send --resume --control ${control} --to HOST:PORT\n` +
            (guestRunsThere
              ? ""
              : "or, if the destination is known never to have run the guest, run it on here with\n" +
                `  faultline migrate send --cancel --control ${control}\n`),
        );
      }
    },
  });
  const controlServer = await serveResumeControl(control, source);
  try {
    const stats = await source.run();
    bar?.stop();
    emit({ event: "result", stats });
    if (!o.events) {
      process.stdout.write(
        `migration completed (${mode}): total ${stats.totalTimeMs.toFixed(0)} ms, downtime ` +
          `${stats.downtimeMs.toFixed(1)} ms, ${(stats.transferredBytes / 2 ** 20).toFixed(1)} MiB, ` +
          `${stats.precopyRounds} pre-copy rounds, ${stats.postcopyRequests} post-copy requests\n`,
      );
    }
  } catch (error) {
    bar?.stop();
    const refused = error instanceof MigrationError && error.refused;
    emit({
      event: "error",
      message: (error as Error).message,
      refused,
      status: source.currentStatus,
    });
    process.stderr.write(`faultline: ${(error as Error).message}\n`);
    process.exitCode = 1;
    if (source.currentStatus === "failed") {
      // Failed or cancelled before the destination ran the guest: it runs to its end here.
      note(o.events, "the migration failed; the guest runs on here");
      const checksums = await vm.finished();
      const expected = o.verify ? expectedChecksums(spec) : null;
      const verified = expected ? expected.every((c, i) => c === checksums[i]) : null;
      emit({ event: "source-guest", checksums, expected, verified });
    }
  } finally {
    controlServer.close();
    await vm.close();
  }
}

export function registerMigrateCommands(program: Command): void {
  const migrate = program
    .command("migrate")
    .description("live-migrate the dirtier guest between two faultline processes over TCP");

  addVmOptions(
    migrate
      .command("listen")
      .description("wait for an incoming migration, run the guest here, report its checksums")
      .option("--host <address>", "address to listen on", "127.0.0.1")
      .option("--port <n>", "TCP port (0: any free port)", tcpPort, 4444)
      .option("--verify", "compare the guest's checksums with what it computes without migration")
      .option(
        "--async-all",
        "KVM Userfault with USERFAULT_ASYNC_ALL: vCPU faults come as asynchronous faults",
      )
      .option(
        "--prealloc",
        "allocate and commit all guest RAM before listening (KVM Userfault only)",
      )
      .option(
        "--resume-timeout <ms>",
        "how long to wait for a source that lost its connection before its switchover arrived, or before it heard that the migration completed",
        positiveInteger,
        DEFAULT_RESUME_TIMEOUT_MS,
      ),
  ).action((options: ListenOptions) => listen(options));

  addVmOptions(
    migrate
      .command("send")
      .description("boot the dirtier guest here and migrate it, running, to a listening faultline")
      .option("--to <host:port>", "the destination", hostPort)
      .addOption(
        new Option("--mode <mode>", "precopy, postcopy (switch at once) or hybrid")
          .choices([...MIGRATION_MODES])
          .default("postcopy"),
      )
      .option("--postcopy", "same as --mode postcopy")
      .option(
        "--warmup <ms>",
        "let the guest run this long before migrating",
        nonNegativeInteger,
        200,
      )
      .option(
        "--hybrid-rounds <n>",
        "hybrid: pre-copy rounds before switching to post-copy",
        positiveInteger,
        2,
      )
      .option(
        "--max-rounds <n>",
        "precopy: stop and copy after this many rounds even if not converged",
        positiveInteger,
        30,
      )
      .option(
        "--postcopy-slow-start <ms>",
        "post-copy: the background pusher sends at most 100 MB/s this long, so that the guest's first faults go first (0: full rate at once)",
        nonNegativeInteger,
        DEFAULT_POSTCOPY_SLOW_START_MS,
      )
      .option(
        "--max-postcopy-bandwidth <rate>",
        "post-copy: the background pusher's rate after its slow start, bytes/s like 300M, as QEMU's max-postcopy-bandwidth (0: unlimited; requested pages are never held back)",
        parseBandwidth,
        0,
      )
      .option(
        "--answer-timeout <ms>",
        "how long the destination has to answer the setup, or a resume",
        positiveInteger,
        DEFAULT_ANSWER_TIMEOUT_MS,
      )
      .option(
        "--control <path>",
        "Unix socket where a paused migration waits for --resume or --cancel",
      )
      .option("--resume", "tell the paused source at --control to reconnect to --to and finish")
      .addOption(
        new Option(
          "--cancel",
          "tell the paused source at --control to give up and run its guest on (refused once the destination said it runs it)",
        ).conflicts("resume"),
      )
      .option(
        "--verify",
        "if the migration fails before switchover, check the guest's checksums here",
      ),
  ).action((options: SendOptions, command: Command) => send(options, command));
}
