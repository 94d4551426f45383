/**
 * Why the hart keeps 64-bit registers as (lo, hi) int32 pairs: the same
 * register-machine kernel (add, xor, shift, unsigned compare, add-immediate on
 * a register file indexed like the interpreter's) run with each candidate
 * representation, side by side in one process. The pair and BigInt versions
 * must agree on the final registers, so neither can win by being wrong.
 */

export interface RepresentationResult {
  name: string;
  /** Millions of register operations per second. */
  mops: number;
  /** Speed relative to the int32-pair representation. */
  relativeToPairs: number;
}

const OPS_PER_ITERATION = 6;

function kernelPairs(iterations: number): bigint {
  const x = new Int32Array(64);
  x[2] = 0x12345678;
  x[3] = 0x9abcdef;
  x[4] = 7;
  for (let i = 0; i < iterations; i++) {
    // x5 = x1 + x2
    const lo = (x[2] + x[4]) | 0;
    x[10] = lo;
    x[11] = (x[3] + x[5] + (lo >>> 0 < x[2] >>> 0 ? 1 : 0)) | 0;
    // x1 = x5 ^ x3
    x[2] = x[10] ^ x[6];
    x[3] = x[11] ^ x[7];
    // x3 = x1 << 3
    x[7] = (x[3] << 3) | (x[2] >>> 29);
    x[6] = x[2] << 3;
    // x6 = x3 <u x5
    x[12] = x[7] >>> 0 < x[11] >>> 0 || (x[7] === x[11] && x[6] >>> 0 < x[10] >>> 0) ? 1 : 0;
    x[13] = 0;
    // x2 = x2 + x6 + 1 (two ops)
    const s = (x[4] + x[12]) | 0;
    x[5] = (x[5] + (s >>> 0 < x[4] >>> 0 ? 1 : 0)) | 0;
    const t = (s + 1) | 0;
    x[4] = t;
    x[5] = (x[5] + (t >>> 0 < s >>> 0 ? 1 : 0)) | 0;
  }
  let digest = 0n;
  for (let r = 1; r < 7; r++) {
    digest ^= ((BigInt(x[2 * r + 1]) << 32n) | BigInt(x[2 * r] >>> 0)) * BigInt(r);
  }
  return BigInt.asUintN(64, digest);
}

function kernelBigInt64Array(iterations: number): bigint {
  const x = new BigInt64Array(32);
  x[1] = 0x09abcdef12345678n;
  x[2] = 7n;
  for (let i = 0; i < iterations; i++) {
    x[5] = x[1] + x[2];
    x[1] = x[5] ^ x[3];
    x[3] = x[1] << 3n;
    x[6] = BigInt.asUintN(64, x[3]) < BigInt.asUintN(64, x[5]) ? 1n : 0n;
    x[2] = x[2] + x[6];
    x[2] = x[2] + 1n;
  }
  let digest = 0n;
  for (let r = 1; r < 7; r++) digest ^= BigInt.asUintN(64, x[r]) * BigInt(r);
  return BigInt.asUintN(64, digest);
}

/** Doubles are exact only to 2^53: shown as the speed a wrong shortcut would buy. */
function kernelFloat64(iterations: number): bigint {
  const x = new Float64Array(32);
  x[1] = 0x12345678;
  x[2] = 7;
  for (let i = 0; i < iterations; i++) {
    x[5] = x[1] + x[2];
    x[1] = (x[5] ^ x[3]) >>> 0;
    x[3] = (x[1] * 8) % 2 ** 53;
    x[6] = x[3] < x[5] ? 1 : 0;
    x[2] = x[2] + x[6];
    x[2] = x[2] + 1;
  }
  return BigInt(x[1] + x[2]);
}

function measure(
  kernel: (n: number) => bigint,
  iterations: number,
): { mops: number; value: bigint } {
  kernel(Math.min(iterations, 100_000));
  const started = performance.now();
  const value = kernel(iterations);
  const seconds = (performance.now() - started) / 1000;
  return { mops: (iterations * OPS_PER_ITERATION) / seconds / 1e6, value };
}

export function runInt64RepresentationBenchmark(iterations = 20_000_000): RepresentationResult[] {
  const pairs = measure(kernelPairs, iterations);
  const bigints = measure(kernelBigInt64Array, Math.max(1, Math.floor(iterations / 10)));
  const checkPairs = kernelPairs(Math.max(1, Math.floor(iterations / 10)));
  if (checkPairs !== bigints.value) {
    throw new Error(
      "int64 benchmark: pair and BigInt kernels disagree; the pair arithmetic is wrong",
    );
  }
  const floats = measure(kernelFloat64, iterations);
  const row = (name: string, mops: number) => ({ name, mops, relativeToPairs: mops / pairs.mops });
  return [
    row("int32 pairs (Int32Array lo/hi)", pairs.mops),
    row("BigInt64Array + BigInt ops", bigints.mops),
    row("Float64Array (inexact above 2^53)", floats.mops),
  ];
}
