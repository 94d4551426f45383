/**
 * A latency histogram in shared memory, so that vCPU threads record their
 * own fault latencies without messages or locks: log-linear buckets (eight
 * per power of two, so a percentile is exact to 12.5%), counted with
 * Atomics.add, plus the exact maximum.
 */

const SUB_BITS = 3;
const SUB = 1 << SUB_BITS;
const BUCKETS = SUB * 32;
const W_MAX = BUCKETS;
export const HISTOGRAM_BYTES = (BUCKETS + 1) * 4;

export interface LatencySummary {
  p50: number;
  p99: number;
  max: number;
}

function bucketOf(us: number): number {
  if (us < SUB) return us;
  const e = 31 - Math.clz32(us);
  return ((e - SUB_BITS + 1) << SUB_BITS) + ((us >>> (e - SUB_BITS)) & (SUB - 1));
}

/** The largest value that falls in bucket `b`. */
function bucketTop(b: number): number {
  if (b < SUB) return b;
  const e = (b >>> SUB_BITS) + SUB_BITS - 1;
  const sub = b & (SUB - 1);
  return (SUB + sub + 1) * 2 ** (e - SUB_BITS) - 1;
}

export class LatencyHistogram {
  private readonly words: Int32Array;

  constructor(buffer: SharedArrayBuffer, byteOffset = 0) {
    this.words = new Int32Array(buffer, byteOffset, BUCKETS + 1);
  }

  /** Record one latency in microseconds. */
  record(us: number): void {
    const v = Math.min(Math.max(Math.round(us), 0), 0x7fff_ffff);
    Atomics.add(this.words, bucketOf(v), 1);
    for (;;) {
      const max = Atomics.load(this.words, W_MAX);
      if (v <= max || Atomics.compareExchange(this.words, W_MAX, max, v) === max) return;
    }
  }

  get count(): number {
    let n = 0;
    for (let b = 0; b < BUCKETS; b++) n += Atomics.load(this.words, b);
    return n;
  }

  summary(): LatencySummary {
    const total = this.count;
    const max = Atomics.load(this.words, W_MAX);
    const at = (q: number) => {
      if (total === 0) return 0;
      const rank = Math.ceil(q * total);
      let seen = 0;
      for (let b = 0; b < BUCKETS; b++) {
        seen += Atomics.load(this.words, b);
        if (seen >= rank) return Math.min(bucketTop(b), max);
      }
      return max;
    };
    return { p50: at(0.5), p99: at(0.99), max };
  }
}
