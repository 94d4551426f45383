import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PAGE_SIZE } from "../../src/host/host-memory.js";
import {
  GUEST_MEMFD_FLAG_HUGE_2M,
  MEM_GUEST_MEMFD,
  MEM_LOG_DIRTY_PAGES,
} from "../../src/kvm/uapi.js";
import { UCALL_DONE, UCALL_FAIL, V_FAULT_GFN, V_FAULTS, type VcpuReply } from "./kvm-worker.js";
import {
  createTestVm,
  enableUserfault,
  RAM_BASE,
  readGuestU64,
  setUserfault,
  sleep,
  UCALL,
  withTimeout,
  writeGuestU64,
} from "./support.js";
import { KvmWorkers } from "./workers.js";

/**
 * Userfault under concurrency: vCPUs on worker threads keep reading (and
 * writing back) pages of a guest_memfd slot while the main thread sets and
 * clears USERFAULT on them at random, as a post-copy destination does.
 * Right after setting a page's bit the test fills it with poison, and right
 * before clearing it writes the real contents back: a vCPU that ever reached
 * the page while its bit was set (a stale mapping or TLB entry, a fault that
 * raced the unmap) would read poison, or write over it. A vCPU that takes a
 * MEMORY_FAULT exit sleeps until its page is released (Atomics.wait on a
 * word the test bumps after each release) and runs again.
 *
 * Variants: 4 KiB backing; 2 MiB backing where userfault is enabled only
 * once the vCPUs run over 2 MiB stage-2 mappings (setting a bit must break
 * them up); and memslot changes racing the rounds (dirty logging toggled on
 * the live slot, another slot created and deleted).
 */

const VCPUS = 2;
const PAGES = 256;
const MAX_IN_FLIGHT = 4;
const DATA = RAM_BASE + 0x40_0000;
const CTRL = RAM_BASE + 0x30_0000;
const MEM_BYTES = 16 << 20;
const TAG = 0x5a5an << 48n;
const POISON = 0xdead_beef_dead_beefn;
const DURATION_MS = 3500;
const MAX_ROUNDS = 150_000;
const MIN_ROUNDS = 1500;
const SPARE_SLOT_GPA = RAM_BASE + 0x4000_0000;

interface Variant {
  name: string;
  gmemFlags: number;
  /** Enable userfault only once the vCPUs have run (over huge mappings). */
  enableLate: boolean;
  /** Change memslots every so many rounds. */
  memslotChurn: boolean;
}

const VARIANTS: Variant[] = [
  { name: "4 KiB pages", gmemFlags: 0, enableLate: false, memslotChurn: false },
  {
    name: "2 MiB pages mapped huge before userfault is enabled",
    gmemFlags: GUEST_MEMFD_FLAG_HUGE_2M,
    enableLate: true,
    memslotChurn: false,
  },
  {
    name: "memslot changes racing the rounds",
    gmemFlags: 0,
    enableLate: false,
    memslotChurn: true,
  },
];

/** Doubleword d of page p: what the guest expects to read. */
function real(page: number): Uint8Array {
  const bytes = new Uint8Array(PAGE_SIZE);
  const words = new BigUint64Array(bytes.buffer);
  for (let d = 0; d < 512; d++) words[d] = TAG | (BigInt(page) << 16n) | BigInt(d);
  return bytes;
}

const GUEST = `
_start:
        mv      s8, a0                  # hart id
        li      s0, ${DATA}
        li      s1, ${PAGES}
        li      s4, ${CTRL}
        li      s5, 6364136223846793005
        li      s6, 1442695040888963407
        li      s7, ${TAG}
        addi    s2, a0, 1
        mul     s2, s2, s5
        li      s3, 0
loop:
        mul     s2, s2, s5              # a 64-bit LCG picks page and doubleword
        add     s2, s2, s6
        srli    t0, s2, 33
        remu    t1, t0, s1
        srli    t2, s2, 20
        andi    t2, t2, 511
        slli    t3, t1, 12
        slli    t4, t2, 3
        add     t3, t3, t4
        add     t3, t3, s0
        ld      t5, 0(t3)
        slli    t6, t1, 16
        or      t6, t6, t2
        or      t6, t6, s7
        bne     t5, t6, bad
        srli    t0, s2, 45              # one access in four writes the value back
        andi    t0, t0, 3
        bnez    t0, 1f
        sd      t6, 0(t3)
1:      addi    s3, s3, 1
        andi    t0, s3, 255
        bnez    t0, loop
        slli    t0, s8, 3               # every 256: publish progress, check for stop
        add     t0, t0, s4
        sd      s3, 8(t0)
        ld      t0, 0(s4)
        beqz    t0, loop
        mv      a0, s3
        li      a1, ${UCALL_DONE}
        ${UCALL}
bad:
        mv      a0, t3
        mv      a2, t5
        li      a1, ${UCALL_FAIL}
        ${UCALL}
`;

describe("userfault under concurrency", () => {
  for (const variant of VARIANTS) {
    test(
      `vCPUs never see a page while its USERFAULT bit is set, over thousands of random rounds (${variant.name})`,
      { timeout: 60_000 },
      async (context) => {
        const t = createTestVm(GUEST, { gmemFlags: variant.gmemFlags });
        if (!variant.enableLate) enableUserfault(t);
        const cache = t.host.pageCacheOf(t.gmemFd);
        const index = (page: number) => (DATA - RAM_BASE) / PAGE_SIZE + page;
        const poison = new Uint8Array(PAGE_SIZE);
        new BigUint64Array(poison.buffer).fill(POISON);
        const contents = Array.from({ length: PAGES }, (_, page) => real(page));
        for (let page = 0; page < PAGES; page++) cache.install(index(page), contents[page]);

        for (let id = 1; id < VCPUS; id++) t.kvm.createVcpu(t.vm, id);
        const workers = new KvmWorkers(t);
        let finished = false;
        const replies = Array.from(
          { length: VCPUS },
          (_, id) =>
            workers.vcpu({
              id,
              pc: t.entry,
              a0: BigInt(id),
              stvec: t.trap,
              onFault: "wait-release",
            }).reply,
        );
        const all = Promise.all(replies).finally(() => {
          finished = true;
        });
        try {
          if (variant.enableLate) {
            // Let every vCPU run over the 2 MiB mappings first.
            const ran = () =>
              Array.from({ length: VCPUS }, (_, id) => readGuestU64(t.vm, CTRL + 8 + 8 * id)).every(
                (n) => n > 1000n,
              );
            while (!ran()) {
              assert.equal(finished, false, "a vCPU stopped early");
              await sleep(1);
            }
            enableUserfault(t);
          }
          let churns = 0;
          let spareFd = -1;
          let spareMapped = false;
          const churnMemslots = () => {
            // Dirty logging on and off on the live slot (a flags change), and a
            // second slot created and deleted, while the vCPUs fault and run.
            const logging = !spareMapped;
            t.vm.setUserMemoryRegion2({
              slot: 0,
              flags: MEM_GUEST_MEMFD | (logging ? MEM_LOG_DIRTY_PAGES : 0),
              guestPhysAddr: RAM_BASE,
              memorySize: MEM_BYTES,
              userspaceAddr: 0,
              guestMemfd: t.gmemFd,
              guestMemfdOffset: 0,
            });
            if (spareFd < 0) spareFd = t.vm.createGuestMemfd({ size: 1 << 20, flags: 0 });
            spareMapped = !spareMapped;
            t.vm.setUserMemoryRegion2({
              slot: 1,
              flags: MEM_GUEST_MEMFD,
              guestPhysAddr: SPARE_SLOT_GPA,
              memorySize: spareMapped ? 1 << 20 : 0,
              userspaceAddr: 0,
              guestMemfd: spareFd,
              guestMemfdOffset: 0,
            });
            churns++;
          };
          let seed = 12345;
          const random = (n: number) => {
            seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
            return Math.floor((seed / 2 ** 32) * n);
          };
          const inFlight: number[] = [];
          const set = new Set<number>();
          const release = (page: number) => {
            // Nobody wrote through a stale mapping while the page was poisoned.
            const frame = t.host.memory.frameBytes(cache.lookup(index(page)));
            const words = new BigUint64Array(frame.slice().buffer);
            assert.ok(
              words.every((w) => w === POISON),
              `page ${page} was written while userfault`,
            );
            cache.install(index(page), contents[page]);
            setUserfault(t.vm, DATA + page * PAGE_SIZE, false);
            set.delete(page);
            workers.released();
          };
          const start = performance.now();
          let rounds = 0;
          while (rounds < MAX_ROUNDS && performance.now() - start < DURATION_MS) {
            // As a post-copy VMM, serve the pages vCPUs wait for first (most of the time).
            for (let id = 0; id < VCPUS; id++) {
              const waitedFor = (workers.word(id, V_FAULT_GFN) * PAGE_SIZE - DATA) / PAGE_SIZE;
              if (set.has(waitedFor) && random(4) !== 0) {
                inFlight.splice(inFlight.indexOf(waitedFor), 1);
                release(waitedFor);
                rounds++;
              }
            }
            const page = random(PAGES);
            if (set.has(page) || inFlight.length >= MAX_IN_FLIGHT) {
              const victim = set.has(page) ? page : inFlight[random(inFlight.length)];
              inFlight.splice(inFlight.indexOf(victim), 1);
              release(victim);
            } else {
              setUserfault(t.vm, DATA + page * PAGE_SIZE, true);
              // No vCPU can reach the page any more: make it poison.
              cache.install(index(page), poison);
              set.add(page);
              inFlight.push(page);
            }
            rounds++;
            // Pace the rounds so that the vCPUs run between them (a burst, then a
            // millisecond); let worker messages in: a vCPU that saw poison has replied.
            if (variant.memslotChurn && rounds % 64 === 0) churnMemslots();
            if (rounds % 16 === 0) await new Promise((resolve) => setImmediate(resolve));
            if (rounds % 512 === 0) await sleep(1);
            assert.equal(finished, false, "a vCPU stopped early");
          }
          for (const page of [...inFlight]) release(page);
          const faults = Array.from({ length: VCPUS }, (_, id) => workers.word(id, V_FAULTS));
          writeGuestU64(t.vm, CTRL, 1n);
          const results: VcpuReply[] = await withTimeout(all, 10_000, "the vCPUs to stop");
          const progress = results.map((_, id) => readGuestU64(t.vm, CTRL + 8 + 8 * id));
          for (const [id, reply] of results.entries()) {
            assert.equal(
              reply.stop,
              "done",
              `vCPU ${id}: ${reply.message ?? ""} at 0x${reply.a0.toString(16)} read 0x${reply.a2.toString(16)}`,
            );
          }
          const diagnostic = `${rounds} rounds, ${churns} memslot changes in ${Math.round(performance.now() - start)} ms, faults ${faults}, reads ${progress}`;
          assert.ok(rounds >= MIN_ROUNDS, `too few rounds: ${diagnostic}`);
          for (let id = 0; id < VCPUS; id++) {
            assert.ok(faults[id] > 0, `vCPU ${id} never faulted: ${diagnostic}`);
            assert.ok(progress[id] > 10_000n, `vCPU ${id} made little progress: ${diagnostic}`);
          }
          context.diagnostic(`stress: ${diagnostic}`);
        } finally {
          await workers.close();
        }
      },
    );
  }
});
