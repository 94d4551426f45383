import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  FAULT_EFAULT,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from "../../src/host/address-space.js";
import type { Host } from "../../src/host/host.js";
import { HostMemory } from "../../src/host/host-memory.js";
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE } from "../../src/host/memfd.js";
import { PAGE_SIZE_2M } from "../../src/host/page-cache.js";
import { MiB, random, smallHost } from "./helpers.js";
import type { FaultReply } from "./host-worker.js";
import { HostWorkers } from "./workers.js";

const WORKERS = 4;
const PAGES = 64;
const RW = PROT_READ | PROT_WRITE;

interface RoundMappings {
  fd: number;
  anon: number;
  sharedA: number;
  sharedB: number;
  huge: number;
}

function mapRound(host: Host): RoundMappings {
  const fd = host.memfdCreate("round", PAGES * 4096);
  return {
    fd,
    anon: host.mmap({ length: PAGES * 4096, prot: RW, flags: MAP_PRIVATE | MAP_ANONYMOUS }),
    sharedA: host.mmap({ length: PAGES * 4096, prot: RW, flags: MAP_SHARED, fd }),
    sharedB: host.mmap({ length: PAGES * 4096, prot: RW, flags: MAP_SHARED, fd }),
    huge: host.mmap({
      length: 2 * MiB,
      prot: RW,
      flags: MAP_PRIVATE | MAP_ANONYMOUS,
      hugePageSize: PAGE_SIZE_2M,
    }),
  };
}

function unmapRound(host: Host, m: RoundMappings): void {
  host.munmap(m.anon, PAGES * 4096);
  host.munmap(m.sharedA, PAGES * 4096);
  host.munmap(m.sharedB, PAGES * 4096);
  host.munmap(m.huge, 2 * MiB);
  host.close(m.fd);
}

function counterAt(host: Host, pfn: number): number {
  return Atomics.load(host.memory.chunkI32[HostMemory.chunkOf(pfn)], HostMemory.offsetOf(pfn) >> 2);
}

async function faultAll(
  workers: HostWorkers,
  targets: number[],
  round: number,
  extraTouches = 32,
): Promise<FaultReply[]> {
  return Promise.all(
    workers.workers.map((_, w) =>
      workers.ask<FaultReply>(w, {
        kind: "fault",
        targets,
        pages: PAGES,
        seed: round * 1000 + w,
        extraTouches,
      }),
    ),
  );
}

describe("concurrent faults from worker threads", { timeout: 120_000 }, () => {
  test("racing first touches end with exactly one frame per page, and nothing leaks", async () => {
    const host = smallHost();
    const workers = new HostWorkers(host, WORKERS);
    try {
      for (let round = 0; round < 40; round++) {
        const m = mapRound(host);
        const targets = [m.anon, m.sharedA, m.sharedB, m.huge];
        const replies = await faultAll(workers, targets, round);
        const cache = host.memfds.pageCache(m.fd);
        for (let t = 0; t < targets.length; t++) {
          for (let page = 0; page < PAGES; page++) {
            const pfn = host.lookupPfn(targets[t] + page * 4096);
            assert.ok(pfn > 0);
            for (const reply of replies) assert.equal(reply.pfns[t][page], pfn, `round ${round}`);
            if (t === 1 || t === 2) assert.equal(cache.lookup(page), pfn);
          }
        }
        for (let page = 0; page < PAGES; page++) {
          // Every worker's increment landed in the one frame of each page.
          assert.equal(counterAt(host, host.lookupPfn(m.anon + page * 4096)), WORKERS);
          assert.equal(counterAt(host, host.lookupPfn(m.sharedA + page * 4096)), 2 * WORKERS);
          assert.equal(counterAt(host, host.lookupPfn(m.huge + page * 4096)), WORKERS);
        }
        const huge = host.lookupPfn(m.huge);
        assert.equal(huge % 512, 0);
        assert.equal(host.memory.framesInUse, PAGES + PAGES + 512, "no frame lost to a race");
        assert.equal(host.mm.residentFrames(m.sharedB), PAGES);
        unmapRound(host, m);
        assert.equal(host.memory.framesInUse, 0, `round ${round} leaked frames`);
      }
    } finally {
      await workers.close();
    }
  });

  test("munmap racing with faults: faults either succeed or see EFAULT, and nothing leaks", async () => {
    const host = smallHost();
    const workers = new HostWorkers(host, WORKERS);
    const next = random(7);
    try {
      for (let round = 0; round < 30; round++) {
        const m = mapRound(host);
        const targets = [m.anon, m.sharedA, m.sharedB, m.huge];
        const replies = faultAll(workers, targets, round, 200);
        await sleep(Math.floor(next() * 4));
        unmapRound(host, m);
        for (const reply of await replies) {
          for (const pfns of reply.pfns) {
            for (const pfn of pfns) assert.ok(pfn > 0 || pfn === FAULT_EFAULT, `got ${pfn}`);
          }
        }
        assert.equal(host.memory.framesInUse, 0, `round ${round} leaked frames`);
        assert.equal(host.mm.mappingCount, 0);
      }
    } finally {
      await workers.close();
    }
  });

  test("holes punched while faults map pages leave no stale mapping", async () => {
    const host = smallHost();
    const workers = new HostWorkers(host, WORKERS);
    const next = random(11);
    try {
      for (let round = 0; round < 25; round++) {
        const m = mapRound(host);
        const targets = [m.sharedA, m.sharedB];
        const replies = faultAll(workers, targets, round, 400);
        let done = false;
        void replies.then(
          () => (done = true),
          () => (done = true),
        );
        while (!done) {
          const first = Math.floor(next() * PAGES);
          const count = 1 + Math.floor(next() * 8);
          host.memfds.fallocate(
            m.fd,
            FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
            first * 4096,
            count * 4096,
          );
          await sleep(0);
        }
        await replies;
        const cache = host.memfds.pageCache(m.fd);
        let mapped = 0;
        for (const target of targets) {
          for (let page = 0; page < PAGES; page++) {
            const pfn = host.lookupPfn(target + page * 4096);
            if (pfn !== 0) {
              mapped++;
              assert.equal(pfn, cache.lookup(page), `stale mapping of page ${page}`);
            }
          }
        }
        assert.equal(host.mm.residentFrames(m.sharedA) + host.mm.residentFrames(m.sharedB), mapped);
        assert.equal(host.memory.framesInUse, cache.framesPresent);
        unmapRound(host, m);
        assert.equal(host.memory.framesInUse, 0, `round ${round} leaked frames`);
      }
    } finally {
      await workers.close();
    }
  });
});
