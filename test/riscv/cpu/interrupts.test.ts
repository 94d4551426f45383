/**
 * Supervisor interrupts (software, timer, external): enabling and masking,
 * priority, vectored delivery, and WFI, including wake-ups from another thread.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { Worker } from "node:worker_threads";
import { MIP_SEIP, MIP_SSIP, MIP_STIP } from "../../../src/riscv/cpu/constants.js";
import {
  lowerInterrupt,
  raiseInterrupt,
  takeRequests,
} from "../../../src/riscv/cpu/hart-control.js";
import { EXIT_REQUEST, EXIT_SBI } from "../../../src/riscv/cpu/hart.js";
import { enterUser, hex, makeGuest } from "./guest.js";
import type { WakeOrder } from "./wake-worker.js";

const INTERRUPT = 1n << 63n;
const SSI = INTERRUPT | 1n;
const STI = INTERRUPT | 5n;
const SEI = INTERRUPT | 9n;
const TICKS_PER_MS = 10_000;

void describe("taking interrupts", () => {
  void test("a pending SSI is taken right after the instruction that sets sstatus.SIE", () => {
    const g = makeGuest(`
      csrsi sie, 2
      li s2, 1
      csrsi sstatus, 2
      next: li s2, 2
    `);
    raiseInterrupt(g.hart.control, MIP_SSIP);
    g.run();
    const trap = g.expectTrap();
    assert.equal(hex(trap.cause), hex(SSI));
    assert.equal(trap.tval, 0n);
    assert.equal(trap.epc, BigInt(g.sym("next")));
    assert.equal(g.reg("s2"), 1n, "the next instruction has not run");
  });

  void test("... and right after the instruction that sets the bit in sie", () => {
    const g = makeGuest(`
      csrsi sstatus, 2
      li t0, 0x200
      csrs sie, t0
      next: nop
    `);
    raiseInterrupt(g.hart.control, MIP_SEIP);
    g.run();
    const trap = g.expectTrap();
    assert.equal(hex(trap.cause), hex(SEI));
    assert.equal(trap.epc, BigInt(g.sym("next")));
  });

  void test("the guest raises an SSI by writing sip.SSIP", () => {
    const g = makeGuest(`
      csrsi sie, 2
      csrsi sstatus, 2
      li s2, 1
      csrsi sip, 2
      next: li s2, 2
    `);
    g.run();
    const trap = g.expectTrap();
    assert.equal(hex(trap.cause), hex(SSI));
    assert.equal(trap.epc, BigInt(g.sym("next")));
    assert.equal(trap.status & (1n << 5n), 1n << 5n, "SPIE = the SIE before the trap");
    assert.equal(trap.status & 2n, 0n, "SIE cleared");
    assert.equal(trap.status & (1n << 8n), 1n << 8n, "SPP = S");
    assert.equal(g.reg("s2"), 1n);
  });

  void test("the timer interrupt fires once time reaches the compare value", () => {
    const g = makeGuest(`
      li t0, 0x20
      csrs sie, t0
      csrsi sstatus, 2
      1: addi s2, s2, 1
      j 1b
    `);
    const deadline = g.hart.readTime() + 20 * TICKS_PER_MS;
    g.hart.setTimer(deadline);
    g.run(500_000_000);
    const trap = g.expectTrap();
    assert.ok(g.hart.readTime() >= deadline);
    assert.equal(hex(trap.cause), hex(STI));
    assert.ok(g.reg("s2") > 0n, "the loop ran while waiting");
  });

  void test("setTimer clears a pending timer interrupt; sip shows STIP", () => {
    const g = makeGuest(`
      csrr s2, sip
      ecall
      csrr s3, sip
    `);
    g.hart.setTimer(0); // already due
    assert.equal(g.run(), EXIT_SBI);
    g.hart.setTimer(g.hart.readTime() + 1000 * TICKS_PER_MS);
    g.run();
    g.expectEnd();
    assert.equal(hex(g.reg("s2")), hex(BigInt(MIP_STIP)));
    assert.equal(g.reg("s3"), 0n);
  });
});

void describe("masking", () => {
  void test("sie masks a pending interrupt in S-mode", () => {
    const g = makeGuest(`
      csrsi sstatus, 2
      li t0, 0x20
      csrw sie, t0          # STIE only
      nop
      csrr s2, sip
    `);
    raiseInterrupt(g.hart.control, MIP_SSIP | MIP_SEIP);
    g.run();
    g.expectEnd();
    assert.equal(hex(g.reg("s2")), "0x202");
  });

  void test("sstatus.SIE = 0 masks every interrupt in S-mode", () => {
    const g = makeGuest(`
      li t0, -1
      csrw sie, t0
      csrci sstatus, 2
      nop
      csrr s2, sip
    `);
    raiseInterrupt(g.hart.control, MIP_SSIP | MIP_SEIP);
    g.hart.setTimer(0);
    g.run();
    g.expectEnd();
    assert.equal(hex(g.reg("s2")), "0x222");
  });

  void test("in U-mode, interrupts enabled in sie are taken whatever sstatus.SIE says", () => {
    const g = makeGuest(`
      csrsi sie, 2
      li t0, 0x22
      csrc sstatus, t0      # SIE = SPIE = 0: U runs with SIE = 0
      ${enterUser("user")}
      user: li s2, 1
    `);
    raiseInterrupt(g.hart.control, MIP_SSIP);
    g.run();
    const trap = g.expectTrap();
    assert.equal(hex(trap.cause), hex(SSI));
    assert.equal(trap.epc, BigInt(g.sym("user")), "taken right after the SRET");
    assert.equal(trap.status & (1n << 8n), 0n, "SPP = U");
    assert.equal(g.reg("s2"), 0n);
  });

  void test("in U-mode, an interrupt not enabled in sie is not taken", () => {
    const g = makeGuest(`
      li t0, 0x20
      csrw sie, t0
      ${enterUser("user")}
      user: li s2, 1
      ecall
    `);
    raiseInterrupt(g.hart.control, MIP_SSIP);
    g.run();
    const trap = g.expectTrap();
    assert.equal(trap.cause, 8n, "only the U-mode ecall traps");
    assert.equal(g.reg("s2"), 1n);
  });
});

void describe("priority and delivery", () => {
  void test("SEI > SSI > STI when several are pending; scause has bit 63 set", () => {
    const g = makeGuest(`
      la t0, handler
      csrw stvec, t0
      la s0, causes
      li t0, 0x222
      csrw sie, t0
      csrsi sstatus, 2
      li s2, 0
      1: addi s2, s2, 1
      li t0, 3
      blt s1, t0, 1b
      j done
      .balign 4
      handler:
      csrr t1, scause
      sd t1, 0(s0)
      addi s0, s0, 8
      addi s1, s1, 1
      sync: ecall               # let the test lower the interrupt just taken
      sret
      done:
      .data
      .balign 8
      causes: .dword 0, 0, 0
    `);
    raiseInterrupt(g.hart.control, MIP_SSIP | MIP_SEIP);
    g.hart.setTimer(0);
    const lower: Record<string, () => void> = {
      [hex(SEI)]: () => lowerInterrupt(g.hart.control, MIP_SEIP),
      [hex(SSI)]: () => lowerInterrupt(g.hart.control, MIP_SSIP),
      [hex(STI)]: () => g.hart.setTimer(Infinity),
    };
    const seen: string[] = [];
    for (let i = 0; i < 3; i++) {
      assert.equal(g.run(), EXIT_SBI);
      assert.equal(g.hart.pc, g.sym("sync") + 4, `interrupt ${i} reached the handler`);
      const cause = hex(g.load64(g.sym("causes") + 8 * i));
      seen.push(cause);
      lower[cause]();
    }
    g.run();
    g.expectEnd();
    assert.deepEqual(seen, [hex(SEI), hex(SSI), hex(STI)]);
  });

  void test("vectored stvec: interrupts go to BASE + 4 * cause, exceptions to BASE", () => {
    const g = makeGuest(`
      la t0, vectors + 1
      csrw stvec, t0
      csrsi sie, 2
      csrsi sstatus, 2
      ebreak                    # exception: BASE
      after_ebreak:
      csrsi sip, 2              # SSI: BASE + 4
      after_ssi:
      j done
      .balign 256
      vectors:
      j on_exception
      j on_ssi
      j bad
      j bad
      j bad
      j on_sti
      j bad
      j bad
      j bad
      j on_sei
      on_exception:
      addi s2, s2, 1
      csrr t1, sepc
      addi t1, t1, 4
      csrw sepc, t1
      sret
      on_ssi:
      addi s3, s3, 1
      csrci sip, 2
      sret
      on_sti:
      on_sei:
      bad:
      ebreak
      j bad
      done:
      la t0, __trap
      csrw stvec, t0
    `);
    g.run();
    g.expectEnd();
    assert.equal(g.reg("s2"), 1n, "the exception went to BASE");
    assert.equal(g.reg("s3"), 1n, "the SSI went to BASE + 4");
  });
});

void describe("WFI", () => {
  void test("returns for a pending interrupt enabled in sie even with SIE = 0, without taking it", () => {
    const g = makeGuest(`
      li t0, 0x22
      csrw sie, t0
      csrci sstatus, 2
      wfi
      after: csrr s2, sip
    `);
    raiseInterrupt(g.hart.control, MIP_SSIP);
    // A backstop: were WFI to ignore the pending SSI, the timer would end it after 1 s.
    g.hart.setTimer(g.hart.readTime() + 1000 * TICKS_PER_MS);
    const start = performance.now();
    g.run();
    const elapsed = performance.now() - start;
    g.expectEnd();
    assert.ok(elapsed < 500, `WFI returned at once (${elapsed.toFixed(1)} ms)`);
    assert.equal(hex(g.reg("s2")), "0x2");
  });

  void test("a pending interrupt that sie disables does not end WFI", () => {
    const g = makeGuest(`
      li t0, 0x20
      csrw sie, t0
      wfi
      csrr s2, sip
    `);
    raiseInterrupt(g.hart.control, MIP_SSIP);
    const deadline = g.hart.readTime() + 50 * TICKS_PER_MS;
    g.hart.setTimer(deadline);
    g.run();
    g.expectEnd();
    assert.ok(g.hart.readTime() >= deadline, "WFI waited for the timer");
    assert.equal(hex(g.reg("s2")), "0x22");
  });

  void test("sleeps without spinning until the timer fires, then takes the interrupt", () => {
    const g = makeGuest(`
      li t0, 0x20
      csrw sie, t0
      csrsi sstatus, 2
      wfi
      after: nop
    `);
    const waitMs = 150;
    // Clocks start before the deadline is set, so the wait can only look longer than waitMs.
    const cpu = process.cpuUsage();
    const start = performance.now();
    const deadline = g.hart.readTime() + waitMs * TICKS_PER_MS;
    g.hart.setTimer(deadline);
    g.run();
    const elapsed = performance.now() - start;
    const used = process.cpuUsage(cpu);
    const cpuMs = (used.user + used.system) / 1000;
    const trap = g.expectTrap();
    assert.equal(hex(trap.cause), hex(STI));
    assert.equal(trap.epc, BigInt(g.sym("after")), "sepc = the instruction after WFI");
    assert.ok(g.hart.readTime() >= deadline);
    assert.ok(elapsed >= waitMs - 1 && elapsed < waitMs + 1000, `waited ${elapsed} ms`);
    assert.ok(cpuMs < elapsed / 3, `used ${cpuMs.toFixed(1)} ms of CPU in ${elapsed} ms`);
  });

  const wakeFromWorker = async (order: Omit<WakeOrder, "control">, sie: number, body = "wfi") => {
    const g = makeGuest(`
      li t0, ${sie}
      csrw sie, t0
      csrsi sstatus, 2
      ${body}
      after: li s2, 1
    `);
    // Backstop: the timer ends a WFI that nobody wakes (and the test then fails).
    g.hart.setTimer(g.hart.readTime() + 3000 * TICKS_PER_MS);
    const workerData: WakeOrder = { ...order, control: g.hart.control };
    const worker = new Worker(new URL("./wake-worker.js", import.meta.url), { workerData });
    await once(worker, "online");
    const done = once(worker, "message");
    worker.postMessage("go");
    const start = performance.now();
    // A spinning guest must be stopped by the other thread long before this budget ends.
    const exit = g.run(1_000_000_000);
    const elapsed = performance.now() - start;
    await done;
    await worker.terminate();
    return { g, exit, elapsed };
  };

  void test("wakes on postRequest from another thread, exiting with EXIT_REQUEST", async () => {
    const { g, exit, elapsed } = await wakeFromWorker(
      { action: "request", bits: 4, delayMs: 100 },
      0x20,
    );
    assert.equal(exit, EXIT_REQUEST);
    assert.ok(elapsed >= 90 && elapsed < 2000, `woke after ${elapsed} ms`);
    assert.equal(takeRequests(g.hart.control), 4);
    assert.equal(g.hart.pc, g.sym("after"), "resumes after the WFI");
    g.hart.setTimer(Infinity);
    g.run();
    g.expectEnd();
    assert.equal(g.reg("s2"), 1n);
  });

  void test("wakes on an interrupt raised by another thread and takes it", async () => {
    const { g, elapsed } = await wakeFromWorker(
      { action: "interrupt", bits: MIP_SSIP, delayMs: 100 },
      0x22,
    );
    const trap = g.expectTrap();
    assert.equal(hex(trap.cause), hex(SSI));
    assert.equal(trap.epc, BigInt(g.sym("after")));
    assert.ok(elapsed >= 90 && elapsed < 2000, `woke after ${elapsed} ms`);
  });

  void test("a running (not waiting) hart stops at a request posted by another thread", async () => {
    const { g, exit, elapsed } = await wakeFromWorker(
      { action: "request", bits: 1, delayMs: 50 },
      0,
      "1: addi s3, s3, 1\n j 1b",
    );
    assert.equal(exit, EXIT_REQUEST);
    assert.ok(elapsed >= 40 && elapsed < 3000, `stopped after ${elapsed} ms`);
    assert.equal(takeRequests(g.hart.control), 1);
    assert.ok(g.reg("s3") > 0n);
  });

  void test("an interrupt raised by another thread reaches a running hart", async () => {
    const { g } = await wakeFromWorker(
      { action: "interrupt", bits: MIP_SEIP, delayMs: 50 },
      0x200,
      "1: addi s3, s3, 1\n j 1b",
    );
    const trap = g.expectTrap();
    assert.equal(hex(trap.cause), hex(SEI));
    assert.ok(g.reg("s3") > 0n);
  });
});
