/**
 * Atomicity between harts: several worker threads, each running its own Hart
 * over the same SharedArrayBuffer guest RAM, update shared counters with AMOs,
 * LR/SC loops and a spinlock built on amoswap. Every count must be exact.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { Worker } from "node:worker_threads";
import { EXIT_SBI } from "../../../src/riscv/cpu/hart.js";
import { type Guest, hex, makeGuest, RAM_BASE } from "./guest.js";
import type { HartJob, HartReport } from "./smp-worker.js";

const HARTS = 4;

/** Run `guest`'s program on `harts` workers at once; returns their reports. */
async function runOnWorkers(guest: Guest, budget: number, harts = HARTS): Promise<HartReport[]> {
  const workers = Array.from({ length: harts }, (_, hartId) => {
    const workerData: HartJob = {
      buffer: guest.memory.buffer,
      base: RAM_BASE,
      hartId,
      entry: guest.image.entry,
      budget,
    };
    return new Worker(new URL("./smp-worker.js", import.meta.url), { workerData });
  });
  try {
    await Promise.all(workers.map((w) => once(w, "message")));
    const reports = workers.map((w) => once(w, "message") as Promise<[HartReport]>);
    for (const w of workers) w.postMessage("go");
    return (await Promise.all(reports)).map(([r]) => r);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

function assertAllEnded(guest: Guest, reports: HartReport[]): void {
  for (const r of reports) {
    assert.equal(r.exit, EXIT_SBI, `hart ${r.hartId} exit`);
    assert.equal(r.pc, guest.sym("__end") + 4, `hart ${r.hartId} ran to the end`);
  }
  assert.equal(guest.trap.count, 0n, "no hart trapped");
}

void describe("atomicity across threads", { timeout: 60_000 }, () => {
  void test("amoadd.w and amoadd.d: no increment is lost", async () => {
    const N = 100_000;
    const g = makeGuest(`
      la s0, counters
      addi s2, s0, 8
      li s1, ${N}
      li t0, 1
      li t1, 3
      1: amoadd.w zero, t0, (s0)
      amoadd.d t2, t1, (s2)
      addi s1, s1, -1
      bnez s1, 1b
      .data
      .balign 8
      counters: .word 0, 0x5a5a5a5a
      .dword 0xfffffff0
    `);
    const reports = await runOnWorkers(g, 50_000_000);
    assertAllEnded(g, reports);
    const at = g.sym("counters");
    assert.equal(g.load32(at), HARTS * N);
    assert.equal(g.load32(at + 4), 0x5a5a_5a5a, "the word next to the .w counter is untouched");
    assert.equal(hex(g.load64(at + 8)), hex(0xffff_fff0n + BigInt(3 * HARTS * N)));
  });

  void test("LR/SC increment loops (.w and .d): no increment is lost", async () => {
    const N = 50_000;
    const g = makeGuest(`
      la s0, counters
      addi s2, s0, 8
      li s1, ${N}
      li s3, 0                  # SC failures seen by this hart
      1: lr.w t0, (s0)
      addi t0, t0, 1
      sc.w t1, t0, (s0)
      beqz t1, 2f
      addi s3, s3, 1
      j 1b
      2: lr.d t0, (s2)
      addi t0, t0, 1
      sc.d t1, t0, (s2)
      beqz t1, 3f
      addi s3, s3, 1
      j 2b
      3: addi s1, s1, -1
      bnez s1, 1b
      .data
      .balign 8
      counters: .word 0, 0
      .dword 0x7fffffffffff0000
    `);
    const reports = await runOnWorkers(g, 50_000_000);
    assertAllEnded(g, reports);
    const at = g.sym("counters");
    assert.equal(g.load32(at), HARTS * N);
    assert.equal(g.load32(at + 4), 0);
    assert.equal(hex(g.load64(at + 8)), hex(0x7fff_ffff_ffff_0000n + BigInt(HARTS * N)));
  });

  void test("a spinlock on amoswap protects a plain load/add/store counter", async () => {
    const N = 30_000;
    const g = makeGuest(`
      la s0, lock
      la s2, counter
      li s1, ${N}
      li t0, 1
      1: amoswap.w.aq t1, t0, (s0)
      bnez t1, 1b
      ld t2, 0(s2)              # critical section: not atomic on its own
      addi t2, t2, 1
      sd t2, 0(s2)
      lw t3, 8(s2)
      addi t3, t3, 2
      sw t3, 8(s2)
      amoswap.w.rl zero, zero, (s0)
      addi s1, s1, -1
      bnez s1, 1b
      .data
      .balign 64
      lock: .word 0
      .balign 64
      counter: .dword 0, 0
    `);
    const reports = await runOnWorkers(g, 100_000_000);
    assertAllEnded(g, reports);
    assert.equal(g.load64(g.sym("counter")), BigInt(HARTS * N));
    assert.equal(g.load32(g.sym("counter") + 8), 2 * HARTS * N);
    assert.equal(g.load32(g.sym("lock")), 0, "the lock is free at the end");
  });

  void test("aligned word stores are never seen torn, also when the store misses the TLB", async () => {
    // Hart 0 flips a word between 0 and -1, flushing its TLB before every
    // store so that each one takes the slow path; hart 1 reads the word
    // until hart 0 is done and counts values that are neither.
    const N = 20_000;
    const g = makeGuest(`
      la s0, word
      la s1, done
      la s2, torn
      bnez a0, reader
      li s3, ${N}
      li s4, -1
      1: sfence.vma
      sw s4, 0(s0)
      sfence.vma
      sh s4, 8(s0)
      sfence.vma
      sw zero, 0(s0)
      sfence.vma
      sh zero, 8(s0)
      addi s3, s3, -1
      bnez s3, 1b
      li t0, 1
      amoswap.w zero, t0, (s1)
      j end
      reader:
      li s5, -1
      li s6, 0                # reads
      2: lw t0, 0(s0)
      lh t1, 8(s0)
      addi s6, s6, 1
      beqz t0, 3f
      beq t0, s5, 3f
      amoadd.w zero, s5, (s2) # torn word: count down
      3: beqz t1, 4f
      beq t1, s5, 4f
      amoadd.w zero, s5, (s2)
      4: lw t2, 0(s1)
      beqz t2, 2b
      sd s6, 8(s2)
      end:
      .data
      .balign 64
      word: .dword 0, 0
      done: .word 0
      .balign 8
      torn: .dword 0, 0
    `);
    const reports = await runOnWorkers(g, 1_000_000_000, 2);
    assertAllEnded(g, reports);
    const torn = g.load32(g.sym("torn"));
    const reads = g.load64(g.sym("torn") + 8);
    assert.ok(reads > 1000n, `the reader ran alongside (${reads} reads)`);
    assert.equal(torn, 0, `torn values seen: ${(-torn | 0) >>> 0} in ${reads} reads`);
  });

  void test("aligned doubleword loads and stores are single-copy atomic", async () => {
    const N = 100_000;
    const g = makeGuest(`
        la s0, word
        la s1, done
        la s2, torn
        bnez a0, reader
        li s3, ${N}
        li s4, -1
        1: sd s4, 0(s0)
        sd zero, 0(s0)
        addi s3, s3, -1
        bnez s3, 1b
        li t0, 1
        amoswap.w zero, t0, (s1)
        j end
        reader:
        li s5, -1
        2: ld t0, 0(s0)
        beqz t0, 3f
        beq t0, s5, 3f
        amoadd.w zero, s5, (s2)
        3: lw t2, 0(s1)
        beqz t2, 2b
        end:
        .data
        .balign 64
        word: .dword 0
        done: .word 0
        .balign 8
        torn: .dword 0
      `);
    const reports = await runOnWorkers(g, 1_000_000_000, 2);
    assertAllEnded(g, reports);
    assert.equal(g.load32(g.sym("torn")), 0, "torn doublewords seen");
  });
});
