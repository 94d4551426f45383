import { Command, InvalidArgumentError, Option } from "commander";
import {
  BACKING_SOURCES,
  type BackingSource,
  DEFAULT_OPTIONS,
  type DemandPagingOptions,
  DemandPagingUsageError,
  type UffdMode,
  type UserfaultApi,
  validateOptions,
} from "../../bench/demand-paging/options.js";
import { type DemandPagingResult, runDemandPaging } from "../../bench/demand-paging/run.js";
import { parseSize } from "../sizes.js";

interface RawFlags {
  vcpus: number;
  bytesPerVcpu: number;
  kvmUserfault?: boolean;
  uffd?: string;
  singleUffd?: boolean;
  readers: number;
  overlap?: boolean;
  backing: string;
  delay: number;
  userfaultApi: string;
  prefault?: boolean;
  pretouch?: boolean;
  machineWarmup?: boolean;
  workers: number;
  remotePages: number;
  json?: boolean;
}

function integer(min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min) {
      throw new InvalidArgumentError(`expected an integer of at least ${min}`);
    }
    return n;
  };
}

function size(value: string): number {
  return parseSize(value);
}

/** The kernel selftest's letters (tools/testing/selftests/kvm/demand_paging_test.c) and ours. */
function addOptions(command: Command): Command {
  const d = DEFAULT_OPTIONS;
  return command
    .option("-v, --vcpus <n>", "vCPUs", integer(1), d.vcpus)
    .addOption(
      new Option("-b, --bytes-per-vcpu <size>", "memory each vCPU demand-pages (64M, 1G...)")
        .argParser(size)
        .default(d.bytesPerVcpu, `${d.bytesPerVcpu / 2 ** 20}M; the kernel test's is 1G`),
    )
    .option("-k, --kvm-userfault", "KVM Userfault: each vCPU's thread resolves its own faults")
    .option("-u, --uffd <mode>", "userfaultfd in MISSING or MINOR mode")
    .option("-a, --single-uffd", "one userfaultfd for all vCPUs instead of one per vCPU")
    .option("-r, --readers <n>", "reader threads per userfaultfd", integer(1), d.readersPerUffd)
    .option("-o, --overlap", "every vCPU walks all of the memory (-b of it)")
    .option("-s, --backing <source>", `backing: ${BACKING_SOURCES.join(", ")}`, d.backing)
    .option(
      "-d, --delay <us>",
      "delay before resolving each fault, in microseconds",
      integer(0),
      d.delayUs,
    )
    .option(
      "--userfault-api <api>",
      "the shape of -k: attributes or memslot-bitmap",
      d.userfaultApi,
    )
    .option("--prefault", "the host touches the memory first (not a migration destination's state)")
    .option("--pretouch", "-k: the VMM touches the memory ahead of the vCPUs while they run")
    .option(
      "--machine-warmup",
      "first, a child process touches and frees the memory the run will use, so that the machine below backs it",
    )
    .option(
      "--workers <n>",
      "threads running the vCPUs (default: automatic)",
      integer(0),
      d.workers,
    )
    .option(
      "--remote-pages <n>",
      "distinct source pages (a power of two)",
      integer(1),
      d.remotePages,
    )
    .option("--json", "print the result as JSON");
}

function toOptions(flags: RawFlags): DemandPagingOptions {
  if (flags.uffd !== undefined && flags.uffd !== "MISSING" && flags.uffd !== "MINOR") {
    throw new DemandPagingUsageError(
      `-u: the userfaultfd mode must be MISSING or MINOR, not "${flags.uffd}"`,
    );
  }
  const options: DemandPagingOptions = {
    vcpus: flags.vcpus,
    bytesPerVcpu: flags.bytesPerVcpu,
    kvmUserfault: flags.kvmUserfault === true,
    userfaultApi: flags.userfaultApi as UserfaultApi,
    uffdMode: (flags.uffd ?? null) as UffdMode | null,
    singleUffd: flags.singleUffd === true,
    readersPerUffd: flags.readers,
    overlap: flags.overlap === true,
    backing: flags.backing as BackingSource,
    delayUs: flags.delay,
    prefault: flags.prefault === true,
    pretouch: flags.pretouch === true,
    machineWarmup: flags.machineWarmup === true,
    workers: flags.workers,
    remotePages: flags.remotePages,
  };
  validateOptions(options);
  return options;
}

/**
 * Parse `bench demand-paging` arguments (without the command words) into
 * checked options: commander's errors for unknown letters and bad values,
 * DemandPagingUsageError for combinations the benchmark refuses.
 */
export function parseDemandPagingArgs(args: string[]): DemandPagingOptions & { json: boolean } {
  const command = addOptions(new Command("demand-paging"))
    .exitOverride()
    .configureOutput({ writeErr: () => {}, writeOut: () => {} });
  command.parse(args, { from: "user" });
  const flags = command.opts<RawFlags>();
  return { ...toOptions(flags), json: flags.json === true };
}

const PAGE = 4096;

function rate(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

function bytesText(n: number): string {
  if (n % 2 ** 30 === 0) return `${n / 2 ** 30} GiB`;
  if (n % 2 ** 20 === 0) return `${n / 2 ** 20} MiB`;
  return `${n / 1024} KiB`;
}

export function formatDemandPagingResult(r: DemandPagingResult): string {
  const lines: string[] = [];
  const how =
    r.mode === "kvm-userfault"
      ? `KVM Userfault (${r.userfaultApi})${r.uffdMode ? ` + userfaultfd ${r.uffdMode}` : ""}`
      : `userfaultfd ${r.uffdMode ?? r.mode.slice(5)}, ${r.uffds} userfaultfd(s) x ${r.readers / Math.max(1, r.uffds)} reader(s)`;
  lines.push(
    `demand paging by ${how}: ${r.vcpus} vCPU(s) on ${r.workers} thread(s), ` +
      `${r.backing}, ${bytesText(r.bytesPerVcpu)} per vCPU${r.overlap ? " (overlapping)" : ""}` +
      `${r.delayUs > 0 ? `, ${r.delayUs} us delay per fault` : ""}` +
      `${r.pretouch ? ", memory pretouched by the VMM while the vCPUs run" : ""}`,
  );
  r.perVcpuPagesPerSecond.forEach((pps, id) => {
    const l = r.perVcpuFaultLatencyUs[id];
    lines.push(
      `  vCPU ${String(id).padStart(2)}: ${rate(pps).padStart(9)} pages/s, ` +
        `latency p50 ${l.p50} us, p99 ${l.p99} us, max ${l.max} us`,
    );
  });
  const l = r.faultLatencyUs;
  lines.push(
    `overall: ${r.pages} pages (${bytesText(r.pages * PAGE)}) in ${r.seconds.toFixed(3)} s: ` +
      `${rate(r.pagesPerSecond)} pages/s; fault latency p50 ${l.p50} us, p99 ${l.p99} us, max ${l.max} us`,
  );
  lines.push(
    `  ${rate(r.faults)} faults resolved; every page installed exactly once; the guest checked every page's data`,
  );
  lines.push(`  second pass over the present pages: ${rate(r.presentPassPagesPerSecond)} pages/s`);
  const m = r.limits;
  const state =
    m.memory === "fresh"
      ? "fresh memory, never touched by the host"
      : "memory the host touched first (prefaulted)";
  const pct = (limit: number) => `${((100 * r.pagesPerSecond) / limit).toFixed(0)}%`;
  lines.push(`limits, measured in this run on ${state} (${m.samplePages} pages):`);
  if (r.machineWarmupBytes > 0) {
    lines.push(
      `  (a child process touched and freed ${bytesText(r.machineWarmupBytes)} first, so that the machine below backs it)`,
    );
  }
  lines.push(
    `  the guest touching pages with no userfault in the way: ${rate(m.touchPagesPerSecond)} pages/s ` +
      `(demand paging reached ${pct(m.touchPagesPerSecond)})`,
  );
  lines.push(
    `  one thread copying and installing 4 KiB pages:        ${rate(m.copyInstallPagesPerSecond)} pages/s ` +
      `(demand paging reached ${pct(m.copyInstallPagesPerSecond)})`,
  );
  lines.push(
    `  beside them: the host's first touch alone ${rate(m.firstTouchPagesPerSecond)} pages/s, ` +
      `a copy into prefaulted memory ${rate(m.copyIntoPrefaultedPagesPerSecond)} pages/s` +
      (m.copyIntoReusedPagesPerSecond === null
        ? ""
        : `, into reused frames ${rate(m.copyIntoReusedPagesPerSecond)} pages/s`),
  );
  return `${lines.join("\n")}\n`;
}

/** The JSON of --json (keys documented in README.md). */
export function demandPagingJson(r: DemandPagingResult): string {
  return JSON.stringify(r);
}

/** `faultline bench demand-paging`: registered on the `bench` command (see bench.ts). */
export function registerDemandPagingCommand(bench: Command): void {
  addOptions(
    bench
      .command("demand-paging")
      .description(
        "demand-paging rate of KVM Userfault and userfaultfd (the kernel's demand_paging_test)",
      ),
  ).action(async (flags: RawFlags) => {
    const options = toOptions(flags);
    const result = await runDemandPaging(options);
    process.stdout.write(
      flags.json ? `${demandPagingJson(result)}\n` : formatDemandPagingResult(result),
    );
  });
}
