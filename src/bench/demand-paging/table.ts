/**
 * The BENCHMARKS.md table: paging rate against vCPU count for -k and for
 * -u MINOR -a -r 1, each point a separate `faultline bench demand-paging
 * --json` process (the median of `repeats` runs), the configurations of one
 * vCPU count run back to back so that their ratio is measured side by side.
 *
 *   node dist/src/bench/demand-paging/table.js [-b 32M] [--repeats 3] [--max-vcpus 64]
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { median } from "../median.js";
import type { DemandPagingResult } from "./run.js";

const CLI = fileURLToPath(new URL("../../../../bin/faultline.js", import.meta.url));

function arg(name: string, fallback: string): string {
  const at = process.argv.indexOf(name);
  return at >= 0 ? process.argv[at + 1] : fallback;
}

const bytes = arg("-b", "32M");
const repeats = Number(arg("--repeats", "3"));
const maxVcpus = Number(arg("--max-vcpus", "64"));

const COLUMNS: { name: string; args: string[] }[] = [
  { name: "-k (anonymous, fresh)", args: ["-k"] },
  { name: "-k -s shmem --prefault", args: ["-k", "-s", "shmem", "--prefault"] },
  { name: "-u MINOR -a -r 1 (shmem)", args: ["-u", "MINOR", "-a", "-r", "1", "-s", "shmem"] },
];

function once(vcpus: number, args: string[]): DemandPagingResult {
  const out = execFileSync(
    process.execPath,
    [CLI, "bench", "demand-paging", "-v", String(vcpus), "-b", bytes, ...args, "--json"],
    { encoding: "utf8", maxBuffer: 1 << 26 },
  );
  return JSON.parse(out) as DemandPagingResult;
}

const rows: string[] = [];
const header = `| vCPUs | ${COLUMNS.map((c) => c.name).join(" | ")} | -k / uffd | -k copy+install limit | -k p50 / p99 us | uffd p50 / p99 us |`;
rows.push(header, header.replace(/[^|]+/g, " --- "));
for (let vcpus = 1; vcpus <= maxVcpus; vcpus *= 2) {
  const results = COLUMNS.map(() => [] as DemandPagingResult[]);
  for (let r = 0; r < (vcpus <= 8 ? repeats : 1); r++) {
    COLUMNS.forEach((c, i) => results[i].push(once(vcpus, c.args)));
  }
  const rates = results.map((rs) => median(rs.map((x) => x.pagesPerSecond)));
  const k = results[0].find((x) => x.pagesPerSecond === rates[0]) ?? results[0][0];
  const u = results[2].find((x) => x.pagesPerSecond === rates[2]) ?? results[2][0];
  const row =
    `| ${vcpus} | ${rates.map((x) => Math.round(x).toLocaleString("en-US")).join(" | ")} | ` +
    `${(rates[0] / rates[2]).toFixed(2)} | ` +
    `${Math.round(k.limits.copyInstallPagesPerSecond).toLocaleString("en-US")} | ` +
    `${k.faultLatencyUs.p50} / ${k.faultLatencyUs.p99} | ${u.faultLatencyUs.p50} / ${u.faultLatencyUs.p99} |`;
  rows.push(row);
  process.stderr.write(`${row}\n`);
}
process.stdout.write(`${rows.join("\n")}\n`);
