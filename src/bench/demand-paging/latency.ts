import { TIMEBASE_FREQUENCY } from "../../riscv/cpu/constants.js";
import { COARSE_SHIFT, FINE_BUCKETS, HISTOGRAM_BUCKETS } from "./shared.js";

export interface LatencySummary {
  p50: number;
  p99: number;
  max: number;
}

const TICKS_PER_US = TIMEBASE_FREQUENCY / 1e6;

/** A bucket's representative latency in ticks (memstress.s: 1-tick buckets, then 256-tick ones). */
function bucketTicks(bucket: number): number {
  if (bucket < FINE_BUCKETS) return bucket;
  return ((bucket - FINE_BUCKETS) << COARSE_SHIFT) + (1 << (COARSE_SHIFT - 1));
}

/** p50/p99 from a guest histogram (counts per bucket) and the exact max, in microseconds. */
export function summarize(histogram: Uint32Array, maxTicks: number): LatencySummary {
  let total = 0;
  for (let b = 0; b < HISTOGRAM_BUCKETS; b++) total += histogram[b];
  const at = (q: number): number => {
    if (total === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * total));
    let seen = 0;
    for (let b = 0; b < HISTOGRAM_BUCKETS; b++) {
      seen += histogram[b];
      if (seen >= rank) return Math.min(bucketTicks(b), maxTicks);
    }
    return maxTicks;
  };
  const round = (ticks: number) => Math.round((ticks / TICKS_PER_US) * 10) / 10;
  return { p50: round(at(0.5)), p99: round(at(0.99)), max: round(maxTicks) };
}
