/**
 * runProgram, the flat-memory host with a tiny SBI that tests and the CPU
 * benchmark use: console output, shutdown, unsupported calls, budget and
 * fault stops.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { runProgram } from "../../../src/riscv/testing/run-program.js";
import { makeGuest } from "./guest.js";

const SRST = 0x5352_5354;
const DBCN = 0x4442_434e;

void describe("runProgram", () => {
  void test("prints with legacy putchar and DBCN write_byte, then shuts down via SRST", () => {
    const g = makeGuest(`
      li a7, 1
      li a0, 'h'
      ecall
      li a7, ${DBCN}
      li a6, 2
      li a0, 105
      ecall
      mv s2, a0               # DBCN returns SBI_SUCCESS
      li a7, 0x12345678       # unknown extension
      li a6, 0
      ecall
      mv s3, a0
      li a7, ${SRST}
      li a6, 0
      li a0, 0
      li a1, 1                # reason: system failure
      ecall
      ebreak                  # never reached
    `);
    const result = runProgram(g.hart);
    assert.equal(result.stop, "shutdown");
    assert.equal(result.shutdownReason, 1);
    assert.equal(result.console, "hi");
    assert.equal(g.reg("s2"), 0n);
    assert.equal(BigInt.asIntN(64, g.reg("s3")), -2n, "SBI_ERR_NOT_SUPPORTED");
    assert.equal(g.trap.count, 0n);
  });

  void test("legacy shutdown stops with reason 0", () => {
    const g = makeGuest(`
      li a7, 8
      ecall
    `);
    const result = runProgram(g.hart);
    assert.equal(result.stop, "shutdown");
    assert.equal(result.shutdownReason, 0);
  });

  void test("stops at the budget, counting retired instructions", () => {
    const g = makeGuest(`
      1: addi s2, s2, 1
      j 1b
    `);
    const result = runProgram(g.hart, 10_001);
    assert.equal(result.stop, "budget");
    assert.equal(result.instructions, 10_001);
    // The prelude takes 5 instructions (la = 2, csrw, li, j); then 2 per iteration.
    assert.equal(g.reg("s2"), BigInt(Math.ceil((10_001 - 5) / 2)));
  });

  void test("stops on an access outside RAM", () => {
    const g = makeGuest(`
      li t0, 0x10000000
      sb zero, 0(t0)
    `);
    const result = runProgram(g.hart);
    assert.equal(result.stop, "fault");
    assert.equal(g.hart.fault.gpa, 0x1000_0000);
  });
});
