import assert from "node:assert/strict";
import { ErrnoError, type Errno } from "../../src/host/errno.js";
import { Host, type HostOptions } from "../../src/host/host.js";

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** A small host for tests: 2 GiB of RAM and 64 MiB of arena unless asked otherwise (both lazily committed). */
export function smallHost(options: HostOptions = {}): Host {
  return Host.create({ ramBytes: 2 * GiB, arenaBytes: 64 * MiB, ...options });
}

/** Assert that `body` throws an ErrnoError with `errno`. */
export function throwsErrno(body: () => unknown, errno: Errno): void {
  assert.throws(body, (error: unknown) => {
    assert.ok(error instanceof ErrnoError, `expected ErrnoError ${errno}, got ${String(error)}`);
    assert.equal(error.errno, errno, error.message);
    return true;
  });
}

export async function rejectsErrno(promise: Promise<unknown>, errno: Errno): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ErrnoError, `expected ErrnoError ${errno}, got ${String(error)}`);
    assert.equal(error.errno, errno, error.message);
    return true;
  });
}

/** A deterministic pseudo-random generator (mulberry32) for reproducible interleavings. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random permutation of 0..n-1. */
export function shuffled(n: number, next: () => number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}
