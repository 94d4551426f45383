/**
 * BENCHMARKS.md's targets: the configurations they compare, run in
 * interleaved rounds (each a `faultline bench demand-paging --json`
 * process) so that every ratio is measured side by side; prints the median
 * and the best of each, with the load average at each run on stderr.
 *
 *   node dist/src/bench/demand-paging/targets.js [-b 64M] [--rounds 5] [--only k1,k2,...] [--machine-warmup]
 */
import { execFileSync } from "node:child_process";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import type { DemandPagingResult } from "./run.js";

const CLI = fileURLToPath(new URL("../../../../bin/faultline.js", import.meta.url));

function arg(name: string, fallback: string): string {
  const at = process.argv.indexOf(name);
  return at >= 0 ? process.argv[at + 1] : fallback;
}

const CONFIGS: [string, string][] = [
  ["k1", "-k -v 1"],
  ["k2", "-k -v 2"],
  ["u1", "-u MINOR -a -r 1 -s shmem -v 1"],
  ["u2", "-u MINOR -a -r 1 -s shmem -v 2"],
  ["kp1", "-k -s shmem --prefault -v 1"],
  ["kp2", "-k -s shmem --prefault -v 2"],
  ["m2", "-u MISSING -a -r 1 -v 2"],
  ["kb1", "-k --userfault-api memslot-bitmap -v 1"],
  ["kb2", "-k --userfault-api memslot-bitmap -v 2"],
  ["kg2", "-k -s guest_memfd -v 2"],
  ["kgb2", "-k -s guest_memfd --userfault-api memslot-bitmap -v 2"],
  ["kum2", "-k -u MINOR -s guest_memfd -v 2"],
  ["kpt1", "-k --pretouch -v 1"],
  ["kh1", "-k -s hugetlb-2M -v 1"],
];

const bytes = arg("-b", "64M");
const rounds = Number(arg("--rounds", "5"));
const only = arg("--only", "k1,k2,u1,u2,kp1,kp2").split(",");
const configs = CONFIGS.filter(([name]) => only.includes(name));
const extra = process.argv.includes("--machine-warmup") ? ["--machine-warmup"] : [];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = new Map<string, DemandPagingResult[]>();
for (let r = 0; r < rounds; r++) {
  for (const [name, args] of configs) {
    const out = execFileSync(
      process.execPath,
      [CLI, "bench", "demand-paging", "-b", bytes, ...args.split(" "), ...extra, "--json"],
      { encoding: "utf8", maxBuffer: 1 << 26 },
    );
    const result = JSON.parse(out) as DemandPagingResult;
    results.set(name, [...(results.get(name) ?? []), result]);
    process.stderr.write(
      `${name} ${Math.round(result.pagesPerSecond)} pages/s (load ${loadavg()[0].toFixed(1)})\n`,
    );
  }
}
for (const [name, args] of configs) {
  const rs = results.get(name) ?? [];
  const rates = rs.map((x) => x.pagesPerSecond);
  const f = (n: number) => Math.round(n).toLocaleString("en-US");
  process.stdout.write(
    `| \`${args}\` | ${f(median(rates))} (${f(Math.max(...rates))}) | ` +
      `${median(rs.map((x) => x.faultLatencyUs.p50))} / ${median(rs.map((x) => x.faultLatencyUs.p99))} µs | ` +
      `${f(median(rs.map((x) => x.limits.copyInstallPagesPerSecond)))} (${rs[0]?.limits.memory}) |\n`,
  );
}
